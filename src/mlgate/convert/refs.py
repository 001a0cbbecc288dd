"""What a reconstructed checkpoint is made of: plain data, and tensors that point at bytes.

Nothing here holds tensor bytes: a :class:`TensorRef` names a storage and a view of it, and
each source format maps storage keys to where their bytes are (:data:`ByteSource`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Union

from mlgate.convert.dtypes import DType


@dataclass(frozen=True)
class TensorRef:
    """A strided view of a storage; offset and strides count elements, as in PyTorch."""

    storage: str
    dtype: DType
    shape: tuple[int, ...]
    stride: tuple[int, ...]
    offset: int

    @property
    def numel(self) -> int:
        count = 1
        for dim in self.shape:
            count *= dim
        return count

    @property
    def nbytes(self) -> int:
        return self.numel * self.dtype.itemsize


@dataclass(frozen=True)
class FileRange:
    """Bytes stored as-is at ``offset`` in ``path`` (a STORED zip member, raw array data)."""

    path: Path
    offset: int
    length: int


@dataclass(frozen=True)
class DeflatedRange:
    """Bytes of a DEFLATE-compressed zip member (``np.savez_compressed``)."""

    path: Path
    offset: int
    compressed_length: int
    length: int
    skip: int = 0  # inflated bytes before the storage (the .npy header)


@dataclass(frozen=True)
class InlineBytes:
    """Bytes held in the pickle itself (small NumPy arrays pickled by value)."""

    data: bytes

    @property
    def length(self) -> int:
        return len(self.data)


ByteSource = FileRange | DeflatedRange | InlineBytes

# A reconstructed checkpoint: plain data with tensors in it (dicts keep insertion order).
Node = Union[  # noqa: UP007 - recursive alias
    None,
    bool,
    int,
    float,
    str,
    bytes,
    TensorRef,
    tuple["Node", ...],
    list["Node"],
    dict["Node", "Node"],
]


@dataclass(frozen=True)
class Checkpoint:
    """A source file read without running it: its content and where each storage's bytes are."""

    path: Path
    kind: str  # "pytorch-zip", "pytorch-legacy", "pickle", "joblib", "npy", "npz"
    tree: Node
    storages: dict[str, ByteSource]
    expanded_size: int = 0  # size of the decompressed copy read (compressed joblib), else 0
