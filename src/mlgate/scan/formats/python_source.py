"""Python source files shipped with models (``trust_remote_code`` modules, helper scripts).

The file is parsed with :mod:`ast` and never imported. Calls that reach processes, the
network, files, or dynamic code are reported with their line; plain modeling code (torch
layers, math) is only noted as embedded code.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass

from mlgate.findings import Severity
from mlgate.scan import rules
from mlgate.scan.context import ScanContext
from mlgate.scan.formats.pickle import scan_pickle
from mlgate.scan.source import Source

MAX_SOURCE_BYTES = 16 << 20
MAX_REPORTED = 20

# Dotted call targets (after import aliases are resolved) and why they matter.
_EXACT: dict[str, str] = {
    "eval": "dynamic code",
    "exec": "dynamic code",
    "compile": "dynamic code",
    "__import__": "dynamic import",
    "builtins.eval": "dynamic code",
    "builtins.exec": "dynamic code",
    "importlib.import_module": "dynamic import",
    "importlib.__import__": "dynamic import",
    "marshal.loads": "code deserialisation",
    "pickle.load": "pickle deserialisation",
    "pickle.loads": "pickle deserialisation",
    "pickle.Unpickler": "pickle deserialisation",
    "dill.load": "pickle deserialisation",
    "dill.loads": "pickle deserialisation",
    "cloudpickle.load": "pickle deserialisation",
    "cloudpickle.loads": "pickle deserialisation",
    "joblib.load": "pickle deserialisation",
    "shutil.rmtree": "file deletion",
    "os.remove": "file deletion",
    "os.unlink": "file deletion",
    "os.rmdir": "file deletion",
    "os.system": "process execution",
    "os.popen": "process execution",
    "os.fork": "process execution",
    "os.kill": "process control",
    "pty.spawn": "process execution",
    "webbrowser.open": "network",
}
_PREFIXES: dict[str, str] = {
    "subprocess.": "process execution",
    "os.exec": "process execution",
    "os.spawn": "process execution",
    "os.posix_spawn": "process execution",
    "socket.": "network",
    "requests.": "network",
    "urllib.request.": "network",
    "urllib3.": "network",
    "http.client.": "network",
    "httpx.": "network",
    "aiohttp.": "network",
    "ftplib.": "network",
    "smtplib.": "network",
    "telnetlib.": "network",
    "paramiko.": "network",
    "ctypes.": "native code",
    "importlib.util.": "dynamic import",
    "importlib.machinery.": "dynamic import",
    "runpy.": "dynamic code",
}
_GETATTR_GADGETS = frozenset("system popen exec eval spawn check_output Popen load loads".split())


@dataclass(frozen=True)
class SourceIssue:
    """A suspicious call in Python source."""

    line: int
    call: str
    why: str
    where: str  # "module level" or "function name"
    severity: Severity


def scan_python(source: Source, ctx: ScanContext) -> str:
    """Parse a ``.py`` file statically; fall back to the pickle reading if it is not Python."""
    if not analyse_python(source, ctx):
        return scan_pickle(source, ctx)
    return "python"


def analyse_python(source: Source, ctx: ScanContext) -> bool:
    """Report the source's suspicious calls; False (and no finding) if it is not Python."""
    if source.size is not None and source.size > MAX_SOURCE_BYTES:
        ctx.incomplete(
            source,
            f"Python source over {MAX_SOURCE_BYTES} bytes; not analysed",
            rules.LIMIT_EXCEEDED,
        )
        return True
    with source.open() as f:
        raw = f.read(MAX_SOURCE_BYTES + 1)
    try:
        # Bytes, not str: the parser honours a PEP 263 coding cookie exactly like import does.
        tree = ast.parse(raw, filename=source.name)
    except (SyntaxError, ValueError, UnicodeDecodeError):
        return False
    except (RecursionError, MemoryError):
        ctx.incomplete(source, "Python source nested too deeply to parse", rules.LIMIT_EXCEEDED)
        return True
    issues = source_issues(tree)
    for issue in issues[:MAX_REPORTED]:
        ctx.add(
            rules.SUSPICIOUS_SOURCE,
            ctx.at(source),
            f"line {issue.line} ({issue.where}): {issue.call} - {issue.why}",
            evidence=_line(raw, issue.line),
            severity=issue.severity,
        )
    lines = raw.count(b"\n") + 1
    ctx.add(
        rules.EMBEDDED_CODE,
        source.location,
        f"Python source ({lines} lines), analysed statically; it runs only if imported "
        f"(e.g. trust_remote_code=True); {len(issues)} suspicious call(s)",
    )
    return True


