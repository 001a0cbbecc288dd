"""Errors of model signing and signature verification.

They derive from :class:`ProvenanceError`. :class:`SignatureInvalid` means "not verified"
(exit 1); the others mean the operation could not be completed (exit 2).
"""

from __future__ import annotations

from mlgate.provenance.errors import ProvenanceError


class KeyLoadError(ProvenanceError):
    """A key or certificate cannot be used: unreadable, wrong password, wrong type or curve."""


class SignatureFormatError(ProvenanceError):
    """A signature file is not a well-formed OMS Sigstore bundle (or cannot be read)."""


class SignatureInvalid(ProvenanceError):
    """The signature does not verify, or the model does not match what was signed."""


class SignatureUnsupported(ProvenanceError):
    """A well-formed signature uses a variant mlgate cannot check (e.g. shard manifests)."""
