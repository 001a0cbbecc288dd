"""References to code inside configuration, judged by the pickle policy (issue 11 section 1).

Loaders turn configuration into objects. Hydra's ``instantiate`` imports and calls the
``_target_`` of a node with the node's other keys as arguments: NeMo restores ``.nemo``
archives through it (``model_config.yaml``, CVE-2025-23304), and the libraries of the 2025
Unit 42 disclosures read Hydra nodes from a Hugging Face ``config.json`` (Uni2TS) or from
safetensors ``__metadata__`` (FlexTok). Latent-diffusion configs do the same with
``target``/``params``, older NeMo configs with ``cls``/``params``, LightningCLI configs
(jsonargparse) with ``class_path``/``init_args``, fiddle (NeMo 2 ``io.json``) with
``pyref`` nodes. Every such name is judged by
the policy that judges a pickle's globals (:meth:`Policy.classify_reference`): one policy,
many readers. A name computed by an interpolation this module cannot resolve is reported as a
dynamic call, never passed.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from mlgate.findings import Location, Severity
from mlgate.scan import rules
from mlgate.scan.context import ScanContext
from mlgate.scan.limits import ResourceLimitError
from mlgate.scan.pickle.policy import RULE_FOR, Category

MAX_SHOWN = 200  # characters of a name quoted in a message
MAX_PATHS = 3  # places listed per reference
MAX_INTERPOLATION_ROUNDS = 10
IMPORTABLE = re.compile(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*")
_DOTTED = re.compile(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+")
_INTERPOLATION = re.compile(r"\$\{([^{}]*)\}")
# Keys that name what a loader instantiates -> (the sibling key holding the arguments, whether
# the key means nothing without it). ``_target_`` needs no sibling to be certain; ``target``
# (LDM, NeMo) and ``class_path`` (LightningCLI / jsonargparse) are ordinary words elsewhere, so
# without their sibling only a name that looks instantiated counts (a class, or a denied name).
_TARGET_KEYS = {
    "_target_": (None, False),
    "target": ("params", False),
    "cls": ("params", True),
    "class_path": ("init_args", False),
}
TARGET_KEYS = frozenset(_TARGET_KEYS)
# fiddle's JSON serialization (NeMo 2 ``context/io.json``) names every class and function it
# rebuilds as {"type": "pyref", "module": ..., "name": ...}; its default policy imports any.
PYREF = "pyref"


@dataclass(frozen=True)
class Target:
    """A node's instantiation target: where it is and the name as written."""

    path: str
    value: str
    certain: bool  # the key is an instantiation whatever the name (see _TARGET_KEYS)


def shown(text: str) -> str:
    """Attacker-written text for a message: quoted (CR/LF escaped) and cut."""
    return repr(text[:MAX_SHOWN])


def child_path(path: str, key: object) -> str:
    """The path of ``key`` under ``path``; keys that are not plain names are quoted (a key is
    attacker-written text, and paths end up in messages)."""
    if isinstance(key, str) and key.isidentifier() and len(key) <= MAX_SHOWN:
        return f"{path}.{key}"
    return f"{path}[{shown(str(key))}]"


# Where a value sits: a finished path, or (where its container sits, its key or index). The
# text is only built for mappings: a tokenizer's half-million merge pairs need no path.
_Where = str | tuple["_Where", object]
_CONTAINERS = (dict, list)


def mappings(doc: Any, label: str, max_nodes: int) -> Iterator[tuple[str, dict[Any, Any]]]:
    """Every mapping in ``doc`` with its path, each object once (YAML aliases share objects,
    so an alias bomb is walked in linear time); iterative, bounded by ``max_nodes``."""
    seen: set[int] = set()
    stack: list[tuple[Any, _Where]] = [(doc, label if label.isprintable() else shown(label))]
    push = stack.append
    while stack:
        item, where = stack.pop()
        if id(item) in seen:
            continue
        seen.add(id(item))
        if len(seen) > max_nodes:
            raise ResourceLimitError(f"{label}: more than {max_nodes} nested values")
        if isinstance(item, dict):
            path = _path(where)
            yield path, item
            pairs: Iterable[tuple[object, Any]] = item.items()
            where = path
        else:
            pairs = enumerate(item)
        for key, value in pairs:  # a plain loop: most lists are small (merge pairs)
            if isinstance(value, _CONTAINERS):
                push((value, (where, key)))


def _path(where: _Where) -> str:
    steps: list[object] = []
    while isinstance(where, tuple):
        where, step = where
        steps.append(step)
    path = where
    for step in reversed(steps):
        path = f"{path}[{step}]" if isinstance(step, int) else child_path(path, step)
    return path


Nodes = list[tuple[str, dict[Any, Any]]]


