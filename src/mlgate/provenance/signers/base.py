"""The two protocols every signing backend implements."""

from __future__ import annotations

from typing import Protocol

from mlgate.provenance.oms import Bundle, VerificationMaterial


class Signer(Protocol):
    """Produces the DSSE signature and the bundle's verification material."""

    @property
    def description(self) -> str:
        """Who signs, for messages (e.g. ``EC P-256 key sha256:ab12...``)."""
        ...

    def sign(self, data: bytes) -> bytes:
        """Return the DER ECDSA signature of ``data`` (the DSSE PAE bytes)."""
        ...

    def verification_material(self) -> VerificationMaterial:
        """What the bundle records to identify the signing key or certificate."""
        ...


class Verifier(Protocol):
    """Checks a bundle's signature against a trusted key or trust root."""

    def verify(self, bundle: Bundle, pae: bytes, source: str) -> str:
        """Verify the signature over ``pae``; return a description of the signer.

        Raises:
            SignatureInvalid: the signature was not made by the trusted key / chain.
        """
        ...
