"""One module's discovery: the unsafe loads it makes and the models it references."""

from __future__ import annotations

import ast
from dataclasses import dataclass, field

from mlgate.discover.calls import CallView, calls_in, module_of
from mlgate.discover.loading import TorchLine, Verdict, is_sink, judge
from mlgate.discover.sources import (
    Reference,
    consumed,
    endpoint_settings,
    is_reference,
    model_urls,
    references,
)


@dataclass(frozen=True)
class Load:
    """An unsafe-loading verdict on a call, with how the call reaches the loader."""

    node: ast.AST
    verdict: Verdict
    via: str


@dataclass
class ModuleResult:
    loads: list[Load] = field(default_factory=list)
    references: list[Reference] = field(default_factory=list)


def _matters(view: CallView) -> bool:
    return is_sink(view) or is_reference(view)


def analyse(tree: ast.Module, torch: TorchLine) -> ModuleResult:
    """Every unsafe load and model reference of the module, each reported once."""
    module = module_of(tree)
    result = ModuleResult()
    used: set[int] = set()
    seen: set[tuple[int, int, str, str]] = set()
    for view in calls_in(module, _matters):
        for verdict in judge(view, torch):
            key = (view.node.lineno, view.node.col_offset, verdict.rule.id, verdict.message)
            if key not in seen:
                seen.add(key)
                result.loads.append(Load(view.node, verdict, view.via))
        if is_reference(view):
            result.references.extend(references(view))
            used |= consumed(view)
    result.references.extend(endpoint_settings(tree, module.env))
    result.references.extend(model_urls(tree, used))
    return result
