"""Options shared by the commands of every stage, so that one thing has one spelling."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from mlgate.errors import ExitCode, MlgateError
from mlgate.findings import Report, Severity
from mlgate.render.escape import inert

F = TypeVar("F", bound=Callable[..., Any])


class AliasedOption(click.Option):
    """An option whose former spellings still work but are left out of ``--help``.

    Renaming an option must not break the scripts that use the old name; listing both would
    tell new users that there are two options.
    """

    def __init__(self, *args: Any, hidden_aliases: tuple[str, ...] = (), **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.hidden_aliases = hidden_aliases

    def get_help_record(self, ctx: click.Context) -> tuple[str, str] | None:
        shown = [o for o in self.opts if o not in self.hidden_aliases]
        every = self.opts
        self.opts = shown
        try:
            return super().get_help_record(ctx)
        finally:
            self.opts = every


def output_option(help_text: str, *former: str) -> Callable[[F], F]:
    """``-o/--output FILE`` (``former`` spellings accepted, not shown)."""
    return click.option(
        "-o",
        "--output",
        *former,
        "output",
        cls=AliasedOption,
        hidden_aliases=former,
        type=click.Path(path_type=Path, dir_okay=False),
        help=help_text,
    )


def local_path_exists(ctx: click.Context, param: click.Parameter, value: str) -> str:
    """Callback of a ``SOURCE`` argument that may be a hub reference: a local path that does
    not exist is refused in click's own words, as every ``click.Path(exists=True)`` is."""
    from mlgate.registry.sources import parse_source  # noqa: PLC0415 - registry commands only

    if parse_source(value)[0] == "local":
        click.Path(exists=True).convert(value, param, ctx)
    return value


class ScanPath(click.Path):
    """A path to scan: a missing one is refused in click's words, like every other command's,
    but one that merely cannot be read is left to the scanner, which reports it as a finding
    (unreadable is incomplete, exit 2) instead of calling it missing."""

    def __init__(self) -> None:
        super().__init__(path_type=Path)

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        try:
            os.lstat(value)
        except FileNotFoundError:
            return click.Path(path_type=Path, exists=True).convert(value, param, ctx)
        except OSError:
            pass
        return super().convert(value, param, ctx)


def emit(text: str, output: Path | None) -> None:
    """Print ``text``, or write it to ``output`` (an unwritable file is an error, exit 2)."""
    if output is None:
        click.echo(text, nl=not text.endswith("\n"))
        return
    try:
        output.write_text(text, encoding="utf-8")
    except OSError as e:
        raise MlgateError(f"cannot write {inert(str(output))}: {e.strerror or e}") from e


def emit_report(
    report: Report, fmt: str, output: Path | None, fail_on: Severity, color: bool | None,
    subject: str,
) -> ExitCode:  # fmt: skip
    """Render ``report`` as ``fmt`` to ``output`` (or standard output) and return the exit
    code every report-producing command shares; an incomplete analysis is also said on
    standard error, since ``subject`` is then not known to be safe."""
    from mlgate.render.formats import RENDERERS, OutputFormat  # noqa: PLC0415 - rich loads on demand
    from mlgate.render.text import plural  # noqa: PLC0415

    use_color = color if color is not None else (output is None and sys.stdout.isatty())
    emit(RENDERERS[OutputFormat(fmt)](report, fail_on, use_color and fmt == "text"), output)
    if not report.complete:
        skipped = plural(sum(not a.complete for a in report.artifacts), "artifact")
        click.echo(
            f"mlgate: error: {skipped} not fully analysed (see the findings); "
            f"the analysis is incomplete, so {subject} is not known to be safe",
            err=True,
        )
    return report.exit_code(fail_on)


def report_options(format_help: str) -> Callable[[F], F]:
    """``--format``, ``-o/--output``, ``--fail-on``, ``--config`` and ``--color``: the options
    of every command that produces a findings report (``scan``, ``discover``)."""
    from mlgate.render.formats import OutputFormat  # noqa: PLC0415 - rich loads on demand

    decorators = (
        click.option(
            "--format",
            "fmt",
            type=click.Choice([f.value for f in OutputFormat]),
            default="text",
            show_default=True,
            help=format_help,
        ),
        output_option("Write the report here [default: standard output]."),
        click.option(
            "--fail-on",
            type=click.Choice([s.name for s in Severity], case_sensitive=False),
            default=None,
            help="Exit 1 when a finding is at or above this severity [default: HIGH].",
        ),
        click.option(
            "--config",
            "config_path",
            type=click.Path(path_type=Path, exists=True),
            help="Configuration file (default: mlgate.toml or [tool.mlgate]).",
        ),
        click.option("--color/--no-color", default=None, help="Colour text output."),
    )

    def apply(func: F) -> F:
        for decorator in reversed(decorators):
            func = decorator(func)
        return func

    return apply


def text_or_json_option(func: F) -> F:
    """``--format text|json`` of the commands that print records rather than a findings
    report (``hash``, ``models``, ``lineage``...)."""
    return click.option(
        "--format",
        "fmt",
        type=click.Choice(["text", "json"]),
        default="text",
        show_default=True,
        help="Output format.",
    )(func)
