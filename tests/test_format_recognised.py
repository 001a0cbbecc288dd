"""Formats without code that are recognised and reported, never silently passed."""

from __future__ import annotations

import json
import pickle
import struct
from pathlib import Path

import lightgbm as lgb
import msgpack
import numpy as np
import pytest
import xgboost as xgb
from factories import assert_benign, assert_caught, describe, rules_found, scan, write
from payloads import os_system

from mlgate import Severity


def _data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.random((60, 3))
    return x, (x[:, 0] > 0.5).astype(int)


def _recognised(path: Path, words: str) -> None:
    report = scan(path)
    assert_benign(report)
    assert "MLG304" in rules_found(report), describe(report)
    assert words in describe(report)


@pytest.mark.parametrize("suffix", ["json", "ubj"])
def test_xgboost_models(tmp_path: Path, suffix: str) -> None:
    x, y = _data()
    booster = xgb.train({"max_depth": 2}, xgb.DMatrix(x, label=y), 2)
    booster.save_model(str(tmp_path / f"m.{suffix}"))
    _recognised(tmp_path / f"m.{suffix}", "XGBoost")


def test_lightgbm_text_model(tmp_path: Path) -> None:
    x, y = _data()
    model = lgb.train({"verbose": -1}, lgb.Dataset(x, label=y), 2)
    model.save_model(str(tmp_path / "m.txt"))
    _recognised(tmp_path / "m.txt", "LightGBM")


def _flax_ext(obj: object) -> object:
    # flax.serialization encodes ndarrays as ExtType(1, msgpack((shape, dtype, bytes)))
    if isinstance(obj, np.ndarray):
        payload = msgpack.packb((obj.shape, obj.dtype.name, obj.tobytes()))
        return msgpack.ExtType(1, payload)
    return obj


def test_flax_msgpack_checkpoint(tmp_path: Path) -> None:
    params = {"params": {"Dense_0": {"kernel": np.ones((4, 3), np.float32),
                                     "bias": np.zeros(3, np.float32)},
                         "step": 3, "name": "tiny"}}
    data = msgpack.packb(params, default=_flax_ext)
    _recognised(write(tmp_path / "flax_model.msgpack", data), "no code possible")


def test_msgpack_huge_count_is_bounded(tmp_path: Path) -> None:
    data = b"\x81\xa1k\xdd" + struct.pack(">I", 0xFFFFFFFF) + b"\x00" * 16
    report = scan(write(tmp_path / "bad.msgpack", data))  # must return promptly
    assert "MLG303" in rules_found(report), describe(report)


def test_mxnet_files(tmp_path: Path) -> None:
    params = struct.pack("<QQ", 0x112, 0) + b"\x00" * 64
    _recognised(write(tmp_path / "m-0000.params", params), "MXNet")
    symbol = {"nodes": [{"op": "null", "name": "data", "inputs": []}], "arg_nodes": [0],
              "heads": [[0, 0, 0]], "attrs": {"mxnet_version": ["int", 10900]}}
    _recognised(write(tmp_path / "m-symbol.json", json.dumps(symbol).encode()), "MXNet")


def test_paddle_files(tmp_path: Path) -> None:
    _recognised(write(tmp_path / "m.pdiparams", b"\x00\x00\x00\x00" + b"\x01" * 60),
                "PaddlePaddle")
    safe = pickle.dumps({"linear.weight": np.zeros(3, np.float32)}, protocol=2)
    assert_benign(scan(write(tmp_path / "ok.pdparams", safe)))
    assert_caught(scan(write(tmp_path / "evil.pdparams", os_system("pdparams"))), "MLG101")


def test_coreml_package(tmp_path: Path) -> None:
    manifest = {"fileFormatVersion": "1.0.0", "itemInfoEntries": {
        "A": {"author": "com.apple.CoreML", "path": "model.mlmodel", "name": "model.mlmodel"}},
        "rootModelIdentifier": "A"}
    pkg = tmp_path / "m.mlpackage"
    _recognised(write(pkg / "Manifest.json", json.dumps(manifest).encode()), "CoreML")


def test_catboost_and_text(tmp_path: Path) -> None:
    _recognised(write(tmp_path / "m.cbm", b"CBM1" + b"\x00" * 40), "CatBoost")
    _recognised(write(tmp_path / "vocab.txt", b"[PAD]\n[UNK]\nhello\n"), "vocabulary")


def test_unknown_text_stays_unrecognised(tmp_path: Path) -> None:
    report = scan(write(tmp_path / "notes.md", b"# hello\n"))
    assert "MLG303" in rules_found(report)
    assert not report.at_or_above(Severity.LOW)


def test_jinja_file_outside_repo(tmp_path: Path) -> None:
    evil = b"<s>{{ lipsum.__globals__['os'].popen('id').read() }}"
    assert_caught(scan(write(tmp_path / "t.jinja", evil)), "MLG115", Severity.CRITICAL)


def test_other_binary_models(tmp_path: Path) -> None:
    _recognised(write(tmp_path / "m.bin", (793712314).to_bytes(4, "little") + b"\x0c" * 40),
                "fastText")
    _recognised(write(tmp_path / "old.model", b"binf" + b"\x00" * 60), "XGBoost")


def test_coreml_and_paddle_protobufs_are_recognised_not_taken_for_tensorflow(
    tmp_path: Path,
) -> None:
    for name in ("model.mlmodel", "inference.pdmodel"):
        report = scan(write(tmp_path / name, b"\x08\x04\x12\x02ab\x1a\x00"))
        assert "MLG304" in rules_found(report), describe(report)
        assert not report.at_or_above(Severity.MEDIUM), describe(report)
