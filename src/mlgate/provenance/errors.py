"""Errors of the provenance stage (hashing, lock files, signing).

All derive from :class:`ProvenanceError`, itself a :class:`mlgate.errors.MlgateError`, so the
CLI maps them to exit code 2 ("could not complete").
"""

from __future__ import annotations

from mlgate.errors import MlgateError


class ProvenanceError(MlgateError):
    """A provenance operation (hash, lock, sign, verify) could not be completed."""


class SymlinkRefused(ProvenanceError):
    """A symbolic link was found where links are not allowed, or it escapes the model root."""


class LockError(ProvenanceError):
    """A lock file is missing, unreadable or malformed."""


class LockMismatch(ProvenanceError):
    """A lock file cannot be compared with a model (e.g. different hash algorithms)."""


class ContentMismatch(ProvenanceError):
    """The model's bytes are not the ones the caller recorded: refused rather than signed."""
