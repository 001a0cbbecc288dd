"""Ordinary models made by the real libraries: no finding at HIGH or above, fully analysed."""

from __future__ import annotations

import pickle
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest
import torch
from factories import assert_benign, describe, scan

from mlgate import Severity


class TinyNet(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3)
        self.bn = torch.nn.BatchNorm2d(4)
        self.head = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 2), torch.nn.ReLU())


def test_torch_state_dict_zip(tmp_path: Path) -> None:
    path = tmp_path / "model.pt"
    torch.save(TinyNet().state_dict(), path)
    report = scan(path)
    assert_benign(report)
    assert not report.findings, describe(report)


def test_torch_state_dict_legacy_format(tmp_path: Path) -> None:
    path = tmp_path / "model.pth"
    torch.save(TinyNet().state_dict(), path, _use_new_zipfile_serialization=False)
    report = scan(path)
    assert_benign(report)
    assert [a.format for a in report.artifacts] == ["pytorch-legacy"]


def test_torch_dtypes_and_views(tmp_path: Path) -> None:
    base = torch.arange(64, dtype=torch.float32)
    sd = {
        "bf16": torch.ones(3, dtype=torch.bfloat16), "f16": torch.ones(2, dtype=torch.float16),
        "i8": torch.ones(2, dtype=torch.int8), "bool": torch.ones(2, dtype=torch.bool),
        "f8": torch.ones(2).to(torch.float8_e4m3fn), "view": base[8:16], "t": base.view(8, 8).t(),
        "c64": torch.ones(2, dtype=torch.complex64), "nested": {"deep": [torch.zeros(1)]},
    }
    path = tmp_path / "mixed.pt"
    torch.save(sd, path)
    report = scan(path)
    assert_benign(report)
    assert not report.findings, describe(report)


def test_full_module_pickle_is_not_high(tmp_path: Path) -> None:
    path = tmp_path / "full.pt"
    torch.save(torch.nn.Sequential(torch.nn.Linear(3, 3), torch.nn.GELU()), path)
    report = scan(path)
    assert_benign(report)


def test_user_defined_module_is_medium_unknown(tmp_path: Path) -> None:
    path = tmp_path / "custom.pt"
    torch.save(TinyNet(), path)
    report = scan(path)
    assert_benign(report)
    assert any(f.rule_id == "MLG103" and "TinyNet" in f.message for f in report.findings)


def test_plain_pickle_of_tensor_and_optimizer(tmp_path: Path) -> None:
    net = torch.nn.Linear(4, 4)
    opt = torch.optim.AdamW(net.parameters())
    net(torch.ones(1, 4)).sum().backward()
    opt.step()
    path = tmp_path / "ckpt.pkl"
    path.write_bytes(pickle.dumps({"t": torch.ones(3), "opt": opt.state_dict()}))
    assert_benign(scan(path))


def _sklearn_models() -> dict[str, object]:
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import GradientBoostingClassifier, RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler
    from sklearn.tree import DecisionTreeRegressor

    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 3))
    y = (x[:, 0] > 0).astype(int)
    models: dict[str, object] = {
        "logreg": LogisticRegression().fit(x, y),
        "forest": RandomForestClassifier(n_estimators=3, random_state=0).fit(x, y),
        "gbm": GradientBoostingClassifier(n_estimators=3).fit(x, y),
        "tree": DecisionTreeRegressor().fit(x, y),
        "pipeline": Pipeline([("log", FunctionTransformer(np.log1p)),
                              ("scale", StandardScaler()),
                              ("clf", LogisticRegression())]).fit(np.abs(x), y),
    }
    frame = pd.DataFrame({"city": ["a", "b", "a", "c"], "v": [1.0, 2.0, 3.0, 4.0]})
    models["columns"] = ColumnTransformer(
        [("oh", OneHotEncoder(), ["city"]), ("sc", StandardScaler(), ["v"])]
    ).fit(frame)
    return models


@pytest.mark.parametrize("compress", [0, 3, "gzip", "bz2", "xz", "lzma", "lz4"])
def test_sklearn_models_joblib(tmp_path: Path, compress: object) -> None:
    path = tmp_path / "models.joblib"
    joblib.dump(_sklearn_models(), path, compress=compress)
    report = scan(path)
    assert_benign(report)
    assert not report.at_or_above(Severity.MEDIUM), describe(report)


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_sklearn_models_pickle(tmp_path: Path, protocol: int) -> None:
    path = tmp_path / "models.pkl"
    path.write_bytes(pickle.dumps(_sklearn_models(), protocol=protocol))
    report = scan(path)
    assert_benign(report)
    assert not report.at_or_above(Severity.MEDIUM), describe(report)


