"""Static analysis of Jinja2 templates (chat templates in GGUF and Hugging Face files).

Templates are parsed with Jinja's own parser and never rendered: rendering an injected
template is exactly the attack (CVE-2024-34359, llama-cpp-python rendered GGUF chat
templates in a non-sandboxed environment). The AST is walked for the ways a template
reaches Python internals: dunder attributes, private attributes, the ``attr`` filter and
constant-folded names, and calls to process or code primitives.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

from jinja2 import TemplateSyntaxError, nodes
from jinja2.ext import Extension, loopcontrols
from jinja2.parser import Parser
from jinja2.sandbox import ImmutableSandboxedEnvironment

from mlgate.findings import Location, Severity
from mlgate.scan import rules
from mlgate.scan.context import ScanContext

MAX_TEMPLATE_CHARS = 1 << 20  # real chat templates are a few KiB
MAX_NODES = 200_000
# Constant folding assembles strings (x = x + x doubles, replace("", x) multiplies): each
# assembled string and their total over the template are bounded, as a 400-byte template
# could otherwise cost minutes and gigabytes. Real chat templates build a few words.
MAX_FOLDED_CHARS = 1 << 16
MAX_FOLD_WORK = 1 << 24
MAX_REPORTED = 10

_DUNDER = re.compile(r"__\w+__")
# Attribute names that only matter for escaping into Python (non-dunder ones included).
_GADGET_ATTRS = frozenset(
    "f_globals f_locals f_builtins f_back gi_frame gi_code cr_frame ag_frame tb_frame tb_next "
    "func_globals func_code mro subclasses builtins subprocess importlib".split()
)
# Methods that run commands or code; flagged when called (``'system'`` alone is a role name).
_GADGET_CALLS = frozenset(
    "popen system spawnl spawnv spawnve spawnlp execv execve execl check_output check_call "
    "getoutput getstatusoutput Popen eval exec execfile compile import_module load_module "
    "__import__".split()
)
# Names that are never part of a chat-rendering context but are Python escape hatches.
_GADGET_NAMES = frozenset(
    "os sys subprocess builtins importlib eval exec compile open getattr globals locals "
    "__import__ __builtins__".split()
)
# Filters that read an attribute named by an argument (``attribute=`` keyword).
_ATTRIBUTE_FILTERS = frozenset(
    "map selectattr rejectattr sort groupby sum unique min max dictsort".split()
)
_FOLD_FILTERS = frozenset("lower upper trim reverse string join replace".split())


class _Generation(Extension):
    """``{% generation %}...{% endgeneration %}``: HF's assistant-mask tag, parsed as a block."""

    tags = {"generation"}  # noqa: RUF012  (Extension declares it as a plain attribute)

    def parse(self, parser: Parser) -> nodes.Node:
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
        return nodes.Scope(body, lineno=lineno)


@dataclass(frozen=True)
class TemplateIssue:
    """One injection pattern found in a template."""

    severity: Severity
    line: int
    message: str


def _environment() -> ImmutableSandboxedEnvironment:
    # Same extensions as transformers' chat-template environment, so benign templates parse.
    return ImmutableSandboxedEnvironment(extensions=[loopcontrols, _Generation])


def template_issues(text: str, deadline: float | None = None) -> list[TemplateIssue]:
    """Injection patterns in ``text``; raises TemplateSyntaxError/RecursionError on bad input
    and TemplateTooCostly when the analysis passes its bounds or ``deadline`` (monotonic)."""
    tree = _environment().parse(text)
    return _Walker(deadline).walk(tree)


