"""Configuration that instantiates code (issue 11 section 1), Hydra-style targets and YAML:
one test per technique, named after its advisory, each beside a benign control.

NeMo (CVE-2025-23304), Uni2TS and FlexTok (Unit 42, 2025), latent diffusion, LightningCLI and
NeMo 2's fiddle configs name the classes their loader instantiates; YAML tags ask unsafe YAML
loaders to construct objects. The config.json and safetensors fixtures come from the real
huggingface_hub and safetensors; NeMo, Hydra and fiddle are not installed, so their files are
written in their documented formats. Nothing is ever loaded: every payload would create a
marker file. The loaders' own manifests (MLflow, TorchServe, torch.package, transformers) are
in test_config_loaders.py.
"""

from __future__ import annotations

import io
import json
import tarfile
import time
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from factories import assert_benign, assert_caught, describe, finding_with, rules_found, scan, write
from huggingface_hub import PyTorchModelHubMixin
from hypothesis import given, settings
from hypothesis import strategies as st
from payloads import os_system, shell
from safetensors.torch import save_file

from mlgate import Severity
from mlgate.scan.formats.yaml_reader import read_yaml

CODE_EXECUTION, DYNAMIC, UNSAFE_REF = "MLG101", "MLG104", "MLG111"
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


def _tar(path: Path, members: dict[str, bytes], mode: str = "w") -> Path:
    with tarfile.open(path, mode) as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
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
    assert finding_with(report, CODE_EXECUTION, "instantiates os.system"), describe(report)


def test_cve_2025_23304_nemo_gzipped_and_builtins_exec(tmp_path: Path) -> None:
    evil = NEMO_CONFIG + "hook:\n  _target_: builtins.exec\n  _args_: ['import os']\n"
    report = scan(_nemo(tmp_path / "asr.nemo", evil, "w:gz"))
    assert finding_with(report, CODE_EXECUTION, "builtins.exec", Severity.CRITICAL), describe(
        report
    )


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
    assert finding_with(report, CODE_EXECUTION, "subprocess.check_output"), describe(report)
    unresolved = "step:\n  _target_: ${oc.env:TARGET}\n"
    report = scan(write(tmp_path / "env.yaml", unresolved.encode()))
    assert_caught(report, DYNAMIC)


def test_latent_diffusion_target_params(tmp_path: Path) -> None:
    honest = "model:\n  target: ldm.models.diffusion.ddpm.LatentDiffusion\n  params:\n    lr: 1\n"
    report = scan(write(tmp_path / "v1-inference.yaml", honest.encode()))
    assert_benign(report)
    assert finding_with(report, UNSAFE_REF, "LatentDiffusion", Severity.MEDIUM), describe(report)
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
    assert finding_with(report, CODE_EXECUTION, "os.system"), describe(report)
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
    assert finding_with(report, CODE_EXECUTION, "runpy.run_path"), describe(report)
    config["encoder"]["_target_"] = "torch.nn.modules.linear.Linear"
    save_file(tensors, str(tmp_path / "ok.safetensors"), metadata={"config": json.dumps(config)})
    report = scan(tmp_path / "ok.safetensors")
    assert_benign(report)
    assert not report.at_or_above(Severity.MEDIUM), describe(report)


# --- YAML tags: PyYAML unsafe loaders, SnakeYAML (CVE-2017-18342, CVE-2022-1471) --------------
def test_cve_2017_18342_pyyaml_python_tags(tmp_path: Path) -> None:
    evil = f"hook: !!python/object/apply:os.system ['{shell('pyyaml')}']\n"
    report = scan(write(tmp_path / "hparams.yaml", evil.encode()))
    assert finding_with(report, CODE_EXECUTION, "os.system", Severity.CRITICAL), describe(report)
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
    assert finding_with(report, CODE_EXECUTION, "os.system"), describe(report)
    assert finding_with(report, UNSAFE_REF, "10 more tags", Severity.MEDIUM), describe(report)
    data = "shape: !!python/tuple [1, 2]\nlr: !!float 0.1\n"
    report = scan(write(tmp_path / "data.yaml", data.encode()))
    assert_benign(report)
    assert not report.at_or_above(Severity.MEDIUM), describe(report)


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
    assert finding_with(report, CODE_EXECUTION, "os.system"), describe(report)
    assert "MLG201" in rules_found(report)


def test_pickle_named_yaml_is_still_a_pickle(tmp_path: Path) -> None:
    report = scan(write(tmp_path / "config.yaml", os_system("yaml-pickle")))
    assert_caught(report, CODE_EXECUTION, Severity.CRITICAL)
    assert "MLG207" in rules_found(report)


def test_lightning_cli_class_path(tmp_path: Path) -> None:
    honest = "optimizer:\n  class_path: torch.optim.Adam\n  init_args:\n    lr: 0.001\n"
    report = scan(write(tmp_path / "config.yaml", honest.encode()))
    assert_benign(report)
    assert not report.at_or_above(Severity.MEDIUM), describe(report)
    evil = "model:\n  class_path: torch.utils.cpp_extension.load_inline\n  init_args: {}\n"
    assert_caught(scan(write(tmp_path / "evil.yaml", evil.encode())), CODE_EXECUTION)


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
    assert finding_with(report, CODE_EXECUTION, "os.system"), describe(report)
    assert finding_with(report, MALFORMED, "and 19994 more", Severity.MEDIUM), describe(report)


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
    assert finding_with(report, UNSAFE_REF, "LlamaModel", Severity.MEDIUM), describe(report)
    evil = io_json(pyref("subprocess", "Popen"))
    report = scan(write(tmp_path / "evil" / "context" / "io.json", evil))
    assert finding_with(report, CODE_EXECUTION, "subprocess.Popen"), describe(report)
