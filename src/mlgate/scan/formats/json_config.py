"""JSON files next to models: Hugging Face configs, tokenizer configs, XGBoost models...

JSON cannot run code by itself, but loaders act on some of its fields: ``auto_map`` and
``custom_pipelines`` make ``from_pretrained(trust_remote_code=True)`` import the repository's
own Python modules and ``attn_implementation`` can name a Hub kernel (:mod:`.hf_config`),
Hydra ``_target_`` nodes are instantiated by libraries that read them from a ``config.json``
(:mod:`mlgate.scan.config_refs`), a TorchServe manifest names the handler code a server runs
(:mod:`.torchserve`), and ``chat_template`` is a Jinja2 template a server renders. Content
starting with ``{`` that is not JSON may be a YAML flow mapping, a Jinja template, XGBoost
UBJSON or a pickle.
"""

from __future__ import annotations

import json
from typing import Any

from mlgate.scan import rules
from mlgate.scan.config_refs import PYREF, TARGET_KEYS, report_targets, walk
from mlgate.scan.context import ScanContext
from mlgate.scan.formats.hf_config import (
    CODE_KEYS,
    check_kernels,
    check_module_list,
    check_remote_code,
)
from mlgate.scan.formats.keras import analyse_config
from mlgate.scan.formats.mlmodel import analyse_mlmodel
from mlgate.scan.formats.pickle import scan_pickle
from mlgate.scan.formats.torchserve import analyse_manifest, is_manifest
from mlgate.scan.formats.yaml_config import scan_yaml
from mlgate.scan.jinja import check_template
from mlgate.scan.source import Source

MAX_JSON_BYTES = 256 << 20
_UBJ_MARKERS = b"iUIlLdDSCTFZN{[$#"
XGBOOST = "XGBoost model: trees and parameters only, no code possible"


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
    keyed = _KeyedMappings()
    try:
        doc = json.loads(raw, object_hook=keyed)
    except RecursionError:
        ctx.incomplete(source, "JSON nested too deeply", rules.LIMIT_EXCEEDED)
        return "json"
    except ValueError:
        return _not_json(source, ctx, raw)
    if isinstance(doc, dict):
        return _scan_object(source, ctx, doc, raw, keyed.found)
    if isinstance(doc, list) and check_module_list(source, ctx, doc):
        what = "sentence-transformers module list: module types checked"
    else:
        what = "JSON data (a list); JSON cannot carry code"
    ctx.add(rules.RECOGNISED, source.location, what)
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
    if source.name.lower().endswith((".yaml", ".yml")) or source.name == "MLmodel":
        return scan_yaml(source, ctx)  # a flow mapping: YAML, not JSON
    return scan_pickle(source, ctx)


def _is_xgboost(head: bytes) -> bool:
    """XGBoost JSON or UBJSON: an object whose first key is ``learner``."""
    head = head.lstrip(b" \t\r\n")
    if head.startswith(b'{"learner"'):
        return True
    return head[:1] == b"{" and head[1:2] in _UBJ_MARKERS and b"learner" in head[:32]


class _KeyedMappings:
    """``json.loads`` object hook noting whether any mapping has a key that leads to code,
    so that the document is walked only then: a tokenizer's half-million merge pairs cost
    nothing (the parser calls the hook for mappings only)."""

    KEYS = TARGET_KEYS | CODE_KEYS

    def __init__(self) -> None:
        self.found = False

    def __call__(self, mapping: dict[str, Any]) -> dict[str, Any]:
        self.found = self.found or not self.KEYS.isdisjoint(mapping) or mapping.get("type") == PYREF
        return mapping


def _scan_object(
    source: Source, ctx: ScanContext, doc: dict[str, Any], raw: bytes, keyed: bool
) -> str:
    if "learner" in doc and "version" in doc:
        ctx.add(rules.RECOGNISED, source.location, f"{XGBOOST} (JSON)")
        return "json"
    nodes = walk(doc, source.name, ctx.limits.max_config_nodes) if keyed else []
    check_remote_code(source, ctx, doc, nodes)
    check_kernels(source, ctx, nodes)
    _check_templates(source, ctx, doc)
    targets = report_targets(ctx, ctx.at(source), doc, nodes, "the configuration loader")
    what = _describe(source, ctx, doc, raw)
    if what is None:
        return "keras-config"
    if targets:
        what += f"; {targets} instantiation target(s) judged with the pickle policy"
    ctx.add(rules.RECOGNISED, source.location, what)
    return "json"


def _describe(source: Source, ctx: ScanContext, doc: dict[str, Any], raw: bytes) -> str | None:
    """What the document is (None: a Keras config that could not be read, already reported)."""
    if source.name == "MLmodel":  # YAML written in flow style reads as JSON
        what = analyse_mlmodel(doc, source, ctx)
    elif is_manifest(doc):
        what = analyse_manifest(doc, source, ctx)
    elif isinstance(doc.get("nodes"), list) and "heads" in doc:
        custom = sum(1 for n in doc["nodes"] if isinstance(n, dict) and n.get("op") == "Custom")
        what = "MXNet symbol graph (JSON): operators only" + (
            f"; {custom} Custom operator(s) need Python code registered by the loader"
            if custom
            else ", no code possible"
        )
    elif "class_name" in doc and "config" in doc:
        if not analyse_config(raw, source, ctx, source.name):
            return None
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
    return what


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
