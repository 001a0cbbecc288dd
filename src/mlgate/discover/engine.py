"""``discover``: walk code trees, analyse each file, and report through the shared findings
model (rule ids MLG6xx; completeness findings MLG301/302/305/306 as ``scan``).

Bounded: a cap on files per run and on each file's size; the AST is read, never compiled or
run; a module too deep for the analysis (``RecursionError``) is a finding, never a crash.
Symbolic links are not followed (a link can point out of the tree being scanned).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from mlgate.discover.analysis import ModuleResult, analyse
from mlgate.discover.crosscheck import Catalogue
from mlgate.discover.loading import TorchLine
from mlgate.discover.manifests import (
    FRAMEWORKS,
    Dependency,
    ManifestError,
    admits_below,
    manifest_kind,
    parse_manifest,
)
from mlgate.discover.sourcefile import Source, SourceError, notebook_source, python_source
from mlgate.discover.sources import Reference
from mlgate.findings import ArtifactResult, Finding, Location, Region, Report, Severity
from mlgate.scan import rules
from mlgate.scan.rules import Rule

SKIPPED_DIRS = frozenset(
    {
        ".git",
        ".hg",
        ".svn",
        "__pycache__",
        "node_modules",
        ".tox",
        ".nox",
        ".venv",
        "venv",
        ".mypy_cache",
        ".pytest_cache",
        ".ruff_cache",
    }
)
TORCH_FIXED = (2, 6, 0)  # CVE-2025-32434: weights_only=True bypassable before this
_INCOMPLETE = frozenset(r.id for r in (rules.LIMIT_EXCEEDED, rules.UNSUPPORTED, rules.UNREADABLE))


@dataclass(frozen=True)
class DiscoverLimits:
    max_files: int = 50_000  # analysed per run
    max_source_bytes: int = 8 << 20  # one .py file
    max_notebook_bytes: int = 64 << 20  # outputs (images) make notebooks large
    max_manifest_bytes: int = 8 << 20


@dataclass(frozen=True)
class DiscoverOptions:
    hub: str | None = None  # the configured hub: any other endpoint is foreign
    catalogue: Catalogue | None = None  # registry or hub to cross-check references against
    limits: DiscoverLimits = field(default_factory=DiscoverLimits)


@dataclass(frozen=True)
class _Placed:
    """A model reference and where it is (for findings after the cross-check)."""

    ref: Reference
    location: Location
    evidence: str


@dataclass
class _Run:
    options: DiscoverOptions
    findings: list[Finding] = field(default_factory=list)
    artifacts: list[ArtifactResult] = field(default_factory=list)
    placed: list[_Placed] = field(default_factory=list)
    files: int = 0

    def add(self, rule: Rule, where: Location, message: str, evidence: str = "",
            severity: Severity | None = None) -> None:  # fmt: skip
        self.findings.append(Finding(rule.id, severity or rule.severity, message, where, evidence))


def discover_paths(paths: list[Path], options: DiscoverOptions | None = None) -> Report:
    """Analyse the code under ``paths``: unsafe loading, model sources, framework versions."""
    run = _Run(options or DiscoverOptions())
    for path in paths:
        _target(run, path)
    _reference_findings(run)
    return Report(tuple(str(p) for p in paths), tuple(run.findings), tuple(run.artifacts))


def _target(run: _Run, root: Path) -> None:
    mark = len(run.artifacts)
    files = list(_files(run, root))
    deps = [
        d
        for path, kind in files
        if kind not in ("python", "notebook")
        for d in _manifest(run, path, kind)
    ]
    torch = _torch_line(deps)
    for path, kind in files:
        if kind in ("python", "notebook"):
            _module(run, path, kind, torch)
    if len(run.artifacts) == mark and not any(f.location.path == str(root) for f in run.findings):
        run.add(
            rules.NOTHING_SCANNED,
            Location(str(root)),
            "no Python file, notebook or dependency file here: nothing was analysed",
        )


def _files(run: _Run, root: Path) -> Iterator[tuple[Path, str]]:
    """Files to analyse under ``root`` with their kind, within the run's file cap."""
    for path in _walk(run, root):
        kind = _kind(path)
        if kind is None:
            continue
        if run.files >= run.options.limits.max_files:
            run.add(
                rules.LIMIT_EXCEEDED,
                Location(str(path)),
                f"more than {run.options.limits.max_files} files; the rest were not analysed",
            )
            run.artifacts.append(ArtifactResult(str(path), kind, complete=False))
            return
        run.files += 1
        yield path, kind


def _kind(path: Path) -> str | None:
    if path.suffix in (".py", ".pyw"):
        return "python"
    if path.suffix == ".ipynb":
        return "notebook"
    return manifest_kind(path)


def _walk(run: _Run, root: Path) -> Iterator[Path]:
    if not root.is_dir() or root.is_symlink():
        yield root
        return

    def unreadable(error: OSError) -> None:
        where = Location(str(error.filename or root))
        run.add(rules.UNREADABLE, where, f"could not be listed: {error.strerror or error}")
        run.artifacts.append(ArtifactResult(where.path, "folder", complete=False))

    for folder, dirs, names in os.walk(root, onerror=unreadable):
        dirs[:] = sorted(d for d in dirs if d not in SKIPPED_DIRS)
        for name in sorted(names):
            path = Path(folder) / name
            if not path.is_symlink():
                yield path


