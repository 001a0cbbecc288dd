"""mlgate: the gate between untrusted model artifacts and production loaders."""

from mlgate.api import scan
from mlgate.bom import build_cyclonedx as bom
from mlgate.config import Config, load_config
from mlgate.errors import ConfigError, ExitCode, MlgateError, ScanError
from mlgate.findings import ArtifactResult, Finding, Location, Report, Severity
from mlgate.provenance import hash_model, sign_model, verify_model

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
    "bom",
    "hash_model",
    "load_config",
    "scan",
    "sign_model",
    "verify_model",
]
__version__ = "0.1.0"
