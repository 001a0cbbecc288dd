"""Discovery (issue 14): find, in code, what goes around the gate — unsafe model loading
(pickle-based loaders, ``torch.load`` without ``weights_only``, ``trust_remote_code``...),
every model the code fetches and from where, and the ML frameworks its requirements pin.

Static only: Python files and notebook cells are parsed with :mod:`ast`, never imported or
run. One entry point, :func:`discover_paths`; findings use the shared model and renderers.
"""

from __future__ import annotations

from mlgate.discover.engine import DiscoverLimits, DiscoverOptions, discover_paths

__all__ = ["DiscoverLimits", "DiscoverOptions", "discover_paths"]