def _read(run: _Run, path: Path, kind: str, cap: int) -> bytes | None:
    """The file's bytes, or None after reporting why it cannot be analysed."""
    where = Location(str(path))
    try:
        info = os.lstat(path)
        if not stat.S_ISREG(info.st_mode):
            run.add(rules.NOT_REGULAR_FILE, where, "not a regular file; never opened")
            run.artifacts.append(ArtifactResult(str(path), kind, complete=False))
            return None
        with path.open("rb") as f:
            data = f.read(cap + 1)
    except OSError as e:
        run.add(rules.UNREADABLE, where, f"could not be read: {e.strerror or e}")
        run.artifacts.append(ArtifactResult(str(path), kind, complete=False))
        return None
    if len(data) > cap:
        run.add(rules.LIMIT_EXCEEDED, where, f"larger than {cap} bytes; not analysed")
        run.artifacts.append(ArtifactResult(str(path), kind, complete=False, size=info.st_size))
        return None
    return data


def _manifest(run: _Run, path: Path, kind: str) -> list[Dependency]:
    data = _read(run, path, kind, run.options.limits.max_manifest_bytes)
    if data is None:
        return []
    try:
        deps = parse_manifest(str(path), kind, data.decode("utf-8"))
    except (ManifestError, UnicodeDecodeError) as e:
        run.add(rules.UNSUPPORTED, Location(str(path)), f"{kind}: {e}")
        run.artifacts.append(ArtifactResult(str(path), kind, complete=False, size=len(data)))
        return []
    run.artifacts.append(ArtifactResult(str(path), kind, complete=True, size=len(data)))
    for dep in deps:
        if dep.name in FRAMEWORKS:
            where = Location(str(path), region=Region(dep.line, 1, dep.line, 1))
            run.add(
                rules.FRAMEWORK_DEPENDENCY,
                where,
                f"{dep.name} {dep.spec or '(any version)'}",
                f"{kind}: {dep.name}{dep.spec}",
            )
    return deps


def _torch_line(deps: list[Dependency]) -> TorchLine:
    answers = [admits_below(d.spec, TORCH_FIXED) for d in deps if d.name == "torch"]
    if any(answers):
        return TorchLine.VULNERABLE
    return TorchLine.FIXED if answers and all(a is False for a in answers) else TorchLine.UNKNOWN


def _module(run: _Run, path: Path, kind: str, torch: TorchLine) -> None:
    limits = run.options.limits
    cap = limits.max_notebook_bytes if kind == "notebook" else limits.max_source_bytes
    data = _read(run, path, kind, cap)
    if data is None:
        return
    where = Location(str(path))
    try:
        source, tree = (notebook_source if kind == "notebook" else python_source)(data)
        result = analyse(tree, torch)
    except SourceError as e:
        run.add(rules.UNSUPPORTED, where, f"{kind} not analysed: {e}")
    except RecursionError:
        run.add(rules.LIMIT_EXCEEDED, where, f"{kind} nested too deeply to analyse")
    else:
        for number, why in source.broken:
            run.add(
                rules.UNSUPPORTED,
                Location(str(path), (f"cell {number}",)),
                f"code cell does not parse ({why}); not analysed",
            )
        _module_findings(run, str(path), source, result)
    complete = not any(
        f.location.path == str(path) and f.rule_id in _INCOMPLETE for f in run.findings
    )
    run.artifacts.append(ArtifactResult(str(path), kind, complete, len(data)))


def _module_findings(run: _Run, path: str, source: Source, result: ModuleResult) -> None:
    for load in result.loads:
        members, region = source.region(load.node)
        message = load.verdict.message + (f" ({load.via})" if load.via else "")
        run.add(
            load.verdict.rule,
            Location(path, members, region=region),
            message,
            source.segment(load.node),
            load.verdict.severity,
        )
    for ref in result.references:
        members, region = source.region(ref.node)
        run.placed.append(
            _Placed(ref, Location(path, members, region=region), source.segment(ref.node))
        )


def _reference_findings(run: _Run) -> None:
    hub = run.options.hub
    catalogue = run.options.catalogue
    checked = [p.ref for p in run.placed if p.ref.kind == "hub"]
    absent = catalogue.absent(checked) if catalogue is not None and checked else {}
    for placed in run.placed:
        for rule, message in _judge_reference(placed.ref, hub, catalogue is not None, absent):
            run.add(rule, placed.location, message, placed.evidence)


def _judge_reference(
    ref: Reference, hub: str | None, checked: bool, absent: dict[str, str]
) -> Iterator[tuple[Rule, str]]:
    via = f" ({ref.via})" if ref.via else ""
    if ref.kind == "dynamic":
        yield rules.DYNAMIC_REFERENCE, f"model reference computed at run time: {ref.name}{via}"
        return
    if ref.kind != "endpoint":
        yield rules.MODEL_REFERENCE, f"{ref.kind} model {ref}{via}"
    if ref.kind in ("hub", "github") and not ref.pinned:
        pin = "revision=<40-hex commit>" if ref.kind == "hub" else "'owner/repo:<commit>'"
        yield rules.FLOATING_REVISION, f"{ref} is not pinned to a commit; fix: pass {pin}"
    if ref.endpoint is not None and not _from_hub(ref, hub):
        target = f"the configured hub {hub}" if hub else "a hub (none configured: --hub)"
        what = "HF_ENDPOINT is set to" if ref.kind == "endpoint" else f"{ref} is fetched from"
        yield rules.FOREIGN_ENDPOINT, f"{what} {ref.endpoint}, not {target}{via}"
    if checked and ref.kind == "hub" and str(ref) in absent:
        yield (
            rules.SHADOW_MODEL,
            f"shadow model {ref}: {absent[str(ref)]}; fix: ingest it for review",
        )


def _from_hub(ref: Reference, hub: str | None) -> bool:
    """True when the reference is fetched from the configured hub."""
    if hub is None:
        return False
    base = hub.rstrip("/").lower()
    if ref.kind == "url":
        return ref.name.lower().startswith(base + "/")
    return (ref.endpoint or "").rstrip("/").lower() == base
