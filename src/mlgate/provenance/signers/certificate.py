"""OMS signing with a private key plus an X.509 certificate chain.

The bundle carries ``x509CertificateChain`` (leaf first, then the chain given at signing), as
model_signing's ``sign certificate`` writes it. Path building and validation are
cryptography's RFC 5280 verifier (``cryptography.x509.verification``), not ours: chain to a
trusted certificate, validity, basicConstraints CA:true and pathLen on every issuer, keyUsage
keyCertSign on CAs, unknown critical extensions refused (issue 15: the hand-written checks it
replaces skipped pathLen, keyUsage and critical extensions). On top of its CA/B Forum
defaults the policy is a code-signing one: the leaf must carry keyUsage digitalSignature and
extendedKeyUsage codeSigning, need not carry a subjectAltName, and key identifiers are optional
(model_signing accepts chains without them).

Like model_signing (``sign_certificate.Verifier._verify_certificates``), the chain is checked
at the leaf's notBefore, since the bundle has no trusted timestamp; a leaf whose notBefore lies
in the future is checked at the present instead, and so refused as not yet valid.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID
from cryptography.x509.verification import (
    Criticality,
    ExtensionPolicy,
    Policy,
    PolicyBuilder,
    Store,
    VerificationError,
)

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


def _require_code_signing(
    _policy: Policy, cert: x509.Certificate, eku: x509.ExtendedKeyUsage
) -> None:
    if ExtendedKeyUsageOID.CODE_SIGNING not in eku:
        raise ValueError(
            f"extendedKeyUsage of {subject_of(cert)} lacks codeSigning (has {_names(eku)})"
        )


def _require_digital_signature(
    _policy: Policy, cert: x509.Certificate, usage: x509.KeyUsage
) -> None:
    if not usage.digital_signature:
        raise ValueError(f"keyUsage of {subject_of(cert)} lacks digitalSignature")


def _names(oids: x509.ExtendedKeyUsage) -> str:
    return ", ".join(getattr(o, "_name", o.dotted_string) for o in oids) or "none"


def _optional(policy: ExtensionPolicy, *kinds: type[x509.ExtensionType]) -> ExtensionPolicy:
    for kind in kinds:
        policy = policy.may_be_present(kind, Criticality.AGNOSTIC, None)
    return policy


# Issuers: CA/B Forum defaults (CA:true, pathLen, keyCertSign, no unknown critical extension),
# minus the key-identifier requirements private code-signing PKIs do not always meet.
_CA_POLICY = _optional(
    ExtensionPolicy.webpki_defaults_ca(), x509.AuthorityKeyIdentifier, x509.SubjectKeyIdentifier
)
# Leaf: a code-signing certificate, not a TLS one: EKU codeSigning replaces serverAuth/clientAuth
# and the subjectAltName (a host name in WebPKI) is optional.
_LEAF_POLICY = (
    _optional(
        ExtensionPolicy.webpki_defaults_ee(),
        x509.AuthorityKeyIdentifier,
        x509.SubjectAlternativeName,
    )
    .require_present(x509.ExtendedKeyUsage, Criticality.AGNOSTIC, _require_code_signing)
    .require_present(x509.KeyUsage, Criticality.AGNOSTIC, _require_digital_signature)
)


class CertificateVerifier:
    """Verifies bundles whose leaf certificate chains up to one of ``trusted``."""

    def __init__(self, trusted: Sequence[x509.Certificate]) -> None:
        if not trusted:
            raise KeyLoadError("no trusted certificate given for certificate verification")
        self._trusted = list(trusted)
        self._store = Store(self._trusted)

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
        public_key = check_supported(leaf.public_key(), f"{source}: leaf certificate")
        verify_ecdsa(public_key, bundle.signature, pae, f"{source} ({subject_of(leaf)})")
        return f"certificate {subject_of(leaf)}"

    def _check_path(
        self, leaf: x509.Certificate, intermediates: list[x509.Certificate], source: str
    ) -> None:
        when = min(leaf.not_valid_before_utc, dt.datetime.now(dt.UTC))
        verifier = (
            PolicyBuilder()
            .store(self._store)
            .time(when)
            .max_chain_depth(_MAX_DEPTH)
            .extension_policies(ca_policy=_CA_POLICY, ee_policy=_LEAF_POLICY)
            .build_client_verifier()
        )
        try:
            verifier.verify(leaf, intermediates)
        except (VerificationError, x509.UnsupportedGeneralNameType) as e:
            carried = ", ".join(subject_of(c) for c in intermediates) or "none"
            stale = _out_of_date([leaf, *intermediates, *self._trusted], when)
            raise SignatureInvalid(
                f"{source}: certificate {subject_of(leaf)} does not chain to a trusted root "
                f"at {when:%Y-%m-%d %H:%M:%S} UTC (intermediates in the bundle: {carried}): {e}"
                f"{stale}"
            ) from e


def _out_of_date(certs: list[x509.Certificate], when: dt.datetime) -> str:
    """Names the certificates not valid at ``when``: the verifier's message does not say which."""
    names = [
        f"{subject_of(c)} (valid {c.not_valid_before_utc:%Y-%m-%d %H:%M} to "
        f"{c.not_valid_after_utc:%Y-%m-%d %H:%M} UTC)"
        for c in certs
        if not c.not_valid_before_utc <= when <= c.not_valid_after_utc
    ]
    return f"; not valid then: {', '.join(names)}" if names else ""
