"""Registry policy: stored in the registry itself and changed only by an admin (audited).

A policy that lived in each caller's working directory could be loosened by whoever runs
the command; the registry's own copy applies to everyone.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Literal, get_args

from mlgate.config import read_policy_table
from mlgate.errors import ConfigError
from mlgate.findings import Severity

# When versions are also loaded in the sandbox (a Literal, so the hub API's schema lists the
# values the registry accepts).
DynamicTestWhen = Literal["off", "on-findings", "always"]


@dataclass(frozen=True)
class RegistryPolicy:
    """What the registry enforces on every version.

    ``auto_reject_at``: a scan finding at or above this severity rejects the version
    automatically (None: reviewers decide). ``required_approvals``: distinct approvers
    needed. ``separation_of_duties``: the ingester's approval never suffices on its own.
    ``convert_on_ingest``: pickle weights are converted to safetensors for publication.
    ``checkpoint_every``: the audit log is signed every this many entries.
    ``anonymous_reads``: the hub serves reads without a token, as the user ``anonymous``
    (who must exist, with the roles an admin gave it).
    ``auto_publish_below``: a version pulled through from the upstream hub whose complete
    scan has no finding at or above this severity is approved and published at once by
    ``mlgate-policy`` (None: every pulled version waits for review).
    ``quarantine_on_rescan_fail``: a served version that a rescan finds at or above
    ``auto_reject_at`` goes back to quarantine (withdrawn from serving) automatically.
    ``dynamic_test``: when each version's model files are also loaded in the sandbox after
    the static scan (``off``, ``on-findings``: the static scan found anything, ``always``);
    see :mod:`mlgate.registry.dynamic`. ``dynamic_timeout``: wall clock of one load, s;
    ``dynamic_memory``: its address-space limit, GiB (a shard larger than it cannot load).
    """

    auto_reject_at: Severity | None = Severity.HIGH
    required_approvals: int = 1
    separation_of_duties: bool = True
    convert_on_ingest: bool = False
    checkpoint_every: int = 50
    anonymous_reads: bool = False
    auto_publish_below: Severity | None = None
    quarantine_on_rescan_fail: bool = False
    dynamic_test: DynamicTestWhen = "off"
    dynamic_timeout: int = 120
    dynamic_memory: int = 8

    def to_json(self) -> str:
        """Stored form."""
        data: dict[str, Any] = asdict(self)
        for name in _SEVERITIES:
            level = getattr(self, name)
            data[name] = level.name if level else None
        return json.dumps(data, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> RegistryPolicy:
        """Inverse of :meth:`to_json`."""
        return _build(json.loads(text), "stored policy")


DYNAMIC_TESTS: tuple[str, ...] = get_args(DynamicTestWhen)
_SEVERITIES = ("auto_reject_at", "auto_publish_below")
_FLAGS = (
    "separation_of_duties",
    "convert_on_ingest",
    "anonymous_reads",
    "quarantine_on_rescan_fail",
)


def load_policy(path: Path) -> RegistryPolicy:
    """Read a ``[registry]`` table from a TOML file (``registry.toml`` / ``policy.toml``)."""
    table = read_policy_table(path, "registry")
    return _build({k.replace("-", "_"): v for k, v in table.items()}, str(path))


def _build(data: dict[str, Any], where: str) -> RegistryPolicy:
    known = {f.name for f in fields(RegistryPolicy)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f"{where}: unknown registry policy keys {unknown}")
    values = dict(data)
    for name in _SEVERITIES:
        values[name] = _severity(values.get(name, getattr(RegistryPolicy, name)), name, where)
    if values.get("dynamic_test", "off") not in DYNAMIC_TESTS:
        raise ConfigError(f"{where}: dynamic-test must be one of {', '.join(DYNAMIC_TESTS)}")
    for name in ("required_approvals", "checkpoint_every", "dynamic_timeout", "dynamic_memory"):
        value = values.get(name, 1)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ConfigError(f"{where}: {name.replace('_', '-')} must be a positive integer")
    for name in _FLAGS:
        if not isinstance(values.get(name, False), bool):
            raise ConfigError(f"{where}: {name.replace('_', '-')} must be true or false")
    return RegistryPolicy(**values)


def _severity(level: object, name: str, where: str) -> Severity | None:
    """A severity setting from its stored or TOML form (a name, or ``"off"``)."""
    key = name.replace("_", "-")
    if isinstance(level, str):
        try:
            return None if level.lower() == "off" else Severity.parse(level)
        except ValueError as e:
            raise ConfigError(f"{where}: {key}: {e}") from e
    if level is not None and not isinstance(level, Severity):
        raise ConfigError(f'{where}: {key} must be a severity name or "off"')
    return level
