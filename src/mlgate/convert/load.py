"""``mlgate.load``: tensors from safetensors or pickle checkpoints, without running the file.

A drop-in for ``torch.load``: pickle checkpoints go through the same restricted
reconstruction as ``mlgate convert`` (refused with findings when they hold anything but
tensors and plain data), safetensors headers are validated before a byte is read. The
result holds NumPy arrays, or torch tensors when torch is installed (``framework="auto"``).
"""

from __future__ import annotations

import importlib
import json
import shutil
import struct
import tempfile
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from mlgate.convert.dtypes import BY_CODE, DType
from mlgate.convert.errors import ConversionError, IntegrityError
from mlgate.convert.layout import Reader, plan
from mlgate.convert.refs import ByteSource, FileRange, Node, TensorRef
from mlgate.convert.safetensors_writer import MAX_HEADER, META_TIED
from mlgate.convert.sources import looks_like_safetensors, read_checkpoint
from mlgate.errors import MlgateError, public_entry

Framework = Literal["auto", "numpy", "torch"]
MakeArray = Callable[[bytearray, DType, tuple[int, ...]], Any]


@public_entry(ConversionError)
def load(
    path: Path | str,
    *,
    framework: Framework = "auto",
    lock: Path | str | None = None,
    public_key: Path | str | None = None,
    signature: Path | str | None = None,
    verify_root: Path | str | None = None,
) -> Any:
    """Load tensors from ``path`` (safetensors, PyTorch, NumPy, joblib or pickle checkpoints).

    With ``lock`` (an ``mlgate hash --lock-out`` file) or ``public_key`` (with an optional
    ``signature`` path) the model at ``verify_root`` (default: ``path``) is verified first
    and :class:`IntegrityError` is raised if it does not match; the tensors then come from a
    private copy of ``path`` whose bytes matched too (never from a second read of ``path``).
    Pickles that hold anything but tensors and plain data raise :class:`ConversionRefused`
    with the findings.
    """
    path = Path(path)
    make = _array_maker(framework)
    with ExitStack() as cleanup:  # the private verified copy, a decompressed joblib file
        if lock is not None or public_key is not None:
            root = Path(verify_root) if verify_root is not None else path
            path = _verified_copy(path, root, lock, public_key, signature, cleanup)
        try:
            with path.open("rb") as f:
                head = f.read(16)
            size = path.stat().st_size
        except OSError as e:
            raise ConversionError(f"cannot read {path}: {e.strerror or e}") from e
        if looks_like_safetensors(head, size):
            tree, sources, aliases = _read_safetensors(path, size)
        else:
            ckpt = read_checkpoint(path, cleanup)
            tree, sources, aliases = ckpt.tree, ckpt.storages, {}
        with Reader() as reader:
            result = _Materialiser(reader, sources, make).node(tree)
    if isinstance(result, dict):
        for alias, kept in aliases.items():
            if kept in result:
                result[alias] = result[kept]
    return result


@dataclass(frozen=True)
class _Pin:
    """How a lock or a verified signature pins the loaded file."""

    what: str  # "the lock x.lock", "the signature"
    algorithm: str
    shard_size: int | None
    digest: str


def _verified_copy(
    path: Path,
    root: Path,
    lock: Path | str | None,
    public_key: Path | str | None,
    signature: Path | str | None,
    cleanup: ExitStack,
) -> Path:
    """A private copy of ``path`` whose own bytes match the lock or signature.

    Verifying the model and then opening the file again loads whatever a concurrent writer
    put there in between (a time-of-check to time-of-use race): the copy, in a folder only
    this process knows, is what gets hashed against the pins and what gets loaded.
    """
    from mlgate.provenance.manifest import CHUNK_SIZE, hash_model  # noqa: PLC0415

    pins = _verify(root, _member(path, root), lock, public_key, signature)
    folder = Path(cleanup.enter_context(tempfile.TemporaryDirectory(prefix="mlgate-load-")))
    copy = folder / path.name  # same name: formats told apart by suffix still are
    try:
        with path.open("rb") as src, copy.open("xb") as dst:
            shutil.copyfileobj(src, dst, CHUNK_SIZE)
    except OSError as e:
        raise ConversionError(f"cannot read {path}: {e.strerror or e}") from e
    for pin in pins:
        [got] = hash_model(copy, pin.algorithm, shard_size=pin.shard_size).files
        if got.digest != pin.digest:
            raise IntegrityError(
                f"{path} changed after it was verified: the bytes read do not match {pin.what}"
            )
    return copy


def _member(path: Path, root: Path) -> str | None:
    """The loaded file's path in the manifest of ``root`` (None: ``root`` is that file)."""
    real, real_root = path.resolve(), root.resolve()
    if real == real_root:
        return None
    if not real.is_relative_to(real_root):
        raise IntegrityError(f"{path} is not part of the verified model {root}")
    return real.relative_to(real_root).as_posix()


