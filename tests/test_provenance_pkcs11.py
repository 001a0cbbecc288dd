"""OMS signing with a key on a real PKCS#11 token (SoftHSM2): CLI, API, reference interop, errors.

Each test module run creates its own SoftHSM token in a temporary folder and generates the EC key
pair ON the token, so the private key is never outside it. Without SoftHSM the tests skip on a
developer machine but fail in CI (``CI=true``), where ``.ci/run`` installs it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from mlgate.cli import main
from mlgate.errors import ExitCode
from mlgate.provenance import sign_model, verify_model
from mlgate.provenance.signers.pkcs11 import Pkcs11Signer, Pkcs11UriError, parse_uri
from mlgate.provenance.signing_errors import KeyLoadError

MODULE = os.environ.get("SOFTHSM2_MODULE", "/usr/lib/softhsm/libsofthsm2.so")
TOKEN = "mlgate-test"
PIN = "1234"
LABEL = "model-key"
FILES = {"weights.bin": b"\x00\x01" * 4096, "config.json": b'{"a": 1}', "sub/tok.txt": b"hi"}


@dataclass(frozen=True)
class Hsm:
    """A SoftHSM token holding an EC P-256 key pair labelled ``LABEL``."""

    base_uri: str  # token and object, no PIN

    def uri(self, pin: str | None = PIN, **extra: str) -> str:
        query = f"?module-path={MODULE}" + (f"&pin-value={pin}" if pin is not None else "")
        return self.base_uri + "".join(f";{k}={v}" for k, v in extra.items()) + query


def _softhsm_missing() -> str | None:
    if shutil.which("softhsm2-util") is None:
        return "softhsm2-util not found (apt-get install softhsm2)"
    if not Path(MODULE).is_file():
        return f"SoftHSM PKCS#11 module {MODULE} not found (apt-get install softhsm2)"
    return None


@pytest.fixture(scope="module")
def hsm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hsm]:
    missing = _softhsm_missing()
    if missing is not None:
        # CI must prove PKCS#11 signing works; only a developer laptop may lack SoftHSM.
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true but {missing}")
        pytest.skip(missing)
    import pkcs11
    from pkcs11.util.ec import encode_named_curve_parameters

    root = tmp_path_factory.mktemp("softhsm")
    (root / "tokens").mkdir()
    conf = root / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {root / 'tokens'}\nobjectstore.backend = file\n")
    old = os.environ.get("SOFTHSM2_CONF")
    # SoftHSM reads the variable when the module initialises, so set it before loading it.
    os.environ["SOFTHSM2_CONF"] = str(conf)
    try:
        init = ["softhsm2-util", "--init-token", "--free", "--label", TOKEN, "--pin", PIN]
        subprocess.run(
            [*init, "--so-pin", "5678"],
            check=True,
            capture_output=True,
        )
        token = pkcs11.lib(MODULE).get_token(token_label=TOKEN)
        with token.open(rw=True, user_pin=PIN) as session:
            params = session.create_domain_parameters(
                pkcs11.KeyType.EC,
                {pkcs11.Attribute.EC_PARAMS: encode_named_curve_parameters("secp256r1")},
                local=True,
            )
            params.generate_keypair(store=True, label=LABEL, id=b"\x01\x02")
        yield Hsm(f"pkcs11:token={TOKEN};object={LABEL}")
    finally:
        if old is None:
            os.environ.pop("SOFTHSM2_CONF", None)
        else:
            os.environ["SOFTHSM2_CONF"] = old


@pytest.fixture
def model(tmp_path: Path) -> Path:
    root = tmp_path / "model"
    for name, data in FILES.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    return root


def test_api_sign_verifies_with_token_public_key(hsm: Hsm, model: Path) -> None:
    signer = Pkcs11Signer(hsm.uri())
    assert "on PKCS#11 token 'mlgate-test'" in signer.description
    sig = sign_model(model, signer)
    assert sig == model / "model.sig"
    result = verify_model(model, signer.public_key)
    assert result.verified, result.problems
    assert result.files == len(FILES)
    (model / "weights.bin").write_bytes(b"\x00\x03" + FILES["weights.bin"][2:])
    assert "changed: weights.bin" in verify_model(model, signer.public_key).problems[0]


def test_cli_sign_with_pin_file_verifies_with_mlgate_and_reference(
    hsm: Hsm, model: Path, tmp_path: Path
) -> None:
    model_signing = pytest.importorskip("model_signing")
    pin = tmp_path / "pin"
    pin.write_text(PIN + "\n")
    pub = tmp_path / "token.pub"
    pub.write_bytes(Pkcs11Signer(hsm.uri(pin=None), PIN).public_pem())
    argv = ["sign", str(model), "--pkcs11-uri", hsm.uri(pin=None), "--pin-file", str(pin)]
    assert main(argv) == 0
    assert main(["verify", str(model), "--key", str(pub)]) == ExitCode.CLEAN
    model_signing.verifying.Config().use_elliptic_key_verifier(public_key=pub).set_hashing_config(
        model_signing.hashing.Config().set_ignored_paths(paths=["model.sig"])
    ).verify(model, model / "model.sig")
    (model / "sub" / "tok.txt").unlink()
    assert main(["verify", str(model), "--key", str(pub)]) == ExitCode.UNSAFE


def test_key_selected_by_id(hsm: Hsm, model: Path) -> None:
    uri = f"pkcs11:token={TOKEN};id=%01%02?module-path={MODULE}&pin-value={PIN}"
    signer = Pkcs11Signer(uri)
    sign_model(model, signer)
    assert verify_model(model, signer.public_key).verified


def test_wrong_pin_names_the_token(hsm: Hsm) -> None:
    with pytest.raises(KeyLoadError, match="token 'mlgate-test': wrong PIN"):
        Pkcs11Signer(hsm.uri(pin="9999"))


def test_wrong_object_label(hsm: Hsm) -> None:
    uri = f"pkcs11:token={TOKEN};object=nope?module-path={MODULE}&pin-value={PIN}"
    with pytest.raises(KeyLoadError, match="no EC public key object='nope'"):
        Pkcs11Signer(uri)


def test_wrong_token_label(hsm: Hsm) -> None:
    uri = f"pkcs11:token=other;object={LABEL}?module-path={MODULE}&pin-value={PIN}"
    with pytest.raises(KeyLoadError, match="token 'other' not found"):
        Pkcs11Signer(uri)


def test_cli_errors(hsm: Hsm, model: Path, tmp_path: Path) -> None:
    assert main(["sign", str(model), "--pkcs11-uri", hsm.uri(pin="0000")]) == ExitCode.ERROR
    assert main(["sign", str(model), "--pkcs11-uri", "pkcs11:object=x;bogus=1"]) == ExitCode.ERROR
    key = tmp_path / "k.pem"
    key.write_text("unused")
    both = ["sign", str(model), "--pkcs11-uri", hsm.uri(), "--key", str(key)]
    assert main(both) != 0
    assert not (model / "model.sig").exists()


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("file:///key.pem", "not a PKCS#11 URI"),
        ("pkcs11:token=t", "name the key with object= or id="),
        ("pkcs11:object=k;colour=red", "unsupported attribute 'colour'"),
        ("pkcs11:object=k;object=j", "'object' given twice"),
        ("pkcs11:object=k%zz", "bad percent-encoding"),
        ("pkcs11:object=k;type=public", "type=public cannot sign"),
        ("pkcs11:object", "'object' has no value"),
    ],
)
def test_bad_uris(uri: str, message: str) -> None:
    with pytest.raises(Pkcs11UriError, match=message):
        parse_uri(uri)


def test_uri_decoding_and_pin_redaction() -> None:
    parsed = parse_uri("pkcs11:token=My%20Token;object=k%3Bey;id=%00%ff?pin-value=s3cret")
    assert parsed.token_label == "My Token"
    assert parsed.object_label == "k;ey"
    assert parsed.object_id == b"\x00\xff"
    with pytest.raises(Pkcs11UriError) as info:
        Pkcs11Signer("pkcs11:object=k?pin-value=s3cret")  # no module-path
    assert "s3cret" not in str(info.value)
    assert "module-path" in str(info.value)


def test_pubkey_exports_the_token_key_for_verification(
    hsm: Hsm, model: Path, tmp_path: Path
) -> None:
    pin = tmp_path / "pin"
    pin.write_text(PIN + "\n")
    pub = tmp_path / "exported.pub"
    uri = hsm.uri(pin=None)
    assert main(["pubkey", "--pkcs11-uri", uri, "--pin-file", str(pin), "-o", str(pub)]) == 0
    assert main(["sign", str(model), "--pkcs11-uri", uri, "--pin-file", str(pin)]) == 0
    assert main(["verify", str(model), "--key", str(pub)]) == ExitCode.CLEAN
