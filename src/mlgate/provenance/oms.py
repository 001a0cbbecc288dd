"""The OpenSSF Model Signing (OMS) v1.0 signature format, written and read without model_signing.

A signature is a Sigstore bundle v0.3 (https://docs.sigstore.dev/about/bundle/) whose
``dsseEnvelope`` (DSSE v1, https://github.com/secure-systems-lab/dsse/blob/v1.0.0/protocol.md)
carries an in-toto Statement v1 (https://github.com/in-toto/attestation/tree/main/spec/v1) with
predicate type ``https://model_signing/signature/v1.0``. The layout mirrors the reference
implementation, model_signing 1.1.1 (``_signing/signing.py``, ``sign_sigstore_pb.py``,
``sign_ec_key.py``): the predicate lists every file as a resource ``{name, algorithm, digest}``
sorted by path, and the single subject's sha256 digest is SHA-256 over the concatenated raw
resource digests in that order.

Parsing is strict: duplicate JSON keys, unknown top-level fields, non-canonical base64, more than
one DSSE signature, or a root digest that does not match the resources are all rejected.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

from mlgate.provenance.signing_errors import (
    SignatureFormatError,
    SignatureInvalid,
    SignatureUnsupported,
)

BUNDLE_MEDIA_TYPE = "application/vnd.dev.sigstore.bundle.v0.3+json"
PAYLOAD_TYPE = "application/vnd.in-toto+json"
STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://model_signing/signature/v1.0"
_PREDICATE_TYPE_V01 = "https://model_signing/Digests/v0.1"
# model_signing.hashing.Config ignores these by default (``hash``: ".git/", ".gitattributes",
# ".github/", ".gitignore"); a path is ignored when it lies at or below one of them.
GIT_PATHS: tuple[str, ...] = (".git", ".gitattributes", ".github", ".gitignore")
# Name of a single-file model's only resource: model_signing hashes ``path.relative_to(path)``.
SINGLE_FILE_RESOURCE = "."


@dataclass(frozen=True, slots=True)
class Resource:
    """One signed file: POSIX path relative to the model root, hash algorithm, hex digest."""

    name: str
    algorithm: str
    digest: str


@dataclass(frozen=True, slots=True)
class Serialization:
    """The predicate's ``serialization`` block: how the manifest was computed."""

    hash_type: str = "sha256"
    allow_symlinks: bool = False
    ignore_paths: tuple[str, ...] = ()
    method: str = "files"


@dataclass(frozen=True, slots=True)
class Statement:
    """A decoded, self-consistent OMS statement."""

    model_name: str
    root_digest: str
    serialization: Serialization
    resources: tuple[Resource, ...]


@dataclass(frozen=True, slots=True)
class VerificationMaterial:
    """Either a public-key hint or an X.509 chain (leaf first, DER), as in the bundle."""

    key_hint: str | None = None
    certificates: tuple[bytes, ...] = ()


@dataclass(frozen=True, slots=True)
class Bundle:
    """A parsed Sigstore bundle holding one DSSE envelope."""

    payload: bytes
    payload_type: str
    signature: bytes
    material: VerificationMaterial


def sort_key(name: str) -> tuple[str, ...]:
    """Order of resources: model_signing sorts ``PurePosixPath`` objects, i.e. by components.

    This differs from plain string order: ``a/b`` sorts before ``a-b`` because ``a`` < ``a-b``.
    """
    return PurePosixPath(name).parts


def root_digest(resources: tuple[Resource, ...]) -> str:
    """SHA-256 over the raw bytes of every resource digest, in the order given."""
    hasher = hashlib.sha256()
    for resource in resources:
        hasher.update(bytes.fromhex(resource.digest))
    return hasher.hexdigest()


def encode_statement(
    model_name: str, resources: tuple[Resource, ...], serialization: Serialization
) -> bytes:
    """Serialize the in-toto statement exactly as model_signing's protobuf JSON (indent 2).

    model_signing emits ``json_format.MessageToJson`` of a protobuf Struct, whose key order is
    not stable between runs; we use the insertion order of its source for reproducibility.
    """
    ordered = tuple(sorted(resources, key=lambda r: sort_key(r.name)))
    ser: dict[str, Any] = {
        "method": serialization.method,
        "hash_type": serialization.hash_type,
        "allow_symlinks": serialization.allow_symlinks,
    }
    if serialization.ignore_paths:
        ser["ignore_paths"] = list(serialization.ignore_paths)
    statement = {
        "_type": STATEMENT_TYPE,
        "subject": [{"name": model_name, "digest": {"sha256": root_digest(ordered)}}],
        "predicateType": PREDICATE_TYPE,
        "predicate": {
            "serialization": ser,
            "resources": [
                {"name": r.name, "algorithm": r.algorithm, "digest": r.digest} for r in ordered
            ],
        },
    }
    return json.dumps(statement, indent=2, ensure_ascii=False).encode("utf-8")


