"""cosign-compatible single-file ("blob") signatures: ``cosign sign-blob --key`` output.

Two artefacts, both checked by ``cosign verify-blob --key KEY.pub --insecure-ignore-tlog``:

* ``FILE.sig`` (cosign ``--output-signature``): base64 of the ASN.1 DER ECDSA P-256 signature
  over SHA-256 of the file's bytes.
* ``--bundle`` (cosign ``--new-bundle-format``): a Sigstore bundle v0.3 whose content is a
  ``messageSignature`` (protobuf-specs ``protos/sigstore_common.proto`` ``MessageSignature`` /
  ``HashOutput``; proto3 JSON names, bytes as base64, enum by name ``SHA2_256``). The key is
  named by ``verificationMaterial.publicKey.hint`` = base64(SHA-256(DER SPKI)), as cosign's
  bundle builder writes it (``x509.MarshalPKIXPublicKey`` then ``sha256.Sum256``). No
  transparency-log entry and no certificate: this is the offline, key-based form.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, utils

from mlgate.provenance.errors import ProvenanceError
from mlgate.provenance.signers.ec_key import describe_key
from mlgate.provenance.signing_errors import (
    KeyLoadError,
    SignatureFormatError,
    SignatureUnsupported,
)

BUNDLE_MEDIA_TYPE = "application/vnd.dev.sigstore.bundle.v0.3+json"
DIGEST_ALGORITHM = "SHA2_256"  # sigstore_common.proto HashAlgorithm
_CHUNK = 1 << 20


@dataclass(frozen=True)
class BlobVerification:
    """Outcome of :func:`verify_blob`: ``problems`` empty means verified."""

    blob: Path
    signer: str
    problems: tuple[str, ...]

    @property
    def verified(self) -> bool:
        """True when the signature (and bundle digest) match the blob and the key."""
        return not self.problems


def file_sha256(path: Path) -> bytes:
    """Raw SHA-256 of a file, streamed."""
    digest = hashlib.sha256()
    try:
        with path.open("rb") as f:
            while chunk := f.read(_CHUNK):
                digest.update(chunk)
    except OSError as e:
        raise ProvenanceError(f"cannot read {path}: {e.strerror or e}") from e
    return digest.digest()


def cosign_hint(key: ec.EllipticCurvePublicKey) -> str:
    """cosign's bundle key hint: base64 of SHA-256 over the DER SubjectPublicKeyInfo."""
    der = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b64encode(hashlib.sha256(der).digest()).decode("ascii")


def _require_p256(key: ec.EllipticCurvePublicKey, source: str) -> None:
    # cosign pairs P-256 with SHA-256; the bundle digest here is always SHA2_256.
    if key.curve.name != "secp256r1":
        raise KeyLoadError(
            f"{source}: cosign blob signatures need a P-256 key, not {key.curve.name}"
        )


def sign_digest(key: ec.EllipticCurvePrivateKey, digest: bytes) -> bytes:
    """DER ECDSA signature of a precomputed SHA-256 digest (= signing the message itself)."""
    return key.sign(digest, ec.ECDSA(utils.Prehashed(hashes.SHA256())))


def encode_bundle(key: ec.EllipticCurvePublicKey, digest: bytes, signature: bytes) -> str:
    """The Sigstore v0.3 message-signature bundle JSON for a blob signature."""
    doc = {
        "mediaType": BUNDLE_MEDIA_TYPE,
        "verificationMaterial": {"publicKey": {"hint": cosign_hint(key)}},
        "messageSignature": {
            "messageDigest": {
                "algorithm": DIGEST_ALGORITHM,
                "digest": base64.b64encode(digest).decode("ascii"),
            },
            "signature": base64.b64encode(signature).decode("ascii"),
        },
    }
    return json.dumps(doc, indent=2) + "\n"


def _write(path: Path, text: str) -> None:
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as e:
        raise ProvenanceError(f"cannot write {path}: {e.strerror or e}") from e


def sign_blob(
    blob: Path,
    key: ec.EllipticCurvePrivateKey,
    signature_path: Path | None = None,
    bundle_path: Path | None = None,
) -> list[Path]:
    """Sign ``blob``; write ``FILE.sig`` (or ``signature_path``) and the optional bundle."""
    _require_p256(key.public_key(), "the signing key")
    digest = file_sha256(blob)
    signature = sign_digest(key, digest)
    sig_path = signature_path or blob.with_name(blob.name + ".sig")
    # cosign --output-signature writes the base64 text without a trailing newline.
    _write(sig_path, base64.b64encode(signature).decode("ascii"))
    written = [sig_path]
    if bundle_path is not None:
        _write(bundle_path, encode_bundle(key.public_key(), digest, signature))
        written.append(bundle_path)
    return written


