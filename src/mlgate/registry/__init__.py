"""The AI asset registry: quarantine, inventory, lifecycle, aliases and audit log.

``open_registry`` / ``init_registry`` return a :class:`Registry`; see docs/registry.md.
Loaded lazily so that importing a sub-module (e.g. the sources) stays light.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mlgate.registry.lifecycle import State
    from mlgate.registry.policy import RegistryPolicy
    from mlgate.registry.records import Version
    from mlgate.registry.roles import Role
    from mlgate.registry.service import Registry, init_registry, open_registry

_LAZY = {
    "Registry": "mlgate.registry.service",
    "open_registry": "mlgate.registry.service",
    "init_registry": "mlgate.registry.service",
    "RegistryPolicy": "mlgate.registry.policy",
    "State": "mlgate.registry.lifecycle",
    "Role": "mlgate.registry.roles",
    "Version": "mlgate.registry.records",
}

__all__ = [
    "Registry",
    "RegistryPolicy",
    "Role",
    "State",
    "Version",
    "init_registry",
    "open_registry",
]


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'mlgate.registry' has no attribute {name!r}")
    return getattr(importlib.import_module(_LAZY[name]), name)
