"""Bounded pseudo-Python rendering of symbolic pickle values.

Values can share structure (the memo makes DAGs whose naive expansion is exponential), so
every rendering has a character budget, an item limit per container and a depth limit.
"""

from __future__ import annotations

from mlgate.scan.pickle.values import (
    Attr,
    AttrGetter,
    Blob,
    Buffer,
    Call,
    Global,
    Mark,
    MethodCaller,
    ModuleRef,
    Partial,
    PDict,
    Persistent,
    PList,
    PSet,
    Value,
)


class ValueRenderer:
    """Renders values as Python-like expressions within fixed budgets."""

    def __init__(
        self,
        names: dict[int, str] | None = None,
        max_str: int = 160,
        max_items: int = 8,
        max_depth: int = 6,
        budget: int = 2000,
    ) -> None:
        self.names = names if names is not None else {}
        self.max_str = max_str
        self.max_items = max_items
        self.max_depth = max_depth
        self.budget = budget

    def render(self, value: Value) -> str:
        """One expression, at most about ``budget`` characters."""
        self._left = self.budget
        return self._value(value, 0)

    def call(self, call: Call) -> str:
        """A call expression, ignoring any variable name the call itself was given."""
        self._left = self.budget
        return self._call(call, 0)

    def _value(self, v: Value, depth: int) -> str:
        if self._left <= 0:
            return "..."
        text = self._dispatch(v, depth)
        self._left -= len(text)
        return text

    def _dispatch(self, v: Value, depth: int) -> str:
        name = self.names.get(id(v))
        if name is not None:
            return name
        if depth > self.max_depth:
            return "..."
        if isinstance(v, str | bytes):
            return self._const(v)
        if v is None or isinstance(v, bool | int | float):
            return repr(v)
        if isinstance(v, tuple):
            inner = self._seq(v, depth)
            return f"({inner},)" if len(v) == 1 else f"({inner})"
        if isinstance(v, Global):
            return v.qualname
        if isinstance(v, Call):
            return self._call(v, depth)
        return self._other(v, depth)

    def _other(self, v: Value, depth: int) -> str:
        if isinstance(v, PList):
            return f"[{self._seq(v.items, depth)}]"
        if isinstance(v, PDict):
            return "{" + self._pairs(v.items, depth) + "}"
        if isinstance(v, PSet):
            body = "{" + self._seq(v.items, depth) + "}" if v.items else "()"
            return f"frozenset({body})" if v.frozen else (body if v.items else "set()")
        if isinstance(v, Blob):
            return f"<{v.kind} of {v.length} bytes at offset {v.offset}>"
        if isinstance(v, ModuleRef):
            return f"<module {v.name}>"
        if isinstance(v, Attr):
            return f"{self._value(v.obj, depth + 1)}.{self._attr_name(v.name, depth)}"
        if isinstance(v, Partial):
            return f"functools.partial({self._seq((v.func, *v.args), depth)})"
        if isinstance(v, MethodCaller):
            return f"operator.methodcaller({self._seq((v.name, *v.args), depth)})"
        if isinstance(v, AttrGetter):
            return f"operator.attrgetter({self._seq(v.names, depth)})"
        if isinstance(v, Persistent):
            return f"persistent_load({self._value(v.pid, depth + 1)})"
        if isinstance(v, Buffer):
            return "<out-of-band buffer>"
        if isinstance(v, Mark):
            return "<MARK>"
        return "<?>"

    def _attr_name(self, name: Value, depth: int) -> str:
        return (
            name
            if isinstance(name, str) and name.isidentifier()
            else (f"<{self._value(name, depth + 1)}>")
        )

    def _call(self, c: Call, depth: int) -> str:
        func = self._value(c.func, depth + 1)
        args = c.args
        if isinstance(args, tuple):
            inner = self._seq(args, depth)
        else:
            inner = "*" + self._value(args, depth + 1)
        if c.kwargs is not None:
            kw = self._value(c.kwargs, depth + 1)
            inner = f"{inner}, **{kw}" if inner else f"**{kw}"
        return f"{func}({inner})"

    def _seq(self, items: tuple[Value, ...] | list[Value], depth: int) -> str:
        shown = [self._value(x, depth + 1) for x in items[: self.max_items]]
        if len(items) > self.max_items:
            shown.append(f"... {len(items) - self.max_items} more")
        return ", ".join(shown)

    def _pairs(self, items: list[tuple[Value, Value]], depth: int) -> str:
        shown = [
            f"{self._value(k, depth + 1)}: {self._value(v, depth + 1)}"
            for k, v in items[: self.max_items]
        ]
        if len(items) > self.max_items:
            shown.append(f"... {len(items) - self.max_items} more")
        return ", ".join(shown)

    def _const(self, v: str | bytes) -> str:
        if len(v) <= self.max_str:
            return repr(v)
        return f"{v[: self.max_str]!r}...<{len(v)} {'chars' if isinstance(v, str) else 'bytes'}>"
