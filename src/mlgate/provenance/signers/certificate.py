"""OMS signing with a private key plus an X.509 certificate chain.

The bundle carries ``x509CertificateChain`` (leaf first, then the chain given at signing), as
model_signing's ``sign certificate`` writes it. Verification builds a path from the leaf through
the carried intermediates to one of the trusted certificates, checking each issuer's signature,
CA flag and validity. Like model_signing (``sign_certificate.Verifier._verify_certificates``),
validity is checked at the leaf's notBefore (the bundle has no trusted timestamp), and the leaf
must allow digital signatures (KeyUsage) or code signing (ExtendedKeyUsage).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID

from mlgate.provenance.keys import check_supported
from mlgate.provenance.oms import Bundle, VerificationMaterial
from mlgate.provenance.signers.ec_key import EcKeySigner, verify_ecdsa
from mlgate.provenance.signing_errors import KeyLoadError, SignatureInvalid

_MAX_DEPTH = 8


def load_certificates(paths: Sequence[Path]) -> list[x509.Certificate]:
    """Load every PEM certificate from ``paths`` (each file may hold several)."""
    certs: list[x509.Certificate] = []
    for path in paths:
        try:
            certs.extend(x509.load_pem_x509_certificates(path.read_bytes()))
        except OSError as e:
            raise KeyLoadError(f"cannot read certificate file {path}: {e.strerror or e}") from e
        except ValueError as e:
            raise KeyLoadError(f"{path}: not a PEM certificate file ({e})") from e
    return certs


def subject_of(cert: x509.Certificate) -> str:
    """RFC 4514 subject of ``cert``, for messages."""
    return cert.subject.rfc4514_string()


class CertificateSigner(EcKeySigner):
    """Signs with an EC private key and ships its certificate plus chain in the bundle."""

    def __init__(
        self,
        private_key: ec.EllipticCurvePrivateKey,
        certificate: x509.Certificate,
        chain: Sequence[x509.Certificate] = (),
    ) -> None:
        super().__init__(private_key)
        if certificate.public_key() != private_key.public_key():
            raise KeyLoadError(
                f"the certificate {subject_of(certificate)} is not for this private key"
            )
        self._chain = (certificate, *chain)

    @property
    def description(self) -> str:
        return f"certificate {subject_of(self._chain[0])}"

    def verification_material(self) -> VerificationMaterial:
        ders = tuple(c.public_bytes(serialization.Encoding.DER) for c in self._chain)
        return VerificationMaterial(certificates=ders)


class CertificateVerifier:
    """Verifies bundles whose leaf certificate chains up to one of ``trusted``."""

    def __init__(self, trusted: Sequence[x509.Certificate]) -> None:
        if not trusted:
            raise KeyLoadError("no trusted certificate given for certificate verification")
        self._trusted = list(trusted)

    def verify(self, bundle: Bundle, pae: bytes, source: str) -> str:
        if not bundle.material.certificates:
            raise SignatureInvalid(
                f"{source}: signed with a bare key, not a certificate; verify it with --key"
            )
        try:
            chain = [x509.load_der_x509_certificate(d) for d in bundle.material.certificates]
        except ValueError as e:
            raise SignatureInvalid(f"{source}: a certificate in the bundle is malformed") from e
        leaf = chain[0]
        self._check_path(leaf, chain[1:], source)
        _check_leaf_usage(leaf, source)
        public_key = check_supported(leaf.public_key(), f"{source}: leaf certificate")
        verify_ecdsa(public_key, bundle.signature, pae, f"{source} ({subject_of(leaf)})")
        return f"certificate {subject_of(leaf)}"

    def _check_path(
        self, leaf: x509.Certificate, intermediates: list[x509.Certificate], source: str
    ) -> None:
        when = leaf.not_valid_before_utc
        current = leaf
        for _ in range(_MAX_DEPTH):
            _check_validity(current, when, source)
            if current in self._trusted:
                return
            issuer = _find_issuer(current, self._trusted)
            if issuer is not None:
                _check_validity(issuer, when, source)
                return
            issuer = _find_issuer(current, intermediates)
            if issuer is None:
                raise SignatureInvalid(
                    f"{source}: certificate {subject_of(leaf)} does not chain to a trusted "
                    f"root (no trusted issuer for {subject_of(current)})"
                )
            current = issuer
        raise SignatureInvalid(f"{source}: certificate chain longer than {_MAX_DEPTH}")


def _find_issuer(cert: x509.Certificate, pool: list[x509.Certificate]) -> x509.Certificate | None:
    for candidate in pool:
        if candidate.subject != cert.issuer or not _is_ca(candidate):
            continue
        try:
            cert.verify_directly_issued_by(candidate)
        except (ValueError, TypeError, InvalidSignature):
            continue
        return candidate
    return None


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False


def _check_validity(cert: x509.Certificate, when: dt.datetime, source: str) -> None:
    if not cert.not_valid_before_utc <= when <= cert.not_valid_after_utc:
        raise SignatureInvalid(
            f"{source}: certificate {subject_of(cert)} was not valid at signing time {when}"
        )


def _check_leaf_usage(leaf: x509.Certificate, source: str) -> None:
    try:
        if leaf.extensions.get_extension_for_class(x509.KeyUsage).value.digital_signature:
            return
    except x509.ExtensionNotFound:
        pass
    try:
        usages = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        if ExtendedKeyUsageOID.CODE_SIGNING in usages:
            return
    except x509.ExtensionNotFound:
        pass
    raise SignatureInvalid(f"{source}: certificate {subject_of(leaf)} may not sign")
