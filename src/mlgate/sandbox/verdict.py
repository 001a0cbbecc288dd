"""From observed events to findings in the shared model: what the model did while loading.

Events from the framework's own start-up (phase ``import``, before the model was opened) are
not the model's doing and are not judged. Everything from the moment the model is opened is.
A run that did not end with the runner's ``loaded`` status, or whose record is incomplete, is
incomplete (exit 2): the model was not fully observed, so it is not known to be safe.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from mlgate.findings import ArtifactResult, Finding, Location, Report, Severity
from mlgate.sandbox.events import RunnerStatus, SandboxEvent
from mlgate.scan import rules
from mlgate.scan.pickle.policy import MODULE_MARK, Category, Policy

_MAX_PER_RULE = 25
# The private scratch inside the sandbox (a tmpfs), never the host's /tmp.
_SCRATCH_PREFIXES = ('"/tmp/', '"/dev/shm/', '"/dev/null"', '"/dev/tty"', '"/proc/self/')
_SCRATCH_PATHS = ("/tmp/", "/dev/shm/", "/dev/null", "/proc/self/")
# Code generation the standard library does on its own behalf (dataclass __init__, namedtuple);
# ast.parse compiles to a syntax tree only, nothing runs (numpy reads the .npy header with
# ast.literal_eval, torch.jit parses overload signatures).
_CODEGEN_CALLERS = re.compile(r"/(dataclasses|typing|enum|collections/__init__|ast)\.py:\d+$")
# glibc's name-service cache socket, tried by getpwuid() (torch and transformers look up the
# user name for cache paths); it does not exist inside the sandbox (ENOENT).
_NSCD = 'sun_path="/var/run/nscd/socket"'
_SECRETS: tuple[str | re.Pattern[str], ...] = (
    "/.ssh/",
    "/.aws/",
    "/.config/gcloud",
    "/.azure/",
    "/.kube/",
    "/.docker/config",
    "/.netrc",
    "/.git-credentials",
    "/.pypirc",
    "/etc/shadow",
    # Another process's environment; the loader's own (/proc/self) is the one bwrap rebuilt
    # from nothing (--clearenv), and "/environ" alone matched accelerate's environment.py.
    re.compile(r"/proc/(?!self/)[^/]+/environ"),
    "/.bash_history",
    "id_rsa",
    "id_ed25519",
)


@dataclass(frozen=True)
class Outcome:
    """How the run ended."""

    exit_status: int | None
    timed_out: bool
    lossy: bool
    traced: bool
    weaker: str  # what full isolation lacked ("" when nothing)
    limits_hit: tuple[str, ...] = ()  # the cgroup ceilings that stopped something
    output_tail: str = ""  # the end of what the sandbox printed (bwrap errors, tracebacks)


def judge(
    model: str,
    loader: str,
    events: Iterable[SandboxEvent],
    statuses: list[RunnerStatus],
    outcome: Outcome,
) -> Report:
    """The report for one sandboxed load."""
    location = Location(model)
    findings = _capped(f for e in events if e.phase != "import" for f in _judge_event(e, location))
    findings += _judge_outcome(statuses, outcome, location)
    complete = _loaded(statuses) and not (outcome.lossy or outcome.timed_out or outcome.limits_hit)
    artifact = ArtifactResult(model, f"sandbox:{loader}", complete=complete)
    return Report(targets=(model,), findings=tuple(findings), artifacts=(artifact,))


def _loaded(statuses: list[RunnerStatus]) -> bool:
    probed = _started(statuses, "probed") or not _started(statuses, "probing")
    return _started(statuses, "loaded") and probed


def _started(statuses: list[RunnerStatus], status: str) -> bool:
    return any(s.status == status for s in statuses)


def _judge_event(event: SandboxEvent, location: Location) -> Iterator[Finding]:
    rule = _rule_for(event)
    if rule is not None:
        yield Finding(rule.id, rule.severity, _message(rule, event), location, event.describe())


def _rule_for(event: SandboxEvent) -> rules.Rule | None:
    category = event.category
    if category == "process":
        return rules.SANDBOX_PROCESS
    if category == "network":
        return None if _sink_internal(event) else rules.SANDBOX_NETWORK
    if category in ("dns", "connection"):
        return rules.SANDBOX_NETWORK
    if category in ("file-write", "file-change"):
        return None if _in_scratch(event) else rules.SANDBOX_WRITE
    if category == "file-read":
        return rules.SANDBOX_SECRET_READ if _secret(event) else None
    if category == "code":
        return None if _CODEGEN_CALLERS.search(event.caller) else rules.SANDBOX_CODE
    if category == "denied":
        return rules.SANDBOX_ESCAPE
    if category == "signal":
        return rules.SANDBOX_SIGNAL if _foreign_signal(event) else None
    if category == "import":
        return (
            rules.SANDBOX_IMPORT
            if _denied_module(event.detail[0] if event.detail else "")
            else None
        )
    if category == "load-only":
        return _load_only_rule(event)
    if category == "probe":
        return rules.SANDBOX_OUTPUT if _anomalous(event) else None
    return None


def _anomalous(event: SandboxEvent) -> bool:
    """NaN/Inf or constant output, a reference too far off, or a probe that raised."""
    facts = dict(d.partition("=")[::2] for d in event.detail)
    if event.action == "output":
        return facts.get("nan") != "0" or facts.get("inf") != "0" or facts.get("constant") == "True"
    return event.action == "error" or facts.get("exceeds") == "True"


def _load_only_rule(event: SandboxEvent) -> rules.Rule | None:
    action = event.action
    if action.startswith("ctypes."):
        return rules.SANDBOX_NATIVE
    if action == "pickle.find_class" and len(event.detail) >= 2:
        verdict = Policy().classify(event.detail[0], event.detail[1])
        return (
            rules.SANDBOX_IMPORT
            if verdict.category not in (Category.SAFE, Category.UNKNOWN)
            else None
        )
    if action in ("sys.addaudithook", "sys.settrace", "sys.setprofile"):
        return rules.SANDBOX_ESCAPE
    if action in ("os.kill", "os.killpg", "signal.pthread_kill"):
        return rules.SANDBOX_SIGNAL
    if action == "marshal.loads" and not event.caller.startswith("<frozen importlib"):
        return rules.SANDBOX_CODE
    return None


def _denied_module(module: str) -> bool:
    verdict = Policy().classify(module, MODULE_MARK)
    return verdict.category in (Category.CODE_EXECUTION, Category.SYSTEM)


def _in_scratch(event: SandboxEvent) -> bool:
    if not event.detail:
        return False
    if event.source == "syscall":
        paths = [a for a in event.detail if a.startswith('"')]
        return bool(paths) and all(p.startswith(_SCRATCH_PREFIXES) for p in paths)
    return event.detail[0].startswith(_SCRATCH_PATHS) or event.detail[0].isdigit()


def _secret(event: SandboxEvent) -> bool:
    return any(_matches(marker, arg) for arg in event.detail for marker in _SECRETS)


def _matches(marker: str | re.Pattern[str], text: str) -> bool:
    return marker in text if isinstance(marker, str) else marker.search(text) is not None


def _sink_internal(event: SandboxEvent) -> bool:
    """The loader's own listening sockets are not attempts to reach out (AF_NETLINK, unix)."""
    text = " ".join(event.detail)
    return "AF_NETLINK" in text or (event.action == "connect" and _NSCD in text)


