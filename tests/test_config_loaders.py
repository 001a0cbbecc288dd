"""Loader manifests that import or download code (issue 11 section 1): MLflow ``MLmodel``,
TorchServe ``.mar`` (ShellTorch), ``torch.package``, transformers (``auto_map`` in every
config, ``custom_generate``, Hub kernels) and sentence-transformers ``modules.json``. One test
per technique, each beside a benign control.

Built with the real torch (TorchScript, torch.package's PackageExporter), scikit-learn and
transformers; MLflow and TorchServe's archiver are not installed, so MLmodel files and
MANIFEST.json are written in their documented formats. Nothing is ever loaded.
"""

from __future__ import annotations

import io
import json
import pickle
import zipfile
from pathlib import Path
from typing import Any

import pytest
import torch
from factories import assert_benign, assert_caught, describe, finding_with, rules_found, scan, write
from payloads import shell
from sklearn.linear_model import LogisticRegression
from test_hf_repo import make_repo

from mlgate import Severity

CODE_EXECUTION, UNSAFE_REF, REMOTE_CODE, LOADS_CODE = "MLG101", "MLG111", "MLG116", "MLG117"


def _zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    return path


def test_cve_2022_1471_snakeyaml_tag_in_torchserve_model_config(tmp_path: Path) -> None:
    gadget = '!!javax.script.ScriptEngineManager [!!java.net.URLClassLoader [[!!java.net.URL ["http://127.0.0.1:1/"]]]]'
    config = f"minWorkers: 1\nmaxWorkers: 1\nhandler:\n  x: {gadget}\n"
    report = scan(_mar(tmp_path / "m.mar", "image_classifier", {"model-config.yaml": config}))
    assert finding_with(report, UNSAFE_REF, "ScriptEngineManager"), describe(report)


# --- MLflow MLmodel (loader_module, code_paths, models from code) --------------------------------
def _mlflow_model(folder: Path, pyfunc: dict[str, Any], sklearn_code: str | None = None) -> Path:
    """An MLflow model folder in the documented MLmodel format, with a real sklearn pickle."""
    flavors = {
        "python_function": {
            "env": {"conda": "conda.yaml"},
            "model_path": "model.pkl",
            "predict_fn": "predict",
            "python_version": "3.11.9",
            **pyfunc,
        },
        "sklearn": {
            "code": sklearn_code,
            "pickled_model": "model.pkl",
            "serialization_format": "pickle",
            "sklearn_version": "1.9.1",
        },
    }
    lines = ["artifact_path: model", "flavors:"]
    lines += [f"  {name}: {json.dumps(conf)}" for name, conf in flavors.items()]
    lines += ["mlflow_version: 2.19.0", "model_uuid: 0a1b2c"]
    write(folder / "MLmodel", "\n".join(lines).encode())
    model = LogisticRegression().fit([[0.0], [1.0]], [0, 1])
    write(folder / "model.pkl", pickle.dumps(model))
    write(folder / "conda.yaml", b"name: mlflow-env\ndependencies:\n  - python=3.11.9\n")
    return folder


def test_mlflow_benign_sklearn_model(tmp_path: Path) -> None:
    report = scan(_mlflow_model(tmp_path / "m", {"loader_module": "mlflow.sklearn"}))
    assert_benign(report)
    assert any(a.format == "mlmodel" for a in report.artifacts), report.artifacts


def test_mlflow_loader_module_outside_mlflow_is_high(tmp_path: Path) -> None:
    folder = _mlflow_model(tmp_path / "m", {"loader_module": "custom_loader"})
    write(folder / "custom_loader.py", b"def _load_pyfunc(path):\n    return None\n")
    assert finding_with(scan(folder), LOADS_CODE, "custom_loader")
    folder = _mlflow_model(tmp_path / "os", {"loader_module": "os"})
    assert_caught(scan(folder), CODE_EXECUTION, Severity.CRITICAL)


