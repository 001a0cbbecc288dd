"""mlgate convert: real checkpoints converted and compared bit for bit with torch.load.

``torch.load(weights_only=True)`` is the reference here only; mlgate never runs the files.
"""

from __future__ import annotations

import collections
import io
import json
import pickle
import struct
import zipfile
from pathlib import Path

import joblib
import numpy as np
import payloads
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from mlgate.cli import main
from mlgate.convert import ConversionError, ConversionRefused, convert_model

DTYPES = [
    torch.float64,
    torch.float32,
    torch.float16,
    torch.bfloat16,
    torch.float8_e4m3fn,
    torch.float8_e5m2,
    torch.float8_e4m3fnuz,
    torch.float8_e5m2fnuz,
    torch.int64,
    torch.int32,
    torch.int16,
    torch.int8,
    torch.uint8,
    torch.uint16,
    torch.uint32,
    torch.uint64,
    torch.bool,
    torch.complex64,
]


def random_tensor(dtype: torch.dtype, shape: tuple[int, ...], seed: int = 0) -> torch.Tensor:
    """Random bytes reinterpreted as ``dtype``: every bit pattern, NaNs included."""
    gen = torch.Generator().manual_seed(seed)
    size = torch.empty((), dtype=dtype).element_size()
    count = int(np.prod(shape)) * size
    raw = torch.randint(0, 256, (count,), dtype=torch.uint8, generator=gen)
    if dtype is torch.bool:
        return (raw % 2).bool().reshape(shape)
    return raw.view(dtype).reshape(shape)


def flat_reference(obj: object, prefix: str = "") -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    if isinstance(obj, torch.Tensor):
        out[prefix] = obj
    elif isinstance(obj, dict):
        for k, v in obj.items():
            out |= flat_reference(v, f"{prefix}.{k}" if prefix else str(k))
    elif isinstance(obj, list | tuple):
        for i, v in enumerate(obj):
            out |= flat_reference(v, f"{prefix}.{i}" if prefix else str(i))
    return out


def same_bits(a: torch.Tensor, b: torch.Tensor) -> bool:
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    return bool(
        a.contiguous()
        .reshape(-1)
        .view(torch.uint8)
        .equal(b.contiguous().reshape(-1).view(torch.uint8))
    )


def convert_and_compare(
    src: Path, dst: Path, names: set[str] | None = None
) -> dict[str, torch.Tensor]:
    """Convert ``src``; every tensor must equal torch.load's bit for bit (tied names too)."""
    result = convert_model(src, dst)
    reference = flat_reference(torch.load(src, weights_only=True))
    converted = load_file(dst)
    with safe_open(dst, "pt") as f:
        metadata = f.metadata()
    tied = json.loads(metadata.get("mlgate.tied", "{}"))
    assert metadata["format"] == "pt"
    assert set(converted) | set(tied) == set(reference)
    for name, tensor in reference.items():
        assert same_bits(converted[tied.get(name, name)], tensor), name
    assert result.tensors == len(converted)
    if names is not None:
        assert set(reference) == names
    return converted


def all_dtypes() -> dict[str, torch.Tensor]:
    return {
        str(d).removeprefix("torch."): random_tensor(d, (3, 5), i) for i, d in enumerate(DTYPES)
    }


def test_every_dtype_bit_for_bit(tmp_path: Path) -> None:
    torch.save(all_dtypes(), tmp_path / "m.pt")
    convert_and_compare(tmp_path / "m.pt", tmp_path / "m.safetensors")


def test_legacy_format_every_dtype(tmp_path: Path) -> None:
    src = tmp_path / "legacy.pt"
    # torch.load cannot read back the legacy format's untyped storages (float8, uint16...).
    legacy_types = {torch.uint16, torch.uint32, torch.uint64} | {
        d for d in DTYPES if "float8" in str(d)
    }
    sd = {k: v for k, v in all_dtypes().items() if v.dtype not in legacy_types}
    sd["view"] = sd["float32"][1:, ::2]
    torch.save(sd, src, _use_new_zipfile_serialization=False)
    convert_and_compare(src, tmp_path / "legacy.safetensors")


