"""Entry point inside the sandbox: set up, lose privileges, observe, load, report.

Order matters: the fake network needs capabilities that the loader must not have, so it
starts first; then every capability is dropped and the resource limits are set (hard limits
equal to soft ones, which an unprivileged process cannot raise); then the audit hook goes in,
the framework is imported, and only then is the model opened.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import sys
import traceback
from typing import Any

from . import caps, loaders, network, probe
from .audit import Recorder
from .channel import Channel, inert

_LIMITS = {
    "cpu_seconds": resource.RLIMIT_CPU,
    "memory_bytes": resource.RLIMIT_AS,
    "processes": resource.RLIMIT_NPROC,
    "file_size_bytes": resource.RLIMIT_FSIZE,
    "open_files": resource.RLIMIT_NOFILE,
}
EXIT_LOADED = 0
PHASE_MARKER = "/mlgate/phase"  # never exists; see syscalls.PHASE_MARKER
EXIT_SETUP_FAILED = 70
EXIT_LOAD_FAILED = 71


def main() -> None:
    config: dict[str, Any] = json.loads(sys.argv[1])
    channel = Channel(int(config["events_fd"]))
    try:
        fake_network = _start_network(config.get("network"), channel)
        if config.get("drop_capabilities", True):
            caps.drop_all_capabilities()
        _set_limits(config["limits"])
    except Exception as error:
        channel.emit("status", status="setup-failed", error=inert(error))
        os._exit(EXIT_SETUP_FAILED)
    recorder = Recorder(
        channel,
        tuple(config.get("quiet_prefixes", ())),
        tuple(config.get("framework_roots", ())),
    )
    sys.addaudithook(recorder)
    channel.emit("status", status="isolated")
    loader = loaders.LOADERS[config["loader"]]
    try:
        loaders.prepare(loader)
        _enter_phase(recorder, "load")
        channel.emit("status", status="loading")
        model = loader.load(config["model"])
        reference = loader.load(config["reference"]) if config.get("reference") else None
    except BaseException as error:
        _enter_phase(recorder, "done")
        _stop_network(fake_network)
        channel.emit("status", status="load-failed", error=inert(error), trace=_trace(recorder))
        os._exit(EXIT_LOAD_FAILED)
    channel.emit("status", status="loaded", type=inert(type(model)))
    if config.get("probe"):
        _probe(recorder, channel, model, reference, float(config.get("tolerance", 1e-4)))
    _enter_phase(recorder, "done")
    _stop_network(fake_network)  # after the probe: a forward() payload's connections count
    os._exit(EXIT_LOADED)


def _start_network(settings: dict[str, Any] | None, channel: Channel) -> network.Network | None:
    """The fake network, while the capabilities it needs are still held (see network.py)."""
    return network.start(settings, channel) if settings else None


def _stop_network(fake_network: network.Network | None) -> None:
    """Every connection reported before the final status: when the runner exits, bubblewrap's
    init ends the PID namespace and the sink with it, mid-connection otherwise."""
    if fake_network is not None:
        fake_network.stop()


def _probe(
    recorder: Recorder, channel: Channel, model: Any, reference: Any, tolerance: float
) -> None:
    """Run the model (and the reference) once; "probed" closes the phase, so a model whose
    forward() kills or hangs the process leaves the run incomplete."""
    _enter_phase(recorder, "probe")
    channel.emit("status", status="probing")
    try:
        output = probe.run(model)
        _emit_probe(channel, "output", probe.statistics(output))
        if reference is not None:
            difference = probe.max_abs_difference(output, probe.run(reference))
            facts = {"max_abs_diff": difference, "exceeds": difference > tolerance}
            _emit_probe(channel, "difference", {**facts, "tolerance": tolerance})
    except probe.Unsupported as why:
        _emit_probe(channel, "skipped", {"reason": inert(why)})
    except Exception as error:
        _emit_probe(channel, "error", {"error": inert(error)})
    channel.emit("status", status="probed")


def _emit_probe(channel: Channel, event: str, facts: dict[str, object]) -> None:
    args = [f"{name}={value}" for name, value in facts.items()]
    channel.emit("probe", category="probe", event=event, phase="probe", args=args)


def _enter_phase(recorder: Recorder, phase: str) -> None:
    """Switch phase, and mark the switch in the syscall trace recorded outside: opening a
    path that does not exist is cheap and shows there with its name."""
    recorder.phase = phase
    with contextlib.suppress(OSError):
        os.close(os.open(f"{PHASE_MARKER}/{phase}", os.O_RDONLY))


def _set_limits(limits: dict[str, int]) -> None:
    for name, value in limits.items():
        resource.setrlimit(_LIMITS[name], (value, value))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def _trace(recorder: Recorder) -> str:
    """The loader's traceback; formatting it compiles source (ast), which is not the model's
    doing, so the hook is muted meanwhile."""
    with recorder.muted():
        return traceback.format_exc(limit=8)[-1500:]