def test_mlflow_code_paths_and_models_from_code(tmp_path: Path) -> None:
    folder = _mlflow_model(tmp_path / "m", {"loader_module": "mlflow.sklearn"}, "code")
    write(folder / "code" / "helpers.py", f"import os\nos.system({shell('mlflow')!r})\n".encode())
    report = scan(folder)
    assert finding_with(
        report, LOADS_CODE, "code directory 'code' (present, its files analysed)"
    ), describe(report)
    assert_caught(report, "MLG402")  # the module itself is analysed as source
    folder = _mlflow_model(
        tmp_path / "fc", {"loader_module": "mlflow.pyfunc.model", "model_code_path": "model.py"}
    )
    assert finding_with(scan(folder), LOADS_CODE, "model_code_path")


# --- TorchServe .mar (handler, model file, requirements; ShellTorch) ----------------------------
def _mar(path: Path, handler: str, extra: dict[str, str] | None = None, **model: str) -> Path:
    """A TorchServe archive as torch-model-archiver writes it: MAR-INF/MANIFEST.json and the
    files it names, around a real TorchScript model."""
    scripted = io.BytesIO()
    torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), scripted)
    manifest = {
        "createdOn": "01/12/2026 10:00:00",
        "runtime": "python",
        "archiverVersion": "0.12.0",
        "model": {
            "modelName": "m",
            "serializedFile": "model.pt",
            "handler": handler,
            "modelVersion": "1.0",
            **model,
        },
    }
    members = {
        "MAR-INF/MANIFEST.json": json.dumps(manifest).encode(),
        "model.pt": scripted.getvalue(),
    }
    members.update({k: v.encode() for k, v in (extra or {}).items()})
    return _zip(path, members)


def test_torchserve_builtin_handler_benign(tmp_path: Path) -> None:
    report = scan(_mar(tmp_path / "m.mar", "image_classifier"))
    assert_benign(report)
    assert [a.format for a in report.artifacts][-1] == "torchserve-mar", report.artifacts


def test_torchserve_handler_code_in_archive(tmp_path: Path) -> None:
    run = f"subprocess.run({shell('ts')!r}, shell=True)"
    handler = f"import subprocess\ndef handle(data, context):\n    {run}\n"
    report = scan(_mar(tmp_path / "m.mar", "handler.py", {"handler.py": handler}))
    assert finding_with(report, LOADS_CODE, "'handler.py' (handler.py: present, analysed)"), (
        describe(report)
    )
    assert_caught(report, "MLG402")
    # A file named like a built-in handler replaces it (the model folder is first on sys.path).
    shadow = _mar(tmp_path / "s.mar", "image_classifier", {"image_classifier.py": "import torch\n"})
    assert finding_with(scan(shadow), LOADS_CODE, "image_classifier")


def test_torchserve_handler_from_environment_and_requirements(tmp_path: Path) -> None:
    report = scan(_mar(tmp_path / "m.mar", "os:system"))
    assert finding_with(report, CODE_EXECUTION, "os.system", Severity.CRITICAL), describe(report)
    reqs = _mar(
        tmp_path / "r.mar",
        "image_classifier",
        {"requirements.txt": "evil==1\n"},
        requirementsFile="requirements.txt",
        modelFile="../model.py",
    )
    report = scan(reqs)
    assert finding_with(report, LOADS_CODE, "pip-installs"), describe(report)
    assert "MLG206" in rules_found(report)  # modelFile escaping the archive


# --- torch.package ---------------------------------------------------------------------------
def test_torch_package_executes_stored_modules(tmp_path: Path) -> None:
    path = tmp_path / "evil.pt"
    with torch.package.PackageExporter(str(path)) as exporter:
        exporter.extern(["os", "torch.**", "builtins", "collections"])
        exporter.save_source_string("hook", f"import os\nos.system({shell('package')!r})\n")
        exporter.save_pickle("model", "model.pkl", torch.nn.Sequential(torch.nn.Linear(2, 2)))
    report = scan(path)
    assert finding_with(report, LOADS_CODE, "'evil/hook.py'"), describe(report)
    assert finding_with(report, LOADS_CODE, "os (operating system interface"), describe(report)
    assert_caught(report, "MLG402")
    assert report.artifacts[-1].format == "torch-package"