def pae(payload: bytes, payload_type: str = PAYLOAD_TYPE) -> bytes:
    """DSSE v1 Pre-Authentication Encoding: the bytes actually signed.

    ``"DSSEv1" SP LEN(type) SP type SP LEN(body) SP body`` with lengths in ASCII decimal bytes.
    """
    type_bytes = payload_type.encode("utf-8")
    header = b"DSSEv1 %d %b %d " % (len(type_bytes), type_bytes, len(payload))
    return header + payload


def encode_bundle(payload: bytes, signature: bytes, material: VerificationMaterial) -> str:
    """Serialize a bundle with the same field order and compact layout as model_signing."""
    if material.certificates:
        vm: dict[str, Any] = {
            "x509CertificateChain": {
                "certificates": [{"rawBytes": _b64(der)} for der in material.certificates]
            }
        }
    else:
        vm = {"publicKey": {"hint": material.key_hint}}
    vm["tlogEntries"] = []
    bundle = {
        "mediaType": BUNDLE_MEDIA_TYPE,
        "verificationMaterial": vm,
        "dsseEnvelope": {
            "payload": _b64(payload),
            "payloadType": PAYLOAD_TYPE,
            "signatures": [{"sig": _b64(signature), "keyid": ""}],
        },
    }
    return json.dumps(bundle, separators=(",", ":"))


def parse_bundle(text: str, source: str) -> Bundle:
    """Parse and structurally validate a bundle; ``source`` names the file in errors."""
    doc = _object(_loads(text, source), f"{source}: bundle")
    _only_keys(doc, {"mediaType", "verificationMaterial", "dsseEnvelope"}, f"{source}: bundle")
    if doc.get("mediaType") != BUNDLE_MEDIA_TYPE:
        raise SignatureFormatError(
            f"{source}: media type {doc.get('mediaType')!r} is not {BUNDLE_MEDIA_TYPE}"
        )
    material = _material(_object(doc.get("verificationMaterial"), f"{source}: material"), source)
    env = _object(doc.get("dsseEnvelope"), f"{source}: dsseEnvelope")
    _only_keys(env, {"payload", "payloadType", "signatures"}, f"{source}: dsseEnvelope")
    sigs = env.get("signatures")
    if not isinstance(sigs, list) or len(sigs) != 1:
        raise SignatureFormatError(f"{source}: the DSSE envelope must hold exactly one signature")
    sig = _object(sigs[0], f"{source}: DSSE signature")
    _only_keys(sig, {"sig", "keyid"}, f"{source}: DSSE signature")
    return Bundle(
        payload=_unb64(env.get("payload"), f"{source}: DSSE payload"),
        payload_type=_string(env.get("payloadType"), f"{source}: payloadType"),
        signature=_unb64(sig.get("sig"), f"{source}: DSSE signature"),
        material=material,
    )


def decode_statement(payload: bytes, source: str) -> Statement:
    """Decode a signed statement and check that its root digest matches its resources.

    Only call this on a payload whose signature has been verified.
    """
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError as e:
        raise SignatureInvalid(f"{source}: the signed statement is not UTF-8") from e
    doc = _object(_loads(text, f"{source}: statement"), f"{source}: statement")
    if doc.get("_type") != STATEMENT_TYPE:
        raise SignatureInvalid(f"{source}: statement type {doc.get('_type')!r} is not in-toto v1")
    if doc.get("predicateType") == _PREDICATE_TYPE_V01:
        raise SignatureUnsupported(f"{source}: pre-1.0 model_signing signatures are not supported")
    if doc.get("predicateType") != PREDICATE_TYPE:
        raise SignatureInvalid(f"{source}: predicate type {doc.get('predicateType')!r} is not OMS")
    subjects = doc.get("subject")
    if not isinstance(subjects, list) or len(subjects) != 1:
        raise SignatureInvalid(f"{source}: the statement must have exactly one subject")
    subject = _object(subjects[0], f"{source}: subject")
    digest = _object(subject.get("digest"), f"{source}: subject digest")
    expected = _hex(digest.get("sha256"), f"{source}: subject sha256 digest")
    predicate = _object(doc.get("predicate"), f"{source}: predicate")
    serialization = _serialization(_object(predicate.get("serialization"), source), source)
    resources = _resources(predicate.get("resources"), source)
    actual = root_digest(resources)
    if actual != expected:
        raise SignatureInvalid(
            f"{source}: statement is inconsistent: root digest {expected} but the listed "
            f"resources hash to {actual}"
        )
    name = _string(subject.get("name"), f"{source}: subject name")
    return Statement(name, expected, serialization, resources)


