"""cosign-compatible blob signatures and cosign's encrypted key format (no cosign binary here)."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from mlgate.cli import main
from mlgate.provenance.cosign_key import cosign_private_pem, load_cosign_private_key
from mlgate.provenance.keys import generate_private_key, load_private_key, public_pem
from mlgate.provenance.signers.cosign_blob import (
    BUNDLE_MEDIA_TYPE,
    cosign_hint,
    sign_blob,
    verify_blob,
)
from mlgate.provenance.signing_errors import KeyLoadError

DATA = Path(__file__).parent / "data" / "cosign"
REAL_KEY = DATA / "sigstore_key_hello.key"  # from sigstore/cosign pkg/cosign/keys_test.go
REAL_PUB = DATA / "sigstore_key_hello.pub"


@pytest.fixture(scope="module")
def key() -> ec.EllipticCurvePrivateKey:
    return generate_private_key("P-256")


@pytest.fixture
def blob(tmp_path: Path) -> Path:
    path = tmp_path / "model.gguf"
    path.write_bytes(b"GGUF" + bytes(range(256)) * 64)
    return path


@pytest.fixture
def run(capsys: pytest.CaptureFixture[str]) -> Callable[..., tuple[int, str]]:
    def invoke(*args: str) -> tuple[int, str]:
        code = main(list(args))
        out = capsys.readouterr()
        return code, out.out + out.err

    return invoke


def test_sig_is_base64_der_ecdsa_sha256(blob: Path, key: ec.EllipticCurvePrivateKey) -> None:
    [sig] = sign_blob(blob, key)
    assert sig == blob.with_name("model.gguf.sig")
    der = base64.b64decode(sig.read_text(), validate=True)
    # What cosign verify-blob does with a .sig: ECDSA-SHA256 over the blob's bytes.
    key.public_key().verify(der, blob.read_bytes(), ec.ECDSA(hashes.SHA256()))
    assert verify_blob(blob, key.public_key()).verified


def test_bundle_layout(blob: Path, key: ec.EllipticCurvePrivateKey, tmp_path: Path) -> None:
    bundle = tmp_path / "b.sigstore.json"
    sign_blob(blob, key, bundle_path=bundle)
    doc = json.loads(bundle.read_text())
    assert set(doc) == {"mediaType", "verificationMaterial", "messageSignature"}
    assert doc["mediaType"] == BUNDLE_MEDIA_TYPE
    spki = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    hint = base64.b64encode(hashlib.sha256(spki).digest()).decode()
    assert doc["verificationMaterial"] == {"publicKey": {"hint": hint}}
    digest = doc["messageSignature"]["messageDigest"]
    assert digest == {
        "algorithm": "SHA2_256",
        "digest": base64.b64encode(hashlib.sha256(blob.read_bytes()).digest()).decode(),
    }
    der = base64.b64decode(doc["messageSignature"]["signature"])
    key.public_key().verify(der, blob.read_bytes(), ec.ECDSA(hashes.SHA256()))
    assert verify_blob(blob, key.public_key(), bundle_path=bundle).verified


def test_tampered_blob_rejected(
    blob: Path, key: ec.EllipticCurvePrivateKey, tmp_path: Path
) -> None:
    bundle = tmp_path / "b.json"
    sign_blob(blob, key, bundle_path=bundle)
    data = bytearray(blob.read_bytes())
    data[10] ^= 1
    blob.write_bytes(bytes(data))
    result = verify_blob(blob, key.public_key())
    assert not result.verified and "does not verify" in result.problems[0]
    result = verify_blob(blob, key.public_key(), bundle_path=bundle)
    assert "bundle digest" in result.problems[0] and "does not match" in result.problems[0]


def test_tampered_signature_rejected(blob: Path, key: ec.EllipticCurvePrivateKey) -> None:
    [sig] = sign_blob(blob, key)
    der = bytearray(base64.b64decode(sig.read_text()))
    der[-1] ^= 1
    sig.write_text(base64.b64encode(bytes(der)).decode())
    problems = verify_blob(blob, key.public_key()).problems
    assert problems and "signature does not verify" in problems[0]
    sig.write_text("not base64!")
    assert "not base64" in verify_blob(blob, key.public_key()).problems[0]


def test_tampered_bundle_digest_rejected(
    blob: Path, key: ec.EllipticCurvePrivateKey, tmp_path: Path
) -> None:
    bundle = tmp_path / "b.json"
    sign_blob(blob, key, bundle_path=bundle)
    doc = json.loads(bundle.read_text())
    doc["messageSignature"]["messageDigest"]["digest"] = base64.b64encode(b"\0" * 32).decode()
    bundle.write_text(json.dumps(doc))
    problems = verify_blob(blob, key.public_key(), bundle_path=bundle).problems
    assert "bundle digest 0000000000000000" in problems[0]


def test_wrong_key_rejected(blob: Path, key: ec.EllipticCurvePrivateKey, tmp_path: Path) -> None:
    bundle = tmp_path / "b.json"
    sign_blob(blob, key, bundle_path=bundle)
    other = generate_private_key("P-256").public_key()
    assert "signature does not verify" in verify_blob(blob, other).problems[0]
    problems = verify_blob(blob, other, bundle_path=bundle).problems
    assert "signed by another key" in problems[0]


def test_cosign_key_round_trip_and_wrong_password(
    tmp_path: Path, key: ec.EllipticCurvePrivateKey
) -> None:
    pem = cosign_private_pem(key, b"s3cret")
    assert pem.startswith(b"-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\n")
    body = json.loads(base64.b64decode(b"".join(pem.splitlines()[1:-1])))
    assert body["kdf"]["params"] == {"N": 32768, "r": 8, "p": 1}
    assert body["cipher"]["name"] == "nacl/secretbox"
    loaded = load_cosign_private_key(pem, b"s3cret", "k")
    assert loaded.private_numbers() == key.private_numbers()
    with pytest.raises(KeyLoadError, match="wrong password"):
        load_cosign_private_key(pem, b"wrong", "k")


def test_cosign_key_password_from_env(
    tmp_path: Path, key: ec.EllipticCurvePrivateKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "cosign.key"
    path.write_bytes(cosign_private_pem(key, b"envpw"))
    monkeypatch.delenv("COSIGN_PASSWORD", raising=False)
    with pytest.raises(KeyLoadError, match="give its password"):
        load_private_key(path)
    monkeypatch.setenv("COSIGN_PASSWORD", "envpw")
    assert load_private_key(path).private_numbers() == key.private_numbers()


def test_real_cosign_key_vector(blob: Path) -> None:
    """A key written by cosign itself (its keys_test.go ``pemsigstorekey``, password hello)."""
    real = load_private_key(REAL_KEY, b"hello")
    assert public_pem(real.public_key()) == REAL_PUB.read_bytes()
    with pytest.raises(KeyLoadError, match="wrong password"):
        load_private_key(REAL_KEY, b"wrong")
    sign_blob(blob, real)
    pub = serialization.load_pem_public_key(REAL_PUB.read_bytes())
    assert isinstance(pub, ec.EllipticCurvePublicKey)
    assert verify_blob(blob, pub).verified
    assert cosign_hint(pub) == cosign_hint(real.public_key())


def test_cli_round_trip(blob: Path, tmp_path: Path, run: Callable[..., tuple[int, str]]) -> None:
    pw = tmp_path / "pw"
    pw.write_text("pw\n")
    key = tmp_path / "cosign.key"
    code, out = run("keygen", str(key), "--cosign", "--password-file", str(pw))
    assert code == 0, out
    assert b"ENCRYPTED SIGSTORE PRIVATE KEY" in key.read_bytes()
    pub = str(key) + ".pub"
    bundle = tmp_path / "model.sigstore.json"
    code, out = run(
        "sign",
        "--blob",
        str(blob),
        "--key",
        str(key),
        "--password-file",
        str(pw),
        "--bundle",
        str(bundle),
    )
    assert code == 0, out
    assert run("verify", "--blob", str(blob), "--key", pub)[0] == 0
    code, out = run("verify", "--blob", str(blob), "--key", pub, "--bundle", str(bundle))
    assert code == 0 and "blob: verified" in out, out
    blob.write_bytes(b"changed")
    code, out = run("verify", "--blob", str(blob), "--key", pub, "--bundle", str(bundle))
    assert code == 1 and "does not match" in out, out
    code, out = run("verify", "--blob", str(blob))
    assert code == 2, out


def test_cli_sign_with_real_cosign_key_and_env_password(
    blob: Path, run: Callable[..., tuple[int, str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COSIGN_PASSWORD", "hello")
    code, out = run("sign", "--blob", str(blob), "--key", str(REAL_KEY))
    assert code == 0, out
    code, out = run("verify", "--blob", str(blob), "--key", str(REAL_PUB))
    assert code == 0, out
    sig = blob.with_name(blob.name + ".sig")
    sig.unlink()
    password = str(DATA / "sigstore_key_hello.password")
    monkeypatch.delenv("COSIGN_PASSWORD")
    code, out = run(
        "sign", "--blob", str(blob), "--key", str(REAL_KEY), "--password-file", password
    )
    assert code == 0 and sig.exists(), out
    monkeypatch.setenv("COSIGN_PASSWORD", "nope")
    code, out = run("sign", "--blob", str(blob), "--key", str(REAL_KEY))
    assert code == 2 and "wrong password" in out, out


def test_real_cosign_label_sec1_key_rejected_like_cosign() -> None:
    """cosign keys_test.go ``pemcosigneckey``: old COSIGN label, N=65536, SEC1 inside.

    It decrypts with "hello" (the old label and another work factor are read), but cosign's
    LoadPrivateKey rejects it for not being PKCS#8, and so does mlgate.
    """
    data = (DATA / "cosign_label_ec_sec1_hello.key").read_bytes()
    with pytest.raises(KeyLoadError, match="wrong password"):
        load_cosign_private_key(data, b"wrong", "k")
    with pytest.raises(KeyLoadError, match="PKCS#8"):
        load_cosign_private_key(data, b"hello", "k")


def test_dsse_or_malformed_bundle_cannot_complete(
    blob: Path, key: ec.EllipticCurvePrivateKey, tmp_path: Path, run: Callable[..., tuple[int, str]]
) -> None:
    pub = tmp_path / "k.pub"
    pub.write_bytes(public_pem(key.public_key()))
    bundle = tmp_path / "b.json"
    bundle.write_text(json.dumps({"mediaType": BUNDLE_MEDIA_TYPE, "dsseEnvelope": {}}))
    code, out = run("verify", "--blob", str(blob), "--key", str(pub), "--bundle", str(bundle))
    assert code == 2 and "messageSignature" in out, out
    bundle.write_text('{"mediaType": "x", "mediaType": "y"}')
    code, out = run("verify", "--blob", str(blob), "--key", str(pub), "--bundle", str(bundle))
    assert code == 1 and "duplicate JSON key" in out, out
