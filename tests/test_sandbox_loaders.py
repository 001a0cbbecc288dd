"""Every sandbox loader on real, tiny models built here with the real frameworks.

Benign models of each format must load with no CRITICAL or HIGH finding (the frameworks' own
lazy imports and code generation are not the model's doing); a malicious model per loader
must be caught with the action it took. One sandbox run per case.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from sandbox_support import require_sandbox, rule_ids, sandboxed

from mlgate.cli import cli
from mlgate.findings import Severity
from mlgate.sandbox.choice import choose_loader
from mlgate.sandbox.events import SandboxEvent
from mlgate.sandbox.service import SandboxRun

os.environ.setdefault("KERAS_BACKEND", "torch")

_COMMAND = "echo pwned"


class _System:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, (_COMMAND,))


def _tiny_torch() -> object:
    import torch

    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU(), torch.nn.Linear(3, 2))


def _state_dict(folder: Path) -> Path:
    import torch

    torch.save(_tiny_torch().state_dict(), folder / "state.pt")  # type: ignore[attr-defined]
    return folder / "state.pt"


def _full_module(folder: Path) -> Path:
    import torch

    torch.save(_tiny_torch(), folder / "module.pt")
    return folder / "module.pt"


def _torchscript(folder: Path) -> Path:
    import torch

    torch.jit.save(torch.jit.script(_tiny_torch()), folder / "script.pt")  # type: ignore[no-untyped-call]
    return folder / "script.pt"


def _sklearn(folder: Path) -> Path:
    import joblib
    from sklearn.linear_model import LogisticRegression

    features = np.array([[0.0, 1.0], [1.0, 0.0], [1.0, 1.0], [0.0, 0.0]])
    joblib.dump(LogisticRegression().fit(features, [0, 1, 1, 0]), folder / "model.joblib")
    return folder / "model.joblib"


def _npy(folder: Path) -> Path:
    np.save(folder / "weights.npy", np.arange(6.0))
    return folder / "weights.npy"


def _npz(folder: Path) -> Path:
    np.savez(folder / "weights.npz", w=np.ones(3), b=np.zeros(2))
    return folder / "weights.npz"


def _keras(folder: Path) -> Path:
    import keras

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    model.save(folder / "model.keras")
    return folder / "model.keras"


def _onnx(folder: Path) -> Path:
    import onnx
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "relu", [x], [y])
    # IR 10 / opset 17: what released onnxruntimes read (onnx 1.23 writes IR 14 by default).
    opset = [helper.make_opsetid("", 17)]
    onnx.save(helper.make_model(graph, ir_version=10, opset_imports=opset), folder / "model.onnx")
    return folder / "model.onnx"


def _bert(folder: Path) -> Path:
    from transformers import BertConfig, BertModel

    config = BertConfig(
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=37,
        vocab_size=100,
        max_position_embeddings=64,
    )
    BertModel(config).save_pretrained(folder / "bert")
    return folder / "bert"


def _gguf(folder: Path) -> Path:
    import gguf

    writer = gguf.GGUFWriter(str(folder / "model.gguf"), "llama")
    writer.add_block_count(1)
    writer.add_tensor("weight", np.ones((2, 2), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return folder / "model.gguf"


# (builder, loader, what the probe does: "output" ran the model, "skipped" cannot feed it).
BENIGN: dict[str, tuple[Callable[[Path], Path], str, str]] = {
    "torch-state-dict": (_state_dict, "torch", "skipped"),
    "torch-module": (_full_module, "torch", "output"),
    "torchscript": (_torchscript, "torchscript", "output"),
    "sklearn-joblib": (_sklearn, "joblib", "output"),
    "numpy-npy": (_npy, "numpy", "skipped"),
    "numpy-npz": (_npz, "numpy", "skipped"),
    "keras": (_keras, "keras", "output"),
    "onnx": (_onnx, "onnx", "output"),  # through onnxruntime (the test extra has it)
    "transformers": (_bert, "transformers", "output"),
    "gguf": (_gguf, "gguf", "skipped"),
}


@pytest.mark.parametrize("case", sorted(BENIGN))
def test_benign_model_loads_clean(case: str, tmp_path: Path) -> None:
    build, loader, probed = BENIGN[case]
    model = build(tmp_path)
    assert choose_loader(model) == loader  # --loader auto picks the loader a user would call
    run = sandboxed(model, loader)
    assert run.report.findings == (), [f.evidence for f in run.report.findings]
    assert run.report.complete
    assert [e.action for e in run.events if e.source == "probe"] == [probed]
    if probed == "output":
        assert "nan=0" in _probe(run).detail and "constant=False" in _probe(run).detail


def _evil_torch(folder: Path) -> Path:
    import torch

    torch.save({"weights": _System()}, folder / "evil.pt")
    return folder / "evil.pt"


def _evil_joblib(folder: Path) -> Path:
    import joblib

    joblib.dump({"model": _System()}, folder / "evil.joblib")
    return folder / "evil.joblib"


def _evil_numpy(folder: Path) -> Path:
    np.save(folder / "evil.npy", np.array([_System()], dtype=object), allow_pickle=True)
    return folder / "evil.npy"


def _evil_keras(folder: Path) -> Path:
    import keras

    # Keras runs a Lambda layer's function on load: rebuilding the model computes the
    # layer's output spec by calling it (observed with keras 3.15, torch backend).
    # The literal, not _COMMAND: the marshalled function is rebuilt without this module.
    payload = keras.layers.Lambda(lambda x: (__import__("os").system("echo pwned"), x)[1])
    keras.Sequential([keras.Input((4,)), payload]).save(folder / "evil.keras")
    return folder / "evil.keras"


def _remote_code(folder: Path, source: str) -> Path:
    """A tiny BERT whose config.json maps AutoModel to Python shipped in the model folder."""
    model = _bert(folder)
    (model / "modeling_evil.py").write_text(source)
    config = json.loads((model / "config.json").read_text())
    config["auto_map"] = {"AutoModel": "modeling_evil.EvilModel"}
    (model / "config.json").write_text(json.dumps(config))
    return model


MALICIOUS: dict[str, tuple[Callable[[Path], Path], str]] = {
    "torch": (_evil_torch, "torch"),
    "joblib": (_evil_joblib, "joblib"),
    "numpy": (_evil_numpy, "numpy"),
    "keras-lambda": (_evil_keras, "keras"),
}


@pytest.mark.parametrize("case", sorted(MALICIOUS))
def test_malicious_model_is_caught_with_its_action(case: str, tmp_path: Path) -> None:
    build, loader = MALICIOUS[case]
    run = sandboxed(build(tmp_path), loader)
    assert "MLG701" in rule_ids(run)
    assert _COMMAND in _evidence(run)  # the command line the payload ran is named
    assert run.report.max_severity is Severity.CRITICAL


def _evidence(run: SandboxRun) -> str:
    return " ".join(f.evidence for f in run.report.findings)


def _probe(run: SandboxRun) -> SandboxEvent:
    return next(e for e in run.events if e.source == "probe")


def _broken_torch(folder: Path, fill: float) -> Path:
    import torch

    model = _tiny_torch()
    with torch.no_grad():
        for parameter in model.parameters():  # type: ignore[attr-defined]
            parameter.fill_(fill)
    torch.save(model, folder / "broken.pt")
    return folder / "broken.pt"


@pytest.mark.parametrize(("fill", "symptom"), [(float("nan"), "nan=4"), (0.0, "constant=True")])
def test_probe_flags_nan_and_constant_outputs(fill: float, symptom: str, tmp_path: Path) -> None:
    run = sandboxed(_broken_torch(tmp_path, fill), "torch")
    assert rule_ids(run) == {"MLG711"}
    assert symptom in _probe(run).detail
    assert run.report.max_severity is Severity.MEDIUM


def test_probe_compares_with_a_reference_from_the_cli(tmp_path: Path) -> None:
    require_sandbox()
    model = _full_module(tmp_path)
    (tmp_path / "ref").mkdir()
    reference = _broken_torch(tmp_path / "ref", 0.5)
    argv = ["sandbox", str(model), "--reference", str(reference), "--format", "json"]
    result = CliRunner().invoke(cli, [*argv, "--fail-on", "medium"])
    findings = json.loads(result.output)["findings"]
    assert [f["rule_id"] for f in findings] == ["MLG711"]
    assert "max_abs_diff=" in findings[0]["evidence"] and "exceeds=True" in findings[0]["evidence"]
    assert result.exit_code == 1  # MEDIUM, at the threshold asked for


def test_remote_code_payloads_at_import_and_in_forward(tmp_path: Path) -> None:
    # trust_remote_code: the modeling file runs a command when imported (phase load), another
    # in forward() (phase probe), then ends the process: the unfinished probe is incomplete.
    model = _remote_code(
        tmp_path,
        f"import os\nos.system({_COMMAND!r})\nfrom transformers import BertModel\n\n\n"
        "class EvilModel(BertModel):\n"
        "    def forward(self, *args, **kwargs):\n"
        "        os.system('echo forward')\n"
        "        os._exit(0)\n",
    )
    run = sandboxed(model, "transformers")
    assert {"MLG701", "MLG712"} <= rule_ids(run)
    assert not run.report.complete
    assert _process_commands(run, "load") == {_COMMAND}
    assert _process_commands(run, "probe") == {"echo forward"}


def _process_commands(run: SandboxRun, phase: str) -> set[str]:
    """The commands os.system ran in ``phase``, as the audit hook saw them."""
    return {
        e.detail[0].strip("b'")
        for e in run.events
        if e.action == "os.system" and e.phase == phase and e.detail
    }
