"""Convert-on-ingest: a pickle model is published only as its safetensors conversion."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from registry_support import as_user

from mlgate.registry.errors import TransitionRefused
from mlgate.registry.lifecycle import State
from mlgate.registry.policy import RegistryPolicy


@pytest.fixture
def torch_model(tmp_path: Path) -> Path:
    import torch

    folder = tmp_path / "torch-tiny"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "bert"}))
    state = {"encoder.weight": torch.arange(12, dtype=torch.float32).reshape(3, 4),
             "encoder.bias": torch.ones(3, dtype=torch.bfloat16)}
    torch.save(state, folder / "pytorch_model.bin")
    return folder


def test_pickle_model_is_published_as_safetensors_only(registry, torch_model: Path,
                                                       tmp_path: Path) -> None:
    import torch
    from safetensors.torch import load_file

    registry.set_policy(RegistryPolicy(convert_on_ingest=True))
    pat, rita = as_user(registry, "pat"), as_user(registry, "rita")
    converted = pat.ingest(torch_model, name="org/torch-tiny")
    assert converted.ref == "org/torch-tiny@2"
    assert converted.converted_from == 1
    assert {f.path for f in converted.files} == {"config.json", "model.safetensors"}
    original = registry.show("org/torch-tiny@1")
    assert original.state is State.SCANNED
    assert "pytorch_model.bin" in {f.path for f in original.files}

    rita.approve("org/torch-tiny@1", "original")
    with pytest.raises(TransitionRefused, match="publish its conversion org/torch-tiny@2"):
        pat.publish("org/torch-tiny@1")

    rita.approve("org/torch-tiny@2", "converted weights")
    pat.publish("org/torch-tiny@2", alias="production")
    pat.pull("org/torch-tiny@production", tmp_path / "out")
    tensors = load_file(str(tmp_path / "out" / "model.safetensors"))
    reference = torch.load(torch_model / "pytorch_model.bin", weights_only=True)
    assert tensors.keys() == reference.keys()
    for name, tensor in reference.items():
        assert torch.equal(tensors[name], tensor)
    actions = [json.loads(line)["action"] for line in registry.audit_export()]
    assert "convert" in actions


def test_malicious_pickle_is_rejected_not_converted(registry, tmp_path: Path) -> None:
    import payloads

    registry.set_policy(RegistryPolicy(convert_on_ingest=True))
    folder = tmp_path / "evil"
    folder.mkdir()
    (folder / "pytorch_model.bin").write_bytes(payloads.os_system("convert-on-ingest"))
    version = as_user(registry, "pat").ingest(folder, name="evil")
    assert version.state is State.REJECTED
    assert [v.number for m in registry.models() for v in m.versions] == [1]
