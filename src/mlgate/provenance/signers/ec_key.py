"""OMS signing with an elliptic-curve private key (model_signing's ``sign key``/``verify key``).

The bundle identifies the key only by a hint (hex SHA-256 of its SPKI PEM); the verifier is
given the public key out of band. ECDSA uses the curve's matching SHA-2 hash.
"""

from __future__ import annotations

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ec

from mlgate.provenance.keys import curve_label, hash_for, key_hint
from mlgate.provenance.oms import Bundle, VerificationMaterial
from mlgate.provenance.signing_errors import SignatureInvalid


def describe_key(key: ec.EllipticCurvePublicKey) -> str:
    """Short human description of a public key: curve and hint prefix."""
    return f"EC {curve_label(key)} key sha256:{key_hint(key)[:16]}"


def verify_ecdsa(key: ec.EllipticCurvePublicKey, signature: bytes, data: bytes, what: str) -> None:
    """Verify a DER ECDSA signature or raise :class:`SignatureInvalid` naming ``what``."""
    try:
        key.verify(signature, data, ec.ECDSA(hash_for(key)))
    except InvalidSignature as e:
        raise SignatureInvalid(f"{what}: the signature does not verify") from e


class EcKeySigner:
    """Signs with an in-memory EC private key."""

    def __init__(self, private_key: ec.EllipticCurvePrivateKey) -> None:
        self._key = private_key

    @property
    def description(self) -> str:
        return describe_key(self._key.public_key())

    def sign(self, data: bytes) -> bytes:
        return self._key.sign(data, ec.ECDSA(hash_for(self._key.public_key())))

    def verification_material(self) -> VerificationMaterial:
        return VerificationMaterial(key_hint=key_hint(self._key.public_key()))


class EcKeyVerifier:
    """Verifies bundles signed by the private half of ``public_key``."""

    def __init__(self, public_key: ec.EllipticCurvePublicKey, name: str = "the public key") -> None:
        self._key = public_key
        self._name = name

    def verify(self, bundle: Bundle, pae: bytes, source: str) -> str:
        if bundle.material.certificates:
            raise SignatureInvalid(
                f"{source}: signed with a certificate, not a bare key; verify it with "
                "--certificate-chain"
            )
        hint = bundle.material.key_hint
        # model_signing 1.x rejects a hint that names another key; older bundles carry none.
        if hint is not None and hint != key_hint(self._key):
            raise SignatureInvalid(
                f"{source}: signed by another key (hint {hint[:16]}...), not by {self._name} "
                f"({describe_key(self._key)})"
            )
        verify_ecdsa(self._key, bundle.signature, pae, f"{source} with {self._name}")
        return describe_key(self._key)
