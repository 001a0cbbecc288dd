"""CLI of the dynamic test: ``mlgate sandbox MODEL`` (thin: parse, call, render, exit).

Exit status as ``scan``: 0 nothing at or above --fail-on, 1 findings at or above it, 2 the
load was not fully observed (load failed, time-out, records lost) or could not be isolated.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from mlgate.cli_options import emit_report, report_options
from mlgate.config import load_config
from mlgate.findings import Severity
from mlgate.sandbox.limits import GIB, SandboxLimits
from mlgate.sandbox.service import LOADERS


@click.command(name="sandbox")
@click.argument("model", type=click.Path(exists=True, path_type=Path))
@click.option(
    "--loader",
    type=click.Choice(["auto", *LOADERS]),
    default="auto",
    show_default=True,
    help="The real loader to open MODEL with (auto: by extension and content).",
)
@click.option(
    "--python",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Interpreter of a virtualenv that has the model's frameworks [default: this one].",
)
@click.option("--timeout", type=float, default=120.0, show_default=True, help="Wall clock, s.")
@click.option("--memory", "memory_gib", type=float, default=8.0, show_default=True,
              help="Address-space limit of the loader, GiB.")  # fmt: skip
@click.option(
    "--allow-weaker-isolation",
    is_flag=True,
    help="Accept weaker isolation where full isolation is impossible (no strace, no user "
    "namespaces as root, no per-run cgroup as root); each weakness is an MLG713 finding. A "
    "payload never runs unconfined: without any namespaces mlgate still refuses.",
)
@click.option(
    "--events",
    "events_path",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    help="Also write every observed event (audit, syscall, network, probe) here, one JSON "
    "object per line: the full record behind the findings.",
)
@click.option(
    "--no-network",
    is_flag=True,
    help="No fake network inside: connections fail (still recorded by the syscall trace) "
    "instead of reaching a recording DNS responder and TCP/HTTP sink.",
)
@click.option(
    "--probe/--no-probe",
    default=True,
    show_default=True,
    help="After a clean load, run the model once on generated inputs (MLG711 on NaN/Inf or "
    "constant output). Not backdoor detection.",
)
@click.option(
    "--reference",
    type=click.Path(exists=True, path_type=Path),
    help="A trusted model of the same kind, loaded in the same run; MLG711 when the outputs "
    "differ by more than --tolerance.",
)
@click.option("--tolerance", type=float, default=1e-4, show_default=True,
              help="Max abs output difference from --reference.")  # fmt: skip
@report_options("Output format.")
def sandbox_cmd(
    model: Path,
    loader: str,
    python: Path | None,
    timeout: float,
    memory_gib: float,
    allow_weaker_isolation: bool,
    events_path: Path | None,
    no_network: bool,
    probe: bool,
    reference: Path | None,
    tolerance: float,
    fmt: str,
    output: Path | None,
    fail_on: str | None,
    config_path: Path | None,
    color: bool | None,
) -> None:
    """Load MODEL with its real loader in an isolated sandbox and report what it did.

    Process creation, code execution, network attempts and writes outside scratch are
    CRITICAL; imports the pickle policy denies are HIGH.
    """
    from mlgate.sandbox.choice import choose_loader  # noqa: PLC0415 - keep --help fast
    from mlgate.sandbox.service import SandboxOptions, run_sandbox, write_events  # noqa: PLC0415

    threshold = Severity.parse(fail_on) if fail_on else load_config(config_path).fail_on
    limits = SandboxLimits(
        wall_seconds=timeout, cpu_seconds=max(1, int(timeout)), memory_bytes=int(memory_gib * GIB)
    )
    options = SandboxOptions(
        loader=choose_loader(model) if loader == "auto" else loader,
        python=python,
        limits=limits,
        allow_weaker_isolation=allow_weaker_isolation,
        network=not no_network,
        probe=probe,
        reference=reference,
        tolerance=tolerance,
    )
    run = run_sandbox(model, options)
    if events_path is not None:
        write_events(run, events_path)
    sys.exit(emit_report(run.report, fmt, output, threshold, color, "the model"))
