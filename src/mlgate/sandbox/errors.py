"""Errors of the sandbox stage."""

from __future__ import annotations

from mlgate.errors import MlgateError


class SandboxUnavailableError(MlgateError):
    """The sandbox cannot be set up with the isolation asked for; nothing was run."""

    def __init__(self, message: str, remedy: str) -> None:
        super().__init__(f"{message}; {remedy}")
        self.remedy = remedy
