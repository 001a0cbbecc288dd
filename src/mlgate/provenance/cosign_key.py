"""cosign's encrypted private key format, read and written without cosign.

``cosign generate-key-pair`` writes a PEM block of type ``ENCRYPTED SIGSTORE PRIVATE KEY``
(older releases: ``ENCRYPTED COSIGN PRIVATE KEY``; cosign ``pkg/cosign/keys.go``
``LoadPrivateKey`` accepts both). Its body is the JSON of go-securesystemslib's
``encrypted.Encrypt``::

    {"kdf": {"name": "scrypt", "params": {"N": 32768, "r": 8, "p": 1}, "salt": b64},
     "cipher": {"name": "nacl/secretbox", "nonce": b64}, "ciphertext": b64}

The 32-byte key is scrypt(password, salt); the ciphertext is a NaCl secretbox
(XSalsa20-Poly1305) of the PKCS#8 DER private key. cosign allows an empty password.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import secrets
from typing import Any

import nacl.exceptions
import nacl.secret
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from mlgate.provenance.signing_errors import KeyLoadError

PEM_TYPES = ("ENCRYPTED SIGSTORE PRIVATE KEY", "ENCRYPTED COSIGN PRIVATE KEY")
# cosign writes the newer type (``SigstorePrivateKeyPemType``) by default.
_WRITE_TYPE = PEM_TYPES[0]
# go-securesystemslib ``encrypted``: scrypt N=2^15, r=8, p=1; 32-byte salt, 24-byte nonce.
_SCRYPT_N, _SCRYPT_R, _SCRYPT_P = 32768, 8, 1
_SALT_SIZE = 32
# Refuse work factors that would make a hostile key file hang or exhaust memory.
_MAX_SCRYPT_N = 1 << 20
PASSWORD_ENV = "COSIGN_PASSWORD"  # noqa: S105  (the variable name cosign reads, not a secret)


def is_cosign_key(data: bytes) -> bool:
    """True when ``data`` holds a cosign/sigstore encrypted private key PEM block."""
    return any(f"-----BEGIN {t}-----".encode() in data for t in PEM_TYPES)


def _pem_body(data: bytes, source: str) -> bytes:
    text = data.decode("ascii", errors="replace")
    for pem_type in PEM_TYPES:
        begin, end = f"-----BEGIN {pem_type}-----", f"-----END {pem_type}-----"
        start = text.find(begin)
        if start < 0:
            continue
        stop = text.find(end, start)
        if stop < 0:
            raise KeyLoadError(f"{source}: cosign key PEM has no END line")
        body = "".join(text[start + len(begin) : stop].split())
        try:
            return base64.b64decode(body, validate=True)
        except binascii.Error as e:
            raise KeyLoadError(f"{source}: cosign key PEM body is not base64") from e
    raise KeyLoadError(f"{source}: not a cosign encrypted private key")


def _b64(value: object, field: str, source: str) -> bytes:
    if not isinstance(value, str):
        raise KeyLoadError(f"{source}: cosign key field {field} is missing")
    try:
        return base64.b64decode(value, validate=True)
    except binascii.Error as e:
        raise KeyLoadError(f"{source}: cosign key field {field} is not base64") from e


def _scrypt_key(password: bytes, salt: bytes, n: int, r: int, p: int) -> bytes:
    # 128 * n * r bytes of memory, plus headroom; hashlib's default cap is 32 MiB.
    return hashlib.scrypt(
        password, salt=salt, n=n, r=r, p=p, dklen=32, maxmem=256 * n * r + (1 << 20)
    )


def _kdf_params(doc: dict[str, Any], source: str) -> tuple[bytes, int, int, int]:
    kdf = doc.get("kdf")
    if not isinstance(kdf, dict) or kdf.get("name") != "scrypt":
        raise KeyLoadError(f"{source}: cosign key KDF is not scrypt")
    params = kdf.get("params")
    if not isinstance(params, dict):
        raise KeyLoadError(f"{source}: cosign key has no scrypt params")
    n, r, p = params.get("N"), params.get("r"), params.get("p")
    if not all(isinstance(v, int) and v > 0 for v in (n, r, p)):
        raise KeyLoadError(f"{source}: cosign key scrypt params are not positive integers")
    assert isinstance(n, int) and isinstance(r, int) and isinstance(p, int)
    if n > _MAX_SCRYPT_N or n & (n - 1) or r > 64 or p > 16:
        raise KeyLoadError(f"{source}: cosign key scrypt params out of range (N={n}, r={r})")
    return _b64(kdf.get("salt"), "kdf.salt", source), n, r, p


def _is_pkcs8(der: bytes) -> bool:
    """True when ``der`` starts like a PKCS#8 PrivateKeyInfo: SEQUENCE { INTEGER 0, SEQUENCE }.

    A SEC1 ECPrivateKey starts SEQUENCE { INTEGER 1, OCTET STRING } instead (RFC 5915).
    """
    if len(der) < 2 or der[0] != 0x30:
        return False
    length_bytes = der[1] & 0x7F if der[1] & 0x80 else 0
    body = der[2 + length_bytes :]
    return body[:4] == b"\x02\x01\x00\x30"


def resolve_password(password: bytes | None) -> bytes | None:
    """The explicit password, else ``$COSIGN_PASSWORD`` (as cosign reads it), else None."""
    if password is not None:
        return password
    env = os.environ.get(PASSWORD_ENV)
    return env.encode("utf-8") if env is not None else None


def load_cosign_private_key(
    data: bytes, password: bytes | None, source: str
) -> ec.EllipticCurvePrivateKey:
    """Decrypt a cosign encrypted private key; ``password`` None falls back to the env var."""
    pw = resolve_password(password)
    if pw is None:
        raise KeyLoadError(
            f"{source}: the cosign key is encrypted; give its password (--password-file or "
            f"${PASSWORD_ENV})"
        )
    try:
        doc = json.loads(_pem_body(data, source))
    except (ValueError, UnicodeDecodeError) as e:
        raise KeyLoadError(f"{source}: cosign key body is not JSON") from e
    if not isinstance(doc, dict):
        raise KeyLoadError(f"{source}: cosign key body is not a JSON object")
    salt, n, r, p = _kdf_params(doc, source)
    cipher = doc.get("cipher")
    if not isinstance(cipher, dict) or cipher.get("name") != "nacl/secretbox":
        raise KeyLoadError(f"{source}: cosign key cipher is not nacl/secretbox")
    nonce = _b64(cipher.get("nonce"), "cipher.nonce", source)
    if len(nonce) != nacl.secret.SecretBox.NONCE_SIZE:
        raise KeyLoadError(f"{source}: cosign key nonce is not 24 bytes")
    ciphertext = _b64(doc.get("ciphertext"), "ciphertext", source)
    box = nacl.secret.SecretBox(_scrypt_key(pw, salt, n, r, p))
    try:
        der = box.decrypt(ciphertext, nonce)
    except nacl.exceptions.CryptoError as e:
        # secretbox authenticates: a wrong password fails the Poly1305 tag.
        raise KeyLoadError(f"{source}: wrong password for the cosign key") from e
    # cosign requires PKCS#8 (x509.ParsePKCS8PrivateKey) and rejects SEC1 "EC PRIVATE KEY"
    # DER (keys_test.go TestReadingPrivatePemTypes); cryptography would accept both.
    if not _is_pkcs8(der):
        raise KeyLoadError(f"{source}: cosign key does not hold a PKCS#8 private key")
    try:
        key = serialization.load_der_private_key(der, None)
    except ValueError as e:
        raise KeyLoadError(f"{source}: cosign key holds an unreadable private key ({e})") from e
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        kind = type(key).__name__.lstrip("_")
        raise KeyLoadError(f"{source}: cosign key holds a {kind}; only EC keys are supported")
    return key


def cosign_private_pem(key: ec.EllipticCurvePrivateKey, password: bytes) -> bytes:
    """``key`` in cosign's encrypted format (``ENCRYPTED SIGSTORE PRIVATE KEY``)."""
    der = key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    salt = secrets.token_bytes(_SALT_SIZE)
    nonce = secrets.token_bytes(nacl.secret.SecretBox.NONCE_SIZE)
    box = nacl.secret.SecretBox(_scrypt_key(password, salt, _SCRYPT_N, _SCRYPT_R, _SCRYPT_P))
    ciphertext = box.encrypt(der, nonce).ciphertext

    def enc(raw: bytes) -> str:
        return base64.b64encode(raw).decode("ascii")

    # Field order and compact layout as Go's encoding/json writes go-securesystemslib's structs.
    doc = {
        "kdf": {
            "name": "scrypt",
            "params": {"N": _SCRYPT_N, "r": _SCRYPT_R, "p": _SCRYPT_P},
            "salt": enc(salt),
        },
        "cipher": {"name": "nacl/secretbox", "nonce": enc(nonce)},
        "ciphertext": enc(ciphertext),
    }
    body = base64.b64encode(json.dumps(doc, separators=(",", ":")).encode()).decode("ascii")
    lines = [body[i : i + 64] for i in range(0, len(body), 64)]  # encoding/pem: 64 columns
    return (
        "\n".join([f"-----BEGIN {_WRITE_TYPE}-----", *lines, f"-----END {_WRITE_TYPE}-----"]) + "\n"
    ).encode("ascii")
