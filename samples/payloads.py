"""Hand-assembled pickle streams for demos and tests (stdlib only).

Every malicious payload here would create a marker file if it were ever loaded; mlgate
never loads them, and the test suite checks afterwards that no marker exists.
"""

from __future__ import annotations

import base64
import pickle
import struct
import tempfile
from collections.abc import Callable
from pathlib import Path

MARKER_DIR = Path(tempfile.gettempdir()) / "mlgate-markers"


def marker(name: str) -> str:
    """Path of the marker file a payload named ``name`` would create."""
    return str(MARKER_DIR / f"PWNED-{name}")


def shell(name: str) -> str:
    return f"touch {marker(name)}"


def py_code(name: str) -> str:
    return f"open({marker(name)!r}, 'w').close()"


def s(text: str) -> bytes:
    """SHORT_BINUNICODE (or BINUNICODE) of ``text``."""
    raw = text.encode()
    if len(raw) < 256:
        return b"\x8c" + bytes([len(raw)]) + raw
    return b"X" + struct.pack("<I", len(raw)) + raw


def b(data: bytes) -> bytes:
    """SHORT_BINBYTES / BINBYTES of ``data``."""
    if len(data) < 256:
        return b"C" + bytes([len(data)]) + data
    return b"B" + struct.pack("<I", len(data)) + data


def glob0(module: str, name: str) -> bytes:
    """Protocol-0 GLOBAL opcode."""
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def proto(n: int) -> bytes:
    return b"\x80" + bytes([n])


def os_system(name: str) -> bytes:
    """The classic: ``os.system(cmd)`` via GLOBAL + REDUCE, protocol 0."""
    cmd = shell(name)
    return glob0("os", "system") + b"(V" + cmd.encode() + b"\ntR."


def stack_global_memo(name: str) -> bytes:
    """Module and name strings reach STACK_GLOBAL through the memo (protocol 4)."""
    return (
        proto(4) + s("posix") + b"\x94" + s("system") + b"\x94"
        + b"h\x00h\x01\x93" + s(shell(name)) + b"\x85R."
    )


def exec_base64(name: str) -> bytes:
    """``exec(base64.b64decode(...))``: the code only exists after decoding."""
    code = base64.b64encode(py_code(name).encode())
    return (
        proto(2) + glob0("builtins", "exec") + glob0("base64", "b64decode")
        + b(code) + b"\x85R\x85R."
    )


def getattr_import(name: str) -> bytes:
    """``getattr(importlib.import_module('os'), 'system')(cmd)``."""
    return (
        proto(2) + glob0("builtins", "getattr")
        + glob0("importlib", "import_module") + s("os") + b"\x85R" + s("system") + b"\x86R"
        + s(shell(name)) + b"\x85R."
    )


def broken_after_payload(name: str) -> bytes:
    """The payload runs, then the stream breaks: ``pickle.load`` raises after the damage."""
    return os_system(name)[:-1] + b"\xff\xff garbage"


def nested_loads(name: str) -> bytes:
    """``pickle.loads(b'...')`` of a malicious inner pickle."""
    return proto(2) + glob0("pickle", "loads") + b(os_system(name)) + b"\x85R."


def benign_state_dict() -> bytes:
    """Plain data, as a config or tokenizer pickle would hold."""
    data = {"layers": [{"weight": [0.1 * i for i in range(16)], "bias": 0.0} for _ in range(4)],
            "vocab": {f"tok{i}": i for i in range(64)}, "name": "tiny"}
    return pickle.dumps(data, protocol=4)


# The demo's malicious set (samples/generate.py), also scanned by bench/corpus.py and loaded in
# the sandbox by tests/test_sandbox_samples.py: file name -> payload builder (by marker name).
DEMO_MALICIOUS: dict[str, Callable[[str], bytes]] = {
    "os_system.pkl": os_system,
    "memo_stack_global.pt": stack_global_memo,
    "exec_base64.ckpt": exec_base64,
    "getattr_import.bin": getattr_import,
    "broken_after_payload.pkl": broken_after_payload,
    "nested_loads.pkl": nested_loads,
    "disguised.safetensors": os_system,
}