def test_non_contiguous_views_and_offsets(tmp_path: Path) -> None:
    base = random_tensor(torch.float32, (6, 8))
    cube = random_tensor(torch.int16, (3, 4, 5), 1)
    sd = {
        "transposed": base.t(),
        "sliced": base[2:5, 3:],
        "stepped": base[:, ::3],
        "permuted": cube.permute(2, 0, 1),
        "expanded": random_tensor(torch.bfloat16, (1, 4), 2).expand(3, 4),
        "expanded_inner": random_tensor(torch.uint8, (4, 1), 3).expand(4, 3),
        "scalar": base[1, 2],
        "empty": base[:0],
        "narrow_row": base[4],
    }
    src = tmp_path / "views.pt"
    torch.save(sd, src)
    convert_and_compare(src, tmp_path / "views.safetensors")


def test_shared_storage_and_tied_weights(tmp_path: Path) -> None:
    weight = random_tensor(torch.float16, (10, 4))
    sd = collections.OrderedDict(
        [
            ("embed.weight", weight),
            ("head.weight", weight),  # tied: the same view of the same storage
            ("head_half", weight[5:]),  # same storage, different view: its own tensor
            ("head_t", weight.t()),
        ]
    )
    src = tmp_path / "tied.pt"
    torch.save(sd, src)
    converted = convert_and_compare(src, tmp_path / "tied.safetensors")
    assert set(converted) == {"embed.weight", "head_half", "head_t"}
    with safe_open(tmp_path / "tied.safetensors", "pt") as f:
        assert json.loads(f.metadata()["mlgate.tied"]) == {"head.weight": "embed.weight"}


def test_nested_state_dict_parameters_and_plain_metadata(tmp_path: Path) -> None:
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.LayerNorm(3))
    checkpoint = {
        "model": model.state_dict(),
        "param": torch.nn.Parameter(torch.ones(2)),
        "layers": [torch.zeros(2), {"bias": torch.arange(3)}],
        "epoch": 7,
        "lr": 1e-3,
        "name": "tiny",
        "shape": (1, 2),
        "flags": {"amp": True, "note": None},
        "raw": b"\x00\xff",
        "optimizer": {},
    }
    src = tmp_path / "nested.pt"
    torch.save(checkpoint, src)
    converted = convert_and_compare(src, tmp_path / "nested.safetensors")
    assert {"model.0.weight", "model.1.bias", "layers.0", "layers.1.bias", "param"} <= set(
        converted
    )
    with safe_open(tmp_path / "nested.safetensors", "pt") as f:
        data = json.loads(f.metadata()["mlgate.data"])
    assert data == {
        "epoch": 7,
        "lr": 1e-3,
        "name": "tiny",
        "shape": [1, 2],
        "flags": {"amp": True, "note": None},
        "raw": {"$base64": "AP8="},
        "optimizer": {},
    }


def test_numpy_npy_and_npz(tmp_path: Path) -> None:
    arrays = {
        "f8": np.random.default_rng(0).standard_normal((4, 3)),
        "fortran": np.asfortranarray(np.arange(24, dtype="<i4").reshape(4, 6)),
        "u2": np.arange(7, dtype="<u2"),
        "b": np.array([True, False, True]),
        "f2": np.linspace(0, 1, 5, dtype="<f2"),
    }
    np.save(tmp_path / "fortran.npy", arrays["fortran"])
    convert_model(tmp_path / "fortran.npy", tmp_path / "fortran.safetensors")
    got = load_file(tmp_path / "fortran.safetensors")["fortran"].numpy()
    assert np.array_equal(got, arrays["fortran"])
    for save in (np.savez, np.savez_compressed):
        src = tmp_path / f"{save.__name__}.npz"
        save(src, **arrays)
        out = tmp_path / f"{save.__name__}.safetensors"
        convert_model(src, out)
        loaded = load_file(out)
        for key, value in arrays.items():
            assert np.array_equal(loaded[key].numpy(), value), (save.__name__, key)


@pytest.mark.parametrize("protocol", [2, 5])
def test_plain_pickle_and_joblib_of_arrays(tmp_path: Path, protocol: int) -> None:
    rng = np.random.default_rng(protocol)
    arrays = {
        "big": rng.standard_normal((600, 300)).astype("<f4"),  # > 1 MiB: kept on disk
        "small": np.arange(6, dtype="<i8").reshape(2, 3).T,
        "nested": {"ids": np.array([1, 2], dtype="|u1")},
        "count": 3,
    }
    pkl = tmp_path / "arrays.pkl"
    pkl.write_bytes(pickle.dumps(arrays, protocol=protocol))
    jbl = tmp_path / "arrays.joblib"
    joblib.dump(arrays, jbl, protocol=protocol)
    for src in (pkl, jbl):
        out = src.with_name(src.name + ".safetensors")
        convert_model(src, out)
        loaded = load_file(out)
        assert np.array_equal(loaded["big"].numpy(), arrays["big"])
        assert np.array_equal(loaded["small"].numpy(), arrays["small"])
        assert np.array_equal(loaded["nested.ids"].numpy(), arrays["nested"]["ids"])
        with safe_open(out, "pt") as f:
            assert json.loads(f.metadata()["mlgate.data"]) == {"count": 3}