def check_template(ctx: ScanContext, location: Location, text: str, origin: str) -> int:
    """Analyse the template ``text`` found at ``origin``; returns the number of findings."""
    if len(text) > MAX_TEMPLATE_CHARS:
        ctx.incomplete_at(
            location,
            f"{origin}: template of {len(text)} characters is over the "
            f"{MAX_TEMPLATE_CHARS} limit; not analysed",
            rules.LIMIT_EXCEEDED,
        )
        return 1
    try:
        issues = template_issues(text, ctx.deadline)
    except TemplateSyntaxError as e:
        # Other engines (minja, older Jinja) may accept what this parser rejects: fall back
        # to the raw text so an unparsable payload is not waved through.
        dunders = sorted(set(_DUNDER.findall(text)))
        if dunders:
            ctx.add(
                rules.TEMPLATE_INJECTION,
                location,
                f"{origin}: unparsable template names Python internals: {', '.join(dunders[:5])}",
                evidence=text[:300],
            )
        ctx.add(
            rules.MALFORMED,
            location,
            f"{origin}: template does not parse (line {e.lineno}): {e.message}",
            severity=Severity.LOW,
        )
        return 1
    except RecursionError:
        ctx.incomplete_at(location, f"{origin}: template too deeply nested", rules.LIMIT_EXCEEDED)
        return 1
    except TemplateTooCostly as e:
        ctx.incomplete_at(location, f"{origin}: {e}; not fully analysed", rules.LIMIT_EXCEEDED)
        return 1
    for issue in issues[:MAX_REPORTED]:
        ctx.add(
            rules.TEMPLATE_INJECTION,
            location,
            f"{origin}: {issue.message} (template line {issue.line})",
            evidence=_line(text, issue.line),
            severity=issue.severity,
        )
    return min(len(issues), MAX_REPORTED)


def _line(text: str, line: int) -> str:
    lines = text.splitlines()
    return lines[line - 1][:300] if 0 < line <= len(lines) else ""


class TemplateTooCostly(Exception):
    """The template's analysis passed a bound (nodes, folded text, time): not fully analysed."""


