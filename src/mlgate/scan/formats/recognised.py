"""Identification of files that are no pickle and no format with its own handler.

Called when the pickle reading fails, so that a model file is reported with what it is and
why it cannot (or can) carry code, instead of a bare "unrecognised". Only files that match
nothing here are reported unrecognised.
"""

from __future__ import annotations

from collections.abc import Callable

from mlgate.scan import rules
from mlgate.scan.context import ScanContext
from mlgate.scan.jinja import check_template
from mlgate.scan.source import Source

HEAD = 512
MAX_TEMPLATE_BYTES = 1 << 20
MXNET_PARAMS_MAGIC = (0x0112).to_bytes(8, "little")
FASTTEXT_MAGIC = (793712314).to_bytes(4, "little")

# Protobuf files whose schema only the name tells (for the protobuf handler's report).
PROTOBUF_HINTS = {
    ".mlmodel": "CoreML .mlmodel (protobuf spec): layers and weights run by CoreML, no Python code",
    ".pdmodel": "PaddlePaddle .pdmodel (protobuf ProgramDesc): operators only, no Python code",
}


def protobuf_hint(name: str) -> str | None:
    """What a protobuf file is by its name (CoreML, Paddle), when its schema has no magic."""
    return next((why for ext, why in PROTOBUF_HINTS.items() if name.lower().endswith(ext)), None)


# (test on head bytes and lower-case name, label, reason)
Matcher = Callable[[bytes, str], bool]
_KNOWN: tuple[tuple[Matcher, str, str], ...] = (
    (
        lambda h, n: h.startswith(b"tree\nversion=v"),
        "lightgbm",
        "LightGBM text model: trees and parameters only, no code possible",
    ),
    (
        lambda h, n: h.startswith(MXNET_PARAMS_MAGIC),
        "mxnet-params",
        "MXNet .params (NDArray list, magic 0x112): tensor data only, no code possible",
    ),
    (
        lambda h, n: n.endswith(".pdiparams"),
        "paddle-params",
        "PaddlePaddle .pdiparams: raw tensor data, no code possible (the .pdmodel graph is "
        "scanned on its own)",
    ),
    (
        lambda h, n: h.startswith(b"binf"),
        "xgboost-binary",
        "XGBoost legacy binary model: trees and parameters only, no code possible",
    ),
    (
        lambda h, n: h.startswith(FASTTEXT_MAGIC),
        "fasttext",
        "fastText binary model: vectors and parameters only, no code possible",
    ),
    (
        lambda h, n: h.startswith(b"CBM1"),
        "catboost",
        "CatBoost binary model: trees only, no code possible",
    ),
    (
        lambda h, n: n.endswith(".mlmodel"),
        "coreml",
        PROTOBUF_HINTS[".mlmodel"],
    ),
    (
        lambda h, n: n.endswith(".pdmodel"),
        "paddle-model",
        PROTOBUF_HINTS[".pdmodel"],
    ),
    (
        lambda h, n: n in ("vocab.txt", "merges.txt") or n.endswith((".vocab", ".tiktoken")),
        "tokenizer-text",
        "tokenizer vocabulary (text): data only",
    ),
    (
        lambda h, n: h.startswith((b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF8")),
        "image",
        "image file: not loaded as a model",
    ),
)


def recognise(source: Source, ctx: ScanContext) -> str:
    """Report what ``source`` is (RECOGNISED) or, when nothing matches, UNRECOGNISED."""
    head = source.head(HEAD)
    name = source.name.lower()
    if name.endswith((".jinja", ".jinja2", ".j2")):
        return _template(source, ctx)
    if name.endswith(".py") and _python(source, ctx):
        return "python"  # not UTF-8 (a coding cookie), so the sniffer did not route it
    for matches, label, reason in _KNOWN:
        if matches(head, name):
            ctx.add(rules.RECOGNISED, source.location, reason)
            return label
    ctx.add(
        rules.UNRECOGNISED,
        source.location,
        "not a format mlgate analyses (no pickle, archive or known model header)",
    )
    return "unknown"


def _python(source: Source, ctx: ScanContext) -> bool:
    # Imported here: python_source falls back to the pickle handler, which calls this module.
    from mlgate.scan.formats.python_source import analyse_python  # noqa: PLC0415

    return analyse_python(source, ctx)


def _template(source: Source, ctx: ScanContext) -> str:
    with source.open() as f:
        raw = f.read(MAX_TEMPLATE_BYTES + 1)
    if len(raw) > MAX_TEMPLATE_BYTES:
        ctx.incomplete(source, "template over 1 MiB; not analysed", rules.LIMIT_EXCEEDED)
        return "jinja"
    check_template(ctx, source.location, raw.decode("utf-8", "replace"), source.name)
    ctx.add(rules.RECOGNISED, source.location, "Jinja2 template, analysed without rendering")
    return "jinja"
