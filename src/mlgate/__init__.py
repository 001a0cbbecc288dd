"""mlgate: the gate between untrusted model artifacts and production loaders."""

from mlgate.api import scan
from mlgate.config import Config, load_config
from mlgate.errors import ConfigError, ExitCode, MlgateError, ScanError
from mlgate.findings import ArtifactResult, Finding, Location, Report, Severity

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
    "load_config",
    "scan",
]
__version__ = "0.1.0"
