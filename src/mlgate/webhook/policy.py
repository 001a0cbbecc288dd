"""The webhook's policy: a YAML file (safe loader; no ConfigMap parsing of its own: mount
the ConfigMap as this file) with a default and per-namespace overrides.

```yaml
default:
  mode: enforce              # enforce: deny | warn: allow with warnings | audit: record only
  hub: https://hub.internal  # the private hub; HF_ENDPOINT must be this
  require_pinned: false      # refuse floating main / aliases instead of warning
  allow_schemes: []          # e.g. [s3, pvc]: storage the webhook cannot judge, allowed
  exempt_label: mlgate.io/exempt              # label "true" exempts an object...
  exempt_reason_annotation: mlgate.io/exempt-reason  # ...that says why (audited)
namespaces:
  research: {mode: warn}
```

A namespace's entry overrides only the fields it sets. Unknown fields are an error: a typo
in a security policy must not silently mean "no rule".
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from mlgate.errors import ConfigError

MAX_POLICY_BYTES = 1 << 20


class Mode(StrEnum):
    """What a denial does: refuse the object, allow it with warnings, or only record it."""

    ENFORCE = "enforce"
    WARN = "warn"
    AUDIT = "audit"


class Rules(BaseModel):
    """The rules for one namespace."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    mode: Mode = Mode.ENFORCE
    hub: str | None = Field(default=None, max_length=2048)
    require_pinned: bool = False
    allow_schemes: tuple[str, ...] = ()
    exempt_label: str | None = "mlgate.io/exempt"
    exempt_reason_annotation: str = "mlgate.io/exempt-reason"


class Overrides(BaseModel):
    """A namespace's changes to the default rules (every field optional)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    mode: Mode | None = None
    hub: str | None = Field(default=None, max_length=2048)
    require_pinned: bool | None = None
    allow_schemes: tuple[str, ...] | None = None
    exempt_label: str | None = None
    exempt_reason_annotation: str | None = None


class Policy(BaseModel):
    """The default rules and each namespace's overrides."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    default: Rules = Rules()
    namespaces: dict[str, Overrides] = {}

    def rules(self, namespace: str | None) -> Rules:
        """The effective rules in ``namespace`` (cluster-scoped objects: the default)."""
        changes = self.namespaces.get(namespace or "")
        if changes is None:
            return self.default
        return self.default.model_copy(update=changes.model_dump(exclude_unset=True))


def load_policy(path: Path) -> Policy:
    """The policy in the YAML file ``path``; :class:`ConfigError` (with the fix) if it is
    missing, too large or invalid."""
    try:
        with path.open("rb") as f:
            data = f.read(MAX_POLICY_BYTES + 1)
    except OSError as e:
        raise ConfigError(f"cannot read the webhook policy {path}: {e.strerror}") from None
    if len(data) > MAX_POLICY_BYTES:
        raise ConfigError(f"the webhook policy {path} is over {MAX_POLICY_BYTES} bytes")
    try:
        return Policy.model_validate(yaml.safe_load(data) or {})
    except (yaml.YAMLError, ValidationError) as e:
        raise ConfigError(f"invalid webhook policy {path}: {e}") from None
