"""Keras model configs (``config.json`` of ``.keras`` archives, ``model_config`` of legacy H5).

A Keras config is JSON that the loader turns into objects: every ``module``/``class_name``
pair is imported and instantiated, functions are resolved by name, and Lambda layers carry
marshalled Python bytecode that runs when the model is called. The published safe_mode
bypasses (2024-2025) all route through these fields, so each one is classified here with
the pickle policy; Lambda code is disassembled in an isolated subprocess, never loaded in
the scanner.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Iterator
from typing import Any

from mlgate.findings import ArtifactResult, Severity
from mlgate.sandbox.disassemble import disassemble
from mlgate.scan import rules
from mlgate.scan.context import ScanContext
from mlgate.scan.pickle.verdicts import Category
from mlgate.scan.protowire import Buffer, Field
from mlgate.scan.source import Source, bytes_source

# Modules whose classes and functions Keras itself provides (and resolves in safe_mode).
SAFE_NAMESPACES = ("keras", "tf_keras", "tensorflow.keras", "tensorflow.python.keras")
# Inside those namespaces, callables that reach files, the network, other model files or
# switch safe mode off: the gadgets of the published bypasses.
_KERAS_GADGETS = {
    "get_file": "downloads a file from a URL to a chosen path",
    "load_model": "loads another model file",
    "load_weights": "loads another weights file",
    "save_model": "writes a model file",
    "save_weights": "writes a weights file",
    "enable_unsafe_deserialization": "turns safe_mode off for the rest of the load",
    "register_keras_serializable": "registers arbitrary objects for deserialization",
}
_DIS_NAMES = re.compile(
    r"(?:IMPORT_NAME|IMPORT_FROM|LOAD_GLOBAL|LOAD_NAME|LOAD_ATTR|LOAD_METHOD)\s+\d+\s+"
    r"\((?:NULL \+ )?(.*?)(?: \+ NULL)?\)"
)
MAX_EVIDENCE = 4000
MAX_DISASSEMBLED = 32  # Lambda code objects disassembled per config


def scan_config_member(source: Source, ctx: ScanContext) -> None:
    """Analyse the ``config.json`` member of a Keras v3 ``.keras`` archive."""
    try:
        _scan_config_member(source, ctx)
    finally:
        # Recorded like a scanned artifact so an unreadable config makes the report incomplete.
        complete = not ctx.is_incomplete(source)
        ctx.artifacts.append(
            ArtifactResult(source.location.artifact, "keras-config", complete, source.size)
        )


def _scan_config_member(source: Source, ctx: ScanContext) -> None:
    cap = ctx.limits.max_model_config_bytes
    with source.open() as f:
        raw = f.read(cap + 1)
    if len(raw) > cap:
        ctx.incomplete(
            source, f"Keras config larger than {cap} bytes; not analysed", rules.LIMIT_EXCEEDED
        )
        return
    if analyse_config(raw, source, ctx, "config.json"):
        ctx.add(
            rules.RECOGNISED,
            source.location,
            "Keras v3 model config: layers are rebuilt from module/class references, "
            "which were checked",
        )


def analyse_config(raw: bytes | str, source: Source, ctx: ScanContext, label: str) -> bool:
    """Walk a Keras JSON config and report code and unsafe references; False if unreadable."""
    try:
        text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
        config = json.loads(text)
    except (UnicodeDecodeError, ValueError) as e:
        ctx.incomplete(source, f"{label} is not valid JSON: {e}", rules.MALFORMED)
        return False
    except RecursionError:
        ctx.incomplete(source, f"{label} is nested too deeply", rules.LIMIT_EXCEEDED)
        return False
    budget = [MAX_DISASSEMBLED]
    for visited, (path, node) in enumerate(_walk(config, label), 1):
        if visited > ctx.limits.max_config_nodes:
            ctx.incomplete(
                source,
                f"{label} has more than {ctx.limits.max_config_nodes} values; rest not analysed",
                rules.LIMIT_EXCEEDED,
            )
            return True
        _check_node(node, path, source, ctx, budget)
    return True


def analyse_saved_metadata(
    buf: Buffer, field: Field, source: Source, ctx: ScanContext, label: str
) -> None:
    """The JSON metadata (``field`` of ``buf``) of one Keras 2 SavedModel object, from
    ``keras_metadata.pb`` or from the SavedUserObject of ``saved_model.pb`` that tf-keras
    reads when that file is absent: a Keras config whose Lambda layers carry bytecode."""
    cap = ctx.limits.max_model_config_bytes
    if field.end - field.start > cap:
        ctx.incomplete(
            source, f"{label}: metadata larger than {cap} bytes; not analysed", rules.LIMIT_EXCEEDED
        )
        return
    meta = buf[field.start : field.end]
    mark = len(ctx.findings)
    analyse_config(meta, source, ctx, label)
    caught = any(f.severity >= Severity.HIGH for f in ctx.findings[mark:])
    if not caught and re.search(rb'"class_name":\s*"Lambda"', meta):
        ctx.add(
            rules.DANGEROUS_OP,
            source.location,
            "Keras SavedModel metadata has a Lambda layer: its marshalled Python bytecode "
            "runs when the model is loaded with Keras",
            label,
        )


def _walk(value: Any, label: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every JSON object in ``value`` with its path (iterative: configs can nest deeply)."""
    stack: list[tuple[str, Any]] = [(label, value)]
    while stack:
        path, item = stack.pop()
        if isinstance(item, dict):
            yield path, item
            stack.extend((f"{path}.{k}", v) for k, v in item.items() if isinstance(v, dict | list))
        elif isinstance(item, list):
            stack.extend(
                (f"{path}[{i}]", v) for i, v in enumerate(item) if isinstance(v, dict | list)
            )