def test_torch_package_benign_externs_only(tmp_path: Path) -> None:
    path = tmp_path / "ok.pt"
    with torch.package.PackageExporter(str(path)) as exporter:
        exporter.extern(["torch.**", "builtins", "collections"])
        exporter.save_pickle("model", "model.pkl", torch.nn.Sequential(torch.nn.Linear(2, 2)))
    report = scan(path)
    assert_benign(report)
    assert not report.at_or_above(Severity.MEDIUM), describe(report)


# --- transformers: auto_map everywhere, custom_generate, Hub kernels ------------------------------
def _hf(folder: Path, **extra: Any) -> Path:
    """A small honest repository (test_hf_repo's), with ``extra`` keys in its config.json."""
    make_repo(folder)
    if extra:
        doc = json.loads((folder / "config.json").read_text())
        doc.update(extra)
        (folder / "config.json").write_text(json.dumps(doc))
    return folder


def test_auto_map_in_tokenizer_and_processor_configs(tmp_path: Path) -> None:
    folder = _hf(tmp_path / "m")
    tok = {"tokenizer_class": "X", "auto_map": ["tokenization_x.XTokenizer", None]}
    write(folder / "tokenizer_config.json", json.dumps(tok).encode())
    proc = {"image_processor": {"auto_map": {"AutoImageProcessor": "evil--proc.P"}}}
    write(folder / "processor_config.json", json.dumps(proc).encode())
    report = scan(folder)
    assert finding_with(report, REMOTE_CODE, "tokenization_x.XTokenizer"), describe(report)
    assert finding_with(report, REMOTE_CODE, "another repository, 'evil'"), describe(report)


def test_custom_generate_folder_is_repository_code(tmp_path: Path) -> None:
    folder = _hf(tmp_path / "m")
    assert_benign(scan(folder))
    write(
        folder / "custom_generate" / "generate.py", b"def generate(model, **kw):\n    return None\n"
    )
    report = scan(folder)
    assert finding_with(report, REMOTE_CODE, "custom_generate/generate.py"), describe(report)


def test_attn_implementation_naming_a_hub_kernel(tmp_path: Path) -> None:
    report = scan(_hf(tmp_path / "k", attn_implementation="attacker/flash-attn@main"))
    assert finding_with(report, LOADS_CODE, "outside kernels-community"), describe(report)
    nested = {"text_config": {"_attn_implementation": "kernels-community/flash-attn"}}
    assert finding_with(
        scan(_hf(tmp_path / "n", **nested)), LOADS_CODE, "kernels-community/flash-attn"
    )
    report = scan(_hf(tmp_path / "ok", attn_implementation="sdpa"))
    assert_benign(report)
    assert not report.at_or_above(Severity.MEDIUM), describe(report)


@pytest.mark.parametrize("value", ["flash_attention_2", "eager", "paged|eager"])
def test_attn_implementation_builtin_values_are_not_kernels(tmp_path: Path, value: str) -> None:
    report = scan(_hf(tmp_path / "m", attn_implementation=value))
    assert not report.at_or_above(Severity.MEDIUM), describe(report)


def test_sentence_transformers_modules_json(tmp_path: Path) -> None:
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {
            "idx": 1,
            "name": "1",
            "path": "1_Pooling",
            "type": "sentence_transformers.models.Pooling",
        },
    ]
    report = scan(write(tmp_path / "ok" / "modules.json", json.dumps(modules).encode()))
    assert not report.at_or_above(Severity.MEDIUM), describe(report)
    modules[1]["type"] = "subprocess.Popen"
    report = scan(write(tmp_path / "evil" / "modules.json", json.dumps(modules).encode()))
    assert finding_with(report, CODE_EXECUTION, "subprocess.Popen"), describe(report)


def test_mlmodel_in_json_flow_style(tmp_path: Path) -> None:
    doc = {"flavors": {"python_function": {"loader_module": "builtins", "code": None}}}
    report = scan(write(tmp_path / "MLmodel", json.dumps(doc).encode()))
    assert finding_with(report, LOADS_CODE, "'builtins'"), describe(report)
