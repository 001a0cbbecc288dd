"""JSON files next to models: Hugging Face configs, tokenizer configs, XGBoost models...

JSON cannot run code by itself, but loaders act on some of its fields: ``auto_map`` and
``custom_pipelines`` make ``from_pretrained(trust_remote_code=True)`` import the repository's
own Python modules, and ``chat_template`` is a Jinja2 template a server renders. Content
starting with ``{`` that is not JSON may be a Jinja template, XGBoost UBJSON or a pickle.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mlgate.scan import rules
from mlgate.scan.context import ScanContext
from mlgate.scan.formats.keras import analyse_config
from mlgate.scan.formats.pickle import scan_pickle
from mlgate.scan.jinja import check_template
from mlgate.scan.source import Source

MAX_JSON_BYTES = 256 << 20
_UBJ_MARKERS = b"iUIlLdDSCTFZN{[$#"
XGBOOST = "XGBoost model: trees and parameters only, no code possible"
# Libraries diffusers imports components from without trust_remote_code.
_DIFFUSERS_LIBRARIES = frozenset({"diffusers", "transformers", "onnxruntime", "flax"})


def scan_json(source: Source, ctx: ScanContext) -> str:
    """Recognise the JSON document and analyse the fields that lead to code."""
    if (source.size or 0) > MAX_JSON_BYTES and _is_xgboost(source.head(64)):
        ctx.add(rules.RECOGNISED, source.location, f"large {XGBOOST} (header checked only)")
        return "xgboost"
    with source.open() as f:
        raw = f.read(MAX_JSON_BYTES + 1)
    if len(raw) > MAX_JSON_BYTES:
        ctx.incomplete(
            source, f"JSON over {MAX_JSON_BYTES} bytes; not analysed", rules.LIMIT_EXCEEDED
        )
        return "json"
    try:
        doc = json.loads(raw)
    except RecursionError:
        ctx.incomplete(source, "JSON nested too deeply", rules.LIMIT_EXCEEDED)
        return "json"
    except ValueError:
        return _not_json(source, ctx, raw)
    if isinstance(doc, dict):
        return _scan_object(source, ctx, doc, raw)
    ctx.add(rules.RECOGNISED, source.location, "JSON data (a list); JSON cannot carry code")
    return "json"


def _not_json(source: Source, ctx: ScanContext, raw: bytes) -> str:
    text = raw.lstrip(b" \t\r\n\xef\xbb\xbf")
    if text[:2] in (b"{{", b"{%", b"{#") or source.name.endswith(".jinja"):
        check_template(ctx, source.location, raw.decode("utf-8", "replace"), source.name)
        ctx.add(rules.RECOGNISED, source.location, "Jinja2 template, analysed without rendering")
        return "jinja"
    if _is_xgboost(text[:64]):
        ctx.add(rules.RECOGNISED, source.location, f"{XGBOOST} (UBJSON)")
        return "xgboost-ubj"
    return scan_pickle(source, ctx)


def _is_xgboost(head: bytes) -> bool:
    """XGBoost JSON or UBJSON: an object whose first key is ``learner``."""
    head = head.lstrip(b" \t\r\n")
    if head.startswith(b'{"learner"'):
        return True
    return head[:1] == b"{" and head[1:2] in _UBJ_MARKERS and b"learner" in head[:32]


def _scan_object(source: Source, ctx: ScanContext, doc: dict[str, Any], raw: bytes) -> str:
    _check_remote_code(source, ctx, doc)
    _check_templates(source, ctx, doc)
    if "learner" in doc and "version" in doc:
        what = f"{XGBOOST} (JSON)"
    elif isinstance(doc.get("nodes"), list) and "heads" in doc:
        custom = sum(1 for n in doc["nodes"] if isinstance(n, dict) and n.get("op") == "Custom")
        what = "MXNet symbol graph (JSON): operators only" + (
            f"; {custom} Custom operator(s) need Python code registered by the loader"
            if custom
            else ", no code possible"
        )
    elif "class_name" in doc and "config" in doc:
        if not analyse_config(raw, source, ctx, source.name):
            return "keras-config"
        what = "Keras model config: module/class references were checked"
    elif "fileFormatVersion" in doc and "itemInfoEntries" in doc:
        what = "CoreML .mlpackage manifest: lists the spec and weights, no code possible"
    elif "weight_map" in doc:
        what = "sharded-checkpoint index: maps tensors to shard files (scanned on their own)"
    elif "model_type" in doc or "architectures" in doc:
        what = "Hugging Face model config"
    elif "chat_template" in doc or "tokenizer_class" in doc:
        what = "Hugging Face tokenizer/processor config"
    else:
        what = "JSON data; JSON cannot carry code by itself"
    ctx.add(rules.RECOGNISED, source.location, what)
    return "json"


def remote_code_refs(doc: dict[str, Any]) -> list[tuple[str, str]]:
    """(auto class or pipeline, ``module.Class`` reference) pairs that load repository code."""
    refs: list[tuple[str, str]] = []
    auto_map = doc.get("auto_map")
    if isinstance(auto_map, dict):
        for auto, ref in auto_map.items():
            for item in ref if isinstance(ref, list) else [ref]:
                if isinstance(item, str):
                    refs.append((str(auto), item))
    if "_diffusers_version" in doc:  # model_index.json: component -> [library, class]
        for component, spec in doc.items():
            custom = isinstance(spec, list) and len(spec) == 2 and isinstance(spec[0], str)
            if custom and spec[0] not in _DIFFUSERS_LIBRARIES:
                refs.append((f"component {component}", f"{spec[0]}.{spec[1]}"))
    pipelines = doc.get("custom_pipelines")
    if isinstance(pipelines, dict):
        for task, spec in pipelines.items():
            impl = spec.get("impl") if isinstance(spec, dict) else None
            if isinstance(impl, str):
                refs.append((f"pipeline {task}", impl))
    return refs


def _check_remote_code(source: Source, ctx: ScanContext, doc: dict[str, Any]) -> None:
    refs = remote_code_refs(doc)
    if not refs:
        return
    parts = []
    for auto, ref in refs[:20]:
        repo, _, local = ref.rpartition("--")
        module = local.rsplit(".", 1)[0]
        where = _module_state(source.folder, module, repo)
        parts.append(f"{auto} -> {ref} ({where})")
    ctx.add(
        rules.REMOTE_CODE,
        source.location,
        "from_pretrained(trust_remote_code=True) imports repository code: " + "; ".join(parts),
    )


def _module_state(folder: Path | None, module: str, repo: str) -> str:
    if repo:
        return f"code fetched from another repository, {repo}"
    if folder is None:
        return "location unknown"
    path = folder / (module.replace(".", "/") + ".py")
    return f"{path.name} present, analysed" if path.is_file() else f"{path.name} NOT present"


def _check_templates(source: Source, ctx: ScanContext, doc: dict[str, Any]) -> None:
    template = doc.get("chat_template")
    if isinstance(template, str):
        check_template(ctx, source.location, template, f"{source.name} chat_template")
    elif isinstance(template, list):
        for item in template[:64]:
            if isinstance(item, dict) and isinstance(item.get("template"), str):
                name = item.get("name", "?")
                origin = f"{source.name} chat_template[{name}]"
                check_template(ctx, source.location, item["template"], origin)
