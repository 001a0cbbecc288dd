"""Certificate chains of OMS signatures, checked by cryptography's RFC 5280 verifier (issue 15).

Each classic chain failure is signed for real (mlgate signs whatever chain it is given) and must
be refused at verification with a message naming why; the well-formed chains, with one or two
intermediates, must verify.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from cryptography.x509.oid import ExtendedKeyUsageOID
from pki_factory import CA, LEAF, Shape, issue, write_key, write_pem

from mlgate.cli import main
from mlgate.errors import ExitCode
from mlgate.provenance import sign_model, verify_model
from mlgate.provenance.signing import VerificationResult

HOUR, DAY = dt.timedelta(hours=1), dt.timedelta(days=1)
OLD_CA = Shape(ca=True, starts_in=-3 * DAY, lasts=10 * DAY)
EXPIRED_CA = Shape(ca=True, starts_in=-2 * DAY, lasts=DAY)


def sign_with_chain(tmp_path: Path, *shapes: Shape) -> tuple[Path, Path]:
    """Sign a model with root -> intermediates -> leaf of ``shapes``; return model and root."""
    chain = [issue("Test Root", None, shapes[0])]
    for n, shape in enumerate(shapes[1:-1]):
        chain.append(issue(f"Intermediate {n}", chain[-1], shape))
    leaf, key = issue("Model Signer", chain[-1], shapes[-1])
    model = tmp_path / "model"
    (model / "sub").mkdir(parents=True)
    (model / "weights.bin").write_bytes(b"\x01" * 4096)
    (model / "sub/config.json").write_text("{}")
    carried = [c for c, _ in chain[:0:-1]]  # leaf's issuer first, as model_signing orders it
    sign_model(
        model,
        write_key(tmp_path / "leaf.key", key),
        certificate=write_pem(tmp_path / "leaf.pem", leaf),
        certificate_chain=[write_pem(tmp_path / "chain.pem", *carried)] if carried else [],
    )
    return model, write_pem(tmp_path / "root.pem", chain[0][0])


def verify(tmp_path: Path, *shapes: Shape) -> VerificationResult:
    model, root = sign_with_chain(tmp_path, *shapes)
    return verify_model(model, trust_chain=[root])


@pytest.mark.parametrize(
    "shapes",
    [
        pytest.param((CA, CA, LEAF), id="one-intermediate"),
        pytest.param((CA, CA, CA, LEAF), id="two-intermediates"),
        pytest.param((CA, LEAF), id="leaf-issued-by-the-root"),
        pytest.param((CA, Shape(ca=True, path_length=1), CA, LEAF), id="pathLen-1-respected"),
        # Checked at the leaf's notBefore, as model_signing does: an intermediate that expired
        # after the signing certificate was issued does not void the signature.
        pytest.param(
            (OLD_CA, EXPIRED_CA, Shape(False, starts_in=-36 * HOUR)),
            id="intermediate-expired-after-signing",
        ),
    ],
)
def test_valid_chains_verify(tmp_path: Path, shapes: tuple[Shape, ...]) -> None:
    result = verify(tmp_path, *shapes)
    assert result.verified, result.problems
    assert result.signer == "certificate CN=Model Signer"


NOT_CA, PATHLEN_0 = Shape(ca=False), Shape(ca=True, path_length=0)
STALE, PATHLEN, UNKNOWN = (
    "cert is not valid at validation time",
    "path length constraint violated",
    "1.3.6.1.4.1.55555.1.1: certificate contains unaccounted-for critical extensions",
)
FAILURES = {  # id: (root, intermediates..., leaf), why
    "expired-intermediate": ((OLD_CA, EXPIRED_CA, LEAF), STALE),
    "pathLen-exceeded": ((CA, PATHLEN_0, CA, LEAF), PATHLEN),
    "root-pathLen-exceeded": ((PATHLEN_0, CA, LEAF), PATHLEN),
    "CA-false-intermediate": ((CA, NOT_CA, LEAF), "basicConstraints.cA must be asserted"),
    "intermediate-without-keyCertSign": (
        (CA, Shape(ca=True, key_cert_sign=False), LEAF),
        "keyUsage.keyCertSign must be asserted in a CA certificate",
    ),
    "wrong-EKU-on-leaf": (
        (CA, CA, Shape(ca=False, usages=(ExtendedKeyUsageOID.SERVER_AUTH,))),
        "extendedKeyUsage of CN=Model Signer lacks codeSigning (has serverAuth)",
    ),
    "leaf-without-digitalSignature": (
        (CA, CA, Shape(ca=False, digital_signature=False)),
        "keyUsage of CN=Model Signer lacks digitalSignature",
    ),
    "CA-leaf": ((CA, CA, CA), "basicConstraints.cA must not be asserted in an EE certificate"),
    "unknown-critical-on-leaf": ((CA, CA, Shape(ca=False, unknown_critical=True)), UNKNOWN),
    "unknown-critical-on-intermediate": (
        (CA, Shape(ca=True, unknown_critical=True), LEAF),
        UNKNOWN,
    ),
    "leaf-not-yet-valid": ((CA, CA, Shape(ca=False, starts_in=HOUR)), STALE),
}


@pytest.mark.parametrize(("shapes", "why"), FAILURES.values(), ids=FAILURES.keys())
def test_classic_chain_failures_are_refused(
    tmp_path: Path, shapes: tuple[Shape, ...], why: str
) -> None:
    result = verify(tmp_path, *shapes)
    assert not result.verified
    [problem] = result.problems
    assert "certificate CN=Model Signer does not chain to a trusted root" in problem
    assert why in problem


def test_message_names_the_carried_intermediates(tmp_path: Path) -> None:
    [problem] = verify(tmp_path, CA, CA, CA, Shape(ca=False, unknown_critical=True)).problems
    assert "intermediates in the bundle: CN=Intermediate 1, CN=Intermediate 0)" in problem
    assert "not valid then" not in problem


def test_message_names_the_expired_certificate(tmp_path: Path) -> None:
    [problem] = verify(tmp_path, OLD_CA, CA, EXPIRED_CA, LEAF).problems
    assert "; not valid then: CN=Intermediate 1 (valid " in problem
    assert "CN=Intermediate 0" not in problem.partition("not valid then")[2]


def test_untrusted_root_is_refused(tmp_path: Path) -> None:
    model, _ = sign_with_chain(tmp_path, CA, CA, LEAF)
    stranger = write_pem(tmp_path / "stranger.pem", issue("Other Root", None, CA)[0])
    result = verify_model(model, trust_chain=[stranger])
    assert "does not chain to a trusted root" in result.problems[0]
    assert not result.verified


def test_cli_refuses_a_bad_chain(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model, root = sign_with_chain(tmp_path, CA, Shape(ca=True, path_length=0), CA, LEAF)
    assert main(["verify", str(model), "--certificate-chain", str(root)]) == ExitCode.UNSAFE
    assert "path length constraint violated" in capsys.readouterr().out