def _strict_b64(text: object, what: str) -> bytes:
    if not isinstance(text, str):
        raise SignatureFormatError(f"{what} is missing or not a string")
    try:
        return base64.b64decode("".join(text.split()), validate=True)
    except binascii.Error as e:
        raise SignatureFormatError(f"{what} is not base64") from e


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [k for k, _ in pairs]
    if len(keys) != len(set(keys)):
        raise SignatureFormatError(f"duplicate JSON key in {keys}")
    return dict(pairs)


def parse_bundle(text: str, source: str) -> tuple[str | None, bytes, bytes]:
    """Parse a message-signature bundle: (key hint or None, raw digest, DER signature)."""
    try:
        doc = json.loads(text, object_pairs_hook=_no_duplicates)
    except SignatureFormatError as e:
        raise SignatureFormatError(f"{source}: {e}") from e
    except ValueError as e:
        raise SignatureFormatError(f"{source}: not JSON ({e})") from e
    if not isinstance(doc, dict) or doc.get("mediaType") != BUNDLE_MEDIA_TYPE:
        raise SignatureFormatError(f"{source}: not a Sigstore bundle v0.3 (mediaType)")
    if "messageSignature" not in doc:
        raise SignatureUnsupported(f"{source}: bundle has no messageSignature (a DSSE bundle?)")
    material = doc.get("verificationMaterial")
    if not isinstance(material, dict):
        raise SignatureFormatError(f"{source}: bundle has no verificationMaterial")
    if "certificate" in material or "x509CertificateChain" in material:
        raise SignatureUnsupported(f"{source}: certificate bundles are not supported; use a key")
    public_key = material.get("publicKey")
    hint = public_key.get("hint") if isinstance(public_key, dict) else None
    msg = doc["messageSignature"]
    digest_doc = msg.get("messageDigest") if isinstance(msg, dict) else None
    if not isinstance(msg, dict) or not isinstance(digest_doc, dict):
        raise SignatureFormatError(f"{source}: messageSignature.messageDigest is missing")
    if digest_doc.get("algorithm") != DIGEST_ALGORITHM:
        raise SignatureUnsupported(
            f"{source}: message digest algorithm {digest_doc.get('algorithm')!r} is not SHA2_256"
        )
    digest = _strict_b64(digest_doc.get("digest"), f"{source}: messageDigest.digest")
    signature = _strict_b64(msg.get("signature"), f"{source}: messageSignature.signature")
    return (hint if isinstance(hint, str) else None), digest, signature


def _read_text(path: Path, what: str) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ProvenanceError(f"cannot read {what} {path}: {e}") from e


def verify_blob(
    blob: Path,
    key: ec.EllipticCurvePublicKey,
    signature_path: Path | None = None,
    bundle_path: Path | None = None,
    key_name: str = "the public key",
) -> BlobVerification:
    """Verify a blob against a ``.sig`` (default ``FILE.sig``) or a bundle; name each failure.

    Transparency-log entries in a bundle are not checked (``--insecure-ignore-tlog``).
    """
    _require_p256(key, key_name)
    signer = describe_key(key)
    digest = file_sha256(blob)
    problems: list[str] = []
    if bundle_path is not None:
        source = str(bundle_path)
        try:
            hint, signed_digest, signature = parse_bundle(_read_text(bundle_path, "bundle"), source)
        except SignatureFormatError as e:
            return BlobVerification(blob, signer, (str(e),))
        if hint is not None and hint != cosign_hint(key):
            problems.append(f"{source}: signed by another key (hint {hint}), not by {key_name}")
        if signed_digest != digest:
            problems.append(
                f"{source}: bundle digest {signed_digest.hex()[:16]}... does not match the blob "
                f"{blob} ({digest.hex()[:16]}...)"
            )
    else:
        sig_path = signature_path or blob.with_name(blob.name + ".sig")
        source = str(sig_path)
        try:
            signature = _strict_b64(_read_text(sig_path, "signature"), f"{source}: signature")
        except SignatureFormatError as e:
            return BlobVerification(blob, signer, (str(e),))
    if not problems:
        try:
            key.verify(signature, digest, ec.ECDSA(utils.Prehashed(hashes.SHA256())))
        except InvalidSignature:
            problems.append(f"{source}: the signature does not verify for {blob} with {key_name}")
    return BlobVerification(blob, signer, tuple(problems))
