"""The bubblewrap command line that confines one load, and the check that it can run here.

Namespaces: user, mount, PID, IPC, UTS, cgroup and network (``--unshare-all``), nested user
namespaces disabled (``--disable-userns``, or the seccomp filter when the fake network needs
the sandbox's user namespace to own its network namespace), a new session (no TIOCSTI into
the caller's terminal), ``--die-with-parent``. The filesystem is an empty tmpfs root with
read-only binds of the system folders, the interpreter environment and the model; ``/tmp`` is
a private, size-limited tmpfs (the scratch); the environment is cleared and rebuilt. No host
path not listed here exists inside: not the caller's home, not /var/run's sockets, not /root.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from mlgate.sandbox import cgroups
from mlgate.sandbox.environment import PythonEnvironment
from mlgate.sandbox.errors import SandboxUnavailableError

SCRATCH = "/tmp"
MODEL_DIR = "/model"
INSIDE_ROOT = "/mlgate"  # the runner package is bound at /mlgate/mlgate_inside
INSIDE_DIR = Path(__file__).parent / "inside"
_SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
# /etc entries the dynamic loader, libc and TLS need; nothing with host secrets or config.
_ETC_FILES = (
    "/etc/ld.so.cache",
    "/etc/ld.so.conf",
    "/etc/ld.so.conf.d",
    "/etc/nsswitch.conf",
    "/etc/localtime",
    "/etc/ssl",
    "/etc/ca-certificates",
    "/etc/alternatives",
    "/etc/mime.types",
)
_PASSWD = (
    b"root:x:0:0:root:/tmp/home:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
)
_GROUP = b"root:x:0:\nnogroup:x:65534:\n"
_HOSTS = b"127.0.0.1 localhost\n::1 localhost\n"
_RESOLV = b"nameserver 127.0.0.1\noptions attempts:1 timeout:1\n"
_ENV = {
    "HOME": "/tmp/home",
    "PATH": "/usr/local/bin:/usr/bin:/bin",
    "LANG": "C.UTF-8",
    "TMPDIR": SCRATCH,
    "HF_HOME": "/tmp/hf",
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "OMP_NUM_THREADS": "2",
    "PYTHONHASHSEED": "0",
}


@dataclass(frozen=True)
class Isolation:
    """What this machine can do, found by trying it (never assumed)."""

    bwrap: str | None
    strace: str | None
    user_namespaces: bool
    reason: str = ""
    # Without user namespaces, root can still run bubblewrap in its privileged mode (mount,
    # PID, network... namespaces, capabilities dropped, but the sandbox's root is the host's
    # root): weaker, so only with --allow-weaker-isolation. Other users cannot be isolated.
    privileged: bool = False
    # Why no process/memory ceiling binds the run ("" when a per-run cgroup holds it, or the
    # caller is not root and RLIMIT_NPROC applies): root ignores RLIMIT_NPROC (fork bombs).
    no_ceiling: str = ""

    @property
    def full(self) -> bool:
        return self.runnable and not self.weaknesses

    @property
    def runnable(self) -> bool:
        return self.bwrap is not None and (self.user_namespaces or self.privileged)

    @property
    def weaknesses(self) -> str:
        """What is missing from full isolation, for the refusal and for MLG713."""
        missing = [] if self.strace else ["no syscall-level record (strace missing)"]
        missing += [self.reason] if self.privileged else []
        missing += [self.no_ceiling] if self.no_ceiling else []
        return "; ".join(missing)


def probe() -> Isolation:
    """Find bubblewrap and strace and check that an unprivileged user namespace starts."""
    bwrap, strace = shutil.which("bwrap"), shutil.which("strace")
    if bwrap is None:
        return Isolation(None, strace, False, "bubblewrap (bwrap) is not installed")
    # --unshare-user, not --unshare-all's "try": the check must fail where the run would.
    failure = _starts(bwrap, "--unshare-user")
    if failure is None:
        reason = "" if strace else "strace is not installed (no syscall-level record)"
        return Isolation(bwrap, strace, True, reason, no_ceiling=_ceiling_missing())
    unavailable = f"user namespaces unavailable: {failure}"
    if os.geteuid() == 0 and _starts(bwrap) is None:
        weaker = "no user namespace: bubblewrap in privileged mode, as the host's root"
        return Isolation(
            bwrap, strace, False, weaker, privileged=True, no_ceiling=_ceiling_missing()
        )
    return Isolation(bwrap, strace, False, unavailable)


def _starts(bwrap: str, *extra: str) -> str | None:
    """None when bubblewrap starts a sandbox with these options, else why not."""
    try:
        done = subprocess.run(  # noqa: S603 - fixed argv
            [bwrap, "--unshare-all", *extra, "--ro-bind", "/", "/", "--", "/bin/true"],
            capture_output=True,
            timeout=20,
            check=False,
        )
    except (OSError, subprocess.SubprocessError) as error:
        return f"bwrap failed to start: {error}"
    if done.returncode != 0:
        return done.stderr.decode("utf-8", "replace").strip()[:300] or f"exit {done.returncode}"
    return None


def _ceiling_missing() -> str:
    """Root needs a per-run cgroup: RLIMIT_NPROC does not bind kernel uid 0."""
    if os.geteuid() != 0:
        return ""
    reason = cgroups.unavailable()
    return f"running as root without a process limit: {reason}" if reason else ""


def require(isolation: Isolation, allow_weaker: bool) -> None:
    """Refuse to run a payload with less than full isolation unless asked to."""
    if not isolation.runnable:
        raise SandboxUnavailableError(
            f"cannot isolate the loader: {isolation.reason}",
            remedy="install bubblewrap and allow unprivileged user namespaces "
            "(sysctl kernel.unprivileged_userns_clone=1); nothing was run",
        )
    if isolation.weaknesses and not allow_weaker:
        raise SandboxUnavailableError(
            isolation.weaknesses,
            remedy=", ".join(_remedies(isolation))
            + "; or pass --allow-weaker-isolation to accept the weaker isolation",
        )


def _remedies(isolation: Isolation) -> list[str]:
    fixes = [] if isolation.strace else ["install strace"]
    if isolation.privileged:
        fixes.append("allow user namespaces (sysctl user.max_user_namespaces > 0)")
    if isolation.no_ceiling:
        fixes.append("allow cgroup creation, or run mlgate as a non-root user")
    return fixes


@dataclass(frozen=True)
class Binds:
    """Host paths made visible inside: the environment, the model, the runner."""

    environment: PythonEnvironment
    model: Path
    model_inside: str
    others: tuple[tuple[Path, str], ...] = ()  # (host path, path inside): a --reference model


def bwrap_argv(
    found: Isolation,
    binds: Binds,
    data_fds: dict[str, int],
    seccomp_fd: int | None,
    scratch_bytes: int,
    network: bool,
) -> list[str]:
    """The bubblewrap command line (without the command to run)."""
    argv = [str(found.bwrap), "--unshare-all"]
    if found.user_namespaces:
        argv += ["--unshare-user", "--uid", "0", "--gid", "0"]
    argv += ["--die-with-parent", "--new-session", "--clearenv"]
    if network:  # dropped by the runner before the model is opened (inside/caps.py)
        # No --disable-userns: its nested user namespace would not own the network
        # namespace; the seccomp filter denies new user namespaces instead.
        argv += ["--cap-add", "CAP_NET_ADMIN", "--cap-add", "CAP_NET_BIND_SERVICE"]
    else:
        argv += ["--disable-userns"] if found.user_namespaces else []
        argv += ["--cap-drop", "ALL"]
    for name, value in _ENV.items():
        argv += ["--setenv", name, value]
    argv += _system_binds()
    argv += ["--proc", "/proc", "--dev", "/dev"]
    argv += ["--size", str(scratch_bytes), "--tmpfs", SCRATCH, "--tmpfs", "/dev/shm"]
    argv += ["--dir", "/tmp/home", "--dir", "/tmp/hf"]
    for dest, fd in data_fds.items():
        argv += ["--ro-bind-data", str(fd), dest]
    for root in binds.environment.roots:
        argv += ["--ro-bind", str(root), str(root)]
    argv += ["--ro-bind", str(INSIDE_DIR), f"{INSIDE_ROOT}/mlgate_inside"]
    for host, inside in ((binds.model, binds.model_inside), *binds.others):
        argv += ["--ro-bind", str(host), inside]  # a file, or a directory (transformers)
    argv += ["--remount-ro", "/"]  # the root tmpfs too: only the scratch is writable
    if seccomp_fd is not None:
        argv += ["--seccomp", str(seccomp_fd)]
    argv += ["--chdir", SCRATCH]
    return argv


def data_files() -> dict[str, bytes]:
    """Small files written into the sandbox's /etc (names, DNS pointing at the fake network)."""
    return {
        "/etc/passwd": _PASSWD,
        "/etc/group": _GROUP,
        "/etc/hosts": _HOSTS,
        "/etc/resolv.conf": _RESOLV,
    }


def _system_binds() -> list[str]:
    argv: list[str] = []
    for folder in _SYSTEM_DIRS:
        if os.path.islink(folder):  # merged /usr: /bin -> usr/bin
            argv += ["--symlink", os.readlink(folder), folder]
        elif os.path.isdir(folder):
            argv += ["--ro-bind", folder, folder]
    for entry in _ETC_FILES:
        if os.path.exists(entry):
            argv += ["--ro-bind", entry, entry]
    return argv


def command(python: Path, config: str) -> Sequence[str]:
    """How the runner is started: isolated mode, no bytecode written, the package on path."""
    bootstrap = (
        f"import sys; sys.path.insert(0, {INSIDE_ROOT!r}); "
        "from mlgate_inside.runner import main; main()"
    )
    return [str(python), "-I", "-B", "-c", bootstrap, config]