# ------------------------------------------------------------------ Hugging Face folders
def tiny_gpt2() -> torch.nn.Module:
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    config = GPT2Config(n_layer=2, n_head=2, n_embd=16, vocab_size=64, n_positions=32)
    return GPT2LMHeadModel(config).eval()


def test_sharded_hf_folder_loads_with_from_pretrained(tmp_path: Path) -> None:
    from transformers import GPT2LMHeadModel

    model = tiny_gpt2()
    src = tmp_path / "hf"
    src.mkdir()
    model.config.save_pretrained(src)
    (src / "tokenizer.json").write_text('{"version": "1.0"}', encoding="utf-8")
    state = model.state_dict()  # wte and lm_head share one storage (tied embeddings)
    names = list(state)
    shards = [names[: len(names) // 2], names[len(names) // 2 :]]
    weight_map = {}
    for i, part in enumerate(shards, 1):
        file = f"pytorch_model-{i:05d}-of-00002.bin"
        torch.save({n: state[n] for n in part}, src / file)
        weight_map |= dict.fromkeys(part, file)
    index = {"metadata": {"total_size": 0}, "weight_map": weight_map}
    (src / "pytorch_model.bin.index.json").write_text(json.dumps(index), encoding="utf-8")

    dst = tmp_path / "converted"
    result = convert_model(src, dst)
    assert sorted(p.name for p in dst.iterdir()) == [
        "config.json",
        "model-00001-of-00002.safetensors",
        "model-00002-of-00002.safetensors",
        "model.safetensors.index.json",
        "tokenizer.json",
    ]
    assert (dst / "tokenizer.json").read_bytes() == (src / "tokenizer.json").read_bytes()
    new_index = json.loads((dst / "model.safetensors.index.json").read_text(encoding="utf-8"))
    assert new_index["metadata"]["total_size"] == result.tensor_bytes
    assert set(new_index["weight_map"].values()) == {
        "model-00001-of-00002.safetensors",
        "model-00002-of-00002.safetensors",
    }
    loaded = GPT2LMHeadModel.from_pretrained(dst).eval()
    ids = torch.tensor([[1, 5, 9, 3]])
    with torch.no_grad():
        assert torch.equal(loaded(ids).logits, model(ids).logits)


def test_single_file_hf_model_with_tied_weights(tmp_path: Path) -> None:
    from transformers import GPT2LMHeadModel

    model = tiny_gpt2()
    src = tmp_path / "hf"
    src.mkdir()
    model.config.save_pretrained(src)
    torch.save(model.state_dict(), src / "pytorch_model.bin")
    result = convert_model(src, tmp_path / "out")
    assert result.deduplicated == 1
    assert result.converted[0].aliases == {"lm_head.weight": "transformer.wte.weight"}
    loaded = GPT2LMHeadModel.from_pretrained(tmp_path / "out").eval()
    ids = torch.tensor([[2, 4, 6]])
    with torch.no_grad():
        assert torch.equal(loaded(ids).logits, model(ids).logits)


# ------------------------------------------------------------------ refusals
def torch_zip_with(data_pkl: bytes, records: dict[str, bytes], path: Path) -> Path:
    """A torch.save-shaped zip whose data.pkl is ``data_pkl`` (crafted by the test)."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        z.writestr("archive/data.pkl", data_pkl)
        z.writestr("archive/byteorder", "little")
        for key, raw in records.items():
            z.writestr(f"archive/data/{key}", raw)
        z.writestr("archive/version", "3\n")
    return path


def assert_refused(src: Path, dst: Path, rule: str = "MLG501") -> ConversionRefused:
    with pytest.raises(ConversionRefused) as info:
        convert_model(src, dst)
    assert info.value.findings
    assert any(f.rule_id == rule for f in info.value.findings)
    assert not dst.exists()
    assert not [p for p in dst.parent.iterdir() if p.name.startswith(f".{dst.name}")]
    return info.value


def test_refuses_classic_os_system_pickle(tmp_path: Path, marker_dir: Path) -> None:
    src = tmp_path / "evil.bin"
    src.write_bytes(payloads.os_system("convert-os-system"))
    refused = assert_refused(src, tmp_path / "evil.safetensors")
    assert "os.system" in refused.findings[0].message
    assert not (marker_dir / "PWNED-convert-os-system").exists()


def test_refuses_payload_inside_torch_zip_next_to_real_tensors(tmp_path: Path) -> None:
    legit = tmp_path / "legit.pt"
    torch.save({"w": torch.ones(3)}, legit)
    with zipfile.ZipFile(legit) as z:
        records = {"0": z.read("legit/data/0")}
        data = z.read("legit/data.pkl")
    # The discarded result of os.system still runs under torch.load: prepend it, then POP.
    evil = payloads.os_system("convert-zip")[:-1] + b"0" + data.removeprefix(b"\x80\x02")
    src = torch_zip_with(evil, records, tmp_path / "evil.pt")
    refused = assert_refused(src, tmp_path / "out.safetensors")
    assert refused.findings[0].location.members == ("archive/data.pkl",)


def test_refuses_unknown_classes_even_if_harmless(tmp_path: Path) -> None:
    import argparse

    src = tmp_path / "args.pt"
    torch.save({"w": torch.ones(2), "args": argparse.Namespace(lr=0.1)}, src)
    refused = assert_refused(src, tmp_path / "args.safetensors")
    assert "argparse.Namespace" in refused.findings[0].message


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_refuses_torchscript_and_object_arrays(tmp_path: Path) -> None:
    scripted = torch.jit.script(torch.nn.Linear(2, 2))
    torch.jit.save(scripted, tmp_path / "ts.pt")
    assert_refused(tmp_path / "ts.pt", tmp_path / "ts.safetensors")
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    assert_refused(tmp_path / "obj.npy", tmp_path / "obj.safetensors")


def test_folder_with_one_bad_pickle_writes_nothing(tmp_path: Path) -> None:
    src = tmp_path / "model"
    src.mkdir()
    torch.save({"w": torch.ones(2)}, src / "pytorch_model.bin")
    (src / "training_args.bin").write_bytes(payloads.os_system("convert-folder"))
    (src / "config.json").write_text("{}", encoding="utf-8")
    assert_refused(src, tmp_path / "out")


def test_cli_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    torch.save({"w": torch.ones(2)}, tmp_path / "ok.pt")
    assert main(["convert", str(tmp_path / "ok.pt"), str(tmp_path / "ok.safetensors")]) == 0
    assert "1 tensor, " in capsys.readouterr().out
    (tmp_path / "evil.pkl").write_bytes(payloads.os_system("convert-cli"))
    assert main(["convert", str(tmp_path / "evil.pkl"), str(tmp_path / "evil.st")]) == 1
    out = capsys.readouterr()
    assert "MLG501" in out.out and "refused" in out.err
    assert main(["convert", str(tmp_path / "ok.pt"), str(tmp_path / "ok.safetensors")]) == 2
    assert "already exists" in capsys.readouterr().err


# ------------------------------------------------------------------ hostile input
class _Storage:
    def __init__(self, key: str, numel: int) -> None:
        self.key, self.numel = key, numel


class _Tensor:
    """Pickles as torch's own _rebuild_tensor_v2 call with a chosen (hostile) view."""

    def __init__(
        self, storage: _Storage, offset: int, size: tuple[int, ...], stride: tuple[int, ...]
    ):
        self.args = (storage, offset, size, stride, False, collections.OrderedDict())

    def __reduce__(self) -> tuple[object, tuple[object, ...]]:
        return torch._utils._rebuild_tensor_v2, self.args


class _Pickler(pickle.Pickler):
    def persistent_id(self, obj: object) -> object:
        if isinstance(obj, _Storage):
            return ("storage", torch.FloatStorage, obj.key, "cpu", obj.numel)
        return None


def hostile_zip(tmp_path: Path, tensor: _Tensor, record: bytes) -> Path:
    buf = io.BytesIO()
    _Pickler(buf, protocol=2).dump({"w": tensor})
    return torch_zip_with(buf.getvalue(), {"0": record}, tmp_path / "hostile.pt")


@pytest.mark.parametrize(
    ("numel", "offset", "size", "stride", "record", "message"),
    [
        (4, 0, (2, 2), (2, 1), b"\0" * 8, "holds 8 bytes"),  # record shorter than declared
        (4, 3, (2,), (1,), b"\0" * 16, "past the end"),  # offset outside the storage
        (4, 0, (2, 2), (1, 3), b"\0" * 16, "past the end"),  # stride outside the storage
        (4, 0, (2**40, 2**40), (0, 0), b"\0" * 16, "more than"),  # broadcast bomb
        (4, 0, (2,) * 65, (0,) * 65, b"\0" * 16, "at most 64"),  # absurd rank
        (4, -1, (2,), (1,), b"\0" * 16, "non-negative"),
    ],
)
def test_hostile_views_fail_cleanly(
    tmp_path: Path,
    numel: int,
    offset: int,
    size: tuple[int, ...],
    stride: tuple[int, ...],
    record: bytes,
    message: str,
) -> None:
    src = hostile_zip(tmp_path, _Tensor(_Storage("0", numel), offset, size, stride), record)
    with pytest.raises(ConversionError, match=message):
        convert_model(src, tmp_path / "out.safetensors")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hostile.pt"]


def test_truncated_and_damaged_files_fail_cleanly(tmp_path: Path) -> None:
    good = tmp_path / "good.pt"
    torch.save({"w": random_tensor(torch.float32, (64, 64))}, good)
    raw = good.read_bytes()
    legacy = tmp_path / "legacy.pt"
    torch.save({"w": torch.ones(100)}, legacy, _use_new_zipfile_serialization=False)
    cases = {
        "half.pt": raw[: len(raw) // 2],
        "no-end.pt": raw[:-30],
        "legacy-cut.pt": legacy.read_bytes()[:-50],
        "garbage.bin": b"\x80\x04\x95" + b"\xff" * 40,
        "huge-count.pkl": b"\x80\x04\x8e" + struct.pack("<Q", 2**62) + b"\0" * 8,
        "huge-frame.pkl": b"\x80\x04\x95" + struct.pack("<Q", 2**63) + b"}.",
        "npy-cut.npy": np.lib.format.magic(1, 0) + struct.pack("<H", 20) + b"{'descr': '<f4',",
    }
    out = tmp_path / "out"
    out.mkdir()
    for name, content in cases.items():
        (tmp_path / name).write_bytes(content)
        with pytest.raises(ConversionError):
            convert_model(tmp_path / name, out / f"{name}.safetensors")
    assert list(out.iterdir()) == []


def test_mutated_pickles_never_crash_nor_leave_files(tmp_path: Path) -> None:
    """Random byte flips in data.pkl: a conversion, a refusal or an error, nothing else."""
    import random

    good = tmp_path / "good.pt"
    torch.save({"a": torch.randn(3, 4), "b": torch.arange(6).reshape(2, 3).t(), "n": 3}, good)
    raw = good.read_bytes()
    with zipfile.ZipFile(good) as z:
        info = z.getinfo("good/data.pkl")
    start = info.header_offset + 30 + len(info.filename) + len(info.extra)
    rng = random.Random(6)
    out = tmp_path / "out"
    out.mkdir()
    for i in range(300):
        data = bytearray(raw)
        for _ in range(rng.randint(1, 3)):
            data[rng.randrange(start, start + info.file_size)] = rng.randrange(256)
        (tmp_path / "m.pt").write_bytes(data)
        try:
            convert_model(tmp_path / "m.pt", out / f"{i}.safetensors")
        except (ConversionError, ConversionRefused):
            assert not (out / f"{i}.safetensors").exists()
    assert not [p for p in out.iterdir() if p.suffix == ".part"]


def test_folder_keeps_existing_safetensors_and_converts_into_a_folder(tmp_path: Path) -> None:
    src = tmp_path / "model"
    src.mkdir()
    torch.save({"w": torch.ones(2)}, src / "pytorch_model.bin")
    (src / "model.safetensors").write_bytes(b"kept as it is")
    np.savez_compressed(src / "extra.npz", f=np.asfortranarray(np.arange(6.0).reshape(2, 3)))
    result = convert_model(src, tmp_path / "out")
    assert result.superseded == (src / "pytorch_model.bin",)
    assert (tmp_path / "out" / "model.safetensors").read_bytes() == b"kept as it is"
    extra = load_file(tmp_path / "out" / "extra.safetensors")["f"].numpy()
    assert np.array_equal(extra, np.arange(6.0).reshape(2, 3))
    single = tmp_path / "single"
    single.mkdir()
    assert convert_model(src / "pytorch_model.bin", single).converted[0].destination == (
        single / "model.safetensors"
    )
