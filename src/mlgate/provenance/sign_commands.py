"""CLI commands for OMS signing: ``mlgate sign``, ``mlgate keygen``, and the signature check of
``mlgate verify`` (``--key`` / ``--certificate-chain`` / ``--signature``).

Option names follow ``model_signing`` where they can (``--signature``, ``--certificate-chain``);
passwords come from a file (never the command line, where ``ps`` would show them).
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from mlgate.cli_options import emit, output_option
from mlgate.provenance.cosign_key import cosign_private_pem
from mlgate.provenance.keys import (
    CURVES,
    generate_private_key,
    load_private_key,
    load_public_key,
    private_pem,
    public_pem,
)
from mlgate.provenance.signers.cosign_blob import sign_blob, verify_blob
from mlgate.provenance.signers.pkcs11 import Pkcs11Signer
from mlgate.provenance.signing import sign_model, verify_model
from mlgate.provenance.signing_errors import KeyLoadError
from mlgate.render.escape import echo, require_utf8_names

_existing = click.Path(path_type=Path, exists=True, dir_okay=False)


def read_password(path: Path | None) -> bytes | None:
    """The password in ``path`` without its trailing newline, or None when no file is given."""
    if path is None:
        return None
    try:
        data = path.read_bytes()
    except OSError as e:
        raise KeyLoadError(f"cannot read password file {path}: {e.strerror or e}") from e
    return data.removesuffix(b"\n").removesuffix(b"\r")


@click.command(name="sign")
@click.argument("model", type=click.Path(path_type=Path, exists=True))
@click.option("--key", "key", type=_existing, help="EC private key (PEM).")
@click.option(
    "--pkcs11-uri",
    metavar="URI",
    help="Sign with an EC key on a PKCS#11 token (RFC 7512 URI with module-path=).",
)
@click.option("--pin-file", type=_existing, help="File holding the PKCS#11 token's user PIN.")
@click.option("--password-file", type=_existing, help="File holding the key's password.")
@click.option(
    "--signature",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Where to write the signature [default: MODEL/model.sig, or FILE.sig for a file].",
)
@click.option("--certificate", type=_existing, help="The key's certificate (PEM).")
@click.option(
    "--certificate-chain",
    type=_existing,
    multiple=True,
    help="Intermediate certificates to ship in the signature (repeatable).",
)
@click.option(
    "--ignore",
    multiple=True,
    metavar="PATH",
    help="Path relative to MODEL to leave out of the signature (repeatable).",
)
@click.option("--allow-symlinks", is_flag=True, help="Follow links that stay inside the model.")
@click.option(
    "--blob",
    is_flag=True,
    help="Sign the file MODEL as cosign sign-blob does (base64 DER ECDSA in FILE.sig).",
)
@click.option(
    "--bundle",
    type=click.Path(path_type=Path, dir_okay=False),
    help="With --blob: also write a Sigstore v0.3 message-signature bundle here.",
)
def sign_cmd(
    model: Path,
    key: Path | None,
    pkcs11_uri: str | None,
    pin_file: Path | None,
    password_file: Path | None,
    signature: Path | None,
    certificate: Path | None,
    certificate_chain: tuple[Path, ...],
    ignore: tuple[str, ...],
    allow_symlinks: bool,
    blob: bool,
    bundle: Path | None,
) -> None:
    """Sign MODEL (a folder or a file) in the OpenSSF Model Signing format.

    With --blob, sign the single file MODEL the way ``cosign sign-blob --key`` does.
    Sigstore keyless signing (Fulcio/Rekor) is not supported yet (docs/signing.md).
    """
    if (key is None) == (pkcs11_uri is None):
        raise click.UsageError("give exactly one of --key and --pkcs11-uri")
    if pkcs11_uri is None and pin_file is not None:
        raise click.UsageError("--pin-file needs --pkcs11-uri")
    if pkcs11_uri is not None and (password_file is not None or certificate is not None):
        raise click.UsageError("--pkcs11-uri excludes --password-file and --certificate")
    if blob or bundle is not None:
        _sign_blob(model, key, password_file, signature, bundle, blob)
        return
    require_utf8_names(model)
    signer: Path | Pkcs11Signer = (
        key if key is not None else Pkcs11Signer(str(pkcs11_uri), read_password(pin_file))
    )
    written = sign_model(
        model,
        signer,
        password=read_password(password_file),
        signature_path=signature,
        certificate=certificate,
        certificate_chain=certificate_chain,
        ignore=ignore,
        allow_symlinks=allow_symlinks,
    )
    echo(f"signed {model} -> {written}")


def _sign_blob(
    model: Path,
    key: Path | None,
    password_file: Path | None,
    signature: Path | None,
    bundle: Path | None,
    blob: bool,
) -> None:
    """``sign --blob``: cosign-style signature (and bundle) of one file with a key file."""
    if not blob:
        raise click.UsageError("--bundle needs --blob")
    if key is None:
        raise click.UsageError("--blob needs --key (a PEM or cosign private key)")
    if model.is_dir():
        raise click.UsageError(f"--blob signs a single file; {model} is a folder")
    private = load_private_key(key, read_password(password_file))
    written = sign_blob(model, private, signature, bundle)
    echo(f"signed {model} -> {', '.join(str(p) for p in written)}")


@click.command(name="keygen")
@click.argument("out", type=click.Path(path_type=Path, dir_okay=False))
@click.option(
    "--curve", type=click.Choice(list(CURVES)), default="P-256", show_default=True, help="Curve."
)
@click.option("--password-file", type=_existing, help="Encrypt the private key with this.")
@click.option("--no-password", is_flag=True, help="Write the private key unencrypted.")
@click.option(
    "--cosign",
    is_flag=True,
    help="Write OUT in cosign's encrypted format (ENCRYPTED SIGSTORE PRIVATE KEY).",
)
@click.option("--force", is_flag=True, help="Replace OUT and OUT.pub if they exist.")
def keygen_cmd(
    out: Path, curve: str, password_file: Path | None, no_password: bool, cosign: bool, force: bool
) -> None:
    """Generate an EC key pair: OUT (private, encrypted PEM) and OUT.pub (public PEM).

    The password is asked on the terminal, or read from --password-file.
    """
    if password_file is not None and no_password:
        raise click.UsageError("--password-file and --no-password exclude each other")
    pub = out.with_name(out.name + ".pub")
    existing = [p for p in (out, pub) if p.exists() or p.is_symlink()]
    if existing and not force:
        # A silently replaced key cannot be recovered: whatever it signed no longer verifies.
        raise KeyLoadError(
            f"{existing[0]} already exists; choose another name, or pass --force to replace it"
        )
    password = read_password(password_file)
    if password is None and not no_password:
        if not sys.stdin.isatty():
            raise click.UsageError(
                "no terminal to ask the new key's password on: give --password-file FILE, "
                "or --no-password for an unencrypted key"
            )
        text = click.prompt("Password for the new key", hide_input=True, confirmation_prompt=True)
        password = str(text).encode("utf-8")
    if cosign and no_password:
        password = b""  # cosign's format is always encrypted; cosign allows an empty password
    elif password == b"" and not no_password:
        raise click.UsageError("empty password; use --no-password for an unencrypted key")
    key = generate_private_key(curve)
    try:
        out.write_bytes(b"")
        out.chmod(0o600)  # before the key is written: never readable by others
        pem = (
            cosign_private_pem(key, password or b"")
            if cosign
            else private_pem(key, password or None)
        )
        out.write_bytes(pem)
        pub.write_bytes(public_pem(key.public_key()))
    except OSError as e:
        raise KeyLoadError(f"cannot write key {out}: {e.strerror or e}") from e
    echo(f"wrote {out} (private, {curve}) and {pub} (public)")


def signature_check(
    model: Path,
    key: Path | None,
    signature: Path | None,
    certificate_chain: tuple[Path, ...],
    allow_symlinks: bool = False,
) -> tuple[list[str], str]:
    """The ``verify`` check: (one line per failure, summary when it passed)."""
    result = verify_model(
        model,
        key,
        signature,
        trust_chain=certificate_chain,
        allow_symlinks=allow_symlinks,
    )
    return list(result.problems), f"{result.files} file(s) signed by {result.signer}"


def blob_check(
    blob: Path, key: Path | None, signature: Path | None, bundle: Path | None
) -> tuple[list[str], str]:
    """The ``verify --blob`` check: a cosign-style ``.sig`` or bundle against a public key."""
    if key is None:
        raise click.UsageError("--blob needs --key (the signer's public key)")
    if signature is not None and bundle is not None:
        raise click.UsageError("give --signature or --bundle, not both")
    if blob.is_dir():
        raise click.UsageError(f"--blob verifies a single file; {blob} is a folder")
    result = verify_blob(blob, load_public_key(key), signature, bundle, str(key))
    return list(result.problems), f"{blob} signed by {result.signer}"


# Options added to ``mlgate verify`` (provenance/commands.py) for the signature check.
key_option = click.option(
    "--key", "key", type=_existing, help="Check the OMS signature against this public key (PEM)."
)
signature_option = click.option(
    "--signature",
    type=_existing,
    help="Signature to check [default: MODEL/mlgate.sig if pulled, else MODEL/model.sig, "
    "or FILE.sig for a file].",
)
chain_option = click.option(
    "--certificate-chain",
    type=_existing,
    multiple=True,
    help="Trusted root/intermediate certificates (PEM) for a certificate signature.",
)
blob_option = click.option(
    "--blob", is_flag=True, help="MODEL is a single file with a cosign-style blob signature."
)
bundle_option = click.option(
    "--bundle", type=_existing, help="With --blob: the Sigstore bundle to check instead of .sig."
)


@click.command(name="pubkey")
@click.option("--key", "key", type=_existing, help="EC private key (PEM or cosign format).")
@click.option("--password-file", type=_existing, help="File holding the key's password.")
@click.option("--pkcs11-uri", help="An EC key on a PKCS#11 token (RFC 7512 URI).")
@click.option("--pin-file", type=_existing, help="File holding the PKCS#11 token's user PIN.")
@output_option("Write the PEM here [default: standard output].")
def pubkey_cmd(
    key: Path | None,
    password_file: Path | None,
    pkcs11_uri: str | None,
    pin_file: Path | None,
    output: Path | None,
) -> None:
    """Export the public key (PEM) that `mlgate verify --key` needs for a signing key."""
    if (key is None) == (pkcs11_uri is None):
        raise click.UsageError("give exactly one of --key and --pkcs11-uri")
    if key is not None:
        pem = public_pem(load_private_key(key, read_password(password_file)).public_key())
    else:
        pem = Pkcs11Signer(str(pkcs11_uri), read_password(pin_file)).public_pem()
    emit(pem.decode("ascii"), output)
    if output is not None:
        echo(f"public key written to {output}")
