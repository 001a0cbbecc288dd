"""Errors of the conversion stage.

:class:`ConversionRefused` means the content is not plain tensors and data (exit code 1, with
the findings that say why); :class:`ConversionError` means the conversion could not be
completed (unreadable, truncated or inconsistent input, unwritable destination: exit code 2).
"""

from __future__ import annotations

from collections.abc import Sequence

from mlgate.errors import MlgateError
from mlgate.findings import Finding


class ConversionError(MlgateError):
    """The conversion could not be completed; nothing was written."""


class ConversionRefused(MlgateError):
    """The checkpoint holds something other than tensors, arrays and plain containers.

    Converting it would mean running code from the file, so nothing was written.
    """

    def __init__(self, message: str, findings: Sequence[Finding]) -> None:
        super().__init__(message)
        self.findings: tuple[Finding, ...] = tuple(findings)


class IntegrityError(MlgateError):
    """``load(..., lock=...)`` or ``load(..., public_key=...)``: the model did not verify."""
