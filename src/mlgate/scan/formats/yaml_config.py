"""YAML configuration: Hydra/OmegaConf configs (NeMo ``model_config.yaml``), latent-diffusion
configs, MLflow ``MLmodel``, TorchServe model configs.

YAML runs no code by itself, but loaders act on it in two ways. They instantiate what a node
names (Hydra ``_target_``, CVE-2025-23304 in NeMo; ``target``/``params``): judged with the
pickle policy in :mod:`mlgate.scan.config_refs`. And a *tag* asks the YAML loader itself to
construct an object: PyYAML's unsafe loaders build ``!!python/object/apply:os.system``
(CVE-2017-18342; FullLoader before 5.4, CVE-2020-1747), SnakeYAML builds any Java class a
global tag names (CVE-2022-1471, the ShellTorch chain through TorchServe's model config).
The file is read with :mod:`.yaml_reader` (events only, bounded), never with a loader.
"""

from __future__ import annotations

from typing import Any

import yaml

from mlgate.findings import Location, Severity
from mlgate.scan import rules
from mlgate.scan.config_refs import report_reference, report_targets, shown, walk
from mlgate.scan.context import ScanContext
from mlgate.scan.formats.mlmodel import analyse_mlmodel
from mlgate.scan.formats.pickle import scan_pickle
from mlgate.scan.formats.yaml_reader import Tag, YamlReading, read_yaml
from mlgate.scan.source import Source

MAX_TAGS_REPORTED = 20
MAX_LISTED = 5  # repeated keys named in the finding
_PYTHON_TAG = "tag:yaml.org,2002:python/"
_CORE_TAG = "tag:yaml.org,2002:"
# PyYAML's python/ tags that import a name: the rest (python/tuple, python/str...) are data.
_PYTHON_CONSTRUCTORS = ("name:", "module:", "object:", "object/new:", "object/apply:")


def scan_yaml(source: Source, ctx: ScanContext) -> str:
    """Analyse a YAML configuration; content that is no YAML document goes to the pickle
    reading (a pickle named ``.yaml`` is still a pickle)."""
    cap = ctx.limits.max_model_config_bytes
    with source.open() as f:
        raw = f.read(cap + 1)
    if len(raw) > cap:
        ctx.incomplete(source, f"YAML over {cap} bytes; not analysed", rules.LIMIT_EXCEEDED)
        return "yaml"
    try:
        reading = read_yaml(raw, ctx.limits.max_config_nodes, ctx.limits.max_config_nodes)
    except yaml.YAMLError:
        return scan_pickle(source, ctx)
    docs = [d for d in reading.documents if isinstance(d, dict | list)]
    if not docs and not reading.tags:
        return scan_pickle(source, ctx)
    _check_expansion(source, ctx, reading)
    _check_tags(source, ctx, reading)
    what = _analyse(source, ctx, docs, reading)
    ctx.add(rules.RECOGNISED, source.location, what)
    return "mlmodel" if source.name == "MLmodel" else "yaml"


def _analyse(source: Source, ctx: ScanContext, docs: list[Any], reading: YamlReading) -> str:
    location = ctx.at(source)
    first = docs[0] if docs else None
    nemo = isinstance(first, dict) and ("nemo_version" in first or "target" in first)
    loader = "NeMo restore_from" if nemo else "Hydra"
    targets = sum(_targets(ctx, location, doc, source.name, loader) for doc in docs)
    if reading.shadowed:
        paths = [path for path, _ in reading.shadowed]
        more = f" and {len(paths) - MAX_LISTED} more" if len(paths) > MAX_LISTED else ""
        ctx.add(
            rules.MALFORMED,
            location,
            f"repeated keys {', '.join(paths[:MAX_LISTED])}{more}: YAML loaders disagree on "
            "which value wins; every value was analysed",
        )
        # One walk over all the replaced values: aliases they share are visited once.
        earlier = [value for _, value in reading.shadowed]
        targets += _targets(ctx, location, earlier, "replaced values", loader)
    if source.name == "MLmodel" and isinstance(first, dict):
        return analyse_mlmodel(first, source, ctx)
    kind = "NeMo model config" if nemo else "YAML configuration"
    return (
        f"{kind}: {targets} instantiation target(s) judged with the pickle policy"
        if targets
        else f"{kind}: no instantiation target"
    )


def _targets(ctx: ScanContext, location: Location, doc: Any, label: str, loader: str) -> int:
    nodes = walk(doc, label, ctx.limits.max_config_nodes)
    return report_targets(ctx, location, doc, nodes, loader)


def _check_expansion(source: Source, ctx: ScanContext, reading: YamlReading) -> None:
    """An alias bomb is analysed (aliases are shared, not copied) but loaders that copy each
    alias (OmegaConf) exhaust memory on it: the file cannot be judged loadable."""
    cap = ctx.limits.max_config_nodes
    if reading.recursive_alias or reading.expanded > cap:
        why = (
            "an alias refers to its own anchor (infinite when copied)"
            if reading.recursive_alias
            else f"aliases expand to more than {cap} nodes when copied (billion laughs)"
        )
        ctx.incomplete(
            source, f"YAML {why}; loaders that copy aliases never finish", rules.LIMIT_EXCEEDED
        )


def _check_tags(source: Source, ctx: ScanContext, reading: YamlReading) -> None:
    """Each distinct tag once (the reader keeps the first place of each). Python tags are all
    judged; past :data:`MAX_TAGS_REPORTED` others, the rest are summed up in one finding."""
    location = ctx.at(source)
    others = [t for t in reading.tags if not t.tag.startswith(_PYTHON_TAG)]
    python = [t for t in reading.tags if t.tag.startswith(_PYTHON_TAG)]
    for tag in python + others[:MAX_TAGS_REPORTED]:
        _check_tag(location, ctx, tag)
    rest = others[MAX_TAGS_REPORTED:]
    if rest:
        core = any(t.tag.startswith(_CORE_TAG) for t in rest)
        ctx.add(
            rules.UNSAFE_REFERENCE,
            location,
            f"{len(rest)} more tags that need a constructor, not listed one by one",
            severity=None if core else Severity.MEDIUM,
        )
    if reading.tags_truncated:
        ctx.incomplete(
            source, "more distinct YAML tags than the reader records", rules.LIMIT_EXCEEDED
        )


def _check_tag(location: Location, ctx: ScanContext, tag: Tag) -> None:
    if tag.tag.startswith(_PYTHON_TAG):
        kind = tag.tag[len(_PYTHON_TAG) :]
        prefix = next((p for p in _PYTHON_CONSTRUCTORS if kind.startswith(p)), None)
        if prefix is None:
            return  # python/tuple, python/str...: data, which safe loaders merely refuse
        name = kind[len(prefix) :] or tag.value  # !!python/name:os.system or a tagged scalar
        action = "PyYAML's unsafe loaders construct"
        report_reference(ctx, location, name, f"{action} (tag !!python/{prefix})", tag.path)
        return
    if tag.tag.startswith(_CORE_TAG):
        ctx.add(
            rules.UNSAFE_REFERENCE,
            location,
            f"tag {shown(tag.tag)} at {tag.path} names a class: SnakeYAML and similar loaders "
            "construct it (CVE-2022-1471; ShellTorch through TorchServe model configs)",
            tag.tag,
        )
        return
    ctx.add(
        rules.UNSAFE_REFERENCE,
        location,
        f"application tag {shown(tag.tag)} at {tag.path}: only a constructor registered by the "
        "loading program can build it (safe loaders refuse it)",
        tag.tag,
        Severity.MEDIUM,
    )
