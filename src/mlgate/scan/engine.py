"""The scan driver: walks paths, sniffs each artifact and runs its handler, fail-closed."""

from __future__ import annotations

import errno
import lzma
import os
import stat
import time
import traceback
import zlib
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import replace
from pathlib import Path

from mlgate.errors import ScanError
from mlgate.findings import ArtifactResult, Finding, Location, Report, Severity
from mlgate.scan import rules
from mlgate.scan.context import DeferredFile, ProgramObserver, ScanContext
from mlgate.scan.formats import HANDLERS
from mlgate.scan.hf_cache import NOT_WALKED, cache_blob, is_repo_cache, snapshot_repo
from mlgate.scan.hf_repo import analyse_hf_folder
from mlgate.scan.limits import Limits, ResourceLimitError
from mlgate.scan.pickle.policy import Policy
from mlgate.scan.sniff import HEAD, Format, has_zip_directory, is_lfs_pointer, sniff
from mlgate.scan.source import Source, pinned_file

PICKLE_LABELS = frozenset({"pickle", "joblib", "pytorch-legacy"})
# Extensions whose format is never a pickle: a pickle behind one is disguised.
NON_PICKLE_EXTENSIONS = frozenset(
    ".safetensors .json .txt .md .onnx .gguf .h5 .hdf5 .keras .yaml .yml .csv .npy .npz .zip "
    ".tar .gz .msgpack .tflite .pb .png .jpg .jpeg .xml .html .py .ini .toml".split()
)
# File names that claim to be model weights or graphs (an empty one is not what it claims).
MODEL_EXTENSIONS = tuple(
    ".bin .pt .pth .pkl .pickle .ckpt .joblib .dill .npy .npz .pdparams .safetensors .onnx "
    ".gguf .ggml .h5 .hdf5 .keras .pb .tflite .msgpack .model .mar .nemo .pte".split()
)

# Findings that mean their artifact was not fully analysed.
_INCOMPLETE_RULES = frozenset(
    r.id
    for r in (rules.LIMIT_EXCEEDED, rules.UNSUPPORTED, rules.UNREADABLE, rules.NOT_REGULAR_FILE)
)


def dispatch(ctx: ScanContext, source: Source) -> str:
    """Detect ``source``'s format and run its handler; any failure becomes a finding."""
    if ctx.out_of_time():
        ctx.incomplete(
            source, "time budget for this file exhausted; not analysed", rules.LIMIT_EXCEEDED
        )
        return "unknown"
    try:
        head = source.head(HEAD)
        if not head:
            return _empty(ctx, source)
        if is_lfs_pointer(head, source.size):
            ctx.add(
                rules.LFS_POINTER,
                source.location,
                "a Git LFS pointer, not the file's content: the real file was never fetched "
                "(git lfs pull) and was not analysed",
            )
            return "git-lfs-pointer"
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


def _empty(ctx: ScanContext, source: Source) -> str:
    # An empty model file is a broken or swapped model (the loader fails, or loads whatever
    # replaces it later); an empty __init__.py or .gitkeep is ordinary.
    model = source.name.lower().endswith(MODEL_EXTENSIONS)
    ctx.add(
        rules.EMPTY_FILE,
        source.location,
        "empty file: nothing to analyse" + ("; a model file cannot be empty" if model else ""),
        severity=None if model else Severity.LOW,
    )
    return "empty"


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
    jobs: int = 1,
) -> Report:
    """Scan files and folders (recursively) and collect one report.

    Fails closed: whatever cannot be listed, opened or read, and whatever is not a regular
    file, is a finding that marks the report incomplete; a path holding nothing to analyse
    is a finding too. Only a path that does not exist at all raises :class:`ScanError`.
    With ``jobs`` > 1 the regular files are analysed in that many worker processes; the
    report is the one a single process gives (scan.parallel).
    """
    for path in paths:
        _require_exists(path)
    roots = tuple(p.resolve() for p in paths)
    ctx = ScanContext(
        policy=policy, limits=limits, dispatch=dispatch, roots=roots, observer=observer
    )
    if jobs > 1:
        ctx.deferred = []
        ctx.scan_deadline = time.monotonic() + limits.scan_seconds
    try:
        for path in paths:
            _scan_target(ctx, path)
        if ctx.deferred:
            from mlgate.scan.parallel import scan_deferred  # noqa: PLC0415 - with -j only

            scan_deferred(ctx, ctx.deferred, jobs)
    finally:
        ctx.close()
    return Report(
        targets=tuple(str(p) for p in paths),
        findings=tuple(ctx.findings),
        artifacts=_artifact_results(ctx),
    )


