"""``mlgate explain``: what a pickle would do, as pseudo-Python a reviewer can read."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from mlgate.findings import Finding
from mlgate.render.escape import inert
from mlgate.scan.pickle.policy import Policy
from mlgate.scan.pickle.program import Program
from mlgate.scan.pickle.render import ValueRenderer
from mlgate.scan.pickle.values import Attr, Call, Global, deref

MAX_STATEMENTS = 400

# The scan's findings at a byte offset of the artifact: explain shows each call with the rule
# and severity `mlgate scan` reports for it, so the two never disagree on one call.
FindingsAt = Callable[[int], Sequence[Finding]]


def explain_programs(
    artifact: str, programs: list[Program], policy: Policy, findings_at: FindingsAt
) -> str:
    """Pseudo-Python for every pickle of one artifact, verdicts as trailing comments."""
    out: list[str] = []
    for prog in programs:
        out.extend(_program(artifact, prog, policy, findings_at))
    return "\n".join(out)


def _program(artifact: str, prog: Program, policy: Policy, findings_at: FindingsAt) -> list[str]:
    lines = [
        f"# {artifact} - pickle #{prog.number} (protocol {prog.protocol}, "
        f"{prog.opcodes} opcodes, offset {prog.start})"
    ]
    names: dict[int, str] = {}
    render = ValueRenderer(names=names, max_str=120, max_items=6, max_depth=4, budget=600)
    for sub in prog.nested:
        lines.extend(_program(artifact + " (joblib object array)", sub, policy, findings_at))
    for n, call in enumerate(prog.calls):
        if n >= MAX_STATEMENTS:
            lines.append(f"# ... {len(prog.calls) - MAX_STATEMENTS} more calls not shown")
            break
        text = render.call(call)
        note = _findings_note(findings_at(call.offset)) or _note(call, policy)
        if call.kind in ("BUILD", "APPEND", "EXTEND", "ADD", "SETITEM"):
            lines.append(f"{text}{note}")
        else:
            name = f"_v{n}"
            lines.append(f"{name} = {text}{note}")
            names[id(call)] = name
    if prog.error is not None:
        lines.append(f"# !! the loader raises here (offset {prog.error_offset}): {prog.error}")
    elif prog.limit is not None:
        lines.append(f"# !! analysis stopped: {prog.limit}")
    elif prog.failure is not None:
        lines.append(f"# !! analysis stopped: {prog.failure}")
    else:
        lines.append(f"result = {render.render(prog.result)}")
    lines.append("")
    return lines


def _findings_note(found: Sequence[Finding]) -> str:
    """The scan's own verdicts on this call, worst first (messages are the model's text)."""
    ranked = sorted(found, key=lambda f: -f.severity)
    return "".join(f"  # {f.severity.name} {f.rule_id}: {inert(f.message)}" for f in ranked[:3])


def _note(call: Call, policy: Policy) -> str:
    """The policy's verdict on the callable, for calls the scan reported elsewhere (a global's
    finding is given once, at its first use)."""
    target = deref(call.func)
    if isinstance(target, Attr) and call.kind == "BUILD":
        return ""
    if isinstance(call.resolved, Global):
        target = call.resolved
    if not isinstance(target, Global):
        return "  # computed callable" if not isinstance(target, Attr) else ""
    verdict = policy.classify(target.module, target.name)
    if verdict.is_safe:
        return ""
    sev = verdict.severity.name if verdict.severity else "?"
    return f"  # {sev}: {verdict.reason}"
