"""Test PKI made with cryptography: a root CA, intermediates and a code-signing leaf.

``Shape`` says how a certificate deviates from a well-formed one, so each classic chain failure
(expired intermediate, pathLen exceeded, CA:false intermediate, no keyCertSign, wrong EKU or
keyUsage on the leaf, unknown critical extension, leaf not yet valid) is one keyword away.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, ObjectIdentifier

Issued = tuple[x509.Certificate, ec.EllipticCurvePrivateKey]
UNKNOWN_EXTENSION = ObjectIdentifier("1.3.6.1.4.1.55555.1.1")


@dataclass(frozen=True)
class Shape:
    """A certificate's profile: a well-formed CA or code-signing leaf unless told otherwise."""

    ca: bool
    path_length: int | None = None
    key_cert_sign: bool | None = None  # None: as ca
    digital_signature: bool | None = None  # None: as not ca
    usages: tuple[ObjectIdentifier, ...] = (ExtendedKeyUsageOID.CODE_SIGNING,)  # leaf EKU
    starts_in: dt.timedelta = dt.timedelta(minutes=-5)  # notBefore, relative to now
    lasts: dt.timedelta = dt.timedelta(days=1)
    unknown_critical: bool = False


CA = Shape(ca=True)
LEAF = Shape(ca=False)


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _key_usage(shape: Shape) -> x509.KeyUsage:
    cert_sign = shape.ca if shape.key_cert_sign is None else shape.key_cert_sign
    signs = not shape.ca if shape.digital_signature is None else shape.digital_signature
    return x509.KeyUsage(
        digital_signature=signs,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=shape.ca,
        encipher_only=False,
        decipher_only=False,
    )


def make_cert(
    subject: str, key: ec.EllipticCurvePrivateKey, issuer: Issued | None, shape: Shape
) -> x509.Certificate:
    not_before = dt.datetime.now(dt.UTC) + shape.starts_in
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer[0].subject if issuer else _name(subject))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_before + shape.lasts)
        .add_extension(x509.BasicConstraints(shape.ca, shape.path_length), critical=True)
        .add_extension(_key_usage(shape), critical=True)
    )
    if not shape.ca:
        builder = builder.add_extension(x509.ExtendedKeyUsage(shape.usages), critical=False)
    if shape.unknown_critical:
        extension = x509.UnrecognizedExtension(UNKNOWN_EXTENSION, b"\x05\x00")
        builder = builder.add_extension(extension, critical=True)
    return builder.sign(issuer[1] if issuer else key, hashes.SHA256())


def issue(subject: str, issuer: Issued | None, shape: Shape) -> Issued:
    """A fresh P-256 key and its certificate, self-signed when ``issuer`` is None."""
    key = ec.generate_private_key(ec.SECP256R1())
    return make_cert(subject, key, issuer, shape), key


def write_pem(path: Path, *certs: x509.Certificate) -> Path:
    path.write_bytes(b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs))
    return path


def write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> Path:
    """``key`` as unencrypted PKCS#8 PEM."""
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return path


def write_pki(root_dir: Path, prefix: str = "") -> dict[str, Path]:
    """Write root.pem, inter.pem, leaf.pem, leaf.key (unencrypted PKCS#8) into root_dir."""
    root = issue(f"{prefix}Test Root", None, CA)
    inter = issue(f"{prefix}Test Intermediate", root, CA)
    leaf = issue(f"{prefix}Model Signer", inter, LEAF)
    paths = {
        n: write_pem(root_dir / f"{prefix}{n}.pem", c[0])
        for n, c in (("root", root), ("inter", inter), ("leaf", leaf))
    }
    paths["key"] = write_key(root_dir / f"{prefix}leaf.key", leaf[1])
    return paths