def _artifact_results(ctx: ScanContext) -> tuple[ArtifactResult, ...]:
    """The artifacts, each marked incomplete when a finding says it was cut short, whichever
    handler reported it: "complete" next to a limit finding would read as a pass. A place such
    a finding names that no handler listed is added as an incomplete artifact (fail closed
    whatever a handler forgot to list)."""
    cut = {f.location.artifact for f in ctx.findings if f.rule_id in _INCOMPLETE_RULES}
    results = [replace(a, complete=False) if a.artifact in cut else a for a in ctx.artifacts]
    listed = {a.artifact for a in results}
    results += [ArtifactResult(name, "unknown", complete=False) for name in sorted(cut - listed)]
    return tuple(results)


def _require_exists(path: Path) -> None:
    try:
        os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        raise ScanError(f"{path}: no such file or directory") from None
    except OSError:
        pass  # it exists but cannot be looked at (e.g. its folder is not searchable): a finding


def _scan_target(ctx: ScanContext, path: Path) -> None:
    """One path given by the user. A link given by name is followed: the user and the loader
    both mean its target (Hugging Face cache snapshots are links into ``blobs/``)."""
    mark = len(ctx.artifacts)
    try:
        info = path.stat()
    except OSError as e:
        _unreadable(ctx, path, e)
        return
    if stat.S_ISDIR(info.st_mode):
        _scan_dir(ctx, path)
    else:
        _scan_entry(ctx, path, info, path.resolve().parent)
    if len(ctx.artifacts) == mark:
        ctx.add(
            rules.NOTHING_SCANNED,
            Location(path=str(path)),
            "nothing to analyse here: no regular file (an empty scan is not a clean one)",
        )


def _scan_dir(ctx: ScanContext, root: Path) -> None:
    for folder, files in _walk(ctx, root):
        for name in files:
            _scan_child(ctx, folder / name, root)
        analyse_hf_folder(ctx, folder, files)


def _walk(ctx: ScanContext, root: Path) -> Iterator[tuple[Path, list[str]]]:
    """Every folder under ``root`` (top-down, sorted) with the names of its non-folder entries
    (links to folders included, as entries). Everything a loader could reach is walked,
    version-control folders (.git...) included: a pickle under .git/ is one ``torch.load``
    away. A folder that cannot be listed is a finding, never skipped. Iterative: os.walk
    recurses once per level (Python 3.11), so a folder nested a thousand deep crashed it."""
    pending = [root]
    while pending:
        folder = pending.pop()
        try:
            with os.scandir(folder) as listing:
                entries = sorted(listing, key=lambda entry: entry.name)
        except OSError as e:
            _unreadable(ctx, folder, e)
            continue
        subfolders = [e.name for e in entries if _is_folder(e)]
        yield folder, sorted({e.name for e in entries} - set(subfolders))
        if is_repo_cache(folder):  # its blobs are scanned through its snapshots (hf_cache)
            subfolders = [name for name in subfolders if name not in NOT_WALKED]
        pending.extend(folder / name for name in reversed(subfolders))


def _is_folder(entry: os.DirEntry[str]) -> bool:
    try:
        return entry.is_dir(follow_symlinks=False)
    except OSError:
        return False  # listed as a file: its lstat reports the error


def _scan_child(ctx: ScanContext, path: Path, root: Path) -> None:
    try:
        info = path.lstat()
    except OSError as e:
        _unreadable(ctx, path, e)
        return
    _scan_entry(ctx, path, info, root)