def _serialization(block: dict[str, Any], source: str) -> Serialization:
    method = block.get("method")
    if method != "files":
        # Shard manifests ("shards") need shard-level hashing, which mlgate does not do yet.
        raise SignatureUnsupported(
            f"{source}: serialization method {method!r} is not supported (only 'files')"
        )
    allow = block.get("allow_symlinks")
    if not isinstance(allow, bool):
        raise SignatureInvalid(f"{source}: serialization.allow_symlinks must be a boolean")
    ignore = block.get("ignore_paths", [])
    if not isinstance(ignore, list) or not all(isinstance(p, str) for p in ignore):
        raise SignatureInvalid(f"{source}: serialization.ignore_paths must be a list of strings")
    hash_type = _string(block.get("hash_type"), f"{source}: serialization.hash_type")
    return Serialization(hash_type, allow, tuple(ignore), method)


def _resources(items: object, source: str) -> tuple[Resource, ...]:
    if not isinstance(items, list):
        raise SignatureInvalid(f"{source}: predicate.resources must be a list")
    out: list[Resource] = []
    seen: set[str] = set()
    for item in items:
        entry = _object(item, f"{source}: resource")
        name = _string(entry.get("name"), f"{source}: resource name")
        if name in seen:
            raise SignatureInvalid(f"{source}: resource {name!r} is listed twice")
        seen.add(name)
        algorithm = _string(entry.get("algorithm"), f"{source}: algorithm of {name!r}")
        out.append(Resource(name, algorithm, _hex(entry.get("digest"), f"{source}: {name!r}")))
    return tuple(out)


def _material(vm: dict[str, Any], source: str) -> VerificationMaterial:
    known = {"publicKey", "x509CertificateChain", "certificate", "tlogEntries"}
    _only_keys(vm, known | {"timestampVerificationData"}, f"{source}: verificationMaterial")
    if "x509CertificateChain" in vm:
        chain = _object(vm["x509CertificateChain"], f"{source}: x509CertificateChain")
        certs = chain.get("certificates")
        if not isinstance(certs, list) or not certs:
            raise SignatureFormatError(f"{source}: x509CertificateChain has no certificates")
        ders = tuple(
            _unb64(_object(c, f"{source}: certificate").get("rawBytes"), f"{source}: cert")
            for c in certs
        )
        return VerificationMaterial(certificates=ders)
    if "certificate" in vm:
        cert = _object(vm["certificate"], f"{source}: certificate")
        return VerificationMaterial(certificates=(_unb64(cert.get("rawBytes"), source),))
    key = _object(vm.get("publicKey"), f"{source}: verificationMaterial.publicKey")
    hint = key.get("hint")
    if hint is not None and not isinstance(hint, str):
        raise SignatureFormatError(f"{source}: publicKey.hint must be a string")
    return VerificationMaterial(key_hint=hint or None)


def _loads(text: str, source: str) -> Any:
    def no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        keys = [k for k, _ in pairs]
        if len(keys) != len(set(keys)):
            # Duplicate keys would let two parsers see two different documents.
            raise SignatureFormatError(f"{source}: duplicate JSON key")
        return dict(pairs)

    try:
        return json.loads(text, object_pairs_hook=no_duplicates)
    except json.JSONDecodeError as e:
        raise SignatureFormatError(f"{source}: not valid JSON ({e})") from e


def _object(value: object, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise SignatureFormatError(f"{what} must be a JSON object")
    return value


def _only_keys(doc: dict[str, Any], allowed: set[str], what: str) -> None:
    extra = sorted(set(doc) - allowed)
    if extra:
        raise SignatureFormatError(f"{what} has unexpected field(s): {', '.join(extra)}")


def _string(value: object, what: str) -> str:
    if not isinstance(value, str):
        raise SignatureFormatError(f"{what} must be a string")
    return value


def _hex(value: object, what: str) -> str:
    text = _string(value, what)
    try:
        bytes.fromhex(text)
    except ValueError as e:
        raise SignatureInvalid(f"{what}: digest {text!r} is not hexadecimal") from e
    if not text or text != text.lower():
        raise SignatureInvalid(f"{what}: digest {text!r} is not lower-case hexadecimal")
    return text


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(value: object, what: str) -> bytes:
    text = _string(value, what)
    try:
        data = base64.b64decode(text, validate=True)
    except binascii.Error as e:
        raise SignatureFormatError(f"{what} is not valid base64") from e
    if _b64(data) != text:
        raise SignatureFormatError(f"{what} is not canonical base64")
    return data
