"""Folder-level view of a Hugging Face model repository.

Each file is scanned on its own by its format handler; this module adds what only the
folder shows: which files ``from_pretrained`` would actually load (safetensors before
pickles, sharded indexes), whether an index points outside the folder or at missing
shards, and which of the loaded files can carry code.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from mlgate.findings import Location
from mlgate.scan import rules
from mlgate.scan.context import ScanContext

MAX_INDEX_BYTES = 64 << 20
MARKERS = ("config.json", "tokenizer_config.json", "adapter_config.json", "model_index.json")
# Weight files in from_pretrained's order of preference (transformers / diffusers).
WEIGHTS = (
    "model.safetensors",
    "diffusion_pytorch_model.safetensors",
    "adapter_model.safetensors",
    "pytorch_model.bin",
    "diffusion_pytorch_model.bin",
    "adapter_model.bin",
    "tf_model.h5",
    "flax_model.msgpack",
)
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.json",
    "vocab.txt",
    "merges.txt",
    "tokenizer.model",
    "spiece.model",
    "chat_template.jinja",
    "chat_template.json",
    "added_tokens.json",
)
CUSTOM_GENERATE = "custom_generate/generate.py"
# What can run code when loaded, by file name pattern.
_PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".ckpt", ".pdparams")


@dataclass
class _Plan:
    weights: list[str] = field(default_factory=list)
    shards: list[str] = field(default_factory=list)
    tokenizer: list[str] = field(default_factory=list)
    code: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def is_hf_folder(files: list[str]) -> bool:
    """True when the folder looks like a model repository (a config or a weight index)."""
    return any(f in MARKERS or f.endswith(".index.json") for f in files)


def analyse_hf_folder(ctx: ScanContext, folder: Path, files: list[str]) -> None:
    """Report what ``from_pretrained`` would load from ``folder`` and which files carry code."""
    if not is_hf_folder(files):
        return
    names = set(files)
    plan = _Plan()
    _plan_weights(ctx, folder, names, plan)
    plan.tokenizer = [n for n in TOKENIZER_FILES if n in names]
    plan.code += sorted(n for n in names if n.endswith(".py"))
    plan.code += sorted(n for n in names if n == "training_args.bin")
    _check_custom_generate(ctx, folder, plan)
    where = Location(path=str(folder))
    parts = [
        "Hugging Face model folder; from_pretrained would load weights from "
        + (", ".join(plan.weights) or "no known weight file"),
    ]
    if plan.shards:
        parts.append(f"{len(plan.shards)} shard file(s)")
    if plan.tokenizer:
        parts.append("tokenizer files: " + ", ".join(plan.tokenizer))
    parts.append("files that can carry code: " + (", ".join(sorted(set(plan.code))) or "none"))
    parts.extend(plan.notes)
    ctx.add(rules.RECOGNISED, where, "; ".join(parts))


def _check_custom_generate(ctx: ScanContext, folder: Path, plan: _Plan) -> None:
    """transformers replaces ``model.generate`` with the repository's
    ``custom_generate/generate.py`` when the model is loaded with trust_remote_code=True
    (and runs it for ``generate(custom_generate=repo)``): repository code, like auto_map."""
    script = folder / CUSTOM_GENERATE
    if not script.is_file():
        return
    plan.code.append(CUSTOM_GENERATE)
    ctx.add(
        rules.REMOTE_CODE,
        Location(path=str(script)),
        "from_pretrained(trust_remote_code=True) replaces generate() with this repository's "
        f"{CUSTOM_GENERATE} (analysed as Python source)",
    )


def _plan_weights(ctx: ScanContext, folder: Path, names: set[str], plan: _Plan) -> None:
    for index in sorted(n for n in names if n.endswith(".index.json")):
        shards = _index_shards(ctx, folder / index)
        plan.weights.append(f"{index} (sharded)")
        plan.shards.extend(shards)
        missing = sorted(s for s in shards if s not in names)
        if missing:
            plan.notes.append(f"{index} lists missing shard(s): {', '.join(missing[:5])}")
        plan.code.extend(s for s in shards if s.endswith(_PICKLE_SUFFIXES))
    for name in WEIGHTS:
        if name in names:
            plan.weights.append(name)
            if name.endswith(".bin"):
                plan.code.append(name)
    if "model.safetensors" in names and "pytorch_model.bin" in names:
        plan.notes.append(
            "model.safetensors is preferred; pytorch_model.bin (a pickle) is still loaded "
            "with use_safetensors=False or by other tools"
        )


def _index_shards(ctx: ScanContext, path: Path) -> list[str]:
    """Shard file names of a ``*.index.json``; references escaping the folder are findings."""
    try:
        if path.stat().st_size > MAX_INDEX_BYTES:
            return []
        doc = json.loads(path.read_bytes())
    except (OSError, ValueError, RecursionError):
        return []  # the file's own scan reports it
    weight_map = doc.get("weight_map") if isinstance(doc, dict) else None
    if not isinstance(weight_map, dict):
        return []
    shards = sorted({v for v in weight_map.values() if isinstance(v, str)})
    for shard in shards:
        pure = PurePosixPath(shard.replace("\\", "/"))
        if pure.is_absolute() or ".." in pure.parts:
            ctx.add(
                rules.PATH_TRAVERSAL,
                Location(path=str(path)),
                f"weight_map points outside the folder: {shard!r}",
            )
    return shards
