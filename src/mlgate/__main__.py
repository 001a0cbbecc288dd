"""``python -m mlgate``."""

from mlgate.cli import entry

entry()