def _verify(
    root: Path,
    member: str | None,
    lock: Path | str | None,
    public_key: Path | str | None,
    signature: Path | str | None,
) -> list[_Pin]:
    """Verify the whole model; return how the loaded file is pinned."""
    # Provenance (cryptography) is imported only when a load asks for verification.
    from mlgate.provenance import read_lock, verify_lock, verify_model  # noqa: PLC0415
    from mlgate.provenance.oms import SINGLE_FILE_RESOURCE  # noqa: PLC0415

    pins: list[_Pin] = []
    if lock is not None:
        differences = verify_lock(root, Path(lock))
        if differences:
            listed = "; ".join(str(d) for d in differences[:5])
            raise IntegrityError(f"{root} does not match the lock {lock}: {listed}")
        name = member if member is not None else root.name
        pinned = {f.path: f for f in read_lock(Path(lock)).files}.get(name)
        if pinned is None:
            raise IntegrityError(f"{name} is not pinned by the lock {lock}")
        pins.append(_Pin(f"the lock {lock}", pinned.algorithm, pinned.shard_size, pinned.digest))
    if public_key is not None:
        result = verify_model(root, public_key, signature)
        if not result.verified:
            raise IntegrityError(f"{root}: signature not verified: {'; '.join(result.problems)}")
        name = member if member is not None else SINGLE_FILE_RESOURCE
        signed = {r.name: r for r in result.resources}.get(name)
        if signed is None:
            raise IntegrityError(f"{name} is not covered by the signature {result.signature}")
        pins.append(
            _Pin(f"the signature {result.signature}", signed.algorithm, None, signed.digest)
        )
    return pins


class _Materialiser:
    def __init__(self, reader: Reader, sources: dict[str, ByteSource], make: MakeArray) -> None:
        self.reader = reader
        self.sources = sources
        self.make = make
        self.done: dict[TensorRef, Any] = {}

    def node(self, node: Node) -> Any:
        if isinstance(node, TensorRef):
            if node not in self.done:
                self.done[node] = self._tensor(node)
            return self.done[node]
        if isinstance(node, dict):
            return {k: self.node(v) for k, v in node.items()}
        if isinstance(node, list):
            return [self.node(v) for v in node]
        if isinstance(node, tuple):
            return tuple(self.node(v) for v in node)
        return node

    def _tensor(self, ref: TensorRef) -> Any:
        source = self.sources.get(ref.storage)
        if source is None:
            raise ConversionError(f"storage {ref.storage!r} has no data")
        data = bytearray()
        for chunk in self.reader.chunks(source, plan(ref, source.length)):
            data += chunk
        return self.make(data, ref.dtype, ref.shape)


def _read_safetensors(path: Path, size: int) -> tuple[Node, dict[str, ByteSource], dict[str, str]]:
    """Validate the header; each tensor becomes a view of its own byte range."""
    with path.open("rb") as f:
        length = struct.unpack("<Q", f.read(8))[0]
        if length > min(MAX_HEADER, size - 8):
            raise ConversionError(f"{path}: safetensors header of {length} bytes is invalid")
        raw = f.read(length)
    try:
        header = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ConversionError(f"{path}: safetensors header is not JSON: {e}") from e
    if not isinstance(header, dict):
        raise ConversionError(f"{path}: safetensors header is not a JSON object")
    meta = header.pop("__metadata__", None) or {}
    data_start, data_len = 8 + length, size - 8 - length
    tree: dict[Node, Node] = {}
    sources: dict[str, ByteSource] = {}
    for name, info in header.items():
        ref, begin = _header_entry(path, name, info, data_len)
        tree[name] = ref
        sources[name] = FileRange(path, data_start + begin, ref.nbytes)
    aliases = json.loads(meta.get(META_TIED, "{}")) if isinstance(meta, dict) else {}
    return tree, sources, aliases if isinstance(aliases, dict) else {}


def _header_entry(path: Path, name: str, info: Any, data_len: int) -> tuple[TensorRef, int]:
    try:
        dtype = BY_CODE[info["dtype"]]
        shape = tuple(int(d) for d in info["shape"])
        begin, end = (int(v) for v in info["data_offsets"])
    except (KeyError, TypeError, ValueError) as e:
        raise ConversionError(f"{path}: tensor {name!r} has an invalid header entry") from e
    ref = TensorRef(name, dtype, shape, _row_major(shape), 0)
    if min(shape, default=0) < 0 or not 0 <= begin <= end <= data_len or end - begin != ref.nbytes:
        raise ConversionError(f"{path}: tensor {name!r} offsets disagree with its shape")
    return ref, begin


def _row_major(shape: tuple[int, ...]) -> tuple[int, ...]:
    strides: list[int] = []
    step = 1
    for dim in reversed(shape):
        strides.append(step)
        step *= max(dim, 1)
    return tuple(reversed(strides))


def _array_maker(framework: Framework) -> MakeArray:
    if framework in ("auto", "torch"):
        try:
            torch = importlib.import_module("torch")
        except ImportError:
            if framework == "torch":
                raise MlgateError("framework='torch' needs torch installed") from None
        else:
            return lambda data, dtype, shape: _torch_array(torch, data, dtype, shape)
    try:
        numpy = importlib.import_module("numpy")
    except ImportError:
        raise MlgateError("mlgate.load needs numpy (pip install numpy) or torch") from None
    return lambda data, dtype, shape: _numpy_array(numpy, data, dtype, shape)


def _torch_array(torch: Any, data: bytearray, dtype: DType, shape: tuple[int, ...]) -> Any:
    kind = getattr(torch, dtype.torch)
    if not data:
        return torch.empty(shape, dtype=kind)
    return torch.frombuffer(data, dtype=kind).reshape(shape)


def _numpy_array(numpy: Any, data: bytearray, dtype: DType, shape: tuple[int, ...]) -> Any:
    kind: Any = dtype.numpy
    if kind is None:
        try:
            kind = getattr(importlib.import_module("ml_dtypes"), dtype.torch)
        except (ImportError, AttributeError):
            raise MlgateError(
                f"{dtype.torch} tensors need torch or ml_dtypes to be loaded as arrays"
            ) from None
    return numpy.frombuffer(data, dtype=kind).reshape(shape)