def walk(doc: Any, label: str, max_nodes: int) -> Nodes:
    """The mappings of ``doc`` (see :func:`mappings`), walked once for every check."""
    return list(mappings(doc, label, max_nodes))


def instantiation_targets(nodes: Nodes) -> list[Target]:
    """The ``_target_`` of every node, and the other target keys' values that may be names."""
    found: list[Target] = []
    for path, node in nodes:
        for key, (sibling, required) in _TARGET_KEYS.items():
            value = node.get(key)
            certain = sibling is None or sibling in node
            if not isinstance(value, str) or (required and not certain):
                continue
            if certain or _DOTTED.fullmatch(value.strip()) or "${" in value:
                found.append(Target(f"{path}.{key}", value, certain))
        if node.get("type") == PYREF:
            module, name = node.get("module"), node.get("name")
            if isinstance(module, str) and isinstance(name, str):
                found.append(Target(f"{path}.type", f"{module}.{name}", True))
    return found


def _instantiated(ctx: ScanContext, ref: str) -> bool:
    """Whether a name under an uncertain key is judged: a class, or a name the policy denies."""
    if not _DOTTED.fullmatch(ref):
        return False
    verdict = ctx.policy.classify_reference(ref)
    denied = verdict.category not in (Category.SAFE, Category.UNKNOWN)
    return denied or ref.rsplit(".", 1)[-1][:1].isupper()


class _Unresolved(Exception):
    pass


def resolve(value: str, root: Any) -> str | None:
    """``value`` with its OmegaConf ``${a.b}`` interpolations replaced from ``root``; None
    when one cannot be resolved statically (a resolver such as ``${oc.env:X}``, a relative
    or missing key, or a chain that does not end)."""

    def lookup(match: re.Match[str]) -> str:
        node = root
        expr = match.group(1).strip()
        if ":" in expr or not expr or expr.startswith("."):
            raise _Unresolved
        for part in expr.split("."):
            if isinstance(node, dict) and part in node:
                node = node[part]
            elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
                node = node[int(part)]
            else:
                raise _Unresolved
        if not isinstance(node, str):
            raise _Unresolved
        return node

    for _ in range(MAX_INTERPOLATION_ROUNDS):
        try:
            expanded = _INTERPOLATION.sub(lookup, value)
        except _Unresolved:
            return None
        if expanded == value:
            return value.strip()
        value = expanded
    return None


def report_targets(
    ctx: ScanContext, location: Location, doc: Any, nodes: Nodes, loader: str
) -> int:
    """Judge every instantiation target among ``nodes`` (the mappings of ``doc``, which
    interpolations are resolved against); returns how many there were."""
    places: dict[str, list[str]] = {}
    judged = 0
    for target in instantiation_targets(nodes):
        ref = resolve(target.value, doc)
        if not target.certain and (ref is None or not _instantiated(ctx, ref)):
            continue  # an ordinary "target" field (a label, a file name)
        judged += 1
        if ref is None:
            ctx.add(
                rules.DYNAMIC_CALL,
                location,
                f"{loader} instantiates {shown(target.value)} at {target.path}: the name is "
                "computed when the configuration is loaded and could not be resolved here",
                target.value,
            )
            continue
        places.setdefault(ref, []).append(target.path)
    for ref, paths in places.items():
        where = ", ".join(paths[:MAX_PATHS]) + (
            f" and {len(paths) - MAX_PATHS} more" if len(paths) > MAX_PATHS else ""
        )
        report_reference(ctx, location, ref, f"{loader} instantiates", where)
    return judged


def report_reference(
    ctx: ScanContext, location: Location, ref: str, action: str, where: str
) -> None:
    """One finding for a name the loader imports (and calls), by the pickle policy's verdict:
    denied names under the rule of their category, unknown ones MEDIUM, allowlisted none."""
    if not IMPORTABLE.fullmatch(ref):
        ctx.add(
            rules.UNSAFE_REFERENCE,
            location,
            f"{action} {shown(ref)} at {where}: not a plain dotted name, so what the loader "
            "resolves it to was not judged",
            ref,
            Severity.MEDIUM,
        )
        return
    verdict = ctx.policy.classify_reference(ref)
    if verdict.is_safe:
        return
    if verdict.category is Category.UNKNOWN:
        ctx.add(
            rules.UNSAFE_REFERENCE,
            location,
            f"{action} {ref} at {where}: not on the allowlist; the loader imports its module",
            ref,
            Severity.MEDIUM,
        )
        return
    severity = max(verdict.severity or Severity.HIGH, Severity.HIGH)
    message = f"{action} {ref} at {where}: {verdict.reason}"
    ctx.add(RULE_FOR[verdict.category], location, message, ref, severity)
