"""Turn emulated pickle programs into findings: what is imported, what is called, with what."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from mlgate.findings import Location, Severity
from mlgate.scan import rules
from mlgate.scan.context import ScanContext
from mlgate.scan.pickle import gadgets
from mlgate.scan.pickle.policy import (
    MODULE_MARK,
    RULE_FOR,
    Category,
    Loader,
    Verdict,
    normalise_module,
)
from mlgate.scan.pickle.program import Program
from mlgate.scan.pickle.render import ValueRenderer
from mlgate.scan.pickle.values import (
    Attr,
    AttrGetter,
    Blob,
    Call,
    Global,
    MethodCaller,
    ModuleRef,
    Partial,
    PDict,
    Persistent,
    PList,
    PSet,
    Value,
    as_text,
    deref,
)
from mlgate.scan.source import Source, bytes_source, file_source

MAX_EVIDENCE_CALLS = 5
_EXEC_NAMES = frozenset(
    "builtins.exec builtins.eval builtins.compile builtins.execfile "
    "numpy.testing._private.utils.runstring numpy.testing.utils.runstring".split()
)
_DANGEROUS_METHODS = frozenset(
    "system popen popen2 popen3 exec eval execv execve execvp spawn spawnv run call "
    "check_call check_output Popen getoutput getstatusoutput load loads __import__ "
    "import_module compile runsource runcode".split()
)
_DEFAULT_VERDICT = Verdict(Category.GADGET, Severity.HIGH, "computed at load time")


@dataclass
class _Use:
    """One distinct global and every call made through it."""

    glob: Global
    verdict: Verdict
    calls: list[Call] = field(default_factory=list)


class PickleAnalysis:
    """Findings for the programs of one artifact."""

    def __init__(self, ctx: ScanContext, source: Source) -> None:
        self.ctx = ctx
        self.source = source
        self.render = ValueRenderer()
        self.uses: dict[str, _Use] = {}

    def run(self, programs: list[Program]) -> None:
        # Fail closed on a defect of the analysis, and still report every global and call
        # collected before it: one unexpected value must not hide an os.system found earlier.
        try:
            for prog in programs:
                self._program(prog)
        except Exception as e:
            self._defect("analysing the calls", e)
        for use in list(self.uses.values()):
            try:
                self._report_use(use)
            except Exception as e:
                self._defect(f"reporting {use.glob.qualname}", e)

    def _defect(self, doing: str, error: Exception) -> None:
        self.ctx.incomplete(
            self.source, f"internal error while {doing}: {type(error).__name__}: {error}"
        )

    # ------------------------------------------------------------------ per program
    def _program(self, prog: Program) -> None:
        for sub in prog.nested:
            self._program(sub)
        for anomaly in prog.anomalies:
            rule = rules.FRAME_MISMATCH if anomaly.kind == "frame" else rules.EXTENSION_CODE
            self.ctx.add(rule, self._loc(anomaly.offset, anomaly.index), anomaly.message)
        for g in prog.globals:
            self._use(g)
        for call in prog.calls:
            self._call(call)
        if prog.failure is not None:
            self.ctx.incomplete(
                self.source,
                f"pickle #{prog.number}: {prog.failure}; analysis stopped at offset "
                f"{prog.error_offset}",
            )
        elif prog.limit is not None:
            self.ctx.incomplete(
                self.source,
                f"pickle #{prog.number}: {prog.limit}; analysis "
                f"stopped at offset {prog.error_offset}",
                rules.LIMIT_EXCEEDED,
            )
        elif prog.error is not None:
            ran = len(prog.calls)
            self.ctx.add(
                rules.MALFORMED,
                self._loc(prog.error_offset, prog.opcodes),
                f"pickle #{prog.number} is invalid: {prog.error}. The loader raises here, "
                f"after making the {ran} call(s) listed for this stream.",
            )

    def _loc(self, offset: int | None, index: int | None) -> Location:
        return self.ctx.at(self.source, offset, index)

    def _use(self, g: Global) -> _Use:
        key = f"{g.module}.{g.name}"
        use = self.uses.get(key)
        if use is None:
            if g.via == "EXT":
                verdict = Verdict(Category.GADGET, Severity.HIGH, "extension registry code")
            elif g.module == "<computed>":
                verdict = _DEFAULT_VERDICT
            else:
                verdict = self.ctx.policy.classify(g.module, g.name)
            use = self.uses[key] = _Use(g, verdict)
        return use

    # ------------------------------------------------------------------ calls
    def _call(self, call: Call) -> None:
        if isinstance(call.resolved, Global):
            self._use(call.resolved)
        elif isinstance(call.resolved, ModuleRef):
            self._use(Global(call.resolved.name, MODULE_MARK, call.index, call.offset, "import"))
        target = self._effective_target(call.func)
        if isinstance(target, Global):
            self._use(target).calls.append(call)
        elif call.kind == "BUILD":
            self._build(call)
        elif isinstance(target, Attr | MethodCaller):
            self._method_call(call, target)
        elif not (isinstance(target, AttrGetter) and call.resolved is not None):
            # (an attrgetter applied to a nameable object is a getattr, tracked as resolved)
            self._dynamic(call, "calls a value computed at load time")

    def _effective_target(self, func: Value) -> Value:
        func = deref(func)
        depth = 0
        while isinstance(func, Partial) and depth < 16:
            func = deref(func.func)
            depth += 1
        return func

    def _build(self, call: Call) -> None:
        assert isinstance(call.func, Attr)
        target = deref(call.func.obj)
        wrapper = gadgets.instance_class(target)
        if wrapper in gadgets.JOBLIB_SIDE_FILE_WRAPPERS:
            self._joblib_side_file(call, wrapper)
        if isinstance(target, Global | ModuleRef):
            name = target.qualname if isinstance(target, Global) else target.name
            self.ctx.add(
                rules.DYNAMIC_CALL,
                self._loc(call.offset, call.index),
                f"BUILD overwrites attributes of {name} itself (monkey-patching the loader)",
                self._show(call),
            )

    def _joblib_side_file(self, call: Call, wrapper: str) -> None:
        """Analyse the array file an old joblib wrapper makes the loader read at BUILD: an
        object array in it is a pickle that numpy.load(allow_pickle=True) runs."""
        args = deref(call.args)
        state = deref(args[0]) if isinstance(args, tuple) and args else None
        name = as_text(state.get_str("filename")) if isinstance(state, PDict) else None
        if not name:
            self.ctx.incomplete(
                self.source,
                f"{wrapper} at offset {call.offset} names its array file with a value mlgate "
                "cannot compute; the file joblib loads there was not analysed",
            )
            return
        found = self._chained_source(name)
        if found is None:
            self.ctx.incomplete(
                self.source,
                f"{wrapper} at offset {call.offset} loads the array file {name!r}, which is not "
                "among the scanned files; whatever it contains would be loaded",
                rules.CHAINED_LOAD,
            )
            return
        key, child = found
        if not self.ctx.claim_chained(key):
            return  # named twice: analysed and reported at its first mention
        worst = self.ctx.scan(child)
        self.ctx.add(
            rules.NESTED_PAYLOAD,
            self._loc(call.offset, call.index),
            f"{wrapper} loads the array file {key}; analysed: worst finding inside is "
            f"{worst.name if worst else 'none'}",
            self._show(call),
            worst or Severity.INFO,
        )

    def _method_call(self, call: Call, target: Attr | MethodCaller) -> None:
        if isinstance(call.resolved, str | bytes):
            return  # a pure string method on constants, evaluated statically
        obj = deref(target.obj) if isinstance(target, Attr) else _first_arg(call)
        name = as_text(target.name)
        if self._is_safe_instance(obj) or isinstance(obj, PList | PDict | PSet | Persistent):
            return
        if isinstance(obj, Global | ModuleRef) and name is not None:
            mod = obj.name if isinstance(obj, ModuleRef) else obj.module
            attr = name if isinstance(obj, ModuleRef) else f"{obj.name}.{name}"
            self._use(Global(mod, attr, call.index, call.offset, "method")).calls.append(call)
            return
        severity = Severity.CRITICAL if name in _DANGEROUS_METHODS else Severity.HIGH
        self._dynamic(
            call,
            f"calls method {name or '<computed>'!s} of a value computed at load time",
            severity,
        )

    def _is_safe_instance(self, obj: Value) -> bool:
        obj = deref(obj)
        if not isinstance(obj, Call):
            return False
        cls = self._effective_target(obj.func)
        if isinstance(cls, Global) and cls.qualname == "copyreg._reconstructor":
            args = deref(obj.args)
            cls = deref(args[0]) if isinstance(args, tuple) and args else None
        return isinstance(cls, Global) and self._use(cls).verdict.is_safe

    def _dynamic(self, call: Call, message: str, severity: Severity = Severity.HIGH) -> None:
        self.ctx.add(
            rules.DYNAMIC_CALL,
            self._loc(call.offset, call.index),
            message,
            self._show(call),
            severity,
        )

    def _show(self, call: Call) -> str:
        return self.render.call(call)

    # ------------------------------------------------------------------ reporting
    def _report_use(self, use: _Use) -> None:
        verdict = use.verdict
        if verdict.is_safe or self._is_plain_attribute(use):
            return
        if verdict.category is Category.DESERIALIZER and use.calls:
            for call in use.calls:
                self._deserializer_call(use, call)
            return
        if (
            verdict.category is Category.GADGET
            and use.calls
            and all(self._resolved_safely(c) for c in use.calls)
        ):
            return
        rule = RULE_FOR[verdict.category]
        g = use.glob
        verb = "calls" if use.calls else "imports"
        shown = f"{normalise_module(g.module)}.{g.name}"
        if g.name == MODULE_MARK:
            shown = f"module {normalise_module(g.module)}"
        message = f"{verb} {shown}: {verdict.reason}"
        if shown != g.qualname and g.name != MODULE_MARK:
            message += f" (pickled as {g.qualname})"
        if g.via not in ("GLOBAL", "STACK_GLOBAL", "INST"):
            message += f" (reached through {g.via})"
        severity = verdict.severity or rule.severity
        first = use.calls[0] if use.calls else None
        self.ctx.add(
            rule,
            self._loc(first.offset if first else g.offset, first.index if first else g.index),
            message,
            self._evidence(use),
            severity,
        )
        if verdict.category is Category.CODE_EXECUTION:
            self._encoded_code(use)

    def _is_plain_attribute(self, use: _Use) -> bool:
        """An uncalled public attribute of an allowlisted class (Python 3.12+ pickles Enum
        members as ``getattr(Class, 'NAME')``): a value, not a callable being reached."""
        g = use.glob
        base, _, attr = g.name.rpartition(".")
        if use.calls or not base or not attr.isidentifier() or attr.startswith("_"):
            return False
        return self.ctx.policy.classify(g.module, base).is_safe

    def _resolved_safely(self, call: Call) -> bool:
        resolved = call.resolved
        if isinstance(resolved, Global):
            use = self._use(resolved)
            return use.verdict.is_safe or self._is_plain_attribute(use)
        return isinstance(resolved, Partial | AttrGetter) or (
            resolved is not None and not (isinstance(resolved, Attr | MethodCaller | ModuleRef))
        )

    def _evidence(self, use: _Use) -> str:
        if use.verdict.category is Category.CODE_OBJECT and use.calls:
            texts = _strings_in(use.calls[0].args)
            return "names and strings in the code object: " + ", ".join(texts[:40])
        if not use.calls:
            g = use.glob
            return (
                f"import {g.module}"
                if g.name == MODULE_MARK
                else f"from {g.module} import {g.name}"
            )
        lines = [self._show(c) for c in use.calls[:MAX_EVIDENCE_CALLS]]
        if len(use.calls) > MAX_EVIDENCE_CALLS:
            lines.append(f"... and {len(use.calls) - MAX_EVIDENCE_CALLS} more calls")
        return "\n".join(lines)

    def _encoded_code(self, use: _Use) -> None:
        for call in use.calls:
            raw = deref(call.args)
            arg = raw[0] if isinstance(raw, tuple) and raw else None
            if isinstance(arg, Call) and arg.resolved is not None:
                decoded = as_text(arg.resolved)
                if decoded is None:
                    continue
                self.ctx.add(
                    rules.ENCODED_CODE,
                    self._loc(call.offset, call.index),
                    f"{use.glob.module}.{use.glob.name} runs code decoded at load time",
                    f"decoded: {decoded[:2000]}",
                )
            elif (
                use.glob.qualname in _EXEC_NAMES
                and as_text(arg) is None
                and not isinstance(arg, str)
            ):
                self._dynamic(
                    call, "exec-like call on code computed at load time", Severity.CRITICAL
                )

    # ------------------------------------------------------------------ nested payloads
    def _deserializer_call(self, use: _Use, call: Call) -> None:
        loader = use.verdict.loader
        assert loader is not None
        payload = _payload_of(call)
        name = f"{use.glob.module}.{use.glob.name}"
        loc = self._loc(call.offset, call.index)
        if isinstance(payload, bytes | Blob) and loader is not Loader.MARSHAL:
            worst = self._scan_payload(payload, loader, call)
            sev = max(worst or Severity.INFO, _benign_floor(name))
            self.ctx.add(
                rules.NESTED_PAYLOAD,
                loc,
                f"{name} deserialises an embedded payload ({_size(payload)} bytes); "
                f"analysed: worst finding inside is {worst.name if worst else 'none'}",
                self._show(call),
                sev,
            )
            return
        path = _path_of(payload)
        if path is not None:
            self._chained(name, loader, path, call)
            return
        self.ctx.add(
            rules.CODE_OBJECT if loader is Loader.MARSHAL else rules.DYNAMIC_CALL,
            loc,
            f"{name} deserialises data computed at load time that mlgate cannot analyse",
            self._show(call),
            Severity.CRITICAL if loader is Loader.MARSHAL else Severity.HIGH,
        )

    def _scan_payload(self, payload: bytes | Blob, loader: Loader, call: Call) -> Severity | None:
        label = f"<{loader.value} payload @{call.offset}>"
        if isinstance(payload, bytes):
            child = bytes_source(self.source, label, payload)
        else:
            child = self.source.slice(label, payload.offset, payload.length)
        if loader is Loader.PICKLE:
            child = child.with_format("pickle")
        return self.ctx.scan(child)

    def _chained(self, name: str, loader: Loader, path: str, call: Call) -> None:
        loc = self._loc(call.offset, call.index)
        found = self._chained_source(path)
        if found is None:
            self.ctx.add(
                rules.CHAINED_LOAD,
                loc,
                f"{name} loads {path!r}, which is not among the scanned files; "
                "whatever it contains would run",
                self._show(call),
            )
            return
        key, child = found
        worst: Severity | None = None
        if self.ctx.claim_chained(key):
            worst = self.ctx.scan(child.with_format("pickle") if loader is Loader.PICKLE else child)
        sev = max(worst or Severity.HIGH, Severity.HIGH)
        self.ctx.add(
            rules.CHAINED_LOAD,
            loc,
            f"{name} loads {key} (multi-stage payload); worst finding in it: "
            f"{worst.name if worst else 'none'}",
            self._show(call),
            sev,
        )

    def _chained_source(self, path: str) -> tuple[str, Source] | None:
        """The artifact a loader call names: a scanned file on disk or a sibling member."""
        target = self._resolve_path(path)
        if target is not None:
            return str(target), file_source(target, f"{self.source.location.artifact} -> {target}")
        member = self.source.siblings(path) if self.source.siblings else None
        if member is None:
            return None
        return member.location.artifact, member

    def _resolve_path(self, path: str) -> Path | None:
        bases = [p for p in (self.source.folder, *self.ctx.roots) if p is not None]
        for base in bases:
            candidate = (base / path).resolve()
            if candidate.is_file() and any(_inside(candidate, r) for r in self.ctx.roots):
                return candidate
        return None


def _benign_floor(name: str) -> Severity:
    # torch pickles storages through _load_from_bytes: an ordinary pattern when benign.
    return Severity.INFO if name == "torch.storage._load_from_bytes" else Severity.LOW


def _first_arg(call: Call) -> Value:
    args = deref(call.args)
    return deref(args[0]) if isinstance(args, tuple) and args else None


def _payload_of(call: Call) -> Value:
    """The bytes or path a deserialiser is given, looking through BytesIO/open wrappers."""
    arg = _first_arg(call)
    for _ in range(4):
        if isinstance(arg, Call) and arg.resolved is None:
            inner = deref(arg.func)
            if isinstance(inner, Global) and inner.name in ("BytesIO", "open", "BufferedReader"):
                arg = _first_arg(arg)
                continue
        break
    return deref(arg)


def _path_of(value: Value) -> str | None:
    text = as_text(value)
    return text if text else None


def _strings_in(value: Value, limit: int = 200) -> list[str]:
    """Distinct constant strings reachable from ``value`` (bounded walk over shared values)."""
    found: list[str] = []
    seen: set[int] = set()
    todo: list[Value] = [value]
    while todo and len(seen) < limit:
        v = deref(todo.pop())
        if id(v) in seen:
            continue
        seen.add(id(v))
        if isinstance(v, str) and v and repr(v) not in found:
            found.append(repr(v)[:200])
        elif isinstance(v, tuple):
            todo.extend(reversed(v))
        elif isinstance(v, PList):
            todo.extend(reversed(v.items))
        elif isinstance(v, Call):
            todo.append(v.args)
    return found


def _size(payload: bytes | Blob) -> int:
    return len(payload) if isinstance(payload, bytes) else payload.length


def _inside(path: Path, root: Path) -> bool:
    root = root.resolve()
    base = root if root.is_dir() else root.parent
    return path == root or base in path.parents


def iter_calls(programs: list[Program]) -> Iterator[Call]:
    """Every call of the programs, nested joblib pickles included, in stream order."""
    for prog in programs:
        yield from iter_calls(prog.nested)
        yield from prog.calls
