"""safetensors: a JSON header and raw tensor bytes; no code can be carried if it is valid.

The loader itself runs nothing, but libraries keep their model configuration in the header's
``__metadata__`` strings and hand it to Hydra (FlexTok, Unit 42 2025): a metadata value that
is a JSON document is analysed like a configuration file.
"""

from __future__ import annotations

import json
import math
import struct

from mlgate.scan import rules
from mlgate.scan.config_refs import report_targets, shown, walk
from mlgate.scan.context import ScanContext
from mlgate.scan.source import Source

MAX_HEADER = 100_000_000  # the safetensors library's own bound
DTYPE_BITS = {
    "BOOL": 8,
    "U8": 8,
    "I8": 8,
    "F8_E5M2": 8,
    "F8_E4M3": 8,
    "F8_E8M0": 8,
    "I16": 16,
    "U16": 16,
    "F16": 16,
    "BF16": 16,
    "I32": 32,
    "U32": 32,
    "F32": 32,
    "F64": 64,
    "I64": 64,
    "U64": 64,
    "C64": 64,
    "F4": 4,
    "F6_E2M3": 6,
    "F6_E3M2": 6,
}


def scan_safetensors(source: Source, ctx: ScanContext) -> str:
    """Validate the header strictly: offsets, sizes and dtypes must describe the file exactly."""
    head = source.head(8)
    n = struct.unpack("<Q", head)[0]
    size = source.size or 0
    if n > MAX_HEADER or 8 + n > size:
        ctx.add(rules.MALFORMED, source.location, f"safetensors header length {n} is invalid")
        return "safetensors"
    with source.open() as f:
        f.read(8)
        raw = f.read(n)
    try:
        header = json.loads(raw, object_pairs_hook=_unique_keys)
    except _DuplicateKeyError as e:
        ctx.add(
            rules.MALFORMED,
            source.location,
            f"safetensors header repeats the key {e}: readers disagree on which entry wins",
        )
        return "safetensors"
    except (ValueError, RecursionError):
        ctx.add(rules.MALFORMED, source.location, "safetensors header is not valid JSON")
        return "safetensors"
    _check_metadata(source, ctx, header)
    problems = _problems(header, size - 8 - n)
    for problem in problems[:20]:
        ctx.add(rules.MALFORMED, source.location, f"safetensors: {problem}")
    if not problems:
        tensors = len(header) - ("__metadata__" in header)
        ctx.add(
            rules.RECOGNISED,
            source.location,
            f"valid safetensors ({tensors} tensors, header fully checked): no code possible",
        )
    return "safetensors"


def _check_metadata(source: Source, ctx: ScanContext, header: object) -> None:
    meta = header.get("__metadata__") if isinstance(header, dict) else None
    if not isinstance(meta, dict):
        return
    for key, value in meta.items():
        if not isinstance(value, str) or value.lstrip()[:1] not in ("{", "["):
            continue
        label = f"__metadata__[{shown(str(key))}]"
        try:
            doc = json.loads(value)
        except ValueError:
            continue  # a string that only looks like JSON: no loader reads it as a config
        except RecursionError:
            ctx.incomplete(source, f"{label} is nested too deeply", rules.LIMIT_EXCEEDED)
            continue
        nodes = walk(doc, label, ctx.limits.max_config_nodes)
        report_targets(ctx, ctx.at(source), doc, nodes, "Hydra (config in __metadata__)")


class _DuplicateKeyError(ValueError):
    pass


def _unique_keys(pairs: list[tuple[str, object]]) -> dict[str, object]:
    seen: dict[str, object] = {}
    for key, value in pairs:
        if key in seen:
            raise _DuplicateKeyError(repr(key))
        seen[key] = value
    return seen


def _problems(header: object, data_size: int) -> list[str]:
    if not isinstance(header, dict):
        return ["header is not a JSON object"]
    problems: list[str] = []
    meta = header.get("__metadata__", {})
    if not isinstance(meta, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in meta.items()
    ):
        problems.append("__metadata__ must map strings to strings")
    ranges = []
    for name, info in header.items():
        if name == "__metadata__":
            continue
        problem = _tensor_problem(name, info)
        if problem:
            problems.append(problem)
            continue
        ranges.append((info["data_offsets"][0], info["data_offsets"][1], name))
    ranges.sort()
    cursor = 0
    for begin, end, name in ranges:
        if begin != cursor:
            problems.append(
                f"tensor {name!r} starts at {begin}, expected {cursor} (gap or overlap)"
            )
        cursor = max(cursor, end)
    if cursor != data_size:
        problems.append(f"tensors cover {cursor} bytes, the file holds {data_size}")
    return problems


def _tensor_problem(name: str, info: object) -> str | None:
    if not isinstance(info, dict):
        return f"entry {name!r} is not an object"
    dtype, shape, offsets = info.get("dtype"), info.get("shape"), info.get("data_offsets")
    if dtype not in DTYPE_BITS:
        return f"tensor {name!r} has unknown dtype {dtype!r}"
    if not isinstance(shape, list) or not all(isinstance(d, int) and d >= 0 for d in shape):
        return f"tensor {name!r} has an invalid shape"
    if (
        not isinstance(offsets, list)
        or len(offsets) != 2
        or not all(isinstance(o, int) and o >= 0 for o in offsets)
        or offsets[1] < offsets[0]
    ):
        return f"tensor {name!r} has invalid data_offsets"
    nbytes = math.prod(shape) * DTYPE_BITS[str(dtype)]
    if nbytes % 8 or nbytes // 8 != offsets[1] - offsets[0]:
        return f"tensor {name!r}: shape x dtype does not match its byte range"
    return None
