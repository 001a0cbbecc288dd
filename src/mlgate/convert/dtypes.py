"""The element types a checkpoint may hold, as PyTorch, NumPy and safetensors name them."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DType:
    """One element type: torch name, safetensors code, size and NumPy type string."""

    torch: str  # "float32": the attribute of the ``torch`` module
    code: str  # safetensors dtype code
    itemsize: int
    numpy: str | None  # little-endian NumPy type string; None where NumPy has no such type


DTYPES: tuple[DType, ...] = (
    DType("float64", "F64", 8, "<f8"),
    DType("float32", "F32", 4, "<f4"),
    DType("float16", "F16", 2, "<f2"),
    DType("bfloat16", "BF16", 2, None),
    DType("float8_e4m3fn", "F8_E4M3", 1, None),
    DType("float8_e5m2", "F8_E5M2", 1, None),
    DType("float8_e4m3fnuz", "F8_E4M3FNUZ", 1, None),
    DType("float8_e5m2fnuz", "F8_E5M2FNUZ", 1, None),
    DType("int64", "I64", 8, "<i8"),
    DType("int32", "I32", 4, "<i4"),
    DType("int16", "I16", 2, "<i2"),
    DType("int8", "I8", 1, "|i1"),
    DType("uint8", "U8", 1, "|u1"),
    DType("uint16", "U16", 2, "<u2"),
    DType("uint32", "U32", 4, "<u4"),
    DType("uint64", "U64", 8, "<u8"),
    DType("bool", "BOOL", 1, "|b1"),
    DType("complex64", "C64", 8, "<c8"),
)
BY_TORCH = {d.torch: d for d in DTYPES}
BY_CODE = {d.code: d for d in DTYPES}
BY_NUMPY = {d.numpy: d for d in DTYPES if d.numpy}

# Legacy typed-storage classes (``torch.FloatStorage``...) and the element type they hold.
STORAGE_CLASSES = {
    "DoubleStorage": "float64",
    "FloatStorage": "float32",
    "HalfStorage": "float16",
    "BFloat16Storage": "bfloat16",
    "LongStorage": "int64",
    "IntStorage": "int32",
    "ShortStorage": "int16",
    "CharStorage": "int8",
    "ByteStorage": "uint8",
    "BoolStorage": "bool",
    "ComplexFloatStorage": "complex64",
}
# Types PyTorch can store that safetensors cannot represent: a clear error, not a refusal.
UNSUPPORTED_STORAGES = frozenset(
    {"ComplexDoubleStorage", "QInt8Storage", "QUInt8Storage", "QInt32Storage", "QUInt4x2Storage"}
)


def numpy_dtype(descr: str) -> DType | None:
    """The DType of a NumPy type string (``'<f4'``, ``'|u1'``, ``'f8'`` with ``order``)."""
    if descr[:1] == "=":
        descr = "<" + descr[1:]
    found = BY_NUMPY.get(descr)
    if found is None and descr[:1] in "<|":
        # '|' and '<' are interchangeable for one-byte types, as NumPy prints them.
        found = BY_NUMPY.get(("|" if descr[0] == "<" else "<") + descr[1:])
    return found
