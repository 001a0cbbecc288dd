"""Every call of a module, seen as the callee it reaches and the arguments it receives.

A call reaches its callee directly (``t.load(f)`` with ``import torch as t``), through
``functools.partial`` (bound arguments merged with the call's), or through a wrapper function
of the same module whose parameters flow into the callee's arguments (``def load(p, wo=True):
return torch.load(p, weights_only=wo)``): such an inner call is judged at each call of the
wrapper, with the values that call passes, and at the wrapper itself only when the module never
calls it. Keyword dictionaries spelled in the code (``**{"trust_remote_code": True}``) count
as keywords.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from mlgate.discover.values import (
    MAX_STEPS,
    Binding,
    Env,
    imports_of,
    mentions,
    qualname,
    scope_nodes,
    single_assignments,
)

_PARTIAL = "functools.partial"
_Function = ast.FunctionDef | ast.AsyncFunctionDef


@dataclass(frozen=True)
class CallView:
    """One call as it reaches its callee: where it is, what it calls, with which arguments."""

    node: ast.Call  # where the call is made (the wrapper's call site, for an expanded one)
    callee: str | None  # canonical dotted name, e.g. "torch.load"
    method: str | None  # the attribute called, e.g. "from_pretrained"
    args: tuple[Binding, ...]
    keywords: dict[str, Binding]
    opaque_kwargs: bool  # a **mapping whose keys are unknown: any keyword may be set
    via: str = ""  # how the call reaches the callee, for the message

    def arg(self, keyword: str, position: int | None = None) -> Binding | None:
        """The argument passed as ``keyword`` or at ``position`` (0-based), if any."""
        if keyword in self.keywords:
            return self.keywords[keyword]
        if position is not None and position < len(self.args):
            return self.args[position]
        return None


IsSink = Callable[[CallView], bool]


@dataclass
class Module:
    """A parsed module: its module scope, top-level functions and the names it calls."""

    tree: ast.Module
    env: Env
    functions: dict[str, _Function] = field(default_factory=dict)
    called: set[str] = field(default_factory=set)


def module_of(tree: ast.Module) -> Module:
    env = Env(imports_of(tree))
    env.names = {n: Binding(v, env) for n, v in single_assignments(tree.body).items()}
    functions = {s.name: s for s in tree.body if isinstance(s, _Function)}
    called = {
        n.func.id
        for n in ast.walk(tree)
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id in functions
    }
    return Module(tree, env, functions, called)


def function_env(func: _Function, outer: Env) -> Env:
    """The scope of ``func`` evaluated on its own: parameters hold their defaults, if any."""
    args = func.args
    positional = [*args.posonlyargs, *args.args]
    env = outer.child(frozenset(a.arg for a in (*positional, *args.kwonlyargs)))
    defaults = zip(positional[len(positional) - len(args.defaults) :], args.defaults, strict=True)
    for arg, default in (*defaults, *zip(args.kwonlyargs, args.kw_defaults, strict=True)):
        if default is not None:
            env.names[arg.arg] = Binding(default, outer)
    env.names.update({n: Binding(v, env) for n, v in single_assignments(func.body).items()})
    env.kwargs_name = args.kwarg.arg if args.kwarg is not None else None
    return env


def calls_in(module: Module, is_sink: IsSink) -> Iterator[CallView]:
    """Every call of the module as a :class:`CallView`; calls of wrappers are expanded into
    the sink calls they make (``is_sink`` says which callees matter)."""
    stack: list[tuple[list[ast.stmt], Env, _Function | None]] = [
        (module.tree.body, module.env, None)
    ]
    while stack:
        body, env, func = stack.pop()
        for node in scope_nodes(body):
            if isinstance(node, _Function):
                stack.append((node.body, function_env(node, env), node))
            elif isinstance(node, ast.Call):
                yield from _views(module, node, env, func, is_sink)


def _views(
    module: Module, node: ast.Call, env: Env, func: _Function | None, is_sink: IsSink
) -> Iterator[CallView]:
    view = view_of(node, env)
    deferred = func is not None and func.name in module.called and _parametric(node, env)
    if not (deferred and is_sink(view)):
        yield view
    if isinstance(node.func, ast.Name) and env.lookup(node.func.id) is None:
        wrapper = module.functions.get(node.func.id)
        if wrapper is not None:
            yield from _expand(module, wrapper, node, env, is_sink)


def _parametric(node: ast.Call, env: Env) -> bool:
    """True when the call's arguments depend on the enclosing function's parameters."""
    forwards = any(
        k.arg is None and isinstance(k.value, ast.Name) and k.value.id == env.kwargs_name
        for k in node.keywords
    )
    exprs = [*node.args, *(k.value for k in node.keywords)]
    return forwards or any(mentions(e, env, env.params) for e in exprs)


def _expand(
    module: Module, wrapper: _Function, site: ast.Call, caller: Env, is_sink: IsSink
) -> Iterator[CallView]:
    """The sink calls ``wrapper`` makes with its parameters, judged with ``site``'s values."""
    own = function_env(wrapper, module.env)
    bound = _call_site_env(wrapper, site, caller, module.env)
    via = f"through {wrapper.name}() defined at line {wrapper.lineno}"
    for node in scope_nodes(wrapper.body):
        if isinstance(node, ast.Call) and _parametric(node, own):
            inner = view_of(node, bound)
            if is_sink(inner):
                yield CallView(
                    site, inner.callee, inner.method, inner.args, inner.keywords,
                    inner.opaque_kwargs, via,
                )  # fmt: skip


