"""Convert-on-ingest: under the ``convert-on-ingest`` policy a pickle model is published only
as its safetensors conversion, made by mlgate's restricted reconstruction (nothing in the
checkpoint runs). The original version stays in the registry, never served, for audit.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mlgate.findings import Finding


@dataclass(frozen=True)
class ConversionOutcome:
    """A conversion's result: ``folder`` to ingest, or ``refused`` with the reason."""

    folder: Path | None
    converted: int
    reason: str
    findings: tuple[Finding, ...] = ()


def checkpoints_in(view: Path) -> list[str]:
    """Files of a version view that are pickle, torch or NumPy checkpoints (by content)."""
    from mlgate.convert.model import is_checkpoint  # noqa: PLC0415  (convert loads lazily)

    return sorted(
        p.relative_to(view).as_posix() for p in view.rglob("*") if p.is_file() and is_checkpoint(p)
    )


def convert_view(view: Path, scratch: Path) -> ConversionOutcome:
    """Convert every checkpoint of a version view into ``scratch/converted``."""
    from mlgate.convert import ConversionError, ConversionRefused, convert_model  # noqa: PLC0415

    target = scratch / "converted"
    try:
        result = convert_model(view, target)
    except ConversionRefused as e:
        return ConversionOutcome(None, 0, f"conversion refused: {e}", tuple(e.findings))
    except ConversionError as e:
        return ConversionOutcome(None, 0, f"conversion failed: {e}")
    names = ", ".join(f.destination.name for f in result.converted)
    return ConversionOutcome(
        target,
        len(result.converted),
        f"{len(result.converted)} checkpoint(s) converted ({names}); {result.tensors} tensors",
    )
