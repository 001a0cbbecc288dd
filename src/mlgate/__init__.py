"""mlgate: the gate between untrusted model artifacts and production loaders.

The public API is re-exported here and loaded on first use, so that ``import mlgate`` (and
every CLI command) does not pay for the stages it does not use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# The stage packages named like the API functions below are imported first: importing a
# subpackage later would rebind the package attribute (mlgate.scan, mlgate.bom) to it.
import mlgate.bom as _bom_stage
import mlgate.scan as _scan_stage  # noqa: F401
from mlgate.errors import ConfigError, ExitCode, MlgateError, ScanError
from mlgate.findings import ArtifactResult, Finding, Location, Report, Severity

if TYPE_CHECKING:
    import os

    from mlgate.config import Config, load_config
    from mlgate.convert import load
    from mlgate.gate import admit
    from mlgate.provenance import hash_model, sign_model, verify_model
    from mlgate.registry import init_registry, open_registry

_LAZY = {
    "Config": ("mlgate.config", "Config"),
    "load_config": ("mlgate.config", "load_config"),
    "load": ("mlgate.convert", "load"),
    "admit": ("mlgate.gate", "admit"),
    "open_registry": ("mlgate.registry", "open_registry"),
    "init_registry": ("mlgate.registry", "init_registry"),
    "hash_model": ("mlgate.provenance", "hash_model"),
    "sign_model": ("mlgate.provenance", "sign_model"),
    "verify_model": ("mlgate.provenance", "verify_model"),
}

__all__ = [
    "ArtifactResult",
    "Config",
    "ConfigError",
    "ExitCode",
    "Finding",
    "Location",
    "MlgateError",
    "Report",
    "ScanError",
    "Severity",
    "admit",
    "bom",
    "hash_model",
    "init_registry",
    "load",
    "load_config",
    "open_registry",
    "scan",
    "sign_model",
    "verify_model",
]
__version__ = "0.1.0"


def scan(*paths: str | os.PathLike[str], config: Config | None = None) -> Report:
    """Statically scan model files or folders; nothing in them is loaded or executed.

    Defined here rather than re-exported lazily, after the subpackage import above.
    """
    from mlgate.api import scan as scan_paths  # noqa: PLC0415 - keeps `import mlgate` light

    return scan_paths(*paths, config=config)


bom = _bom_stage.build_cyclonedx


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'mlgate' has no attribute {name!r}")
    module, attr = _LAZY[name]
    value = getattr(importlib.import_module(module), attr)
    globals()[name] = value
    return value
