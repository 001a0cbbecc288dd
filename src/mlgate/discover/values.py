"""What a Python expression denotes, read from the AST alone: the qualified name of a callee
(through imports, aliases, ``__import__``/``getattr`` with constant names) and the constant a
string expression computes (literals, f-strings of constants, single assignments).

Nothing is imported or executed. Resolution follows bindings a bounded number of steps, so a
hostile file (a chain of ten thousand aliases) costs a bounded amount of work.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass, field

MAX_STEPS = 40  # bindings followed while resolving one expression

# Module spellings that load the same code: evasions and historical names resolve to one.
_CANONICAL = (
    ("cPickle", "pickle"),
    ("_pickle", "pickle"),
    ("pickle5", "pickle"),
    ("six.moves.cPickle", "pickle"),
    ("torch.serialization.load", "torch.load"),
    ("sklearn.externals.joblib", "joblib"),
    ("pandas.io.pickle", "pandas"),
    ("tensorflow.python.keras", "keras"),
    ("tensorflow.keras", "keras"),
    ("tf_keras", "keras"),
    ("keras.src.saving.saving_api", "keras.saving"),
    ("keras.src.models", "keras.models"),
    ("keras.src.saving", "keras.saving"),
    ("keras.src.config", "keras.config"),
    ("keras.saving.saving_api", "keras.saving"),
)


class Unknown:
    """The value of an expression that cannot be computed statically."""

    def __repr__(self) -> str:
        return "UNKNOWN"


UNKNOWN = Unknown()


def canonical(name: str) -> str:
    """``name`` with module aliases replaced by the module they stand for."""
    for alias, target in _CANONICAL:
        if name == alias or name.startswith(alias + "."):
            name = target + name[len(alias) :]
    return name


@dataclass(frozen=True)
class Binding:
    """An expression a name is bound to, and the scope that expression is evaluated in."""

    expr: ast.expr
    env: Env


@dataclass(eq=False)
class Env:
    """Names visible in one scope (a function, a call of a wrapper, the module), over the
    module's. Only names bound exactly once, by a plain assignment (or a call-site argument),
    have a value: anything assigned twice is unknown."""

    imports: dict[str, str]
    names: dict[str, Binding] = field(default_factory=dict)
    parent: Env | None = None
    params: frozenset[str] = frozenset()  # the enclosing function's parameters
    kwargs_name: str | None = None  # its ``**kw`` parameter, if any
    # What ``**kw`` holds: the extra keywords of a wrapper's call site; None when unknown.
    forwarded: dict[str, Binding] | None = None

    def lookup(self, name: str) -> Binding | None:
        env: Env | None = self
        while env is not None:
            if name in env.names:
                return env.names[name]
            env = env.parent
        return None

    def child(self, params: frozenset[str] = frozenset()) -> Env:
        return Env(self.imports, parent=self, params=params)


def qualname(expr: ast.expr, env: Env, steps: int = MAX_STEPS) -> str | None:
    """The canonical dotted name ``expr`` denotes (``t.load`` -> ``torch.load``), or None."""
    if steps <= 0:
        return None
    if isinstance(expr, ast.Name):
        binding = env.lookup(expr.id)
        if binding is not None:
            return qualname(binding.expr, binding.env, steps - 1)
        return canonical(env.imports.get(expr.id, expr.id))
    if isinstance(expr, ast.Attribute):
        base = qualname(expr.value, env, steps - 1)
        return canonical(f"{base}.{expr.attr}") if base else None
    if isinstance(expr, ast.Call):
        return _dynamic_qualname(expr, env, steps - 1)
    return None


def _dynamic_qualname(call: ast.Call, env: Env, steps: int) -> str | None:
    """``__import__("pickle")``, ``importlib.import_module("pickle")`` and
    ``getattr(pickle, "loads")`` with constant names: common evasions of name matching."""
    func = qualname(call.func, env, steps)
    if func in ("__import__", "importlib.import_module", "importlib.__import__") and call.args:
        module = const(call.args[0], env, steps)
        return canonical(module) if isinstance(module, str) else None
    if func == "getattr" and len(call.args) >= 2:
        base = qualname(call.args[0], env, steps)
        attr = const(call.args[1], env, steps)
        return canonical(f"{base}.{attr}") if base and isinstance(attr, str) else None
    return None


def const(expr: ast.expr, env: Env, steps: int = MAX_STEPS) -> object:
    """The constant ``expr`` computes, or :data:`UNKNOWN`."""
    if steps <= 0:
        return UNKNOWN
    if isinstance(expr, ast.Constant):
        return expr.value
    if isinstance(expr, ast.Name):
        binding = env.lookup(expr.id)
        return UNKNOWN if binding is None else const(binding.expr, binding.env, steps - 1)
    if isinstance(expr, ast.JoinedStr):
        return _fstring(expr, env, steps - 1)
    if isinstance(expr, ast.BinOp) and isinstance(expr.op, ast.Add):
        left, right = const(expr.left, env, steps - 1), const(expr.right, env, steps - 1)
        if isinstance(left, str) and isinstance(right, str):
            return left + right
    return UNKNOWN


def _fstring(expr: ast.JoinedStr, env: Env, steps: int) -> object:
    parts = []
    for value in expr.values:
        if isinstance(value, ast.FormattedValue):
            if value.conversion != -1 or value.format_spec is not None:
                return UNKNOWN
            value_expr: ast.expr = value.value
        else:
            value_expr = value
        part = const(value_expr, env, steps)
        if not isinstance(part, str | int):
            return UNKNOWN
        parts.append(str(part))
    return "".join(parts)


def mentions(expr: ast.expr, env: Env, names: frozenset[str], steps: int = MAX_STEPS) -> bool:
    """True when ``expr`` uses one of ``names`` directly or through the scope's bindings."""
    for node in ast.walk(expr):
        if not isinstance(node, ast.Name):
            continue
        if node.id in names:
            return True
        binding = env.names.get(node.id)
        if binding is not None and steps > 0 and mentions(binding.expr, env, names, steps - 1):
            return True
    return False