def _line(raw: bytes, line: int) -> str:
    lines = raw.splitlines()
    return lines[line - 1].decode("utf-8", "replace").strip()[:300] if line <= len(lines) else ""


def source_issues(tree: ast.Module) -> list[SourceIssue]:
    """Suspicious calls in a parsed module, in source order."""
    aliases = _aliases(tree)
    issues: list[SourceIssue] = []
    for node, where in _calls(tree):
        found = _classify(node, aliases)
        if found is None:
            continue
        call, why = found
        severity = rules.SUSPICIOUS_SOURCE.severity
        if why == "file write" and where.split(".")[-1].startswith("save"):
            severity = Severity.MEDIUM  # tokenizers' save_vocabulary writes files by design
        issues.append(SourceIssue(node.lineno, call, why, where, severity))
    return sorted(issues, key=lambda i: i.line)


def _aliases(tree: ast.Module) -> dict[str, str]:
    """Local name -> dotted origin, from every import in the module."""
    out: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                local = (a.asname or a.name).split(".")[0]
                out[local] = a.name if a.asname else a.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for a in node.names:
                out[a.asname or a.name] = f"{node.module}.{a.name}"
    return out


def _calls(tree: ast.Module) -> list[tuple[ast.Call, str]]:
    """Every call with the function it is in (iterative walk keeps the enclosing name)."""
    out: list[tuple[ast.Call, str]] = []
    stack: list[tuple[ast.AST, str]] = [(tree, "module level")]
    while stack:
        node, where = stack.pop()
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            where = node.name if where == "module level" else f"{where}.{node.name}"
        if isinstance(node, ast.Call):
            out.append((node, where))
        stack.extend((child, where) for child in ast.iter_child_nodes(node))
    return out


def _dotted(node: ast.expr, aliases: dict[str, str]) -> str | None:
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    parts.append(aliases.get(node.id, node.id))
    return ".".join(reversed(parts))


def _classify(call: ast.Call, aliases: dict[str, str]) -> tuple[str, str] | None:
    func = call.func
    if isinstance(func, ast.Attribute) and func.attr in ("write_text", "write_bytes"):
        return f".{func.attr}", "file write"
    name = _dotted(func, aliases)
    if name is None:
        return None
    root = _root(func)
    if "." in name and root not in aliases:
        return None  # an attribute of a local object (``requests.append``), not a module
    if name in _EXACT:
        return name, _EXACT[name]
    for prefix, why in _PREFIXES.items():
        if name.startswith(prefix):
            return name, why
    if name == "torch.load" and not _kw_true(call, "weights_only"):
        return name, "torch.load without weights_only=True runs pickles"
    if name in ("numpy.load", "np.load") and _kw_true(call, "allow_pickle"):
        return name, "numpy.load(allow_pickle=True) runs pickles"  # message text (safe)
    if name == "getattr" and len(call.args) > 1:
        attr = call.args[1]
        if isinstance(attr, ast.Constant) and attr.value in _GETATTR_GADGETS:
            return f"getattr(..., {attr.value!r})", "dynamic lookup of a code primitive"
    if name in ("open", "io.open", "builtins.open") and _writes(call):
        return name, "file write"
    return None


def _root(node: ast.expr) -> str:
    while isinstance(node, ast.Attribute):
        node = node.value
    return node.id if isinstance(node, ast.Name) else ""


def _kw_true(call: ast.Call, key: str) -> bool:
    return any(
        kw.arg == key and isinstance(kw.value, ast.Constant) and kw.value.value is True
        for kw in call.keywords
    )


def _writes(call: ast.Call) -> bool:
    mode: ast.expr | None = call.args[1] if len(call.args) > 1 else None
    for kw in call.keywords:
        if kw.arg == "mode":
            mode = kw.value
    if mode is None:
        return False
    if not isinstance(mode, ast.Constant) or not isinstance(mode.value, str):
        return True  # a computed mode may write
    return any(c in mode.value for c in "wax+")