def test_xgboost_and_lightgbm(tmp_path: Path) -> None:
    import lightgbm
    import xgboost

    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(60, 4)), rng.integers(0, 2, 60)
    models = {
        "xgb": xgboost.XGBClassifier(n_estimators=3, max_depth=2).fit(x, y),
        "lgbm": lightgbm.LGBMClassifier(n_estimators=3, verbose=-1).fit(x, y),
    }
    for name, model in models.items():
        path = tmp_path / f"{name}.pkl"
        path.write_bytes(pickle.dumps(model))
        report = scan(path)
        assert_benign(report)
        assert not report.at_or_above(Severity.MEDIUM), describe(report)
        joblib.dump(model, tmp_path / f"{name}.joblib")
        assert_benign(scan(tmp_path / f"{name}.joblib"))


def test_pandas_frames(tmp_path: Path) -> None:
    frame = pd.DataFrame({
        "i": np.arange(5), "f": np.linspace(0, 1, 5), "s": list("abcde"),
        "cat": pd.Categorical(list("xyxyx")), "ts": pd.date_range("2024-01-01", periods=5),
        "td": pd.to_timedelta(np.arange(5), unit="s"),
    })
    for protocol in (2, 4, 5):
        path = tmp_path / f"frame{protocol}.pkl"
        path.write_bytes(pickle.dumps(frame, protocol=protocol))
        report = scan(path)
        assert_benign(report)
        assert not report.at_or_above(Severity.MEDIUM), describe(report)


@pytest.mark.parametrize("protocol", [0, 1, 2, 3, 4, 5])
def test_numpy_arrays_in_pickles(tmp_path: Path, protocol: int) -> None:
    data = {
        "f": np.arange(12, dtype=np.float32).reshape(3, 4), "i": np.arange(3),
        "u": np.array(["a", "bc"]), "rec": np.zeros(2, dtype=[("a", "<i4"), ("b", "<f8")]),
        "fortran": np.asfortranarray(np.ones((2, 3))), "scalar": np.float64(1.5),
        "rng": np.random.default_rng(3), "legacy_rng": np.random.RandomState(1),
    }
    path = tmp_path / "arrays.pkl"
    path.write_bytes(pickle.dumps(data, protocol=protocol))
    report = scan(path)
    assert_benign(report)
    assert not report.at_or_above(Severity.MEDIUM), describe(report)


def test_npy_and_npz(tmp_path: Path) -> None:
    np.save(tmp_path / "a.npy", np.arange(100, dtype=np.int16).reshape(10, 10))
    np.save(tmp_path / "s.npy", np.array(["x", "yy"]))
    np.savez(tmp_path / "b.npz", a=np.ones(3), b=np.zeros((2, 2)))
    np.savez_compressed(tmp_path / "c.npz", a=np.ones(300))
    report = scan(tmp_path)
    assert_benign(report)
    assert not report.findings, describe(report)


def test_tiny_transformers_checkpoint(tmp_path: Path) -> None:
    from transformers import BertConfig, BertModel, TrainingArguments

    model = BertModel(BertConfig(vocab_size=50, hidden_size=8, num_hidden_layers=1,
                                 num_attention_heads=2, intermediate_size=16))
    model.save_pretrained(tmp_path / "bert")
    # transformers 5 only writes safetensors; pytorch_model.bin is torch.save of the state dict.
    torch.save(model.state_dict(), tmp_path / "bert" / "pytorch_model.bin")
    torch.save(TrainingArguments(output_dir=str(tmp_path / "out"), report_to=[]),
               tmp_path / "bert" / "training_args.bin")
    report = scan(tmp_path / "bert")
    assert_benign(report)
    formats = {Path(a.artifact).name: a.format for a in report.artifacts}
    assert formats["pytorch_model.bin"] == "pytorch-zip"
    assert formats["model.safetensors"] == "safetensors"


def test_enum_members_pickled_by_getattr(tmp_path: Path) -> None:
    # Python >= 3.12 pickles Enum members as getattr(Class, 'NAME').
    from payloads import glob0, proto, s

    member = glob0("builtins", "getattr") + glob0("transformers.trainer_utils",
                                                   "IntervalStrategy") + s("STEPS") + b"\x86R"
    path = tmp_path / "e.pkl"
    path.write_bytes(proto(2) + member + b".")
    report = scan(path)
    assert not report.findings, describe(report)
    called = proto(2) + member + b")R."  # calling it is no longer a plain value
    path.write_bytes(called)
    assert scan(path).findings
