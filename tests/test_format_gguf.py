"""GGUF files written by the real ``gguf`` writer: benign, injected templates, malformed."""

from __future__ import annotations

import struct
from pathlib import Path

import gguf
import numpy as np
import pytest
from factories import assert_benign, assert_caught, describe, rules_found, scan, write
from payloads import shell

from mlgate import Severity

CHATML = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + "
    "message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


def ssti(name: str) -> str:
    """The CVE-2024-34359 payload: runs a shell command if the template is rendered."""
    cmd = shell(name)
    return (
        "{{ self.__init__.__globals__.__builtins__.__import__('os')"
        ".popen('" + cmd + "').read() }}"
    )


def write_gguf(path: Path, template: str | None = CHATML, **named: str) -> Path:
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_block_count(2)
    w.add_token_list(["<s>", "</s>", "hello"])
    if template is not None:
        w.add_chat_template(template)
    for key, text in named.items():
        w.add_string(f"tokenizer.chat_template.{key}", text)
    w.add_tensor("tok_embd.weight", np.zeros((4, 8), dtype=np.float32))
    w.add_tensor("output.weight", np.ones(64, dtype=np.float16))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def test_benign_gguf_is_recognised(tmp_path: Path) -> None:
    report = scan(write_gguf(tmp_path / "m.gguf"))
    assert_benign(report)
    assert not report.at_or_above(Severity.MEDIUM), describe(report)
    assert "MLG304" in rules_found(report)


def test_gguf_without_template(tmp_path: Path) -> None:
    report = scan(write_gguf(tmp_path / "m.gguf", template=None))
    assert not report.at_or_above(Severity.LOW), describe(report)


def test_malicious_chat_template(tmp_path: Path) -> None:
    report = scan(write_gguf(tmp_path / "m.gguf", template=ssti("gguf-ssti")))
    assert_caught(report, "MLG115", Severity.CRITICAL)
    assert "__globals__" in describe(report)


def test_malicious_named_template(tmp_path: Path) -> None:
    evil = "{% set a = '__cla' ~ 'ss__' %}{{ messages|attr(a) }}"
    report = scan(write_gguf(tmp_path / "m.gguf", tool_use=evil))
    assert_caught(report, "MLG115", Severity.CRITICAL)
    assert "tokenizer.chat_template.tool_use" in describe(report)


@pytest.mark.parametrize("cut", [6, 30, 100, -10])
def test_truncated_gguf(tmp_path: Path, cut: int) -> None:
    data = write_gguf(tmp_path / "m.gguf").read_bytes()
    report = scan(write(tmp_path / "cut.gguf", data[:cut]))
    assert "MLG201" in rules_found(report, Severity.MEDIUM), describe(report)


def _patch(data: bytes, offset: int, fmt: str, value: int) -> bytes:
    return data[:offset] + struct.pack(fmt, value) + data[offset + struct.calcsize(fmt) :]


@pytest.mark.parametrize(
    ("offset", "fmt", "value", "words"),
    [
        (4, "<I", 99, "version"),
        (8, "<Q", 1 << 62, "tensors"),
        (16, "<Q", 1 << 62, "metadata"),
        (24, "<Q", 1 << 60, "string"),  # length of the first key
    ],
)
def test_huge_declared_counts(tmp_path: Path, offset: int, fmt: str, value: int,
                              words: str) -> None:
    data = write_gguf(tmp_path / "m.gguf").read_bytes()
    report = scan(write(tmp_path / "bad.gguf", _patch(data, offset, fmt, value)))
    text = describe(report)
    assert "MLG201" in rules_found(report, Severity.MEDIUM), text
    assert words in text


def test_huge_array_count(tmp_path: Path) -> None:
    path = write_gguf(tmp_path / "m.gguf")
    data = path.read_bytes()
    # tokenizer.ggml.tokens: key, type ARRAY (9), element type STRING (8), then the count
    key = b"tokenizer.ggml.tokens"
    at = data.index(key) + len(key) + 8
    assert struct.unpack("<I", data[at - 8 : at - 4])[0] == 9
    report = scan(write(tmp_path / "bad.gguf", _patch(data, at, "<Q", 1 << 61)))
    assert "array elements" in describe(report)


def test_tensor_outside_file_and_misaligned(tmp_path: Path) -> None:
    data = write_gguf(tmp_path / "m.gguf").read_bytes()
    name = b"output.weight"
    # name, n_dims (u32), one dim (u64), type (u32), offset (u64)
    at = data.index(name) + len(name) + 4 + 8 + 4
    far = scan(write(tmp_path / "far.gguf", _patch(data, at, "<Q", 1 << 40)))
    assert "outside" in describe(far)
    odd = scan(write(tmp_path / "odd.gguf", _patch(data, at, "<Q", 129)))
    assert "not aligned" in describe(odd)


def test_bad_alignment_value(tmp_path: Path) -> None:
    w = gguf.GGUFWriter(str(tmp_path / "a.gguf"), "llama")
    w.add_custom_alignment(64)
    w.add_tensor("t", np.zeros(16, dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    data = (tmp_path / "a.gguf").read_bytes()
    assert_benign(scan(tmp_path / "a.gguf"))
    at = data.index(b"general.alignment") + len(b"general.alignment") + 4
    report = scan(write(tmp_path / "b.gguf", _patch(data, at, "<I", 48)))
    assert "power-of-two" in describe(report)


def test_named_templates_via_writer_list(tmp_path: Path) -> None:
    evil = "{{ joiner.__init__.__globals__['os'].system('" + shell("gguf-rag") + "') }}"
    templates = [{"name": "default", "template": CHATML}, {"name": "rag", "template": evil}]
    report = scan(write_gguf(tmp_path / "m.gguf", template=templates))  # type: ignore[arg-type]
    assert_caught(report, "MLG115", Severity.CRITICAL)
    assert "tokenizer.chat_template.rag" in describe(report)
    assert "chat_template.default" not in describe(report)


def test_deeply_nested_arrays_are_bounded(tmp_path: Path) -> None:
    # key "k", type ARRAY of ARRAY ... deeper than any real file
    body = b"\x01\x00\x00\x00\x00\x00\x00\x00k" + b"\x09\x00\x00\x00" + (
        b"\x09\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00" * 50
    )
    data = b"GGUF" + struct.pack("<IQQ", 3, 0, 1) + body + b"\x00" * 64
    report = scan(write(tmp_path / "deep.gguf", data))
    assert "nested deeper" in describe(report)
