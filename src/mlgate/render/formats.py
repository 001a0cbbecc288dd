"""The output formats and the renderer of each (one explicit, exhaustive table)."""

from __future__ import annotations

from collections.abc import Callable
from enum import Enum

from mlgate.findings import Report, Severity
from mlgate.render.json import render_json
from mlgate.render.sarif import render_sarif
from mlgate.render.text import render_text


class OutputFormat(Enum):
    TEXT = "text"
    JSON = "json"
    SARIF = "sarif"


Renderer = Callable[[Report, Severity, bool], str]

RENDERERS: dict[OutputFormat, Renderer] = {
    OutputFormat.TEXT: render_text,
    OutputFormat.JSON: lambda report, fail_on, color: render_json(report, fail_on),
    OutputFormat.SARIF: lambda report, fail_on, color: render_sarif(report),
}
assert set(RENDERERS) == set(OutputFormat)