def _scan_entry(ctx: ScanContext, path: Path, info: os.stat_result, root: Path) -> None:
    """Scan one file system entry according to its type (``info``, taken without following
    links inside a walk). Special files are reported and never opened."""
    mode = info.st_mode
    if stat.S_ISLNK(mode):
        _check_link(ctx, path, root)
    elif stat.S_ISREG(mode):
        _scan_regular(ctx, path, path)
    elif stat.S_ISDIR(mode):  # listed as a file, a folder now: it changed during the scan
        _unreadable(ctx, path, OSError(errno.EISDIR, "became a folder during the scan"))
    else:
        kind = _special_kind(mode)
        ctx.add(
            rules.NOT_REGULAR_FILE,
            Location(path=str(path)),
            f"a {kind}, not a regular file: never opened, so what a loader reads from it "
            "was not analysed",
        )
        ctx.artifacts.append(ArtifactResult(str(path), kind, complete=False))


def _scan_regular(ctx: ScanContext, path: Path, shown: Path) -> None:
    """Scan the regular file ``path`` as the file ``shown`` (its name and folder: a cache blob
    is read under its snapshot name, which is what the loader opens). With worker processes
    (``ctx.deferred``), a placeholder holds its place until a worker's results replace it."""
    if ctx.deferred is not None:
        ctx.deferred.append(DeferredFile(path, shown, len(ctx.findings), len(ctx.artifacts)))
        ctx.artifacts.append(ArtifactResult(str(shown), "unknown", complete=False))
        return
    scan_file(ctx, path, shown)


def scan_file(ctx: ScanContext, path: Path, shown: Path) -> None:
    """Scan the regular file ``path`` as ``shown``, here and now (see _scan_regular)."""
    ctx.start_deadline()
    with ExitStack() as pinned:
        try:
            source = pinned.enter_context(pinned_file(path, str(shown)))
        except OSError as e:
            _unreadable(ctx, shown, e)
            return
        ctx.scan(replace(source, name=shown.name, folder=shown.parent))


def _special_kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "fifo"
    if stat.S_ISSOCK(mode):
        return "socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "device"
    return "special file"


def _check_link(ctx: ScanContext, path: Path, root: Path) -> None:
    """A link inside a scanned folder: its target is scanned where it lives, if it lives
    inside the scanned tree; a link out of it is a finding (the loader follows it). In a
    Hugging Face cache snapshot, a link into its repo's blobs is the file the loader opens
    (scanned here, under this name) and any other link is refused (see hf_cache)."""
    repo = snapshot_repo(path)
    if repo is not None:
        _check_cache_link(ctx, path, repo)
        return
    target = path.resolve()
    inside = any(target == r or r in target.parents for r in (root.resolve(), *ctx.roots))
    if not inside:
        ctx.add(
            rules.PATH_TRAVERSAL,
            Location(path=str(path)),
            f"symbolic link to {target}, outside the scanned folder; a loader follows it",
        )


def _check_cache_link(ctx: ScanContext, path: Path, repo: Path) -> None:
    blob = cache_blob(path, repo)
    if blob is not None:
        _scan_regular(ctx, blob, path)
        return
    ctx.add(
        rules.PATH_TRAVERSAL,
        Location(path=str(path)),
        f"symbolic link to {path.resolve()} in a Hugging Face cache snapshot: not a file of "
        f"{repo / 'blobs'}, which is all a snapshot links to; a loader follows it",
    )


def _unreadable(ctx: ScanContext, path: Path, error: OSError) -> None:
    """Record that ``path`` could not be listed or read: a finding and an incomplete artifact."""
    reason = error.strerror or str(error)
    ctx.add(
        rules.UNREADABLE,
        Location(path=str(path)),
        f"could not be read ({reason}); what it holds was not analysed",
    )
    ctx.artifacts.append(ArtifactResult(str(path), "unreadable", complete=False))
