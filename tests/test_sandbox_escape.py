"""Escape attempts against the dynamic test: each payload is a pickle built here (dumping runs
nothing) and loaded only inside the sandbox; each must fail on the host and be reported."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sandbox_support import require_sandbox, rule_ids, sandboxed

from mlgate.findings import Severity
from mlgate.sandbox import cgroups, isolation
from mlgate.sandbox.errors import SandboxUnavailableError
from mlgate.sandbox.limits import GIB, SandboxLimits
from mlgate.sandbox.service import SandboxOptions, SandboxRun, run_sandbox

_SMALL = SandboxLimits(wall_seconds=15, memory_bytes=1 * GIB, processes=64)


class _Exec:
    """A pickle whose load runs a Python snippet (builtins.exec)."""

    def __init__(self, source: str) -> None:
        self.source = source

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (exec, (self.source,))


def _run(tmp_path: Path, source: str, limits: SandboxLimits = _SMALL) -> SandboxRun:
    model = tmp_path / f"payload-{uuid.uuid4().hex[:8]}.pkl"
    model.write_bytes(pickle.dumps(_Exec(source)))
    return sandboxed(model, "pickle", limits=limits)


def _evidence(run: SandboxRun, rule: str) -> str:
    return "\n".join(f.evidence for f in run.report.findings if f.rule_id == rule)


def _everything(run: SandboxRun) -> str:
    """Every text the run produced: events and findings (what a secret must never reach)."""
    texts = [e.describe() for e in run.events] + [s.detail for s in run.statuses]
    texts += [f"{f.message} {f.evidence}" for f in run.report.findings]
    return "\n".join(texts)


def _leftovers(tag: str) -> list[str]:
    """Processes on the host whose command line carries ``tag`` (the model's unique name)."""
    listing = subprocess.run(
        ["ps", "-eo", "pid,args"], capture_output=True, text=True, check=True
    ).stdout
    return [line for line in listing.splitlines() if tag in line and "ps -eo" not in line]


@pytest.fixture
def host_markers() -> Iterator[list[Path]]:
    """Unique paths in the host's real /tmp and $HOME, removed whatever happens."""
    name = f"mlgate-escape-{uuid.uuid4().hex}"
    paths = [Path("/tmp") / name, Path.home() / name]
    yield paths
    for path in paths:
        path.unlink(missing_ok=True)


def test_writes_to_host_tmp_and_home_stay_inside(tmp_path: Path, host_markers: list[Path]) -> None:
    host_tmp, host_home = host_markers
    source = (
        f"open({str(host_tmp)!r}, 'w').write('pwned')\n"
        f"import os; os.close(os.open({str(host_home)!r}, os.O_CREAT | os.O_WRONLY))\n"
    )
    run = _run(tmp_path, source)
    assert not host_tmp.exists() and not host_home.exists()
    evidence = _evidence(run, "MLG704")
    assert str(host_home) in evidence  # outside any writable mount: denied and reported
    # /tmp inside is the private scratch: the write lands there, never on the host's /tmp.
    assert run.report.max_severity is Severity.CRITICAL


def test_host_secrets_are_out_of_reach_and_reads_reported(tmp_path: Path) -> None:
    secret = f"SECRET-{uuid.uuid4().hex}"
    vault = tmp_path / "vault" / "token.txt"
    key = tmp_path / "home" / ".ssh" / "id_rsa"
    for path in (vault, key):
        path.parent.mkdir(parents=True)
        path.write_text(secret)
    targets = [str(vault), str(key), "/root/.ssh/id_rsa", "/etc/shadow", "/proc/1/environ"]
    source = (
        "import os\n"
        f"for path in {targets!r}:\n"
        "    try:\n"
        "        data = open(path).read()\n"
        "    except OSError:\n"
        "        continue\n"
        "    os.system('echo ' + data.replace(chr(0), ' ')[:200])\n"  # exfiltrate via an event
        "    os.path.exists('/tmp/' + data[:100])\n"
    )
    run = _run(tmp_path, source)
    assert secret not in _everything(run)
    evidence = _evidence(run, "MLG710")
    for path in (str(key), "/etc/shadow", "/proc/1/environ"):
        assert path in evidence


def test_fork_bomb_is_stopped_and_leaves_nothing(tmp_path: Path) -> None:
    source = (
        "import os, time\n"
        "for _ in range(100000):\n"
        "    try:\n"
        "        if os.fork() == 0:\n"
        "            time.sleep(60)\n"
        "            os._exit(0)\n"
        "    except OSError:\n"
        "        break\n"
        "time.sleep(60)\n"
    )
    limits = SandboxLimits(wall_seconds=4, memory_bytes=1 * GIB, processes=32)
    started = time.monotonic()
    run = _run(tmp_path, source, limits)
    assert time.monotonic() - started < 4 + 5
    assert "MLG701" in rule_ids(run)
    assert not run.report.complete or run.report.max_severity is Severity.CRITICAL
    # Every forked process is gone (they carry the model's name in their command line), and
    # the run's cgroup could be removed, which the kernel allows only once it is empty.
    assert _leftovers(Path(run.model).name) == []
    assert _removed_groups(run)


def test_fork_bomb_hits_the_process_limit(tmp_path: Path) -> None:
    source = (
        "import os, sys, time\n"
        "count = 0\n"
        "for _ in range(1000):\n"
        "    try:\n"
        "        pid = os.fork()\n"
        "    except OSError:\n"
        "        break\n"
        "    if pid == 0:\n"
        "        time.sleep(30)\n"
        "        os._exit(0)\n"
        "    count += 1\n"
        "raise RuntimeError(f'forked {count}')\n"
    )
    run = _run(tmp_path, source, SandboxLimits(wall_seconds=10, processes=24))
    failed = _evidence(run, "MLG708")
    assert "forked" in failed, failed
    forked = int(failed.split("forked ")[1].split("'")[0].split('"')[0].split()[0])
    assert forked < 24  # root too: RLIMIT_NPROC alone would let all 1000 through
    assert "the process limit refused" in failed
    assert not run.report.complete


@pytest.mark.parametrize(
    "source",
    [
        "bytearray(50 * 1024 ** 3)",
        "chunks = []\nwhile True:\n    chunks.append(bytearray(64 * 1024 * 1024))",
    ],
    ids=["one-allocation", "growing"],
)
def test_memory_bomb_is_stopped(tmp_path: Path, source: str) -> None:
    started = time.monotonic()
    run = _run(tmp_path, source, SandboxLimits(wall_seconds=20, memory_bytes=1 * GIB))
    assert time.monotonic() - started < 15
    assert "MemoryError" in _evidence(run, "MLG708") or "memory" in _evidence(run, "MLG708")
    assert not run.report.complete


def test_memory_spread_over_processes_meets_the_memory_ceiling(tmp_path: Path) -> None:
    # Each child stays under RLIMIT_AS (per process); together they exceed the run's memory.
    source = (
        "import os, time\n"
        "for _ in range(4):\n"
        "    if os.fork() == 0:\n"
        "        block = b'x' * (600 << 20)\n"
        "        time.sleep(30)\n"
        "time.sleep(3)\n"
    )
    run = _run(tmp_path, source, SandboxLimits(wall_seconds=10, memory_bytes=1 * GIB))
    assert "the memory limit killed" in _evidence(run, "MLG708")
    assert not run.report.complete


def test_sleeping_forever_is_killed_at_the_wall_clock(tmp_path: Path) -> None:
    started = time.monotonic()
    run = _run(tmp_path, "import time; time.sleep(10**6)", SandboxLimits(wall_seconds=3))
    took = time.monotonic() - started
    assert 3 <= took < 6
    timeouts = [f for f in run.report.findings if "wall-clock" in f.evidence]
    assert timeouts and timeouts[0].severity is Severity.HIGH
    assert not run.report.complete
    assert _leftovers(Path(run.model).name) == []


@pytest.mark.parametrize(
    "source",
    ["os.kill(os.getppid(), 9)", "os.kill(-1, 9)", "os.killpg(0, 9)"],
    ids=["parent", "everything", "group"],
)
def test_killing_the_parent_leaves_mlgate_standing(tmp_path: Path, source: str) -> None:
    run = _run(tmp_path, f"import os, time\n{source}\ntime.sleep(0.5)\n")
    ids = rule_ids(run)
    assert "MLG707" in ids or not run.report.complete
    assert "MLG707" in ids
    assert _leftovers(Path(run.model).name) == []


_SYSCALLS = {
    "ptrace": "libc.ptrace(0, 0, None, None)",  # PTRACE_TRACEME
    "mount": "libc.mount(b'none', b'/tmp', b'tmpfs', 0, None)",
    "unshare": "libc.unshare(0x10000000)",  # CLONE_NEWUSER
    "io_uring_setup": "libc.syscall(425, 8, ctypes.create_string_buffer(120))",
    "bpf": "libc.syscall(321, 0, ctypes.create_string_buffer(128), 128)",
}


def test_privileged_syscalls_are_denied_and_reported(tmp_path: Path) -> None:
    calls = "\n".join(
        f"results[{name!r}] = ({call}, ctypes.get_errno())" for name, call in _SYSCALLS.items()
    )
    source = (
        "import ctypes, signal\n"
        # Catching the seccomp trap keeps the payload alive to try every call in one run.
        "signal.signal(signal.SIGSYS, lambda *args: None)\n"
        "libc = ctypes.CDLL(None, use_errno=True)\n"
        "results = {}\n"
        f"{calls}\n"
        "raise RuntimeError(repr(results))\n"
    )
    run = _run(tmp_path, source)
    escape = _evidence(run, "MLG706")
    for name in _SYSCALLS:
        assert f"{name}(" in escape, name
    failed = _evidence(run, "MLG708")
    # The payload survived to report its results (it caught the trap) and no call succeeded
    # (0 is success for ptrace, mount and unshare; the trap leaves the call number instead).
    assert "the loader raised" in failed and "(0, " not in failed, failed


def test_flooding_events_and_output_is_bounded(tmp_path: Path) -> None:
    source = (
        "import os, sys\n"
        "for i in range(20000):\n"
        "    sys.audit('os.remove', '/flood/%d' % i)\n"
        "block = b'x' * (1 << 20)\n"
        "for _ in range(50):\n"
        "    os.write(1, block)\n"
        "    os.write(2, block)\n"
    )
    started = time.monotonic()
    run = _run(tmp_path, source, SandboxLimits(wall_seconds=20, max_events=2000))
    assert time.monotonic() - started < 20
    assert len([e for e in run.events if e.source == "audit"]) <= 2000
    assert "MLG712" in rule_ids(run)
    assert not run.report.complete


def test_audit_hook_tampering_is_reported(tmp_path: Path) -> None:
    run = _run(tmp_path, "import sys\nsys.addaudithook(lambda event, args: None)\n")
    assert "sys.addaudithook" in _evidence(run, "MLG706")


def test_root_without_a_cgroup_is_weaker_isolation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    require_sandbox()
    monkeypatch.setattr(cgroups, "ROOT", tmp_path / "no-cgroup-here")
    found = isolation.probe()
    if os.geteuid() != 0:  # RLIMIT_NPROC binds a non-root caller: nothing is missing
        assert found.no_ceiling == ""
        return
    assert "without a process limit" in found.weaknesses
    with pytest.raises(SandboxUnavailableError):
        isolation.require(found, allow_weaker=False)
    model = tmp_path / "plain.pkl"
    model.write_bytes(pickle.dumps(None))
    run = run_sandbox(model, SandboxOptions("pickle", allow_weaker_isolation=True))
    assert "without a process limit" in _evidence(run, "MLG713")


def test_a_cgroup_is_removed_after_the_run(tmp_path: Path) -> None:
    source = "import os\nif os.fork() == 0:\n    os.setsid()\n    import time; time.sleep(60)\n"
    run = _run(tmp_path, source)
    assert _removed_groups(run)  # created, the daemonised child killed, removed


def _removed_groups(run: SandboxRun) -> bool:
    """The run had its cgroup(s) (as root) and none is left: the kernel removes only empty
    ones, so nothing from the run survives in them."""
    groups = run.isolation["cgroups"]
    assert isinstance(groups, list)
    if os.geteuid() != 0:
        return groups == []
    return bool(groups) and not any(Path(group).exists() for group in groups)


def test_without_user_namespaces_it_refuses_unless_weaker_isolation_is_allowed(
    tmp_path: Path,
) -> None:
    """mlgate run in a user namespace where no nested one may be created (the sysctl is per
    namespace): it says so and refuses; with --allow-weaker-isolation, bubblewrap's privileged
    mode still confines the payload, and MLG713 names what was missing."""
    require_sandbox()
    if os.geteuid() != 0:
        pytest.skip("only root can fall back to bubblewrap's privileged mode")
    tag = f"mlgate-nouserns-{uuid.uuid4().hex}"
    model = tmp_path / "evil.pkl"
    model.write_bytes(pickle.dumps(_Exec(f"import os\nos.system('touch /tmp/{tag}')\n")))
    mlgate = f"{sys.executable} -m mlgate sandbox {model} --format json"
    script = f"echo 0 > /proc/sys/user/max_user_namespaces; {mlgate}; echo rc=$?; {mlgate} "
    script += "--allow-weaker-isolation; echo rc=$?"
    done = subprocess.run(
        ["unshare", "--user", "--map-root-user", "--fork", "sh", "-c", script],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1] / "src")},
    )
    refused, allowed = done.stdout.split("rc=")[0], done.stdout.split("rc=")[1]
    assert done.stdout.count("rc=") == 2 and "rc=2" in done.stdout and "rc=1" in done.stdout
    assert "no user namespace" in done.stderr and "--allow-weaker-isolation" in done.stderr
    assert refused.strip() == ""  # nothing was run
    findings = json.loads(allowed[allowed.index("{") :])["findings"]
    assert {"MLG701", "MLG713"} <= {f["rule_id"] for f in findings}
    assert not Path("/tmp", tag).exists()
