"""Model-card facts from ``config.json`` and the README's YAML front matter.

Both files come from an untrusted model folder, so reading is bounded (size caps) and the
YAML is parsed with ``yaml.safe_load`` (no object construction). Anything malformed is
ignored: a BOM is still produced, just with fewer model-card facts. Front matter nested too
deeply for the YAML parser to handle in bounded time is an error (UnreadableInputError).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mlgate.errors import UnreadableInputError

# Real config.json files are a few kB, model cards a few tens of kB; the caps only stop a
# hostile folder from making the BOM builder read gigabytes into memory.
MAX_CONFIG_BYTES = 1 << 20
MAX_README_BYTES = 1 << 20
# PyYAML (pure Python) parses ~20 KB of dense YAML a second on a loaded machine; cards' front
# matter is a few kB (the largest, with model-index evaluation tables, tens of kB).
MAX_FRONT_MATTER_CHARS = 64 * 1024
# PyYAML keeps one pending "simple key" per open collection and rescans them for every token,
# so its time grows with the square of the nesting (6 s for 2,000 nested brackets), and its
# composer recurses once per level. Model cards nest a handful of levels.
MAX_FRONT_MATTER_DEPTH = 32
_OPENERS = (
    yaml.BlockMappingStartToken,
    yaml.BlockSequenceStartToken,
    yaml.FlowMappingStartToken,
    yaml.FlowSequenceStartToken,
)
_CLOSERS = (yaml.BlockEndToken, yaml.FlowMappingEndToken, yaml.FlowSequenceEndToken)
# Tokens only, never objects: libyaml's scanner when PyYAML was built with it (fast), else
# PyYAML's own; both stop at the first token past the depth limit.
_SCANNER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

# safetensors headers (tensor names, dtypes, shapes) are small; the format itself caps them at
# 100 MB, but a BOM only needs the count, so anything unusual is skipped rather than read.
MAX_SAFETENSORS_HEADER = 16 << 20
MAX_SAFETENSORS_FILES = 1024

# config.json keys worth recording as model parameters (sizes and numeric settings).
_CONFIG_PARAMETERS = (
    "vocab_size",
    "hidden_size",
    "num_hidden_layers",
    "num_attention_heads",
    "num_key_value_heads",
    "intermediate_size",
    "max_position_embeddings",
    "n_positions",
    "n_embd",
    "n_layer",
    "n_head",
    "d_model",
    "hidden_act",
    "torch_dtype",
    "dtype",
    "num_labels",
    "type_vocab_size",
)


@dataclass(frozen=True)
class ModelCard:
    """What the model's own metadata says about it (every field optional)."""

    architecture: str | None = None
    model_type: str | None = None
    task: str | None = None
    license: str | None = None
    datasets: tuple[str, ...] = ()
    base_models: tuple[str, ...] = ()
    library: str | None = None
    parameters: tuple[tuple[str, str], ...] = ()
    languages: tuple[str, ...] = ()
    tags: tuple[str, ...] = field(default=())
    parameter_count: int | None = None  # summed from safetensors headers, when complete


def read_model_card(model: Path) -> ModelCard:
    """Extract model-card facts from ``config.json`` and ``README.md`` in a model folder.

    A single-file model has no card: the files beside it may belong to anything else.
    """
    if not model.is_dir():
        return ModelCard()
    folder = model
    config = read_json(folder / "config.json")
    front = read_front_matter(folder / "README.md")
    architectures = _strings(config.get("architectures"))
    task_params = config.get("task_specific_params")
    tasks = list(task_params) if isinstance(task_params, dict) else []
    task = _string(front.get("pipeline_tag")) or (str(tasks[0]) if tasks else None)
    return ModelCard(
        architecture=architectures[0] if architectures else None,
        model_type=_string(config.get("model_type")),
        task=task,
        license=_string(front.get("license")),
        datasets=_strings(front.get("datasets")),
        base_models=_strings(front.get("base_model")),
        library=_string(front.get("library_name")),
        parameters=tuple(
            (key, str(config[key]))
            for key in _CONFIG_PARAMETERS
            if isinstance(config.get(key), str | int | float)
        ),
        languages=_strings(front.get("language")),
        tags=_strings(front.get("tags")),
        parameter_count=count_parameters(folder),
    )


