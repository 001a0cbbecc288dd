"""Provenance stage: hash manifests of model artifacts, hash-pin lock files, signing, ML-BOM.

The public names are loaded on first use: a module that needs one constant or error class of
this stage (the registry, the hub) does not pay for the signing stack's imports.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mlgate.provenance.lock import (
        Difference,
        Lock,
        compare,
        read_lock,
        verify_lock,
        write_lock,
    )
    from mlgate.provenance.manifest import FileDigest, Manifest, hash_model
    from mlgate.provenance.signing import VerificationResult, sign_model, verify_model

_LAZY = {
    "Difference": "mlgate.provenance.lock",
    "Lock": "mlgate.provenance.lock",
    "compare": "mlgate.provenance.lock",
    "read_lock": "mlgate.provenance.lock",
    "verify_lock": "mlgate.provenance.lock",
    "write_lock": "mlgate.provenance.lock",
    "FileDigest": "mlgate.provenance.manifest",
    "Manifest": "mlgate.provenance.manifest",
    "hash_model": "mlgate.provenance.manifest",
    "VerificationResult": "mlgate.provenance.signing",
    "sign_model": "mlgate.provenance.signing",
    "verify_model": "mlgate.provenance.signing",
}

__all__ = [
    "Difference",
    "FileDigest",
    "Lock",
    "Manifest",
    "VerificationResult",
    "compare",
    "hash_model",
    "read_lock",
    "sign_model",
    "verify_lock",
    "verify_model",
    "write_lock",
]


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'mlgate.provenance' has no attribute {name!r}")
    return getattr(importlib.import_module(_LAZY[name]), name)
