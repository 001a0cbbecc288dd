"""Source code carried by TorchScript archives (``code/**.py``)."""

from __future__ import annotations

import re

from mlgate.scan import rules
from mlgate.scan.context import ScanContext
from mlgate.scan.source import Source

MAX_CODE = 16 << 20
# TorchScript compiles this code; these reach native libraries, files or the Python runtime.
_SUSPICIOUS = re.compile(
    r"\b(load_library|__import__|os\.system|subprocess|builtins\.(exec|eval|open)|"
    r"torch\.ops\.(aten\.)?(save|from_file)|_C\._jit_|torch\.classes\.load_library)\b"
)


def scan_code_member(source: Source, ctx: ScanContext) -> None:
    """Report a TorchScript code file, and flag calls that leave the tensor world."""
    with source.open() as f:
        code = f.read(MAX_CODE + 1)
    if len(code) > MAX_CODE:
        ctx.incomplete(source, f"code file larger than {MAX_CODE} bytes; not fully analysed")
    text = code.decode("utf-8", "replace")
    ctx.add(
        rules.EMBEDDED_CODE,
        source.location,
        f"TorchScript source ({len(code)} bytes) compiled by torch.jit.load",
        text[:1500],
    )
    for match in _SUSPICIOUS.finditer(text):
        line = text.count("\n", 0, match.start()) + 1
        ctx.add(
            rules.SUSPICIOUS_SOURCE,
            source.location,
            f"TorchScript code calls {match.group(0)} (line {line})",
            text.splitlines()[line - 1].strip()[:300],
        )
