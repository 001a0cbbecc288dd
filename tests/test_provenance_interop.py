"""Interop with the reference OMS implementation (PyPI model-signing 1.1.1), both ways.

mlgate's signatures must verify with model_signing's Python API and CLI; model_signing's
signatures must verify with mlgate, and tampering after a reference signature must be caught.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from pathlib import Path

import pytest
from pki_factory import write_pki

from mlgate.cli import main
from mlgate.errors import ExitCode
from mlgate.provenance import sign_model, verify_model
from mlgate.provenance.keys import generate_private_key, private_pem, public_pem

model_signing = pytest.importorskip("model_signing")
CLI = Path(sys.executable).with_name("model_signing")


def make_model(root: Path) -> Path:
    model = root / "model"
    for name, data in {
        "weights.bin": b"\x07" * 10000,
        "config.json": b"{}",
        "a-b/x": b"1",
        "a/b": b"2",  # path-component order differs from text order here
        "deep/er/tok.txt": b"t",
    }.items():
        (model / name).parent.mkdir(parents=True, exist_ok=True)
        (model / name).write_bytes(data)
    return model


def write_key(path: Path, curve: str = "P-256") -> Path:
    key = generate_private_key(curve)
    path.write_bytes(private_pem(key, None))
    path.with_name(path.name + ".pub").write_bytes(public_pem(key.public_key()))
    return path


def pub(key: Path) -> Path:
    return key.with_name(key.name + ".pub")


def reference_verify_key(model: Path, key: Path, sig: Path) -> None:
    model_signing.verifying.Config().use_elliptic_key_verifier(
        public_key=pub(key)
    ).set_hashing_config(
        model_signing.hashing.Config().set_ignored_paths(paths=[sig.relative_to(model)])
    ).verify(model, sig)


def reference_sign_key(model: Path, key: Path, sig: Path) -> None:
    ignored = [sig.relative_to(model)] if sig.is_relative_to(model) else []
    model_signing.signing.Config().use_elliptic_key_signer(private_key=key).set_hashing_config(
        model_signing.hashing.Config().set_ignored_paths(paths=ignored)
    ).sign(model, sig)


def payload(sig: Path) -> dict:
    return json.loads(base64.b64decode(json.loads(sig.read_text())["dsseEnvelope"]["payload"]))


@pytest.mark.parametrize("curve", ["P-256", "P-384", "P-521"])
def test_mlgate_signature_verifies_with_reference_api(tmp_path: Path, curve: str) -> None:
    model, key = make_model(tmp_path), write_key(tmp_path / "k.pem", curve)
    sig = sign_model(model, key)
    reference_verify_key(model, key, sig)
    (model / "a/b").write_bytes(b"3")
    with pytest.raises(ValueError, match=r"Hash mismatch for .*a/b"):
        reference_verify_key(model, key, sig)


def test_mlgate_signature_verifies_with_reference_cli(tmp_path: Path) -> None:
    if not CLI.exists():
        pytest.skip("model_signing CLI not installed")
    model, key = make_model(tmp_path), write_key(tmp_path / "k.pem")
    sig = sign_model(model, key)
    cmd = [str(CLI), "verify", "key", str(model), "--signature", str(sig)]
    cmd += ["--public_key", str(pub(key))]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0 and "Verification succeeded" in done.stdout, done.stderr
    (model / "weights.bin").write_bytes(b"\x08" * 10000)
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 1 and "weights.bin" in done.stderr


def test_mlgate_single_file_signature_verifies_with_reference(tmp_path: Path) -> None:
    single, key = tmp_path / "m.bin", write_key(tmp_path / "k.pem")
    single.write_bytes(b"weights")
    sig = sign_model(single, key)
    model_signing.verifying.Config().use_elliptic_key_verifier(public_key=pub(key)).verify(
        single, sig
    )


def test_mlgate_certificate_signature_verifies_with_reference(tmp_path: Path) -> None:
    model, pki = make_model(tmp_path), write_pki(tmp_path)
    sig = sign_model(model, pki["key"], certificate=pki["leaf"], certificate_chain=[pki["inter"]])
    config = model_signing.verifying.Config().use_certificate_verifier(
        certificate_chain=[pki["root"]]
    )
    config.set_hashing_config(
        model_signing.hashing.Config().set_ignored_paths(paths=["model.sig"])
    ).verify(model, sig)


def test_statement_matches_reference_statement(tmp_path: Path) -> None:
    model, key = make_model(tmp_path), write_key(tmp_path / "k.pem")
    ours = payload(sign_model(model, key, signature_path=tmp_path / "ours.sig"))
    reference_sign_key(model, key, tmp_path / "ref.sig")
    theirs = payload(tmp_path / "ref.sig")
    assert ours["subject"] == theirs["subject"]  # same name and root digest
    assert ours["predicate"]["resources"] == theirs["predicate"]["resources"]  # same order
    for doc in (ours, theirs):
        doc["predicate"]["serialization"].pop("ignore_paths")
    assert ours == theirs
    for name in ("ours.sig", "ref.sig"):  # same bundle layout, field for field
        bundle = json.loads((tmp_path / name).read_text())
        bundle["dsseEnvelope"].pop("payload")
        bundle["dsseEnvelope"]["signatures"][0].pop("sig")
        assert bundle == {
            "mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
            "verificationMaterial": {
                "publicKey": {"hint": bundle["verificationMaterial"]["publicKey"]["hint"]},
                "tlogEntries": [],
            },
            "dsseEnvelope": {
                "payloadType": "application/vnd.in-toto+json",
                "signatures": [{"keyid": ""}],
            },
        }


@pytest.mark.parametrize("curve", ["P-256", "P-384", "P-521"])
def test_reference_signature_verifies_with_mlgate(tmp_path: Path, curve: str) -> None:
    model, key = make_model(tmp_path), write_key(tmp_path / "k.pem", curve)
    sig = model / "model.sig"
    reference_sign_key(model, key, sig)
    result = verify_model(model, pub(key))
    assert result.verified and result.files == 5, result.problems
    (model / "deep/er/tok.txt").write_bytes(b"T")
    (model / "new.bin").write_bytes(b"n")
    lines = verify_model(model, pub(key)).problems
    assert any(line.startswith("changed: deep/er/tok.txt") for line in lines)
    assert any(line.startswith("added: new.bin") for line in lines)


def test_reference_cli_signature_verifies_with_mlgate_cli(tmp_path: Path) -> None:
    if not CLI.exists():
        pytest.skip("model_signing CLI not installed")
    model, key = make_model(tmp_path), write_key(tmp_path / "k.pem")
    cmd = [str(CLI), "sign", "key", str(model), "--private_key", str(key)]
    cmd += ["--signature", str(model / "model.sig")]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert main(["verify", str(model), "--key", str(pub(key))]) == ExitCode.CLEAN
    other = write_key(tmp_path / "other.pem")
    assert main(["verify", str(model), "--key", str(pub(other))]) == ExitCode.UNSAFE


def test_reference_certificate_signature_verifies_with_mlgate(tmp_path: Path) -> None:
    model, pki = make_model(tmp_path), write_pki(tmp_path)
    sig = tmp_path / "cert.sig"
    model_signing.signing.Config().use_certificate_signer(
        private_key=pki["key"], signing_certificate=pki["leaf"], certificate_chain=[pki["inter"]]
    ).sign(model, sig)
    assert verify_model(model, signature_path=sig, trust_chain=[pki["root"]]).verified
    wrong = write_pki(tmp_path, prefix="evil-")
    result = verify_model(model, signature_path=sig, trust_chain=[wrong["root"]])
    assert "does not chain to a trusted root" in "\n".join(result.problems)


def test_pickle_hidden_in_nested_git_is_signed_like_the_reference(tmp_path: Path) -> None:
    # model_signing ignores .git only at the root: a nested .git (and a vendor's mlgate.lock)
    # is content, signed by both tools, so swapping a pickle hidden there breaks the signature.
    model, key = make_model(tmp_path), write_key(tmp_path / "k.pem")
    (model / "deep/.gitattributes").write_text("*.bin filter=lfs")
    (model / "deep/er/.git").mkdir()
    (model / "deep/er/.git/HEAD").write_text("ref")
    (model / "mlgate.lock").write_text("lock")
    sig = sign_model(model, key)
    reference_verify_key(model, key, sig)
    result = verify_model(model, pub(key))
    signed = {r.name for r in result.resources}
    assert result.verified and {"deep/er/.git/HEAD", "deep/.gitattributes", "mlgate.lock"} <= signed
    (model / "deep/er/.git/HEAD").write_bytes(b"\x80\x04cposix\nsystem\n.")
    assert "changed: deep/er/.git/HEAD" in "\n".join(verify_model(model, pub(key)).problems)