def scope_nodes(body: list[ast.stmt]) -> Iterator[ast.AST]:
    """Every node of one scope, without descending into nested functions, lambdas, classes."""
    stack: list[ast.AST] = list(reversed(body))
    while stack:
        node = stack.pop()
        yield node
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda | ast.ClassDef):
            continue
        stack.extend(reversed(list(ast.iter_child_nodes(node))))


def single_assignments(body: list[ast.stmt]) -> dict[str, ast.expr]:
    """Names of the scope bound exactly once, by ``name = value`` (or ``name: T = value``)."""
    stores: dict[str, int] = {}
    values: dict[str, ast.expr] = {}
    for node in scope_nodes(body):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store | ast.Del):
            stores[node.id] = stores.get(node.id, 0) + 1
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            stores[node.name] = stores.get(node.name, 0) + 1
        target, value = _simple_assignment(node)
        if target is not None and value is not None:
            values[target] = value
    return {name: value for name, value in values.items() if stores.get(name) == 1}


def _simple_assignment(node: ast.AST) -> tuple[str | None, ast.expr | None]:
    if isinstance(node, ast.Assign) and len(node.targets) == 1:
        target = node.targets[0]
        return (target.id, node.value) if isinstance(target, ast.Name) else (None, None)
    if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
        return node.target.id, node.value
    return None, None


def imports_of(tree: ast.Module) -> dict[str, str]:
    """Local name -> imported dotted name, for every import anywhere in the module."""
    names: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                local = alias.asname or alias.name.split(".")[0]
                names.setdefault(local, alias.name if alias.asname else local)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            for alias in node.names:
                if alias.name != "*":
                    names.setdefault(alias.asname or alias.name, f"{node.module}.{alias.name}")
    return names