def _check_node(
    node: dict[str, Any], path: str, source: Source, ctx: ScanContext, budget: list[int]
) -> None:
    cls = node.get("class_name")
    config = node.get("config")
    if cls == "__lambda__":
        code = config.get("code") if isinstance(config, dict) else None
        _report_lambda(code, path, source, ctx, budget)
        return
    _check_legacy_functions(node, path, source, ctx, budget)
    module = node.get("module")
    if isinstance(module, str) and isinstance(cls, str):
        is_function = cls == "function" and isinstance(config, str)
        name = config if is_function and isinstance(config, str) else cls
        _check_reference(module, name, is_function, path, source, ctx)
    elif isinstance(cls, str) and cls in _KERAS_GADGETS:
        _gadget(cls, f"class_name {cls!r}", path, source, ctx)
    registered = node.get("registered_name")
    if isinstance(registered, str) and ">" in registered and not _in_safe_namespace(module):
        ctx.add(
            rules.UNSAFE_REFERENCE,
            ctx.at(source),
            f"custom registered object {registered!r} at {path}: the loader needs its code",
            severity=Severity.MEDIUM,
        )
    if cls == "TorchModuleWrapper" and isinstance(config, dict):
        _scan_torch_module(config.get("module"), path, source, ctx)


def _check_legacy_functions(
    node: dict[str, Any], path: str, source: Source, ctx: ScanContext, budget: list[int]
) -> None:
    """tf.keras / Keras 2 Lambda: ``function`` + ``function_type`` ("lambda" or "function")."""
    for key, value in node.items():
        kind = node.get(f"{key}_type")
        if kind == "lambda":
            items = _legacy_tuple(value)
            code = items[0] if isinstance(items, list) and items else items
            _report_lambda(code, f"{path}.{key}", source, ctx, budget)
        elif kind == "function" and isinstance(value, str):
            module = node.get(f"{key}_module", node.get("module"))
            if isinstance(module, str):
                _check_reference(module, value, True, f"{path}.{key}", source, ctx)


def _legacy_tuple(value: object) -> object:
    """The items of a tuple as Keras 2 SavedModel metadata writes it (tf-keras json_utils:
    ``{"class_name": "__tuple__", "items": [...]}``); ``value`` itself otherwise."""
    if isinstance(value, dict) and value.get("class_name") == "__tuple__":
        return value.get("items")
    return value


def _in_safe_namespace(module: object) -> bool:
    return isinstance(module, str) and any(
        module == ns or module.startswith(ns + ".") for ns in SAFE_NAMESPACES
    )


