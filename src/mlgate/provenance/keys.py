"""Loading, generating and describing elliptic-curve keys for OMS signing.

OMS (like Sigstore's protobuf specs) accepts only the NIST curves P-256, P-384 and P-521, each
paired with the SHA-2 hash of matching strength (model_signing ``sign_ec_key.get_ec_key_hash``).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from mlgate.provenance.cosign_key import is_cosign_key, load_cosign_private_key
from mlgate.provenance.signing_errors import KeyLoadError

# Curve name in the CLI -> cryptography curve class; the order is the order of --help.
CURVES: dict[str, type[ec.EllipticCurve]] = {
    "P-256": ec.SECP256R1,
    "P-384": ec.SECP384R1,
    "P-521": ec.SECP521R1,
}
_SUPPORTED = {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521"}


def curve_label(key: ec.EllipticCurvePublicKey | ec.EllipticCurvePrivateKey) -> str:
    """Return the NIST name (``P-256``...) of a supported key's curve."""
    return _SUPPORTED[key.curve.name]


def hash_for(key: ec.EllipticCurvePublicKey) -> hashes.HashAlgorithm:
    """The digest OMS pairs with the curve: SHA-256/384/512 for P-256/384/521."""
    size = key.curve.key_size
    if size == 256:
        return hashes.SHA256()
    if size == 384:
        return hashes.SHA384()
    return hashes.SHA512()


def check_supported(key: object, source: str) -> ec.EllipticCurvePublicKey:
    """Return the EC public key of ``key`` or raise naming why it cannot be used."""
    if isinstance(key, ec.EllipticCurvePrivateKey):
        key = key.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey):
        kind = type(key).__name__.lstrip("_")
        raise KeyLoadError(
            f"{source}: unsupported key type {kind}; OMS signing needs an EC key on "
            "P-256, P-384 or P-521"
        )
    if key.curve.name not in _SUPPORTED:
        raise KeyLoadError(
            f"{source}: unsupported curve {key.curve.name}; use P-256, P-384 or P-521"
        )
    return key


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as e:
        raise KeyLoadError(f"cannot read {what} {path}: {e.strerror or e}") from e


def load_private_key(path: Path, password: bytes | None = None) -> ec.EllipticCurvePrivateKey:
    """Load a PEM private key (PKCS#8 or SEC1, encrypted or not) usable for OMS signing.

    cosign's encrypted keys (``ENCRYPTED SIGSTORE PRIVATE KEY``) are read too; their password
    falls back to ``$COSIGN_PASSWORD`` as in cosign.
    """
    data = _read(path, "private key")
    if is_cosign_key(data):
        cosign_key = load_cosign_private_key(data, password, str(path))
        check_supported(cosign_key, str(path))
        return cosign_key
    try:
        key = serialization.load_pem_private_key(data, password)
    except TypeError as e:
        # cryptography raises TypeError for "password given but key not encrypted" and
        # "key encrypted but no password": both are user errors about the password.
        if password is None:
            raise KeyLoadError(f"{path}: the private key is encrypted; give its password") from e
        raise KeyLoadError(f"{path}: the private key is not encrypted; omit the password") from e
    except ValueError as e:
        if password is not None and b"ENCRYPTED" in data:
            raise KeyLoadError(f"{path}: wrong password for the private key") from e
        raise KeyLoadError(f"{path}: not a PEM private key ({e})") from e
    except Exception as e:  # unsupported algorithms surface as UnsupportedAlgorithm
        raise KeyLoadError(f"{path}: cannot load private key: {e}") from e
    check_supported(key, str(path))
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return key


def load_public_key(path: Path) -> ec.EllipticCurvePublicKey:
    """Load a PEM public key (SubjectPublicKeyInfo) usable for OMS verification."""
    data = _read(path, "public key")
    try:
        key = serialization.load_pem_public_key(data)
    except Exception as e:
        raise KeyLoadError(f"{path}: not a PEM public key ({e})") from e
    return check_supported(key, str(path))


def generate_private_key(curve: str = "P-256") -> ec.EllipticCurvePrivateKey:
    """Generate a new private key on a supported curve (``P-256``, ``P-384``, ``P-521``)."""
    try:
        return ec.generate_private_key(CURVES[curve]())
    except KeyError as e:
        raise KeyLoadError(f"unsupported curve {curve}; use one of {', '.join(CURVES)}") from e


def private_pem(key: ec.EllipticCurvePrivateKey, password: bytes | None) -> bytes:
    """PKCS#8 PEM of ``key``, encrypted with the best available scheme when a password is set."""
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(password)
        if password
        else serialization.NoEncryption()
    )
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    )


def public_pem(key: ec.EllipticCurvePublicKey) -> bytes:
    """SubjectPublicKeyInfo PEM of ``key`` (the form ``model_signing`` and openssl read)."""
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def key_hint(key: ec.EllipticCurvePublicKey) -> str:
    """The bundle's ``publicKey.hint``: hex SHA-256 of the public key's SPKI PEM.

    This is what model_signing 1.x writes and checks (``sign_ec_key._get_verification_material``).
    """
    return hashlib.sha256(public_pem(key)).hexdigest()
