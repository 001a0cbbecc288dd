"""The ``mlgate convert`` command: parse, call :func:`convert_model`, render, exit."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from mlgate.convert.errors import ConversionRefused
from mlgate.convert.model import ConversionResult, convert_model
from mlgate.errors import ExitCode
from mlgate.findings import ArtifactResult, Report, Severity
from mlgate.render.escape import echo, inert
from mlgate.render.text import plural


@click.command(name="convert")
@click.argument("src", type=click.Path(path_type=Path, exists=True))
@click.argument("dst", type=click.Path(path_type=Path))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json", "sarif"]),
    default="text",
    show_default=True,
    help="Output format of the findings when the conversion is refused.",
)
def convert_cmd(src: Path, dst: Path, fmt: str) -> None:
    """Convert the checkpoint SRC (or every checkpoint of the model folder SRC) to safetensors.

    Nothing in SRC is run: pickles are rebuilt by mlgate's restricted reconstruction, which
    honours only tensors, arrays and plain containers. Exit status: 0 converted, 1 refused
    (the findings say why; nothing written), 2 could not be completed.
    """
    try:
        result = convert_model(src, dst)
    except ConversionRefused as e:
        from mlgate.render.formats import RENDERERS, OutputFormat  # noqa: PLC0415 - refusals only

        artifacts = tuple(
            ArtifactResult(path, "checkpoint", complete=True)
            for path in dict.fromkeys(f.location.path for f in e.findings)
        )
        report = Report(targets=(str(src),), findings=e.findings, artifacts=artifacts)
        text = RENDERERS[OutputFormat(fmt)](report, Severity.LOW, False)
        echo(f"mlgate: conversion refused: {e}", err=True)
        click.echo(text, nl=not text.endswith("\n"))
        sys.exit(ExitCode.UNSAFE)
    click.echo(summary(result), nl=False)
    sys.exit(ExitCode.CLEAN)


def summary(result: ConversionResult) -> str:
    """What was written, one line per file."""
    lines = []
    for f in result.converted:
        tied = f", {len(f.aliases)} tied name(s) deduplicated" if f.aliases else ""
        lines.append(
            f"converted {f.source} ({f.kind}) -> {f.destination}: {plural(f.tensors, 'tensor')}, "
            f"{f.tensor_bytes} bytes{tied}"
        )
    lines += [f"kept {p}: its safetensors counterpart is already there" for p in result.superseded]
    if result.copied:
        lines.append(f"copied {len(result.copied)} other file(s) unchanged")
    if result.index is not None:
        lines.append(f"wrote index {result.index}")
    lines.append(
        f"total: {plural(result.tensors, 'tensor')}, {result.tensor_bytes} bytes, "
        f"{result.deduplicated} deduplicated"
    )
    return "\n".join(inert(line) for line in lines) + "\n"