class _Walker:
    """Collects issues over the template AST (iteratively; templates can nest deeply)."""

    def __init__(self, deadline: float | None) -> None:
        self.issues: list[TemplateIssue] = []
        self.consts: dict[str, str] = {}  # {% set x = "..." %} values, for folding
        self.deadline = deadline
        self.folded = 0  # characters assembled by constant folding so far

    def walk(self, tree: nodes.Node) -> list[TemplateIssue]:
        stack: list[nodes.Node] = [tree]
        seen = 0
        while stack:
            node = stack.pop()
            seen += 1
            if seen > MAX_NODES:
                raise TemplateTooCostly(f"template has more than {MAX_NODES} nodes")
            if seen % 1024 == 0 and self.deadline is not None and time.monotonic() > self.deadline:
                raise TemplateTooCostly("time budget for this file exhausted in the template")
            self._visit(node)
            stack.extend(reversed(list(node.iter_child_nodes())))
        return self.issues

    def _add(self, node: nodes.Node, message: str, severity: Severity = Severity.CRITICAL) -> None:
        self.issues.append(TemplateIssue(severity, getattr(node, "lineno", 0) or 0, message))

    def _visit(self, node: nodes.Node) -> None:
        if isinstance(node, nodes.Assign) and isinstance(node.target, nodes.Name):
            value = self._fold(node.node)
            if value is not None:
                self.consts[node.target.name] = value
        if isinstance(node, nodes.Getattr):
            self._attribute(node, node.attr, "attribute")
        elif isinstance(node, nodes.Getitem):
            key = self._fold(node.arg)
            if key is not None and _DUNDER.fullmatch(key):
                self._attribute(node, key, "item")
        elif isinstance(node, nodes.Call) and isinstance(node.node, nodes.Getattr):
            if node.node.attr in _GADGET_CALLS:
                self._add(node, f"calls '{node.node.attr}' (process or code primitive)")
        elif isinstance(node, nodes.Filter | nodes.Test):
            self._filter(node)
            if node.name in _FOLD_FILTERS:
                self._built(node)
        elif isinstance(node, nodes.Name) and node.ctx == "load" and node.name in _GADGET_NAMES:
            self._add(node, f"uses '{node.name}', a Python escape hatch", Severity.HIGH)
        elif isinstance(node, nodes.Keyword) and _DUNDER.fullmatch(node.key):
            self._add(node, f"passes the dunder keyword '{node.key}'")
        elif isinstance(node, nodes.Concat | nodes.Add | nodes.Mul):
            self._built(node)
        elif isinstance(node, nodes.Const) and isinstance(node.value, str):
            if _DUNDER.fullmatch(node.value):
                self._add(node, f"string constant {node.value!r} names a Python internal")
        elif isinstance(node, nodes.Import | nodes.FromImport | nodes.Include | nodes.Extends):
            self._add(node, "loads another template", Severity.LOW)

    def _built(self, node: nodes.Node) -> None:
        """A dunder name assembled from constant pieces (concatenation, join, reverse...)."""
        folded = self._fold(node)
        if folded is not None and _DUNDER.search(folded):
            self._add(node, f"builds the dunder name {folded[:60]!r} from pieces")

    def _attribute(self, node: nodes.Node, name: str, kind: str) -> None:
        if _DUNDER.fullmatch(name):
            self._add(node, f"accesses the dunder {kind} '{name}' (reaches Python internals)")
        elif name in _GADGET_ATTRS:
            self._add(node, f"accesses the {kind} '{name}' (process or code primitive)")
        elif name.startswith("_"):
            self._add(node, f"accesses the private {kind} '{name}'", Severity.HIGH)

    def _filter(self, node: nodes.Filter | nodes.Test) -> None:
        names: list[nodes.Expr] = []
        if node.name == "attr":
            names.extend(node.args[:1])
        if node.name in _ATTRIBUTE_FILTERS:
            names.extend(kw.value for kw in node.kwargs if kw.key == "attribute")
        for arg in names:
            value = self._fold(arg)
            if value is None:
                self._add(
                    node, f"'{node.name}' filter with a computed attribute name", Severity.HIGH
                )
            else:
                for part in value.split("."):
                    self._attribute(node, part, f"attribute (via |{node.name})")

    def _fold(self, node: nodes.Node, depth: int = 0) -> str | None:
        """The constant string ``node`` evaluates to, when it can be known statically."""
        if depth > 50:
            return None
        if isinstance(node, nodes.Const):
            return node.value if isinstance(node.value, str) else None
        if isinstance(node, nodes.Name):
            return self.consts.get(node.name)
        if isinstance(node, nodes.Concat):
            return self._joined([self._fold(n, depth + 1) for n in node.nodes])
        if isinstance(node, nodes.Add):
            return self._joined(
                [self._fold(node.left, depth + 1), self._fold(node.right, depth + 1)]
            )
        if isinstance(node, nodes.Mul):  # "_" * 2: bounded so folding cannot blow up
            text, times = self._fold(node.left, depth + 1), node.right
            count = times.value if isinstance(times, nodes.Const) else None
            if text is not None and isinstance(count, int) and 0 <= len(text) * count <= 1000:
                return text * count
            return None
        if isinstance(node, nodes.Filter) and node.name in _FOLD_FILTERS and node.node:
            return self._fold_filter(node, depth)
        if isinstance(node, nodes.List | nodes.Tuple):
            return self._joined([self._fold(n, depth + 1) for n in node.items])
        return None

    def _joined(self, parts: list[str | None], sep: str | None = "") -> str | None:
        """``sep.join(parts)`` when every piece is known, charged before it is built."""
        known = [p for p in parts if p is not None]
        if sep is None or len(known) < len(parts):
            return None
        self._charge(sum(map(len, known)) + len(sep) * max(len(known) - 1, 0))
        return sep.join(known)

    def _charge(self, size: int) -> None:
        self.folded += size
        if size > MAX_FOLDED_CHARS or self.folded > MAX_FOLD_WORK:
            raise TemplateTooCostly("constant strings assembled by the template are too large")

    def _fold_filter(self, node: nodes.Filter, depth: int) -> str | None:
        assert node.node is not None
        args = [self._fold(a, depth + 1) for a in node.args]
        if node.name == "join" and isinstance(node.node, nodes.List | nodes.Tuple):
            items = [self._fold(n, depth + 1) for n in node.node.items]
            return self._joined(items, args[0] if args else "")
        value = self._fold(node.node, depth + 1)
        if value is None:
            return None
        if node.name == "replace":
            if len(args) < 2 or args[0] is None or args[1] is None:
                return None
            old, new = args[0], args[1]
            self._charge(len(value) + value.count(old) * max(len(new) - len(old), 0))
            return value.replace(old, new)
        if node.name == "lower":
            return value.lower()
        if node.name == "upper":
            return value.upper()
        if node.name == "trim":
            return value.strip()
        if node.name == "reverse":
            return value[::-1]
        return value  # string, join (of an already-joined list)