def _call_site_env(wrapper: _Function, site: ast.Call, caller: Env, module_env: Env) -> Env:
    """The wrapper's scope with its parameters bound to what ``site`` passes."""
    env = function_env(wrapper, module_env)
    positional = [*wrapper.args.posonlyargs, *wrapper.args.args]
    named = {a.arg for a in (*positional, *wrapper.args.kwonlyargs)}
    env.forwarded = {}
    for arg, value in zip(positional, site.args, strict=False):
        if isinstance(value, ast.Starred):
            break
        env.names[arg.arg] = Binding(value, caller)
    for keyword in site.keywords:
        if keyword.arg in named:
            env.names[keyword.arg] = Binding(keyword.value, caller)
        elif keyword.arg is not None:
            env.forwarded[keyword.arg] = Binding(keyword.value, caller)
    return env


def view_of(node: ast.Call, env: Env) -> CallView:
    """The call as it reaches its callee, through ``functools.partial`` if need be."""
    func, func_env = node.func, env
    args = [Binding(a, env) for a in node.args if not isinstance(a, ast.Starred)]
    keywords, opaque = _keywords(node.keywords, env)
    via = ""
    for _ in range(MAX_STEPS):
        partial = _partial_call(func, func_env)
        if partial is None:
            break
        call, call_env = partial
        bound_keywords, bound_opaque = _keywords(call.keywords, call_env)
        args = [Binding(a, call_env) for a in call.args[1:]] + args
        keywords = {**bound_keywords, **keywords}
        opaque = opaque or bound_opaque
        func, func_env = call.args[0], call_env
        via = f"through functools.partial at line {call.lineno}"
    method = func.attr if isinstance(func, ast.Attribute) else None
    return CallView(node, qualname(func, func_env), method, tuple(args), keywords, opaque, via)


def _partial_call(func: ast.expr, env: Env) -> tuple[ast.Call, Env] | None:
    """The ``functools.partial(target, ...)`` call ``func`` is (or is bound to), if any."""
    for _ in range(MAX_STEPS):
        binding = env.lookup(func.id) if isinstance(func, ast.Name) else None
        if binding is None:
            break
        func, env = binding.expr, binding.env
    if isinstance(func, ast.Call) and func.args and qualname(func.func, env) == _PARTIAL:
        return func, env
    return None


def _keywords(keywords: list[ast.keyword], env: Env) -> tuple[dict[str, Binding], bool]:
    """Named keywords, ``**{...}`` literals and forwarded ``**kw`` merged; True when a
    ``**mapping`` could not be read (then any keyword may be set)."""
    named: dict[str, Binding] = {}
    opaque = False
    for keyword in keywords:
        spread = _spread(keyword.value, env) if keyword.arg is None else None
        if keyword.arg is not None:
            named[keyword.arg] = Binding(keyword.value, env)
        elif spread is None:
            opaque = True
        else:
            named.update(spread)
    return named, opaque


def _spread(value: ast.expr, env: Env) -> dict[str, Binding] | None:
    """The keywords ``**value`` passes, when the code spells them."""
    if isinstance(value, ast.Name) and value.id == env.kwargs_name:
        return None if env.forwarded is None else dict(env.forwarded)
    binding = env.lookup(value.id) if isinstance(value, ast.Name) else None
    if binding is not None:
        value, env = binding.expr, binding.env
    if not isinstance(value, ast.Dict):
        return None
    spread: dict[str, Binding] = {}
    for key, item in zip(value.keys, value.values, strict=True):
        if not (isinstance(key, ast.Constant) and isinstance(key.value, str)):
            return None
        spread[key.value] = Binding(item, env)
    return spread
