"""Real model folders and registry steps shared by the registry tests (no mocks)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import payloads
import pytest
from registry_support import as_user

from mlgate.cli import main

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


class Cli:
    """Runs ``mlgate`` against one data dir and keeps what it printed."""

    def __init__(self, data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
        self.data_dir = data_dir
        self.capsys = capsys
        self.out = self.err = ""

    def __call__(self, *args: str | Path, actor: str = "alice") -> int:
        argv = [str(a) for a in args]
        code = main([*argv, "--data-dir", str(self.data_dir), "--as", actor])
        self.out, self.err = self.capsys.readouterr()
        return code

    def raw(self, *args: str | Path) -> int:
        code = main([str(a) for a in args])
        self.out, self.err = self.capsys.readouterr()
        return code


def init_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str], mp: pytest.MonkeyPatch) -> Cli:
    """``registry init`` (as alice) in ``tmp_path/home`` with pat (publisher), rita (reviewer)
    and rob (reader); no MLGATE_* or HF_* variable of the caller's environment applies."""
    for name in ("MLGATE_ACTOR", "MLGATE_HOME", "MLGATE_REGISTRY", "HF_ENDPOINT", "HF_TOKEN"):
        mp.delenv(name, raising=False)
    mp.chdir(tmp_path)
    run = Cli(tmp_path / "home", capsys)
    assert run("registry", "init") == 0
    assert f"registry ready in {run.data_dir} (admin: alice)" in run.out
    for user, role in (("pat", "publisher"), ("rita", "reviewer"), ("rob", "reader")):
        assert run("registry", "user", user, "--role", role) == 0
    return run
