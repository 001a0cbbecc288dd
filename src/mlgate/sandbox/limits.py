"""Resource limits of one sandboxed load (rlimits, wall clock, bytes kept from the run)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

GIB = 1 << 30
MIB = 1 << 20


@dataclass(frozen=True)
class SandboxLimits:
    """What one load may use. rlimits are set as hard limits inside the sandbox, where an
    unprivileged process cannot raise them; the wall clock is enforced from outside."""

    wall_seconds: float = 120.0
    cpu_seconds: int = 120
    memory_bytes: int = 8 * GIB  # address space: torch alone maps ~2 GiB at import
    processes: int = 256  # threads count too (torch and OpenMP start one per core)
    file_size_bytes: int = 1 * GIB
    open_files: int = 1024
    scratch_bytes: int = 1 * GIB
    max_events: int = 20_000  # events kept from the audit channel; more is a finding
    max_trace_bytes: int = 256 * MIB  # syscall trace; a payload spinning past it is stopped

    def rlimits(self) -> dict[str, int]:
        """The limits the runner sets on itself, by the names it knows."""
        kept = ("cpu_seconds", "memory_bytes", "processes", "file_size_bytes", "open_files")
        return {k: v for k, v in asdict(self).items() if k in kept}