def _check_reference(
    module: str, name: str, is_function: bool, path: str, source: Source, ctx: ScanContext
) -> None:
    ref = f"{module}.{name}"
    short = name.rsplit(".", 1)[-1]
    verdict = ctx.policy.classify(module, name)
    if verdict.category not in (Category.SAFE, Category.UNKNOWN):
        severity = max(verdict.severity or Severity.HIGH, Severity.HIGH)
        ctx.add(
            rules.UNSAFE_REFERENCE,
            ctx.at(source),
            f"config references {ref} at {path}: {verdict.reason}; the loader imports and calls it",
            ref,
            severity,
        )
        return
    if _in_safe_namespace(module):
        if short in _KERAS_GADGETS:
            _gadget(ref, ref, path, source, ctx)
        return
    if verdict.is_safe:
        ctx.add(
            rules.UNSAFE_REFERENCE,
            ctx.at(source),
            f"config references {ref} at {path} (outside Keras, allowlisted)",
            ref,
            Severity.LOW,
        )
        return
    # An unknown function reached from the config is the bypass shape (any importable
    # function called with attacker arguments); an unknown class is a custom object.
    severity = Severity.HIGH if is_function or not short[:1].isupper() else Severity.MEDIUM
    what = "function" if severity is Severity.HIGH else "custom object"
    ctx.add(
        rules.UNSAFE_REFERENCE,
        ctx.at(source),
        f"config references {what} {ref} at {path}, outside Keras' safe namespaces; the "
        "loader imports its module",
        ref,
        severity,
    )


def _gadget(name: str, ref: str, path: str, source: Source, ctx: ScanContext) -> None:
    short = name.rsplit(".", 1)[-1]
    ctx.add(
        rules.UNSAFE_REFERENCE,
        ctx.at(source),
        f"config references {ref} at {path}: {_KERAS_GADGETS[short]} (safe_mode bypass gadget)",
        ref,
        Severity.HIGH,
    )


def _report_lambda(
    code: object, path: str, source: Source, ctx: ScanContext, budget: list[int]
) -> None:
    """A Lambda's marshalled code is CRITICAL whether or not it can be disassembled."""
    raw = _decode_code(code)
    # Each disassembly costs a process: past the budget, lambdas are reported undecoded.
    budget[0] -= 1
    listing = disassemble(raw) if raw and budget[0] >= 0 else None
    if listing is None:
        why = (
            "undecodable code object (another Python version or corrupt)"
            if budget[0] >= 0
            else f"not disassembled (more than {MAX_DISASSEMBLED} code objects)"
        )
        ctx.add(
            rules.LAMBDA_CODE,
            ctx.at(source),
            f"Lambda layer with Python code at {path}: {why}; it runs when the model is "
            "loaded or called",
            str(code)[:MAX_EVIDENCE],
        )
        return
    names = sorted(set(_DIS_NAMES.findall(listing)))
    used = f"; names used: {', '.join(names)[:500]}" if names else ""
    ctx.add(
        rules.LAMBDA_CODE,
        ctx.at(source),
        f"Lambda layer with Python code at {path}: runs when the model is called{used}",
        listing[:MAX_EVIDENCE],
    )


def _decode_code(code: object) -> bytes | None:
    """Keras writes marshalled code as base64 text (``func_dump``)."""
    if not isinstance(code, str):
        return None
    try:
        return base64.b64decode(code.encode("ascii"))
    except (UnicodeEncodeError, binascii.Error, ValueError):
        return None


def _scan_torch_module(payload: object, path: str, source: Source, ctx: ScanContext) -> None:
    """TorchModuleWrapper restores its module with ``torch.load``: analyse that payload."""
    ctx.add(
        rules.UNSAFE_REFERENCE,
        ctx.at(source),
        f"TorchModuleWrapper at {path}: its module is restored with torch.load "
        "(pickle); the payload was analysed",
        severity=Severity.MEDIUM,
    )
    raw = _decode_code(payload)
    if raw:
        ctx.scan(bytes_source(source, f"{path}.module", raw))