def count_parameters(folder: Path) -> int | None:
    """Number of tensor elements in the folder's ``*.safetensors`` files (headers only).

    None when there are none, or when any header is unreadable (a partial count would mislead).
    """
    files = sorted(folder.glob("*.safetensors"))
    if not files or len(files) > MAX_SAFETENSORS_FILES:
        return None
    total = 0
    for path in files:
        count = _safetensors_elements(path)
        if count is None:
            return None
        total += count
    return total


def _safetensors_elements(path: Path) -> int | None:
    if path.is_symlink() or not path.is_file():
        return None
    try:
        with path.open("rb") as f:
            size = int.from_bytes(f.read(8), "little")
            if not 0 < size <= MAX_SAFETENSORS_HEADER:
                return None
            header = json.loads(f.read(size))
    except (OSError, ValueError):
        return None
    if not isinstance(header, dict):
        return None
    total = 0
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        shape = entry.get("shape") if isinstance(entry, dict) else None
        if not isinstance(shape, list) or not all(
            isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape
        ):
            return None
        count = 1
        for dim in shape:
            count *= dim
        total += count
    return total


def read_front_matter(readme: Path) -> dict[str, Any]:
    """The YAML front matter (between leading ``---`` lines) of a model card, or ``{}``."""
    text = _read_text(readme, MAX_README_BYTES)
    if text is None or not text.startswith("---"):
        return {}
    lines = text.splitlines()
    try:
        end = next(i for i, line in enumerate(lines[1:], 1) if line.strip() == "---")
    except StopIteration:
        return {}
    block = "\n".join(lines[1:end])
    if len(block) > MAX_FRONT_MATTER_CHARS:
        return {}
    try:
        if _nests_deeper_than(block, MAX_FRONT_MATTER_DEPTH):
            raise UnreadableInputError(
                f"{readme}: the YAML front matter is nested too deeply (more than "
                f"{MAX_FRONT_MATTER_DEPTH} levels) and was not parsed (a hostile model card?); "
                "flatten it"
            )
        data = yaml.safe_load(block)
    except yaml.YAMLError:
        return {}
    return data if isinstance(data, dict) else {}


def _nests_deeper_than(block: str, limit: int) -> bool:
    """True when collections in ``block`` nest past ``limit`` (YAML's own tokens, so quoted
    brackets and comments do not count); costs one token scan, stopped at the limit."""
    depth = 0
    for token in yaml.scan(block, Loader=_SCANNER):
        if isinstance(token, _OPENERS):
            depth += 1
            if depth > limit:
                return True
        elif isinstance(token, _CLOSERS):
            depth -= 1
    return False


def read_json(path: Path) -> dict[str, Any]:
    """A JSON object file of a model folder, bounded; ``{}`` if absent or malformed."""
    text = _read_text(path, MAX_CONFIG_BYTES)
    if text is None:
        return {}
    try:
        data = json.loads(text)
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _read_text(path: Path, limit: int) -> str | None:
    # A symlink could point anywhere on the host; model metadata is read only from real files.
    if path.is_symlink() or not path.is_file():
        return None
    try:
        with path.open("rb") as f:
            raw = f.read(limit + 1)
    except OSError:
        return None
    if len(raw) > limit:
        return None
    return raw.decode("utf-8", errors="replace")


def _string(value: object) -> str | None:
    if isinstance(value, list) and value:
        value = value[0]
    if isinstance(value, str | int | float) and not isinstance(value, bool):
        text = str(value).strip()
        return text or None
    return None


def _strings(value: object) -> tuple[str, ...]:
    items = value if isinstance(value, list) else [value]
    out = [_string(v) for v in items if not isinstance(v, list)]
    return tuple(dict.fromkeys(s for s in out if s))
