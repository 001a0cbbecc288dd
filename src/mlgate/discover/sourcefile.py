"""Python source to analyse: a ``.py`` file, or the code cells of a Jupyter notebook joined
into one module (cells share one namespace: an import in cell 1 serves cell 5).

Notebooks are nbformat JSON read with :mod:`json` (bounded by the caller's size cap); IPython
magics and shell escapes (``%pip``, ``!ls``) become blank lines so that line numbers still
match, and cells in another language (``%%bash``) are left out. A cell that does not parse is
reported and left out; the rest of the notebook is still analysed. Positions are mapped back
to (cell, line) and columns counted in characters, as SARIF regions want them.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from importlib.util import decode_source

from mlgate.findings import Region

_LINE_BREAK = re.compile(r"\r\n|\r|\n")
_PYTHON_CELL_MAGICS = frozenset({"time", "timeit", "capture", "prun", "debug"})
MAX_BROKEN_CELLS = 64  # re-parses after a broken cell, before the notebook is given up


class SourceError(ValueError):
    """The file is not Python (or not a notebook) that can be analysed; says why."""


@dataclass
class Source:
    """Text parsed as one module, with what is needed to report positions in the file."""

    text: str
    lines: list[str]
    cells: list[tuple[int, int]] = field(default_factory=list)  # (first line, cell number)
    broken: list[tuple[int, str]] = field(default_factory=list)  # (cell number, why)

    def member(self, line: int) -> tuple[tuple[str, ...], int]:
        """The notebook cell holding module line ``line`` and the line inside that cell."""
        if not self.cells:
            return (), line
        first, number = max((c for c in self.cells if c[0] <= line), default=self.cells[0])
        return (f"cell {number}",), line - first + 1

    def region(self, node: ast.AST) -> tuple[tuple[str, ...], Region]:
        """The node's position: members (a notebook cell) and a region inside it."""
        line = getattr(node, "lineno", 1)
        end_line = getattr(node, "end_lineno", None) or line
        start = self._column(line, getattr(node, "col_offset", 0))
        end = self._column(end_line, getattr(node, "end_col_offset", None))
        members, cell_line = self.member(line)
        return members, Region(cell_line, start, cell_line + end_line - line, max(end, 1))

    def _column(self, line: int, byte_offset: int | None) -> int:
        """1-based column in characters of a UTF-8 byte offset (as the ast module gives)."""
        text = self.lines[line - 1] if 0 < line <= len(self.lines) else ""
        if byte_offset is None:
            return len(text) + 1
        return len(text.encode("utf-8")[:byte_offset].decode("utf-8", "ignore")) + 1

    def segment(self, node: ast.AST, limit: int = 200) -> str:
        """The node's first source line, shortened: the evidence a reviewer reads."""
        line = getattr(node, "lineno", 0)
        text = self.lines[line - 1].strip() if 0 < line <= len(self.lines) else ""
        return text if len(text) <= limit else text[: limit - 3] + "..."


def python_source(data: bytes) -> tuple[Source, ast.Module]:
    """Parse a ``.py`` file (its coding cookie and BOM honoured)."""
    try:
        text = decode_source(data)
    except (UnicodeDecodeError, SyntaxError, LookupError) as e:
        raise SourceError(f"not decodable as Python source: {e}") from e
    source = Source(text, _LINE_BREAK.split(text))
    return source, _parse(text)


def _parse(text: str) -> ast.Module:
    try:
        return ast.parse(text)
    except SyntaxError as e:
        raise SourceError(f"not valid Python 3 (line {e.lineno}: {e.msg})") from e
    except (ValueError, MemoryError) as e:  # null bytes; too deep for the compiler
        raise SourceError(f"not parsable: {e}") from e


def notebook_source(data: bytes) -> tuple[Source, ast.Module]:
    """Parse the code cells of an nbformat notebook as one module."""
    try:
        document = json.loads(data)
    except (ValueError, RecursionError) as e:
        raise SourceError("not a notebook: not valid JSON") from e
    cells = document.get("cells") if isinstance(document, dict) else None
    if not isinstance(cells, list):
        raise SourceError("not an nbformat notebook: no list of cells")
    code = dict(_code_cells(cells))
    broken: list[tuple[int, str]] = []
    for _ in range(MAX_BROKEN_CELLS + 1):
        source = _joined(code, broken)
        try:
            return source, ast.parse(source.text)
        except SyntaxError as e:
            members, line = source.member(e.lineno or 1)
            number = int(members[0].removeprefix("cell "))
            broken.append((number, f"line {line}: {e.msg}"))
            code.pop(number)
        except (ValueError, MemoryError) as e:
            raise SourceError(f"not parsable: {e}") from e
    raise SourceError(f"more than {MAX_BROKEN_CELLS} code cells do not parse")


def _code_cells(cells: list[object]) -> Iterator[tuple[int, str]]:
    for number, cell in enumerate(cells, start=1):
        if not isinstance(cell, dict) or cell.get("cell_type") != "code":
            continue
        source = cell.get("source", "")
        text = (
            "".join(s for s in source if isinstance(s, str)) if isinstance(source, list) else source
        )
        if isinstance(text, str) and not _foreign_cell(text):
            yield number, "\n".join(_python_line(line) for line in _LINE_BREAK.split(text))


def _foreign_cell(text: str) -> bool:
    """A cell magic that makes the cell another language (``%%bash``, ``%%html``)."""
    first = text.lstrip().split(None, 1)[0] if text.strip() else ""
    return first.startswith("%%") and first[2:] not in _PYTHON_CELL_MAGICS


def _python_line(line: str) -> str:
    stripped = line.lstrip()
    return "" if stripped.startswith(("%", "!", "?")) else line


def _joined(code: dict[int, str], broken: list[tuple[int, str]]) -> Source:
    parts: list[str] = []
    cells: list[tuple[int, int]] = []
    line = 1
    for number, text in code.items():
        cells.append((line, number))
        parts.append(text)
        line += text.count("\n") + 1
    text = "\n".join(parts)
    return Source(text, _LINE_BREAK.split(text), cells, broken)
