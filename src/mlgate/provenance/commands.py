"""CLI commands of the provenance stage: ``mlgate hash`` and ``mlgate verify``.

``verify`` runs every check asked for on the command line (each check is one option; a lock
inside MODEL is never used implicitly, as in ``admit``) and exits 0 when all pass, 1 when any
fails (one line per problem), 2 when none applies or one could not be completed (a
:class:`~mlgate.errors.MlgateError`, mapped by ``mlgate.cli``).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path

import click

from mlgate.cli_options import text_or_json_option
from mlgate.errors import ExitCode
from mlgate.provenance.lock import lock_ignore, verify_lock, write_lock
from mlgate.provenance.manifest import ALGORITHMS, Manifest, hash_model
from mlgate.provenance.sign_commands import (
    blob_check,
    blob_option,
    bundle_option,
    chain_option,
    key_option,
    signature_check,
    signature_option,
)
from mlgate.render.escape import echo, inert, json_safe, require_utf8_names

_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}

# A check returns one line per failure (empty: passed) plus a short description of what passed.
Check = Callable[[], tuple[list[str], str]]


def parse_size(text: str) -> int:
    """``"512M"`` -> 536870912: a byte count with an optional K/M/G/T (binary) suffix."""
    value = text.strip().upper().removesuffix("IB").removesuffix("B")
    unit = value[-1:] if value[-1:] in _UNITS else ""
    number = value[: len(value) - len(unit)]
    if not number.isdigit() or int(number) <= 0:
        raise click.BadParameter(f"{text!r} is not a size such as 1048576, 512M or 1G")
    return int(number) * _UNITS[unit]


@click.command(name="hash")
@click.argument("model", type=click.Path(path_type=Path, exists=True))
@click.option(
    "--algorithm",
    type=click.Choice(ALGORITHMS),
    default="sha256",
    show_default=True,
    help="Digest algorithm.",
)
@click.option("--ignore", multiple=True, metavar="PATTERN", help="Skip matching paths (fnmatch).")
@click.option("--allow-symlinks", is_flag=True, help="Follow links that stay inside the model.")
@click.option("--workers", type=click.IntRange(min=1), help="Hashing threads [default: CPUs].")
@click.option(
    "--shard-size",
    metavar="SIZE",
    help="Hash files larger than SIZE (e.g. 1G) in shards of SIZE, in parallel.",
)
@click.option("--lock-out", type=click.Path(path_type=Path), help="Also write a lock file here.")
@click.option("--name", default="", help="Model name recorded in the lock file.")
@click.option("--source", default="", help="Where the model came from (URL, hub id).")
@click.option("--revision", default="", help="Revision (commit, tag) recorded in the lock.")
@text_or_json_option
def hash_cmd(
    model: Path,
    algorithm: str,
    ignore: tuple[str, ...],
    allow_symlinks: bool,
    workers: int | None,
    shard_size: str | None,
    lock_out: Path | None,
    name: str,
    source: str,
    revision: str,
    fmt: str,
) -> None:
    """Print the digest of every file of MODEL (a folder or a file); optionally pin them."""
    shard = parse_size(shard_size) if shard_size else None
    if lock_out is not None:
        require_utf8_names(model)
        ignore = (*ignore, *lock_ignore(lock_out, model))  # recorded in the lock too
    manifest = hash_model(model, algorithm, ignore, allow_symlinks, workers, shard)
    if lock_out is not None:
        write_lock(manifest, lock_out, name=name, source=source, revision=revision, ignore=ignore)
    click.echo(_render_json(manifest) if fmt == "json" else _render_text(manifest), nl=False)


@click.command(name="verify")
@click.argument("model", type=click.Path(path_type=Path, exists=True))
@click.option(
    "--lock",
    "lock_path",
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    help="Check MODEL against this hash-pin lock file, kept outside the model (a lock inside the "
    "folder proves nothing: whoever altered the files can regenerate it; `mlgate admit` never "
    "uses one implicitly either).",
)
@click.option("--allow-symlinks", is_flag=True, help="Follow links that stay inside the model.")
@key_option
@signature_option
@chain_option
@blob_option
@bundle_option
def verify_cmd(
    model: Path,
    lock_path: Path | None,
    allow_symlinks: bool,
    key: Path | None,
    signature: Path | None,
    certificate_chain: tuple[Path, ...],
    blob: bool,
    bundle: Path | None,
) -> None:
    """Verify MODEL. Exit 0 verified, 1 not verified, 2 could not complete.

    Checks the lock given with --lock and, with --key or --certificate-chain, the signature.
    At least one check must apply; like `mlgate admit`, a lock found inside MODEL is never used
    implicitly.
    """
    checks: list[tuple[str, Check]] = []
    if lock_path is not None:
        checks.append(("lock", lambda: _check_lock(model, lock_path, allow_symlinks)))
    # Further checks (e.g. a signature) are appended here, one option and one entry each.
    if blob or bundle is not None:
        if not blob:
            raise click.UsageError("--bundle needs --blob")
        checks.append(("blob", lambda: blob_check(model, key, signature, bundle)))
    elif key is not None or certificate_chain:
        checks.append(
            (
                "signature",
                lambda: signature_check(model, key, signature, certificate_chain, allow_symlinks),
            )
        )
    elif signature is not None:
        raise click.UsageError("--signature needs --key or --certificate-chain to check it")
    if not checks:
        raise click.UsageError(
            f"nothing to verify for {inert(str(model))}: give --lock FILE (kept outside the "
            "model) or --key PUBLIC_KEY"
        )
    failed = False
    for label, check in checks:
        failures, summary = check()
        for line in failures:
            echo(f"{label}: {line}")
        if failures:
            failed = True
        else:
            echo(f"{label}: verified ({summary})")
    if failed:
        echo(f"mlgate: {model} NOT verified")
        sys.exit(ExitCode.UNSAFE)


def _check_lock(model: Path, lock_path: Path, allow_symlinks: bool) -> tuple[list[str], str]:
    differences = verify_lock(model, lock_path, allow_symlinks=allow_symlinks)
    return [str(d) for d in differences], f"every file matches {lock_path}"


def _render_text(manifest: Manifest) -> str:
    # sha256sum's layout, so that the output can be diffed with familiar tools.
    return "".join(
        f"{f.digest}  {inert(f.path)}"
        + (f"  (shards of {f.shard_size} bytes)" if f.shard_size else "")
        + "\n"
        for f in manifest.files
    )


def _render_json(manifest: Manifest) -> str:
    doc = {
        "root": str(manifest.root),
        "algorithm": manifest.algorithm,
        "shard_size": manifest.shard_size,
        "files": [
            {"path": f.path, "digest": f.digest, "size": f.size, "shard_size": f.shard_size}
            for f in manifest.files
        ],
    }
    return json.dumps(json_safe(doc), indent=2) + "\n"
