"""mlgate.load: a drop-in for torch.load that never runs the file."""

from __future__ import annotations

from pathlib import Path

import ml_dtypes
import numpy as np
import payloads
import pytest
import torch

import mlgate
from mlgate.convert import ConversionRefused, IntegrityError, convert_model
from mlgate.provenance import hash_model, write_lock


def bits_equal(a: torch.Tensor, b: torch.Tensor) -> bool:
    a, b = a.contiguous().reshape(-1), b.contiguous().reshape(-1)
    return a.dtype == b.dtype and bool(a.view(torch.uint8).equal(b.view(torch.uint8)))


def checkpoint() -> dict[str, object]:
    weight = torch.randn(4, 6)
    return {
        "model": {"w": weight, "w_t": weight.t(), "tied": weight},
        "half": torch.randn(3).to(torch.bfloat16),
        "step": 12,
        "history": [0.5, 0.25],
    }


def test_load_matches_torch_load_structure_and_bits(tmp_path: Path) -> None:
    src = tmp_path / "ckpt.pt"
    torch.save(checkpoint(), src)
    ref = torch.load(src, weights_only=True)
    got = mlgate.load(src)
    assert got["step"] == 12 and got["history"] == [0.5, 0.25]
    for name in ("w", "w_t", "tied"):
        assert bits_equal(got["model"][name], ref["model"][name])
    assert bits_equal(got["half"], ref["half"])
    assert got["model"]["tied"] is got["model"]["w"]


def test_load_safetensors_restores_tied_names(tmp_path: Path) -> None:
    src = tmp_path / "ckpt.pt"
    torch.save(checkpoint(), src)
    convert_model(src, tmp_path / "ckpt.safetensors")
    got = mlgate.load(tmp_path / "ckpt.safetensors")
    ref = torch.load(src, weights_only=True)
    assert bits_equal(got["model.tied"], ref["model"]["tied"])
    assert bits_equal(got["model.w_t"], ref["model"]["w_t"])


def test_load_as_numpy(tmp_path: Path) -> None:
    src = tmp_path / "ckpt.pt"
    torch.save(checkpoint(), src)
    got = mlgate.load(src, framework="numpy")
    assert isinstance(got["model"]["w"], np.ndarray)
    assert got["half"].dtype == ml_dtypes.bfloat16
    np.save(tmp_path / "a.npy", np.arange(6, dtype="<i2").reshape(2, 3))
    assert np.array_equal(
        mlgate.load(tmp_path / "a.npy", framework="numpy")["a"], np.arange(6).reshape(2, 3)
    )


def test_load_refuses_malicious_pickle(tmp_path: Path, marker_dir: Path) -> None:
    src = tmp_path / "evil.pt"
    src.write_bytes(payloads.os_system("load-os-system"))
    with pytest.raises(ConversionRefused) as info:
        mlgate.load(src)
    assert info.value.findings[0].rule_id == "MLG501"
    assert not (marker_dir / "PWNED-load-os-system").exists()


def test_load_verifies_the_lock_first(tmp_path: Path) -> None:
    model = tmp_path / "model"
    model.mkdir()
    torch.save({"w": torch.ones(3)}, model / "weights.pt")
    lock = tmp_path / "mlgate.lock"
    write_lock(hash_model(model), lock)
    got = mlgate.load(model / "weights.pt", lock=lock, verify_root=model)
    assert torch.equal(got["w"], torch.ones(3))
    torch.save({"w": torch.zeros(3)}, model / "weights.pt")
    with pytest.raises(IntegrityError, match="does not match the lock"):
        mlgate.load(model / "weights.pt", lock=lock, verify_root=model)


LOADS = 100


def test_verified_load_never_returns_bytes_written_after_the_check(tmp_path: Path) -> None:
    """A writer keeps rewriting the weights in place with tampered bytes while the model is
    loaded with signature verification: every load returns the signed tensors or raises."""
    import os
    import threading
    import time

    from safetensors.numpy import save_file

    from mlgate.provenance import sign_model
    from mlgate.provenance.keys import generate_private_key, public_pem

    model = tmp_path / "model"
    model.mkdir()
    signed = np.arange(64 * 1024, dtype=np.float32)
    weights = model / "model.safetensors"
    save_file({"w": -signed}, str(weights))
    tampered = weights.read_bytes()
    save_file({"w": signed}, str(weights))
    original = weights.read_bytes()
    assert len(tampered) == len(original)
    key = generate_private_key()
    sign_model(model, key)
    public = tmp_path / "key.pub"
    public.write_bytes(public_pem(key.public_key()))

    stop = threading.Event()

    def writer() -> None:
        fd = os.open(weights, os.O_WRONLY)  # in place: same inode, same size, torn reads too
        try:
            while not stop.is_set():
                for data in (tampered, original):
                    os.pwrite(fd, data, 0)
                    time.sleep(0.001)  # let loads also run between two rewrites
        finally:
            os.close(fd)

    thread = threading.Thread(target=writer)
    thread.start()
    outcomes = {"signed": 0, "refused": 0, "tampered": 0}
    try:
        for _ in range(LOADS):
            try:
                got = mlgate.load(weights, public_key=public, verify_root=model)
            except IntegrityError:
                outcomes["refused"] += 1
                continue
            outcomes["signed" if np.array_equal(got["w"].numpy(), signed) else "tampered"] += 1
    finally:
        stop.set()
        thread.join()
    assert outcomes["tampered"] == 0, outcomes
    assert outcomes["signed"] + outcomes["refused"] == LOADS
