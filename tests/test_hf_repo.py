"""Hugging Face repository folders: remote code, Python sources, templates, load plan."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from factories import assert_benign, assert_caught, describe, rules_found, scan, write
from payloads import marker, py_code, shell
from safetensors.torch import save_file
from transformers import BertConfig

from mlgate import Severity

MODELING = '''"""Custom modeling code, as trust_remote_code repositories ship it."""
import math

import torch
from torch import nn
from transformers import PretrainedConfig, PreTrainedModel


class TinyConfig(PretrainedConfig):
    model_type = "tiny"

    def __init__(self, hidden=8, **kwargs):
        self.hidden = hidden
        super().__init__(**kwargs)


class TinyModel(PreTrainedModel):
    config_class = TinyConfig

    def __init__(self, config):
        super().__init__(config)
        self.linear = nn.Linear(config.hidden, config.hidden)
        self.scale = 1 / math.sqrt(config.hidden)

    def forward(self, x):
        return torch.relu(self.linear(x)) * self.scale
'''
TOKENIZER = '''import json
import os


class TinyTokenizer:
    def __init__(self, vocab_file):
        with open(vocab_file, "r", encoding="utf-8") as f:
            self.vocab = json.load(f)

    def save_vocabulary(self, save_directory):
        path = os.path.join(save_directory, "vocab.json")
        with open(path, "w", encoding="utf-8") as f:
            json.dump(self.vocab, f)
        return (path,)
'''
CHATML = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + "
    "message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


def make_repo(path: Path, auto_map: bool = False, modeling: str = MODELING) -> Path:
    config = BertConfig(vocab_size=32, hidden_size=8, num_hidden_layers=1,
                        num_attention_heads=2, intermediate_size=16)
    if auto_map:
        config.auto_map = {"AutoConfig": "modeling_tiny.TinyConfig",
                           "AutoModel": "modeling_tiny.TinyModel"}
        write(path / "modeling_tiny.py", modeling.encode())
    config.save_pretrained(path)
    save_file({"w": torch.zeros(4, 4)}, str(path / "model.safetensors"))
    tok = {"tokenizer_class": "PreTrainedTokenizerFast", "bos_token": "<s>",
           "chat_template": CHATML, "model_max_length": 512}
    write(path / "tokenizer_config.json", json.dumps(tok).encode())
    write(path / "generation_config.json", b'{"bos_token_id": 1, "eos_token_id": 2}')
    return path


def test_plain_repo_is_benign_with_load_plan(tmp_path: Path) -> None:
    report = scan(make_repo(tmp_path / "repo"))
    assert not report.at_or_above(Severity.MEDIUM), describe(report)
    plan = [f for f in report.findings if f.rule_id == "MLG304" and "from_pretrained" in f.message]
    assert len(plan) == 1, describe(report)
    assert "model.safetensors" in plan[0].message
    assert "tokenizer_config.json" in plan[0].message


def test_auto_map_is_remote_code(tmp_path: Path) -> None:
    report = scan(make_repo(tmp_path / "repo", auto_map=True))
    assert_caught(report, "MLG116")
    text = describe(report)
    assert "modeling_tiny.TinyModel" in text and "present" in text
    assert "MLG402" not in rules_found(report)  # plain modeling code
    assert "MLG401" in rules_found(report)


def test_auto_map_module_missing_or_other_repo(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    make_repo(repo)
    cfg = json.loads((repo / "config.json").read_text())
    cfg["auto_map"] = {"AutoModel": "modeling_x.XModel",
                       "AutoTokenizer": ["evil/repo--tokenization_x.XTok", None]}
    (repo / "config.json").write_text(json.dumps(cfg))
    text = describe(scan(repo))
    assert "NOT present" in text and "evil/repo" in text


@pytest.mark.parametrize(
    ("snippet", "what"),
    [
        (f"import os\nos.system({shell('hf-os')!r})\n", "os.system"),
        (f"import subprocess as sp\nsp.run({shell('hf-sp')!r}, shell=True)\n", "subprocess.run"),
        (f"exec({py_code('hf-exec')!r})\n", "exec"),
        ("import socket\ns = socket.socket()\n", "socket.socket"),
        ("from urllib.request import urlopen\nurlopen('http://x.invalid')\n", "urllib"),
        ("import torch\ndef f(p):\n    return torch.load(p)\n", "torch.load"),
        ("import importlib\nm = importlib.import_module('o' + 's')\n", "import_module"),
        (f"def f():\n    open({marker('hf-write')!r}, 'w')\n", "file write"),
    ],
)
def test_suspicious_python(tmp_path: Path, snippet: str, what: str) -> None:
    repo = make_repo(tmp_path / "repo", auto_map=True, modeling=MODELING + snippet)
    report = scan(repo)
    assert_caught(report, "MLG402")
    assert what in describe(report)


def test_tokenizer_save_vocabulary_is_not_high(tmp_path: Path) -> None:
    report = scan(write(tmp_path / "tokenization_tiny.py", TOKENIZER.encode()))
    assert not report.at_or_above(Severity.HIGH), describe(report)


def test_py_named_pickle_falls_back(tmp_path: Path) -> None:
    from payloads import os_system

    report = scan(write(tmp_path / "helper.py", os_system("hf-py-pickle")))
    assert_caught(report, "MLG101")


def test_malicious_chat_template_in_tokenizer_config(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    evil = "{{ cycler.__init__.__globals__.os.popen('" + shell("hf-tpl") + "').read() }}"
    tok = json.loads((repo / "tokenizer_config.json").read_text())
    tok["chat_template"] = [{"name": "default", "template": CHATML},
                            {"name": "tool_use", "template": evil}]
    (repo / "tokenizer_config.json").write_text(json.dumps(tok))
    report = scan(repo)
    assert_caught(report, "MLG115", Severity.CRITICAL)
    assert "tool_use" in describe(report)


def test_chat_template_jinja_file(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    write(repo / "chat_template.jinja", b"{{ ''.__class__.__mro__[1].__subclasses__() }}")
    assert_caught(scan(repo), "MLG115", Severity.CRITICAL)
    benign = make_repo(tmp_path / "ok")
    write(benign / "chat_template.jinja", CHATML.encode())
    assert not scan(benign).at_or_above(Severity.MEDIUM)


def test_sharded_index_escape_and_pickles(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    torch.save({"w": torch.zeros(2)}, repo / "pytorch_model-00001-of-00002.bin")
    index = {"metadata": {}, "weight_map": {"a": "pytorch_model-00001-of-00002.bin",
                                            "b": "../../outside.bin"}}
    write(repo / "pytorch_model.bin.index.json", json.dumps(index).encode())
    report = scan(repo)
    assert_caught(report, "MLG206")
    plan = next(f.message for f in report.findings if "from_pretrained" in f.message)
    assert "pytorch_model-00001-of-00002.bin" in plan and "missing" in plan


def test_tiny_bert_with_transformers(tmp_path: Path) -> None:
    from transformers import BertModel

    model = BertModel(BertConfig(vocab_size=32, hidden_size=8, num_hidden_layers=1,
                                 num_attention_heads=2, intermediate_size=16))
    model.save_pretrained(tmp_path / "bert")
    assert_benign(scan(tmp_path / "bert"))


def test_diffusers_model_index_custom_component(tmp_path: Path) -> None:
    index = {"_class_name": "StableDiffusionPipeline", "_diffusers_version": "0.30.0",
             "unet": ["diffusers", "UNet2DConditionModel"],
             "scheduler": ["my_scheduler", "EvilScheduler"], "safety_checker": [None, None]}
    repo = tmp_path / "pipe"
    write(repo / "model_index.json", json.dumps(index).encode())
    write(repo / "my_scheduler.py", b"import os\nos.system('true')\n")
    report = scan(repo)
    assert_caught(report, "MLG116")
    text = describe(report)
    assert "my_scheduler.EvilScheduler" in text and "UNet2DConditionModel" not in text.split(
        "MLG116")[1].split("\n")[0]
    assert_caught(report, "MLG402")


def test_latin1_source_with_coding_cookie(tmp_path: Path) -> None:
    code = f"# -*- coding: latin-1 -*-\n# caf\xe9\nimport os\nos.system({shell('latin')!r})\n"
    report = scan(write(tmp_path / "modeling_x.py", code.encode("latin-1")))
    assert_caught(report, "MLG402")
