"""Human output: findings grouped by artifact, most severe first (rich)."""

from __future__ import annotations

import io
from collections import defaultdict
from typing import TYPE_CHECKING

from rich.markup import escape

from mlgate.findings import Finding, Report, Severity
from mlgate.render.escape import inert, inert_block

if TYPE_CHECKING:
    from rich.console import Console

_STYLE = {
    Severity.CRITICAL: "bold white on red",
    Severity.HIGH: "bold red",
    Severity.MEDIUM: "yellow",
    Severity.LOW: "cyan",
    Severity.INFO: "dim",
}
MAX_EVIDENCE_LINES = 12


def render_text(report: Report, fail_on: Severity, color: bool = False) -> str:
    """The report as terminal text (ANSI colours when ``color``)."""
    from rich.console import Console  # noqa: PLC0415 - ~25 ms to import; only text output needs it

    buf = io.StringIO()
    console = Console(
        file=buf,
        force_terminal=color,
        no_color=not color,
        width=110,
        highlight=False,
        soft_wrap=True,
        emoji=False,  # ":warning:" in a file name stays text
    )
    groups: dict[str, list[Finding]] = defaultdict(list)
    for f in report.sorted_findings():
        groups[f.location.artifact].append(f)
    for artifact in sorted(groups, key=lambda a: (-max(f.severity for f in groups[a]), a)):
        # One print per artifact: rich's per-call overhead dominated reports of many findings.
        lines = [f"[bold]{_markup(artifact)}[/bold]"]
        for f in groups[artifact]:
            lines += _finding(f)
        console.print("\n".join(lines) + "\n")
    _summary(console, report, fail_on)
    return buf.getvalue()


def _finding(f: Finding) -> list[str]:
    """The finding's markup lines: severity, rule, message, then its evidence."""
    where = []
    if f.location.offset is not None:
        where.append(f"offset {f.location.offset}")
    if f.location.opcode_index is not None:
        where.append(f"opcode {f.location.opcode_index}")
    if f.location.region is not None:
        where.append(f"line {f.location.region.line}, column {f.location.region.column}")
    suffix = f" [dim]({', '.join(where)})[/dim]" if where else ""
    style = _STYLE[f.severity]
    lines = [f"  [{style}]{f.severity.name:<8}[/{style}] {f.rule_id} {_markup(f.message)}{suffix}"]
    evidence = inert_block(f.evidence).splitlines()
    lines += [f"           [dim]{escape(line)}[/dim]" for line in evidence[:MAX_EVIDENCE_LINES]]
    if len(evidence) > MAX_EVIDENCE_LINES:
        lines.append(f"           [dim]... {len(evidence) - MAX_EVIDENCE_LINES} more lines[/dim]")
    return lines


def _markup(text: str) -> str:
    """Attacker-controlled ``text`` as rich markup that prints it literally: control and bidi
    characters escaped, ``[bold]``-like tags not interpreted."""
    return escape(inert(text))


def plural(count: int, noun: str) -> str:
    """``"1 finding"``, ``"2 findings"``."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def _summary(console: Console, report: Report, fail_on: Severity) -> None:
    counts = {s: 0 for s in Severity}
    for f in report.findings:
        counts[f.severity] += 1
    parts = [f"{n} {s.name.lower()}" for s, n in sorted(counts.items(), reverse=True) if n]
    # One set, not a scan of every finding per artifact: an archive of 20 000 flagged members
    # took 15 minutes to summarise (quadratic), far beyond any per-file budget.
    flagged = {f.location.artifact for f in report.findings}
    clean = sum(1 for a in report.artifacts if a.complete and a.artifact not in flagged)
    console.print(
        f"{plural(len(report.artifacts), 'artifact')} scanned, {clean} without findings; "
        f"{plural(len(report.findings), 'finding')}" + (f" ({', '.join(parts)})" if parts else "")
    )
    failing = report.at_or_above(fail_on)
    verdict = "[bold red]FAIL[/bold red]" if failing else "[bold green]PASS[/bold green]"
    headline = f"{plural(len(failing), 'finding')} at or above {fail_on.name}"
    skipped = sum(1 for a in report.artifacts if not a.complete)
    if skipped:
        # Fail closed: what was not analysed may hold the payload, so no PASS whatever the count.
        verdict = "[bold red]INCOMPLETE[/bold red]"
        headline += f"; {plural(skipped, 'artifact')} not fully analysed, not known to be safe"
    console.print(f"{verdict}: {headline}")
