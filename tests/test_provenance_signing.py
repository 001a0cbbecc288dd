"""OMS signing and verification by mlgate alone: round trips, tampering, keys, certificates, CLI."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from pki_factory import write_pki

from mlgate.cli import main
from mlgate.errors import ExitCode
from mlgate.provenance import oms, sign_model, verify_model
from mlgate.provenance.keys import generate_private_key, private_pem, public_pem
from mlgate.provenance.signing_errors import KeyLoadError, SignatureInvalid

FILES = {"weights.bin": b"\x00\x01" * 4096, "config.json": b'{"a": 1}', "sub/tok.txt": b"hi"}


def make_model(root: Path) -> Path:
    model = root / "model"
    for name, data in FILES.items():
        (model / name).parent.mkdir(parents=True, exist_ok=True)
        (model / name).write_bytes(data)
    return model


def write_key(path: Path, curve: str = "P-256", password: bytes | None = None) -> Path:
    key = generate_private_key(curve)
    path.write_bytes(private_pem(key, password))
    path.with_name(path.name + ".pub").write_bytes(public_pem(key.public_key()))
    return path


@pytest.fixture
def model(tmp_path: Path) -> Path:
    return make_model(tmp_path)


@pytest.fixture
def key(tmp_path: Path) -> Path:
    return write_key(tmp_path / "key.pem")


def pub(key: Path) -> Path:
    return key.with_name(key.name + ".pub")


def problems(model: Path, key: Path, sig: Path | None = None) -> str:
    result = verify_model(model, pub(key), sig)
    assert not result.verified
    return "\n".join(result.problems)


@pytest.mark.parametrize("curve", ["P-256", "P-384", "P-521"])
def test_round_trip_each_curve(model: Path, tmp_path: Path, curve: str) -> None:
    key = write_key(tmp_path / f"{curve}.pem", curve)
    sig = sign_model(model, key)
    assert sig == model / "model.sig"
    result = verify_model(model, pub(key))
    assert result.verified and result.files == 3, result.problems
    assert curve in result.signer


def test_statement_layout(model: Path, key: Path) -> None:
    bundle = oms.parse_bundle(sign_model(model, key).read_text(), "sig")
    statement = json.loads(bundle.payload)
    assert statement["predicateType"] == "https://model_signing/signature/v1.0"
    names = [r["name"] for r in statement["predicate"]["resources"]]
    assert names == ["config.json", "sub/tok.txt", "weights.bin"]
    assert "model.sig" in statement["predicate"]["serialization"]["ignore_paths"]
    assert statement["subject"][0]["name"] == "model"


def test_resources_sorted_by_path_components() -> None:
    # model_signing sorts PurePosixPath objects: "a/b" < "a-b" although "-" < "/" as text.
    res = tuple(oms.Resource(n, "sha256", "00") for n in ["a-b", "a/b"])
    payload = oms.encode_statement("m", res, oms.Serialization())
    assert [r["name"] for r in json.loads(payload)["predicate"]["resources"]] == ["a/b", "a-b"]


def test_pae_matches_dsse_spec_vector() -> None:
    # https://github.com/secure-systems-lab/dsse/blob/v1.0.0/protocol.md#test-vectors
    got = oms.pae(b"hello world", "http://example.com/HelloWorld")
    assert got == b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"


def test_single_file_model(tmp_path: Path, key: Path) -> None:
    single = tmp_path / "m.safetensors"
    single.write_bytes(b"tensor")
    sig = sign_model(single, key)
    assert sig == tmp_path / "m.safetensors.sig"
    assert verify_model(single, pub(key)).verified
    single.write_bytes(b"tensoR")
    assert "changed: ." in "\n".join(verify_model(single, pub(key)).problems)


@pytest.mark.parametrize("name", sorted(FILES))
def test_one_bit_flip_in_any_file_is_named(model: Path, key: Path, name: str) -> None:
    sign_model(model, key)
    data = bytearray((model / name).read_bytes())
    data[len(data) // 2] ^= 0x01
    (model / name).write_bytes(bytes(data))
    assert f"changed: {name}" in problems(model, key)


def test_added_removed_renamed_files_are_named(model: Path, key: Path) -> None:
    sign_model(model, key)
    (model / "extra.py").write_text("print('x')")
    assert "added: extra.py" in problems(model, key)
    (model / "extra.py").unlink()
    (model / "config.json").unlink()
    assert "missing: config.json" in problems(model, key)
    (model / "config.json").write_bytes(FILES["config.json"])
    (model / "weights.bin").rename(model / "weights2.bin")
    assert "renamed: weights.bin -> weights2.bin" in problems(model, key)


def _rewrite(sig: Path, edit: object) -> None:
    doc = json.loads(sig.read_text())
    edit(doc)  # type: ignore[operator]
    sig.write_text(json.dumps(doc))


def test_modified_signature_is_rejected(model: Path, key: Path) -> None:
    sig = sign_model(model, key)

    def flip(doc: dict) -> None:
        raw = bytearray(base64.b64decode(doc["dsseEnvelope"]["signatures"][0]["sig"]))
        raw[-1] ^= 0x01
        doc["dsseEnvelope"]["signatures"][0]["sig"] = base64.b64encode(raw).decode()

    _rewrite(sig, flip)
    assert "signature does not verify" in problems(model, key)


def test_modified_statement_is_rejected(model: Path, key: Path) -> None:
    sig = sign_model(model, key)

    def swap_digest(doc: dict) -> None:
        stmt = json.loads(base64.b64decode(doc["dsseEnvelope"]["payload"]))
        stmt["predicate"]["resources"][0]["digest"] = "00" * 32
        res = tuple(oms.Resource(**r) for r in stmt["predicate"]["resources"])
        stmt["subject"][0]["digest"]["sha256"] = oms.root_digest(res)  # keep it consistent
        doc["dsseEnvelope"]["payload"] = base64.b64encode(json.dumps(stmt).encode()).decode()

    _rewrite(sig, swap_digest)
    assert "signature does not verify" in problems(model, key)


def test_inconsistent_root_digest_is_rejected() -> None:
    res = (oms.Resource("a", "sha256", "11" * 32),)
    payload = json.loads(oms.encode_statement("m", res, oms.Serialization()))
    payload["predicate"]["resources"][0]["digest"] = "22" * 32
    with pytest.raises(SignatureInvalid, match="inconsistent"):
        oms.decode_statement(json.dumps(payload).encode(), "x.sig")


def test_signature_by_another_key_is_rejected(model: Path, key: Path, tmp_path: Path) -> None:
    other = write_key(tmp_path / "other.pem")
    sig = sign_model(model, other)
    assert "signed by another key" in problems(model, key)

    def drop_hint(doc: dict) -> None:  # without the hint, the ECDSA check still catches it
        doc["verificationMaterial"]["publicKey"] = {}

    _rewrite(sig, drop_hint)
    assert "signature does not verify" in problems(model, key)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d.update(mediaType="application/json"), "media type"),
        (lambda d: d.update(extra=1), "unexpected field"),
        (lambda d: d["dsseEnvelope"]["signatures"].append({"sig": ""}), "exactly one"),
        (lambda d: d["dsseEnvelope"].update(payload="!!"), "base64"),
    ],
)
def test_malformed_bundles_are_rejected(model: Path, key: Path, edit: object, message: str) -> None:
    sig = sign_model(model, key)
    _rewrite(sig, edit)
    assert message in problems(model, key)


def test_duplicate_json_keys_are_rejected(model: Path, key: Path) -> None:
    sig = sign_model(model, key)
    text = sig.read_text()
    sig.write_text(text[:-1] + ',"mediaType":"x"}')
    assert "duplicate JSON key" in problems(model, key)


def test_ignore_paths(model: Path, key: Path) -> None:
    sign_model(model, key, ignore=["sub"])
    (model / "sub" / "tok.txt").write_text("changed")
    (model / ".gitignore").write_text("*.tmp")
    assert verify_model(model, pub(key)).verified


def test_encrypted_key_and_wrong_passwords(model: Path, tmp_path: Path) -> None:
    key = write_key(tmp_path / "enc.pem", "P-384", b"s3cret")
    assert b"ENCRYPTED" in key.read_bytes()
    sign_model(model, key, password="s3cret")
    assert verify_model(model, pub(key)).verified
    with pytest.raises(KeyLoadError, match="wrong password"):
        sign_model(model, key, password="nope")
    with pytest.raises(KeyLoadError, match="encrypted; give its password"):
        sign_model(model, key)
    plain = write_key(tmp_path / "plain.pem")
    with pytest.raises(KeyLoadError, match="not encrypted"):
        sign_model(model, plain, password="x")


def test_unsupported_keys(model: Path, tmp_path: Path) -> None:
    k1 = ec.generate_private_key(ec.SECP256K1())
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    for name, k in (("k1.pem", k1), ("rsa.pem", rsa_key)):
        (tmp_path / name).write_bytes(
            k.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    with pytest.raises(KeyLoadError, match="unsupported curve secp256k1"):
        sign_model(model, tmp_path / "k1.pem")
    with pytest.raises(KeyLoadError, match="unsupported key type RSA"):
        sign_model(model, tmp_path / "rsa.pem")
    with pytest.raises(KeyLoadError, match="unsupported curve"):
        generate_private_key("secp256k1")


def test_certificate_chain(model: Path, tmp_path: Path) -> None:
    pki = write_pki(tmp_path)
    other = write_pki(tmp_path, prefix="other-")
    sign_model(model, pki["key"], certificate=pki["leaf"], certificate_chain=[pki["inter"]])
    good = verify_model(model, trust_chain=[pki["root"]])
    assert good.verified and "Model Signer" in good.signer, good.problems
    bad = verify_model(model, trust_chain=[other["root"]])
    assert "does not chain to a trusted root" in "\n".join(bad.problems)
    bare = write_key(tmp_path / "bare.pem")
    assert "signed with a certificate" in problems(model, bare)
    with pytest.raises(KeyLoadError, match="not for this private key"):
        sign_model(model, write_key(tmp_path / "k.pem"), certificate=pki["leaf"])


def test_certificate_chain_without_intermediate_is_rejected(model: Path, tmp_path: Path) -> None:
    pki = write_pki(tmp_path)
    sign_model(model, pki["key"], certificate=pki["leaf"])
    result = verify_model(model, trust_chain=[pki["root"]])
    assert "does not chain" in "\n".join(result.problems)
    assert verify_model(model, trust_chain=[pki["root"], pki["inter"]]).verified


def test_cli_keygen_sign_verify(tmp_path: Path, model: Path) -> None:
    pw = tmp_path / "pw"
    pw.write_text("hunter2\n")
    out = tmp_path / "k.pem"
    assert main(["keygen", str(out), "--curve", "P-521", "--password-file", str(pw)]) == 0
    assert b"ENCRYPTED" in out.read_bytes() and (tmp_path / "k.pem.pub").exists()
    assert main(["sign", str(model), "--key", str(out), "--password-file", str(pw)]) == 0
    assert main(["verify", str(model), "--key", str(tmp_path / "k.pem.pub")]) == ExitCode.CLEAN
    (model / "config.json").write_text("{}")
    assert main(["verify", str(model), "--key", str(tmp_path / "k.pem.pub")]) == ExitCode.UNSAFE
    assert main(["sign", str(model), "--key", str(out)]) == ExitCode.ERROR  # no password
    (model / "model.sig").unlink()
    assert main(["verify", str(model), "--key", str(tmp_path / "k.pem.pub")]) == ExitCode.ERROR


def test_cli_certificate(tmp_path: Path, model: Path) -> None:
    pki = write_pki(tmp_path)
    sig = tmp_path / "out.sig"
    args = ["sign", str(model), "--key", str(pki["key"]), "--signature", str(sig)]
    args += ["--certificate", str(pki["leaf"]), "--certificate-chain", str(pki["inter"])]
    assert main(args) == 0
    verify = ["verify", str(model), "--signature", str(sig), "--certificate-chain"]
    assert main([*verify, str(pki["root"])]) == ExitCode.CLEAN
    assert main([*verify, str(write_pki(tmp_path, "x-")["root"])]) == ExitCode.UNSAFE


def test_core_never_imports_model_signing() -> None:
    import subprocess
    import sys

    code = (
        "import sys, mlgate, mlgate.cli, mlgate.provenance.signing;"
        "assert 'model_signing' not in sys.modules, 'model_signing imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_verify_lock_and_signature_together(model: Path, key: Path, tmp_path: Path) -> None:
    lock = tmp_path / "mlgate.lock"
    assert main(["hash", str(model), "--lock-out", str(lock)]) == 0
    sign_model(model, key)
    args = ["verify", str(model), "--lock", str(lock), "--key", str(pub(key))]
    assert main(args) == ExitCode.CLEAN
    (model / "weights.bin").write_bytes(b"x")
    assert main(args) == ExitCode.UNSAFE
