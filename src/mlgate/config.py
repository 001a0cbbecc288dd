"""User configuration: ``[tool.mlgate]`` in pyproject.toml, or a top-level ``mlgate.toml``.

Example::

    [tool.mlgate]
    fail-on = "HIGH"
    allow = ["mycompany.models.*", "mycompany.layers.Gate"]   # extends the allowlist
    [tool.mlgate.deny]                                        # extends the denylist
    "mycompany.utils.fetch" = "HIGH"
    [tool.mlgate.limits]
    max-depth = 8

The allowlist can only add names mlgate would otherwise call *unknown*; it never lifts a
built-in denylist entry (an allowed ``os.system`` is still ``os.system``).
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from mlgate.errors import ConfigError
from mlgate.findings import Severity
from mlgate.scan.limits import Limits
from mlgate.scan.pickle.policy import UserPolicy


@dataclass(frozen=True)
class Config:
    """Everything a scan can be configured with."""

    fail_on: Severity = Severity.HIGH
    policy: UserPolicy = field(default_factory=UserPolicy)
    limits: Limits = field(default_factory=Limits)
    source: Path | None = None


def load_config(explicit: Path | None = None, start: Path | None = None) -> Config:
    """Read ``explicit`` or discover ``mlgate.toml`` / ``pyproject.toml`` from ``start``."""
    path = explicit if explicit is not None else _discover(start or Path.cwd())
    if path is None:
        return Config()
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: cannot read configuration: {e}") from e
    table = data.get("tool", {}).get("mlgate", {}) if path.name == "pyproject.toml" else data
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: [tool.mlgate] must be a table")
    return _parse(table, path)


def _discover(start: Path) -> Path | None:
    for folder in (start, *start.parents):
        own = folder / "mlgate.toml"
        if own.is_file():
            return own
        project = folder / "pyproject.toml"
        if project.is_file() and "tool.mlgate" in project.read_text(
            encoding="utf-8", errors="replace"
        ):
            return project
    return None


def _parse(table: dict[str, Any], path: Path) -> Config:
    known = {"fail-on", "allow", "deny", "limits"}
    unknown = set(table) - known
    if unknown:
        raise ConfigError(f"{path}: unknown keys {sorted(unknown)}; expected {sorted(known)}")
    try:
        fail_on = Severity.parse(str(table.get("fail-on", "HIGH")))
        allow = table.get("allow", [])
        if not isinstance(allow, list) or not all(isinstance(a, str) for a in allow):
            raise ValueError("allow must be a list of strings")
        deny_table = table.get("deny", {})
        if not isinstance(deny_table, dict):
            raise ValueError("deny must be a table of name = severity")
        deny = {str(k): Severity.parse(str(v)) for k, v in deny_table.items()}
        limits = _limits(table.get("limits", {}))
    except ValueError as e:
        raise ConfigError(f"{path}: {e}") from e
    return Config(fail_on, UserPolicy(frozenset(allow), deny), limits, path)


def _limits(table: object) -> Limits:
    if not isinstance(table, dict):
        raise ValueError("limits must be a table")
    names = {f.name.replace("_", "-"): f.name for f in fields(Limits)}
    changes: dict[str, Any] = {}
    for key, value in table.items():
        if key not in names:
            raise ValueError(f"unknown limit {key!r}; known: {sorted(names)}")
        if not isinstance(value, int | float) or value <= 0:
            raise ValueError(f"limit {key!r} must be a positive number")
        changes[names[key]] = value
    return replace(Limits(), **changes)


def read_policy_table(path: Path, name: str) -> dict[str, Any]:
    """The ``[name]`` table of a TOML policy file (empty when absent)."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: cannot read policy: {e}") from e
    table = data.get(name, {})
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: [{name}] must be a table")
    return table
