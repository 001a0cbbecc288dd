"""Provenance stage: hash manifests of model artifacts, hash-pin lock files, signing, ML-BOM."""

from mlgate.provenance.lock import Difference, Lock, compare, read_lock, verify_lock, write_lock
from mlgate.provenance.manifest import FileDigest, Manifest, hash_model
from mlgate.provenance.signing import VerificationResult, sign_model, verify_model

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
