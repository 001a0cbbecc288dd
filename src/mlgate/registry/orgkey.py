"""The organisation's signing key: signs published models and audit checkpoints.

The registry stores where the key is (a PEM file or a ``pkcs11:`` URI), never the key
itself, plus the public key, so that verification needs no secret.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ec

from mlgate.provenance.errors import ProvenanceError
from mlgate.provenance.keys import key_hint, load_private_key, load_public_key, public_pem
from mlgate.provenance.signers.base import Signer
from mlgate.provenance.signers.ec_key import EcKeySigner
from mlgate.registry.errors import RegistryError

PASSWORD_ENV = "MLGATE_SIGNING_KEY_PASSWORD"  # noqa: S105 - a variable name, not a secret
PIN_ENV = "MLGATE_PKCS11_PIN"


@dataclass(frozen=True)
class OrgKey:
    """A loaded signer and its public key."""

    signer: Signer
    public_key: ec.EllipticCurvePublicKey

    @property
    def key_id(self) -> str:
        """The key's hint (hex SHA-256 of its public PEM), as OMS bundles record it."""
        return key_hint(self.public_key)


def load_org_key(spec: str) -> OrgKey:
    """Load the key named by ``spec``: a PEM file path or a ``pkcs11:`` URI.

    Secrets come from the environment: ``MLGATE_SIGNING_KEY_PASSWORD`` for an encrypted PEM,
    ``MLGATE_PKCS11_PIN`` (or ``pin-value`` in the URI) for a token.
    """
    try:
        if spec.startswith("pkcs11:"):
            from mlgate.provenance.signers.pkcs11 import Pkcs11Signer  # noqa: PLC0415

            token = Pkcs11Signer(spec, os.environ.get(PIN_ENV))
            return OrgKey(token, token.public_key)
        password = os.environ.get(PASSWORD_ENV)
        private = load_private_key(Path(spec), password.encode() if password else None)
    except ProvenanceError as e:
        raise RegistryError(f"cannot load the organisation signing key: {e}") from e
    return OrgKey(EcKeySigner(private), private.public_key())


def public_key_from_pem(pem: str, where: str) -> ec.EllipticCurvePublicKey:
    """Parse a stored or user-given public key PEM."""
    from cryptography.hazmat.primitives.serialization import load_pem_public_key  # noqa: PLC0415

    try:
        key = load_pem_public_key(pem.encode())
    except ValueError as e:
        raise RegistryError(f"{where}: not a PEM public key: {e}") from e
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise RegistryError(f"{where}: not an EC public key")
    return key


def read_public_key(path: Path) -> ec.EllipticCurvePublicKey:
    """A trusted public key given on the command line."""
    try:
        return load_public_key(path)
    except ProvenanceError as e:
        raise RegistryError(str(e)) from e


def pem_text(key: ec.EllipticCurvePublicKey) -> str:
    """Public key PEM as text."""
    return public_pem(key).decode()
