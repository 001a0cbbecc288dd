"""transformers and diffusers configuration keys that make ``from_pretrained`` import or
download code.

``auto_map`` makes ``trust_remote_code=True`` import the repository's own modules, or another
repository's (``repo--module.Class``): in model configs, in processor, image-processor,
feature-extractor and tokenizer configs (the legacy tokenizer form is a ``[slow, fast]``
list), and in sub-configs, so every mapping of the document is looked at. ``custom_pipelines``
does the same for pipelines, and diffusers' ``model_index.json`` imports components from any
library it names. An ``attn_implementation`` that names a Hub repository (``org/kernel``,
transformers' ``is_kernel`` pattern) makes transformers download that kernel and load its
compiled code through the ``kernels`` library. sentence-transformers' ``modules.json`` lists
modules whose ``type`` it imports by dotted name: judged by the pickle policy outside the
library's own namespace.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from mlgate.scan import rules
from mlgate.scan.config_refs import IMPORTABLE, Nodes, report_reference, shown
from mlgate.scan.context import ScanContext
from mlgate.scan.source import Source

MAX_LISTED = 20
# Libraries diffusers imports components from without trust_remote_code.
_DIFFUSERS_LIBRARIES = frozenset({"diffusers", "transformers", "onnxruntime", "flax"})
# transformers.integrations.hub_kernels.is_kernel: "org/repo", optional "@rev" and ":name".
_KERNEL = re.compile(r"[^/:\s]+/[^/:\s]+(?:@[^/:]+)?(?::[^/:]+)?")
_ATTN_KEYS = ("attn_implementation", "_attn_implementation")
CODE_KEYS = frozenset(("auto_map", *_ATTN_KEYS))  # keys looked for in every mapping
_TRUSTED_KERNELS = "kernels-community/"
_SENTENCE_TRANSFORMERS = "sentence_transformers."
MAX_MODULES = 256  # entries of a modules.json judged


def remote_code_refs(doc: dict[str, Any], nodes: Nodes) -> list[tuple[str, str]]:
    """(auto class or pipeline, ``module.Class`` reference) pairs that load repository code."""
    refs = [ref for _, node in nodes for ref in _auto_map(node.get("auto_map"))]
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


def _auto_map(auto_map: object) -> list[tuple[str, str]]:
    if isinstance(auto_map, list):  # legacy tokenizer config: [slow class, fast class]
        auto_map = {"AutoTokenizer": auto_map}
    if not isinstance(auto_map, dict):
        return []
    return [
        (str(auto), item)
        for auto, ref in auto_map.items()
        for item in (ref if isinstance(ref, list) else [ref])
        if isinstance(item, str)
    ]


def check_remote_code(source: Source, ctx: ScanContext, doc: dict[str, Any], nodes: Nodes) -> None:
    refs = remote_code_refs(doc, nodes)
    if not refs:
        return
    parts = []
    for auto, ref in refs[:MAX_LISTED]:
        repo, _, local = ref.rpartition("--")
        module = local.rsplit(".", 1)[0]
        where = _module_state(source.folder, module, repo)
        parts.append(f"{shown(auto)} -> {shown(ref)} ({where})")
    ctx.add(
        rules.REMOTE_CODE,
        source.location,
        "from_pretrained(trust_remote_code=True) imports repository code: " + "; ".join(parts),
    )


def _module_state(folder: Path | None, module: str, repo: str) -> str:
    if repo:
        return f"code fetched from another repository, {shown(repo)}"
    if folder is None:
        return "location unknown"
    path = folder / (module.replace(".", "/") + ".py")
    return f"{path.name} present, analysed" if path.is_file() else f"{path.name} NOT present"


def check_kernels(source: Source, ctx: ScanContext, nodes: Nodes) -> None:
    """Attention implementations that name a Hub kernel repository."""
    for path, node in nodes:
        for key in _ATTN_KEYS:
            value = node.get(key)
            for item in value.values() if isinstance(value, dict) else [value]:
                if isinstance(item, str) and _KERNEL.fullmatch(item.strip()):
                    _kernel(source, ctx, f"{path}.{key}", item.strip())


def _kernel(source: Source, ctx: ScanContext, where: str, repo: str) -> None:
    org = "" if repo.startswith(_TRUSTED_KERNELS) else ", a repository outside kernels-community"
    ctx.add(
        rules.LOADS_CODE,
        ctx.at(source),
        f"{where} = {shown(repo)}{org}: from_pretrained downloads this Hub kernel and loads its "
        "compiled code (kernels library)",
        repo,
    )


def check_module_list(source: Source, ctx: ScanContext, doc: list[Any]) -> bool:
    """A sentence-transformers ``modules.json``: each entry's ``type`` is imported by name
    (``import_from_string``) and its ``load`` called. False if ``doc`` is not one."""
    entries = [e for e in doc[:MAX_MODULES] if isinstance(e, dict) and "path" in e]
    types = [e["type"] for e in entries if isinstance(e.get("type"), str)]
    if not types:
        return False
    for index, name in enumerate(types):
        if name.startswith(_SENTENCE_TRANSFORMERS) and IMPORTABLE.fullmatch(name):
            continue  # the library's own modules
        where = f"{source.name if source.name.isprintable() else '?'}[{index}].type"
        report_reference(ctx, ctx.at(source), name, "sentence-transformers imports", where)
    return True
