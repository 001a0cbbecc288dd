"""Evidence on the version page beyond the findings list: the Keras Lambda disassembly the
static scan recorded, and the Python files ``from_pretrained(trust_remote_code=True)`` would
import. Everything here is read, never loaded: the Lambda listing comes from the stored
findings (the scan disassembled the code in an isolated subprocess), the code files are read
as bytes from the registry's read-only view of the blobs and shown as text."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlgate.registry.records import FileRecord, Version
from mlgate.scan import rules
from mlgate.scan.config_refs import walk
from mlgate.scan.formats.hf_config import remote_code_refs

MAX_CODE_FILES = 20  # code files shown per version (a repository may hold hundreds)
MAX_CODE_BYTES = 64 * 1024  # shown per file: enough to read, bounded in page size
MAX_CONFIG_BYTES = 1024 * 1024  # configs parsed for auto_map (json.loads is in memory)
MAX_CONFIG_NODES = 10_000
# Files whose auto_map / custom_pipelines / model_index name repository modules.
CONFIG_NAMES = frozenset(
    {
        "config.json",
        "tokenizer_config.json",
        "processor_config.json",
        "preprocessor_config.json",
        "image_processor_config.json",
        "feature_extractor_config.json",
        "model_index.json",
    }
)


@dataclass(frozen=True)
class LambdaListing:
    """One Keras Lambda layer: where it is, what the scan said, and the disassembly."""

    path: str
    message: str
    listing: str


@dataclass(frozen=True)
class CodeFile:
    """A Python file of the version and why it matters (which auto_map entries import it)."""

    path: str
    digest: str
    size: int
    imported_by: tuple[str, ...]
    text: str
    truncated: bool


def lambda_listings(report: dict[str, Any] | None) -> list[LambdaListing]:
    """The Lambda-layer findings (rule MLG110) with the disassembly the scan stored as their
    evidence (the scan caps it; past its budget of code objects the evidence is the raw
    marshalled text, said so in the message)."""
    return [
        LambdaListing(
            str(f.get("location", {}).get("path", "")),
            str(f.get("message", "")),
            str(f.get("evidence") or ""),
        )
        for f in (report or {}).get("findings", [])
        if f.get("rule_id") == rules.LAMBDA_CODE.id
    ]


def remote_code(view: Path, version: Version) -> list[CodeFile]:
    """The version's ``.py`` files, those an auto_map names first, each as inert text."""
    importers = _importers(view, version.files)
    code = [f for f in version.files if f.path.endswith(".py")]
    code.sort(key=lambda f: (f.path not in importers, f.path))
    return [_code_file(view, f, importers.get(f.path, ())) for f in code[:MAX_CODE_FILES]]


def _importers(view: Path, files: Iterable[FileRecord]) -> dict[str, tuple[str, ...]]:
    """``module.py`` -> the auto classes / pipelines whose reference imports it."""
    found: dict[str, list[str]] = {}
    for f in files:
        if Path(f.path).name not in CONFIG_NAMES or f.size > MAX_CONFIG_BYTES:
            continue
        folder = str(Path(f.path).parent).removeprefix(".")
        for auto, ref in _refs(view / f.path):
            repo, _, local = ref.rpartition("--")
            if repo:  # code from another repository: not a file of this version
                continue
            module = local.rsplit(".", 1)[0].replace(".", "/") + ".py"
            target = f"{folder}/{module}" if folder else module
            found.setdefault(target, []).append(f"{f.path}: {auto} -> {ref}")
    return {k: tuple(v) for k, v in found.items()}


def _refs(config: Path) -> list[tuple[str, str]]:
    try:
        doc = json.loads(config.read_bytes())
    except (ValueError, RecursionError, OSError):  # hostile or broken JSON: nothing to list
        return []
    if not isinstance(doc, dict):
        return []
    return remote_code_refs(doc, walk(doc, config.name, MAX_CONFIG_NODES))


def _code_file(view: Path, f: FileRecord, imported_by: tuple[str, ...]) -> CodeFile:
    with (view / f.path).open("rb") as stream:
        head = stream.read(MAX_CODE_BYTES)
    # Shown as text through the autoescaping template: undecodable bytes become U+FFFD.
    text = head.decode("utf-8", "replace")
    return CodeFile(f.path, f.digest, f.size, imported_by, text, f.size > MAX_CODE_BYTES)
