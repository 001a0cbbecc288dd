"""Converting one checkpoint file or a whole model folder (Hugging Face layout) to safetensors.

Every file is read and checked before anything is written: one refused pickle refuses the
whole folder. The output is assembled in a temporary folder next to the destination and
renamed into place at the end, so a failure leaves nothing behind.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import struct
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

from mlgate.convert.errors import ConversionError, ConversionRefused
from mlgate.convert.numpy_src import MAGIC as NPY_MAGIC
from mlgate.convert.safetensors_writer import FilePlan, plan_file, write_file
from mlgate.convert.sources import ZIP_MAGIC, read_checkpoint
from mlgate.errors import public_entry
from mlgate.findings import Finding
from mlgate.scan.ziputil import ZipFormatError, read_directory

WEIGHT_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle", ".joblib", ".npy", ".npz")
INDEX_SUFFIXES = tuple(f"{s}.index.json" for s in (".bin", ".pt", ".pth", ".ckpt"))
_SHARD = re.compile(r"^pytorch_model(-\d+-of-\d+)?\.bin$")
_PICKLE_START = re.compile(rb"^\x80[\x02-\x05]")


@dataclass(frozen=True)
class ConvertedFile:
    """One checkpoint written as safetensors."""

    source: Path
    destination: Path
    kind: str  # source format: "pytorch-zip", "pytorch-legacy", "pickle", "joblib", "npy", "npz"
    tensors: int
    tensor_bytes: int
    aliases: Mapping[str, str] = field(default_factory=dict)  # tied name -> name written


@dataclass(frozen=True)
class ConversionResult:
    """What :func:`convert_model` wrote."""

    source: Path
    destination: Path
    converted: tuple[ConvertedFile, ...]
    copied: tuple[Path, ...] = ()  # destination paths of files copied unchanged
    index: Path | None = None  # the safetensors index written for sharded weights
    superseded: tuple[Path, ...] = ()  # pickles checked but not written: safetensors exist

    @property
    def tensors(self) -> int:
        return sum(f.tensors for f in self.converted)

    @property
    def tensor_bytes(self) -> int:
        return sum(f.tensor_bytes for f in self.converted)

    @property
    def deduplicated(self) -> int:
        return sum(len(f.aliases) for f in self.converted)


def output_name(name: str) -> str:
    """``pytorch_model-00001-of-00002.bin`` -> ``model-00001-of-00002.safetensors``."""
    shard = _SHARD.match(name)
    if shard:
        return f"model{shard.group(1) or ''}.safetensors"
    return f"{name.rsplit('.', 1)[0] if '.' in name else name}.safetensors"


@public_entry(ConversionError)
def convert_model(src: Path | str, dst: Path | str) -> ConversionResult:
    """Convert a checkpoint file, or every checkpoint of a model folder, to safetensors.

    ``dst`` must not exist (an empty folder is accepted); for a file ``src`` it may also be an
    existing folder to write into. Non-weight files of a folder are copied unchanged and a
    ``pytorch_model.bin.index.json`` becomes ``model.safetensors.index.json``.
    Raises :class:`ConversionRefused` (with findings) when a file holds anything but tensors
    and plain data, :class:`ConversionError` when the conversion cannot be completed.
    """
    src, dst = Path(src), Path(dst)
    if src.is_dir():
        return _convert_folder(src, dst)
    if not src.is_file():
        raise ConversionError(f"{src} does not exist")
    if dst.is_dir():
        dst = dst / output_name(src.name)
    if dst.exists():
        raise ConversionError(f"{dst} already exists; remove it or choose another destination")
    if not dst.parent.is_dir():
        raise ConversionError(f"destination folder {dst.parent} does not exist")
    with ExitStack() as cleanup:  # deletes decompressed copies of compressed joblib files
        kind, file_plan = _plan(src, cleanup, dst.parent)
        write_file(file_plan, dst)
    done = ConvertedFile(
        src, dst, kind, len(file_plan.entries), file_plan.data_bytes, file_plan.aliases
    )
    return ConversionResult(src, dst, (done,))


def _plan(path: Path, cleanup: ExitStack, scratch: Path) -> tuple[str, FilePlan]:
    ckpt = read_checkpoint(path, cleanup, scratch)
    return ckpt.kind, plan_file(ckpt, max(path.stat().st_size, ckpt.expanded_size))


def _convert_folder(src: Path, dst: Path) -> ConversionResult:
    with ExitStack() as cleanup:  # deletes decompressed copies of compressed joblib files
        return _convert_folder_in(src, dst, cleanup)


def _convert_folder_in(src: Path, dst: Path, cleanup: ExitStack) -> ConversionResult:
    if dst.exists() and not (dst.is_dir() and not any(dst.iterdir())):
        raise ConversionError(f"{dst} already exists and is not an empty folder")
    if dst.resolve().is_relative_to(src.resolve()):
        raise ConversionError(f"the destination {dst} is inside the source folder {src}")
    files = sorted(_walk(src))
    weights = [p for p in files if is_checkpoint(src / p)]
    indexes = [p for p in files if p.name.endswith(INDEX_SUFFIXES)]
    others = [p for p in files if p not in weights and p not in indexes]
    plans = _plan_all(src, weights, cleanup, dst.resolve().parent)
    outputs = {p: p.parent / output_name(p.name) for p in weights}
    existing = set(others)
    superseded = [p for p in weights if outputs[p] in existing]
    if len(set(outputs.values())) != len(outputs):
        raise ConversionError(f"{src}: two checkpoints would be written to the same file")
    staging = _staging(dst)
    try:
        converted = _write_all(src, staging, dst, plans, outputs, superseded)
        for rel in others:
            (staging / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src / rel, staging / rel)
        index = _write_indexes(src, staging, dst, indexes, outputs, plans, superseded)
        if dst.exists():
            dst.rmdir()
        staging.rename(dst)
    except OSError as e:
        shutil.rmtree(staging, ignore_errors=True)
        raise ConversionError(f"cannot write {dst}: {e.strerror or e}") from e
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return ConversionResult(
        src,
        dst,
        tuple(converted),
        tuple(dst / p for p in others),
        index,
        tuple(src / p for p in superseded),
    )


def _plan_all(
    src: Path, weights: list[Path], cleanup: ExitStack, scratch: Path
) -> dict[Path, tuple[str, FilePlan]]:
    plans: dict[Path, tuple[str, FilePlan]] = {}
    findings: list[Finding] = []
    for rel in weights:
        try:
            plans[rel] = _plan(src / rel, cleanup, scratch)
        except ConversionRefused as e:
            findings.extend(e.findings)
    if findings:
        refused = len({f.location.path for f in findings})
        raise ConversionRefused(
            f"{src}: {refused} file(s) hold more than tensors and plain data; nothing written",
            findings,
        )
    return plans


def _staging(dst: Path) -> Path:
    parent = dst.parent
    if not parent.is_dir():
        raise ConversionError(f"destination folder {parent} does not exist")
    try:
        return Path(tempfile.mkdtemp(dir=parent, prefix=f".{dst.name}.", suffix=".part"))
    except OSError as e:
        raise ConversionError(f"cannot write in {parent}: {e.strerror or e}") from e


def _write_all(
    src: Path,
    staging: Path,
    dst: Path,
    plans: dict[Path, tuple[str, FilePlan]],
    outputs: dict[Path, Path],
    superseded: list[Path],
) -> list[ConvertedFile]:
    converted: list[ConvertedFile] = []
    for rel, (kind, file_plan) in plans.items():
        if rel in superseded:
            continue
        out = staging / outputs[rel]
        out.parent.mkdir(parents=True, exist_ok=True)
        write_file(file_plan, out)
        converted.append(
            ConvertedFile(
                src / rel,
                dst / outputs[rel],
                kind,
                len(file_plan.entries),
                file_plan.data_bytes,
                file_plan.aliases,
            )
        )
    return converted


def _write_indexes(
    src: Path,
    staging: Path,
    dst: Path,
    indexes: list[Path],
    outputs: dict[Path, Path],
    plans: dict[Path, tuple[str, FilePlan]],
    superseded: list[Path],
) -> Path | None:
    """Rewrite each ``*.bin.index.json`` for the converted shards; None if there is none."""
    written: Path | None = None
    for rel in indexes:
        name = output_name(rel.name.removesuffix(".index.json")) + ".index.json"
        target = rel.parent / name
        shards = {p.name: p for p in plans if p.parent == rel.parent}
        weight_map = _read_weight_map(src / rel)
        if any(shards.get(f) in superseded for f in weight_map.values()):
            continue  # the model's own safetensors (and their index) are kept instead
        new_map: dict[str, str] = {}
        total = 0
        for file_name in dict.fromkeys(weight_map.values()):
            shard = shards.get(file_name)
            if shard is None:
                raise ConversionError(f"{src / rel} names {file_name}, which is not a checkpoint")
            file_plan = plans[shard][1]
            total += file_plan.data_bytes
            new_map.update({e.name: outputs[shard].name for e in file_plan.entries})
        ordered = {k: new_map[k] for k in weight_map if k in new_map} | new_map
        index = {"metadata": {"total_size": total}, "weight_map": ordered}
        (staging / target).write_text(json.dumps(index, indent=2) + "\n", encoding="utf-8")
        written = dst / target
    return written


def _read_weight_map(path: Path) -> dict[str, str]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ConversionError(f"cannot read the index {path}: {e}") from e
    weight_map = data.get("weight_map") if isinstance(data, dict) else None
    if not isinstance(weight_map, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in weight_map.items()
    ):
        raise ConversionError(f"{path} has no valid weight_map")
    return weight_map


def _walk(root: Path) -> Iterator[Path]:
    """Regular files under ``root`` (symbolic links to files followed), ``.git`` skipped."""
    for folder, dirs, names in os.walk(root):
        dirs[:] = [d for d in dirs if d != ".git"]
        for name in names:
            path = Path(folder) / name
            if path.is_file():
                yield path.relative_to(root)


def is_checkpoint(path: Path) -> bool:
    """A file to convert: a weights extension, or content that is a pickle, torch zip or .npy."""
    if path.name.endswith(WEIGHT_SUFFIXES):
        return True
    try:
        with path.open("rb") as f:
            head = f.read(8)
    except OSError as e:
        raise ConversionError(f"cannot read {path}: {e.strerror or e}") from e
    if head.startswith(ZIP_MAGIC):
        return _zip_checkpoint(path)
    return bool(_PICKLE_START.match(head)) or head.startswith(NPY_MAGIC)


def _zip_checkpoint(path: Path) -> bool:
    """A zip archive under any name is converted when it is a torch checkpoint or an .npz."""
    with path.open("rb") as f:
        try:
            entries = read_directory(f, path.stat().st_size, 1_000_000).entries
        except (ZipFormatError, struct.error):
            return False
    names = [e.name for e in entries]
    torch_zip = any(n.endswith("/data.pkl") for n in names)
    return torch_zip or (bool(names) and all(n.endswith(".npy") for n in names))
