"""The ``mlgate bom`` command."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import click

from mlgate.bom import build_cyclonedx, build_spdx, to_json
from mlgate.cli_options import emit, output_option
from mlgate.findings import Severity
from mlgate.render.escape import inert_json, require_utf8_names


@click.command()
@click.argument("model", type=click.Path(path_type=Path, exists=True))
@output_option("Write the BOM here [default: standard output].")
@click.option("--spdx", is_flag=True, help="Write SPDX 3.0.1 JSON-LD instead of CycloneDX.")
@click.option(
    "--cyclonedx-version",
    type=click.Choice(["1.6", "1.7"]),
    default="1.6",
    show_default=True,
    help="CycloneDX specification version.",
)
@click.option("--name", help="Model name (for --source huggingface: ORG/NAME).")
@click.option(
    "--source",
    help="Where the model came from: 'huggingface', https://huggingface.co/ORG/NAME, or a URL.",
)
@click.option("--revision", help="Commit or version the model was fetched at.")
@click.option("--actor", help="Who ingested the model [default: the OS user].")
@click.option(
    "--min-severity",
    type=click.Choice([s.name for s in Severity], case_sensitive=False),
    default="MEDIUM",
    show_default=True,
    help="List scan findings at or above this severity as vulnerabilities.",
)
@click.option(
    "--allow-symlinks", is_flag=True, help="Follow symbolic links that stay inside the model."
)
def bom(
    model: Path,
    output: Path | None,
    spdx: bool,
    cyclonedx_version: str,
    name: str | None,
    source: str | None,
    revision: str | None,
    actor: str | None,
    min_severity: str,
    allow_symlinks: bool,
) -> None:
    """Write the ML-BOM of MODEL: CycloneDX JSON (default) or SPDX 3.0.1 JSON-LD.

    The model is hashed and scanned statically; nothing in it is loaded.
    """
    require_utf8_names(model)
    threshold = Severity.parse(min_severity)
    build = partial(build_cyclonedx, version=cyclonedx_version) if not spdx else build_spdx
    doc = build(
        model,
        name=name,
        source=source,
        revision=revision,
        actor=actor,
        min_severity=threshold,
        allow_symlinks=allow_symlinks,
    )
    text = to_json(doc)
    emit(inert_json(text) if output is None else text, output)
