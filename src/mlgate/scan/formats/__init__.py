"""One handler per format; the table is exhaustive over :class:`Format` (checked by mypy)."""

from __future__ import annotations

from collections.abc import Callable

from mlgate.scan.context import ScanContext
from mlgate.scan.formats.compressed import scan_compressed
from mlgate.scan.formats.flax_msgpack import scan_msgpack
from mlgate.scan.formats.gguf import scan_gguf
from mlgate.scan.formats.hdf5 import scan_keras_h5
from mlgate.scan.formats.json_config import scan_json
from mlgate.scan.formats.numpy import scan_npy
from mlgate.scan.formats.pickle import scan_pickle
from mlgate.scan.formats.protobuf import scan_protobuf
from mlgate.scan.formats.python_source import scan_python
from mlgate.scan.formats.safetensors import scan_safetensors
from mlgate.scan.formats.sevenzip import scan_7z
from mlgate.scan.formats.tar import scan_tar
from mlgate.scan.formats.tflite import scan_tflite
from mlgate.scan.formats.yaml_config import scan_yaml
from mlgate.scan.formats.zip import scan_zip
from mlgate.scan.sniff import Format
from mlgate.scan.source import Source

Handler = Callable[[Source, ScanContext], str]


def _codec(name: str) -> Handler:
    return lambda source, ctx: scan_compressed(source, ctx, name)


HANDLERS: dict[Format, Handler] = {
    Format.PICKLE: scan_pickle,
    Format.ZIP: scan_zip,
    Format.NUMPY: scan_npy,
    Format.GZIP: _codec("gzip"),
    Format.BZ2: _codec("bz2"),
    Format.XZ: _codec("xz"),
    Format.LZMA: _codec("lzma"),
    Format.ZLIB: _codec("zlib"),
    Format.LZ4: _codec("lz4"),
    Format.ZSTD: _codec("zstd"),
    Format.TAR: scan_tar,
    Format.SEVEN_ZIP: scan_7z,
    Format.SAFETENSORS: scan_safetensors,
    Format.HDF5: scan_keras_h5,
    Format.GGUF: scan_gguf,
    Format.TFLITE: scan_tflite,
    Format.PROTOBUF: scan_protobuf,
    Format.JSON: scan_json,
    Format.MSGPACK: scan_msgpack,
    Format.PYTHON: scan_python,
    Format.YAML: scan_yaml,
}
assert set(HANDLERS) == set(Format), "every format needs a handler"
