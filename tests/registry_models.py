"""Real model folders and registry steps shared by the registry tests (no mocks)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import payloads
from registry_support import as_user

BENIGN_FILES = ("README.md", "config.json", "model.safetensors")


def write_benign(folder: Path, seed: int = 0) -> Path:
    """A tiny BERT-like folder (config, model card, safetensors); ``seed`` varies the weights."""
    import numpy as np
    from safetensors.numpy import save_file

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps({"model_type": "bert"}))
    (folder / "README.md").write_text("---\nlicense: apache-2.0\n---\n# tiny\n")
    weights = np.arange(6, dtype=np.float32).reshape(2, 3) + seed
    save_file({"w": weights}, str(folder / "model.safetensors"))
    return folder


def write_malicious(folder: Path, marker: str) -> Path:
    """A folder whose ``pytorch_model.bin`` runs ``os.system`` when unpickled (never is)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "pytorch_model.bin").write_bytes(payloads.os_system(marker))
    return folder


def release(registry: Any, source: Path, name: str, alias: str | None = None) -> Any:
    """pat ingests ``source`` as ``name``, rita approves it, pat publishes it."""
    pat = as_user(registry, "pat")
    version = pat.ingest(source, name=name)
    as_user(registry, "rita").approve(version.ref, "reviewed")
    return pat.publish(version.ref, alias=alias)


def blob_count(data_dir: Path) -> int:
    """Blob files in the registry's content-addressed store."""
    return sum(1 for p in (data_dir / "blobs" / "sha256").rglob("*") if p.is_file())
