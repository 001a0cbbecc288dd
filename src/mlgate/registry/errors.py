"""Errors of the registry stage. All are :class:`mlgate.errors.MlgateError` (exit code 2)."""

from __future__ import annotations

from mlgate.errors import MlgateError


class RegistryError(MlgateError):
    """A registry operation could not be carried out."""


class NotFound(RegistryError):
    """The named model, version, alias or user does not exist."""


class PermissionDenied(RegistryError):
    """The acting identity lacks the role the operation needs."""


class Unauthenticated(PermissionDenied):
    """A hub request carried no valid token (missing, unknown, expired or revoked)."""


class TransitionRefused(RegistryError):
    """The lifecycle forbids this change (e.g. publishing a rejected version)."""


class IngestRefused(RegistryError):
    """The source cannot be ingested (bad names, limits); nothing was recorded."""


class SchemaOutdated(RegistryError):
    """The database schema is older than this mlgate; run ``mlgate registry migrate``."""
