"""Chat-template analysis entry point; the Jinja parser is loaded on first use.

Importing jinja2 costs ~55 ms, paid by every ``mlgate`` command if it were imported
eagerly, while only files that carry a template need it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mlgate.findings import Location
    from mlgate.scan.context import ScanContext
    from mlgate.scan.jinja_ast import TemplateIssue


def check_template(ctx: ScanContext, location: Location, text: str, origin: str) -> int:
    """Analyse the template ``text`` found at ``origin``; returns the number of findings."""
    from mlgate.scan import jinja_ast  # noqa: PLC0415 - see the module docstring

    return jinja_ast.check_template(ctx, location, text, origin)


def template_issues(text: str) -> list[TemplateIssue]:
    """The injection patterns in ``text``, without reporting them."""
    from mlgate.scan import jinja_ast  # noqa: PLC0415 - see the module docstring

    return jinja_ast.template_issues(text)
