"""The scan driver: walks paths, sniffs each artifact and runs its handler, fail-closed."""

from __future__ import annotations

import lzma
import os
import traceback
import zlib
from dataclasses import replace
from pathlib import Path

from mlgate.errors import ScanError
from mlgate.findings import Finding, Location, Report
from mlgate.scan import rules
from mlgate.scan.context import ProgramObserver, ScanContext
from mlgate.scan.formats import HANDLERS
from mlgate.scan.hf_repo import analyse_hf_folder
from mlgate.scan.limits import Limits, ResourceLimitError
from mlgate.scan.pickle.policy import Policy
from mlgate.scan.sniff import HEAD, Format, has_zip_directory, sniff
from mlgate.scan.source import Source, file_source

PICKLE_LABELS = frozenset({"pickle", "joblib", "pytorch-legacy"})
# Extensions whose format is never a pickle: a pickle behind one is disguised.
NON_PICKLE_EXTENSIONS = frozenset(
    ".safetensors .json .txt .md .onnx .gguf .h5 .hdf5 .keras .yaml .yml .csv .npy .npz .zip "
    ".tar .gz .msgpack .tflite .pb .png .jpg .jpeg .xml .html .py .ini .toml".split()
)
_SKIP_DIRS = frozenset({".git", ".hg", ".svn"})


def dispatch(ctx: ScanContext, source: Source) -> str:
    """Detect ``source``'s format and run its handler; any failure becomes a finding."""
    if ctx.out_of_time():
        ctx.incomplete(
            source, "time budget for this file exhausted; not analysed", rules.LIMIT_EXCEEDED
        )
        return "unknown"
    try:
        head = source.head(HEAD)
        fmt = Format(source.forced_format) if source.forced_format else sniff(head, source.name)
        label = _guarded(ctx, source, fmt)
        if fmt is Format.PICKLE and not source.forced_format and has_zip_directory(source):
            ctx.add(
                rules.POLYGLOT,
                source.location,
                "the file reads both as a pickle (torch.load takes this path: it does not "
                "start with a ZIP header) and as a ZIP archive; both were analysed",
            )
            _guarded(ctx, source, Format.ZIP)
    except ResourceLimitError as e:
        ctx.incomplete(source, f"limit reached: {e}", rules.LIMIT_EXCEEDED)
        return "unknown"
    except (OSError, EOFError) as e:
        ctx.incomplete(source, f"could not be read: {e}")
        return "unknown"
    if label in PICKLE_LABELS:
        _check_extension(ctx, source)
    return label


def _guarded(ctx: ScanContext, source: Source, fmt: Format) -> str:
    try:
        return HANDLERS[fmt](source, ctx)
    except ResourceLimitError as e:
        ctx.incomplete(source, f"limit reached: {e}", rules.LIMIT_EXCEEDED)
    except (OSError, EOFError, zlib.error, lzma.LZMAError) as e:
        ctx.incomplete(source, f"could not be read as {fmt.value}: {e}")
    except RecursionError:
        ctx.incomplete(source, "structure nested too deeply", rules.LIMIT_EXCEEDED)
    except Exception as e:
        ctx.incomplete(source, f"internal error while reading {fmt.value}: {type(e).__name__}: {e}")
        ctx.findings[-1] = _with_trace(ctx.findings[-1])
    return fmt.value


def _with_trace(finding: Finding) -> Finding:
    return replace(finding, evidence=traceback.format_exc(limit=6))


def _check_extension(ctx: ScanContext, source: Source) -> None:
    name = source.name.lower()
    suffix = next((ext for ext in NON_PICKLE_EXTENSIONS if name.endswith(ext)), None)
    if suffix is not None:
        ctx.add(
            rules.EXTENSION_MISMATCH,
            source.location,
            f"a pickle named {suffix}: tools that trust the extension skip or mis-read it",
        )


def scan_paths(
    paths: list[Path],
    policy: Policy,
    limits: Limits,
    observer: ProgramObserver | None = None,
) -> Report:
    """Scan files and folders (recursively) and collect one report."""
    for path in paths:
        if not path.exists() and not path.is_symlink():
            raise ScanError(f"{path}: no such file or directory")
    roots = tuple(p.resolve() for p in paths)
    ctx = ScanContext(
        policy=policy, limits=limits, dispatch=dispatch, roots=roots, observer=observer
    )
    for path in paths:
        if path.is_dir() and not path.is_symlink():
            _scan_dir(ctx, path)
        else:
            _scan_file(ctx, path, path.resolve().parent)
    return Report(
        targets=tuple(str(p) for p in paths),
        findings=tuple(ctx.findings),
        artifacts=tuple(ctx.artifacts),
    )


def _scan_dir(ctx: ScanContext, root: Path) -> None:
    for folder, dirs, files in os.walk(root, followlinks=False):
        dirs.sort()
        for name in list(dirs):
            if name in _SKIP_DIRS:
                dirs.remove(name)
            elif (Path(folder) / name).is_symlink():
                dirs.remove(name)
                _scan_file(ctx, Path(folder) / name, root)
        for name in sorted(files):
            _scan_file(ctx, Path(folder) / name, root)
        analyse_hf_folder(ctx, Path(folder), files)


def _scan_file(ctx: ScanContext, path: Path, root: Path) -> None:
    if path.is_symlink():
        target = path.resolve()
        inside = any(target == r or r in target.parents for r in (root.resolve(), *ctx.roots))
        if not inside:
            ctx.add(
                rules.PATH_TRAVERSAL,
                Location(path=str(path)),
                f"symbolic link to {target}, outside the scanned folder; a loader follows it",
            )
        return
    if not path.is_file():
        return
    ctx.start_deadline()
    try:
        source = file_source(path, str(path))
    except OSError as e:
        raise ScanError(f"{path}: {e}") from e
    ctx.scan(source)
