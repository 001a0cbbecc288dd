"""Builds the benchmark inputs, reusing any file a previous run left with the same spec.

Each input gets a sidecar ``<file>.json`` recording the spec it was built from, its size and
facts measured while building it (the opcode count). A file is rebuilt when the sidecar is
missing, the spec changed or the size on disk differs, so an interrupted build is never reused.
"""

from __future__ import annotations

import json
import pickle
import pickletools
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

import numpy as np
import torch

Writer = Callable[[Path], dict[str, Any]]
Log = Callable[[str], None]


class Kind(Enum):
    """How a file is laid out, which decides the tools that can read it."""

    TORCH_ZIP = "PyTorch zip checkpoint"
    PICKLE = "plain pickle"


@dataclass(frozen=True)
class Sizes:
    """Shapes of the inputs; the full set and a quick set for smoke tests."""

    tensors: int  # float32 tensors in the large and the small checkpoint alike
    big_elements: int  # elements per tensor of the large checkpoint
    small_elements: int  # elements per tensor of the small checkpoint
    records: int  # small dicts in the opcode-heavy pickle
    many_tensors: int  # tensors of the many-tensor checkpoint
    array_elements: int  # float64 elements of the NumPy array pickle


FULL = Sizes(tensors=4, big_elements=64 << 20, small_elements=640 << 10, records=300_000,
             many_tensors=20_000, array_elements=64 << 20)
QUICK = Sizes(tensors=4, big_elements=1 << 20, small_elements=16 << 10, records=5_000,
              many_tensors=500, array_elements=1 << 20)


@dataclass(frozen=True)
class Input:
    """One benchmark input file."""

    key: str
    title: str
    path: Path
    kind: Kind
    size: int
    facts: dict[str, Any]


def build_inputs(folder: Path, sizes: Sizes, log: Log) -> dict[str, Input]:
    """Build (or reuse) every input in ``folder``, keyed by a short name."""
    folder.mkdir(parents=True, exist_ok=True)
    specs: list[tuple[str, str, str, Kind, Writer]] = [
        ("ckpt-large", "checkpoint-large.pt",
         f"{sizes.tensors} float32 tensors of {sizes.big_elements} elements", Kind.TORCH_ZIP,
         lambda p: _checkpoint(p, sizes.tensors, sizes.big_elements)),
        ("ckpt-small", "checkpoint-small.pt",
         f"{sizes.tensors} float32 tensors of {sizes.small_elements} elements", Kind.TORCH_ZIP,
         lambda p: _checkpoint(p, sizes.tensors, sizes.small_elements)),
        ("opcodes", "records.pkl", f"list of {sizes.records} small dicts", Kind.PICKLE,
         lambda p: _records(p, sizes.records)),
        ("many-tensors", "many-tensors.pt", f"{sizes.many_tensors} float32 tensors of 4 elements",
         Kind.TORCH_ZIP, lambda p: _checkpoint(p, sizes.many_tensors, 4)),
        ("ndarray", "ndarray.pkl", f"one float64 NumPy array of {sizes.array_elements} elements",
         Kind.PICKLE, lambda p: _ndarray(p, sizes.array_elements)),
    ]
    return {key: _ensure(key, folder / name, spec, kind, writer, log)
            for key, name, spec, kind, writer in specs}


def _ensure(key: str, path: Path, spec: str, kind: Kind, writer: Writer, log: Log) -> Input:
    sidecar = path.with_name(path.name + ".json")
    record = _read_sidecar(sidecar)
    if record is None or record["spec"] != spec or not _has_size(path, record["size"]):
        log(f"building {path.name}: {spec}")
        partial = path.with_name(path.name + ".partial")
        facts = writer(partial)
        partial.replace(path)
        record = {"spec": spec, "size": path.stat().st_size, "facts": facts}
        sidecar.write_text(json.dumps(record, indent=2), encoding="utf-8")
    else:
        log(f"reusing {path.name}: {spec}")
    title = f"{kind.value}, {spec}, {record['size'] / 1e6:,.1f} MB"
    return Input(key, title, path, kind, record["size"], record["facts"])


def _read_sidecar(sidecar: Path) -> dict[str, Any] | None:
    try:
        record = json.loads(sidecar.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) and {"spec", "size", "facts"} <= set(record) else None


def _has_size(path: Path, size: int) -> bool:
    return path.is_file() and path.stat().st_size == size


def _checkpoint(path: Path, count: int, elements: int) -> dict[str, Any]:
    """``torch.save`` of a state dict of ``count`` float32 tensors (zip format)."""
    state = {f"layer{i}.weight": torch.zeros(elements, dtype=torch.float32) for i in range(count)}
    torch.save(state, path)
    return {"tensors": count, "tensor_bytes": count * elements * 4}


def _records(path: Path, count: int) -> dict[str, Any]:
    """A protocol-4 pickle of many small dicts: a long opcode stream with no large argument."""
    records = [{"id": i, "score": i / 7, "name": f"item-{i}", "tags": (i % 3, i % 5, "x")}
               for i in range(count)]
    data = pickle.dumps(records, protocol=4)
    path.write_bytes(data)
    return {"opcodes": sum(1 for _ in pickletools.genops(data))}


def _ndarray(path: Path, elements: int) -> dict[str, Any]:
    """A protocol-4 pickle of one large array, streamed to the file (no copy of the pickle)."""
    with path.open("wb") as f:
        pickle.dump(np.zeros(elements, dtype=np.float64), f, protocol=4)
    return {"array_bytes": elements * 8}


def describe(inp: Input) -> str:
    """Extra facts worth printing with the input's table."""
    return ", ".join(f"{k.replace('_', ' ')}: {v:,}" for k, v in inp.facts.items())

