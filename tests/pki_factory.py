"""Test PKI: a root CA, an intermediate and a code-signing leaf, made with cryptography."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def make_cert(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None,
    ca: bool,
) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    issuer_name = issuer[0].subject if issuer else _name(subject)
    signing_key = issuer[1] if issuer else key
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=not ca,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=ca,
                crl_sign=ca,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
    )
    if not ca:
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), critical=False
        )
    return builder.sign(signing_key, hashes.SHA256())


def write_pki(root_dir: Path, prefix: str = "") -> dict[str, Path]:
    """Write root.pem, inter.pem, leaf.pem, leaf.key (unencrypted PKCS#8) into root_dir."""
    root_key = ec.generate_private_key(ec.SECP256R1())
    root = make_cert(f"{prefix}Test Root", root_key, None, ca=True)
    inter_key = ec.generate_private_key(ec.SECP256R1())
    inter = make_cert(f"{prefix}Test Intermediate", inter_key, (root, root_key), ca=True)
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    leaf = make_cert(f"{prefix}Model Signer", leaf_key, (inter, inter_key), ca=False)
    paths = {n: root_dir / f"{prefix}{n}.pem" for n in ("root", "inter", "leaf")}
    for n, c in (("root", root), ("inter", inter), ("leaf", leaf)):
        paths[n].write_bytes(c.public_bytes(serialization.Encoding.PEM))
    paths["key"] = root_dir / f"{prefix}leaf.key"
    paths["key"].write_bytes(
        leaf_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return paths