def _foreign_signal(event: SandboxEvent) -> bool:
    """kill(0|-1|1, sig): the process group, everything, or the sandbox's init (the parent)."""
    target = event.detail[0] if event.detail else ""
    signal = event.detail[1] if len(event.detail) > 1 else ""
    return target in ("0", "-1", "1") and signal not in ("0", "SIG_0")


def _message(rule: rules.Rule, event: SandboxEvent) -> str:
    seen = "seen by the syscall trace" if event.source == "syscall" else f"seen by {event.source}"
    return f"{rule.description.split(':')[0].rstrip('.')}: {event.action} ({seen})"


def _capped(findings: Iterable[Finding]) -> list[Finding]:
    """At most a few findings per rule and evidence; the rest are counted, not listed."""
    kept: list[Finding] = []
    seen: set[tuple[str, str]] = set()
    per_rule: dict[str, int] = {}
    for finding in findings:
        key = (finding.rule_id, finding.evidence)
        if key in seen:
            continue
        seen.add(key)
        per_rule[finding.rule_id] = per_rule.get(finding.rule_id, 0) + 1
        if per_rule[finding.rule_id] <= _MAX_PER_RULE:
            kept.append(finding)
    return kept


def _last_words(outcome: Outcome) -> str:
    """The sandbox's last output line, when the runner never reported (bwrap refusing a bind,
    an interpreter that would not start): what a user needs to fix the set-up."""
    lines = outcome.output_tail.splitlines()
    return f"; last output: {lines[-1][:200]}" if lines else ""


def _judge_outcome(
    statuses: list[RunnerStatus], outcome: Outcome, location: Location
) -> list[Finding]:
    found: list[Finding] = []
    failed = next((s for s in statuses if s.status in ("load-failed", "setup-failed")), None)
    if outcome.timed_out:
        found.append(
            _outcome(
                rules.SANDBOX_LOAD_FAILED,
                "the wall-clock limit ran out; the sandbox was killed",
                location,
                Severity.HIGH,
            )
        )
    elif failed is not None:
        what = "the loader raised" if failed.status == "load-failed" else "sandbox set-up failed"
        found.append(_outcome(rules.SANDBOX_LOAD_FAILED, f"{what}: {failed.detail}", location))
    elif not _loaded(statuses):
        found.append(
            _outcome(
                rules.SANDBOX_LOAD_FAILED,
                "the loader process ended without "
                f"reporting (exit status {outcome.exit_status}: crash, limit or "
                f"payload exit){_last_words(outcome)}",
                location,
                Severity.HIGH,
            )
        )
    # A load stopped by a ceiling was not observed to its end, even if it then "loaded".
    found += [
        _outcome(
            rules.SANDBOX_LOAD_FAILED, f"{hit}: the load was cut short", location, Severity.HIGH
        )
        for hit in outcome.limits_hit
    ]
    if _started(statuses, "probing") and not _started(statuses, "probed"):
        found.append(
            _outcome(
                rules.SANDBOX_INCOMPLETE,
                "the behaviour probe did not finish (the model's forward ended the process)",
                location,
            )
        )
    if outcome.lossy:
        found.append(
            _outcome(rules.SANDBOX_INCOMPLETE, "events were dropped or unreadable", location)
        )
    if outcome.weaker:
        found.append(_outcome(rules.SANDBOX_WEAK, outcome.weaker, location))
    return found


def _outcome(
    rule: rules.Rule, evidence: str, location: Location, severity: Severity | None = None
) -> Finding:
    return Finding(rule.id, severity or rule.severity, rule.description, location, evidence)
