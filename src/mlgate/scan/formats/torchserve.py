"""TorchServe model archives (``.mar``): what ``MAR-INF/MANIFEST.json`` makes the server run.

TorchServe executes the Python a ``.mar`` carries (its own security guidance says so): the
``handler`` (a file of the archive, ``module:function``, or one of the built-in handlers,
which a same-named file in the archive overrides because the model folder comes first on
``sys.path``), the ``modelFile`` that defines an eager-mode model, and the
``requirementsFile`` that it installs with pip when ``install_py_dep_per_model`` is set. Each
of those is at least HIGH; a handler taken from the environment is judged by the pickle
policy (``os:system`` is code execution). The archive's ``.py`` members are analysed on their
own, and its model config YAML by the YAML handler (SnakeYAML tags: the ShellTorch chain).
"""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Any

from mlgate.scan import rules
from mlgate.scan.config_refs import IMPORTABLE, report_reference, shown
from mlgate.scan.context import ScanContext
from mlgate.scan.source import Source

# ts.torch_handler modules TorchServe falls back to when the archive has no such file.
BUILTIN_HANDLERS = frozenset(
    "image_classifier image_segmenter object_detector text_classifier base_handler "
    "vision_handler".split()
)
_OWN_NAMESPACE = "ts."
_FILES = (
    ("modelFile", "TorchServe imports it to build the eager-mode model"),
    (
        "requirementsFile",
        "TorchServe pip-installs it (install_py_dep_per_model): downloads and runs package code",
    ),
)
_NAMED_FILES = ("serializedFile", "modelFile", "requirementsFile", "configFile", "handler")


def is_manifest(doc: dict[str, Any]) -> bool:
    model = doc.get("model")
    return (
        isinstance(model, dict)
        and "handler" in model
        and ("runtime" in doc or "archiverVersion" in doc)
    )


def analyse_manifest(doc: dict[str, Any], source: Source, ctx: ScanContext) -> str:
    """Report the code a TorchServe manifest makes the server run; returns a description."""
    model: dict[str, Any] = doc["model"]
    for key in _NAMED_FILES:
        value = model.get(key)
        if isinstance(value, str) and _escapes(value.partition(":")[0]):
            ctx.add(
                rules.PATH_TRAVERSAL,
                ctx.at(source),
                f"model.{key} {shown(value)} escapes the archive",
            )
    handler = model.get("handler")
    if isinstance(handler, str):
        _handler(handler, source, ctx)
    for key, what in _FILES:
        value = model.get(key)
        if isinstance(value, str) and value:
            ctx.add(
                rules.LOADS_CODE,
                ctx.at(source),
                f"model.{key} {shown(value)} ({_member_state(source, value)}): {what}",
                value,
            )
    return "TorchServe model archive manifest: handler, model file and requirements checked"


def _handler(handler: str, source: Source, ctx: ScanContext) -> None:
    module, _, function = handler.partition(":")
    path = module if module.endswith(".py") else module.replace(".", "/") + ".py"
    state = _member_state(source, path)
    shipped = not state.startswith("NOT")  # present, or cannot be ruled out
    name = module.removesuffix(".py")
    own = name in BUILTIN_HANDLERS or name.startswith(_OWN_NAMESPACE)
    if own and state.startswith("NOT"):
        return  # TorchServe's own handler (ts.torch_handler)
    if shipped or module.endswith(".py") or not IMPORTABLE.fullmatch(name):
        ctx.add(
            rules.LOADS_CODE,
            ctx.at(source),
            f"model.handler {shown(handler)} ({path}: {state}): TorchServe imports this handler "
            "code and calls it on every request",
            handler,
        )
        return
    ref = f"{name}.{function or 'handle'}"
    report_reference(
        ctx, ctx.at(source), ref, "TorchServe imports and calls the handler", "model.handler"
    )


def _member_state(source: Source, name: str) -> str:
    if source.siblings is not None:
        return "present, analysed" if source.siblings(name) is not None else "NOT in the archive"
    if source.location.members:
        return "location unknown"  # a member of an archive read in order (tar): cannot look
    if source.folder is not None:  # an unpacked archive: the manifest sits in MAR-INF/
        root = source.folder.parent if source.folder.name == "MAR-INF" else source.folder
        return "present, analysed" if (root / name).is_file() else "NOT present"
    return "location unknown"


def _escapes(name: str) -> bool:
    pure = PurePosixPath(name.replace("\\", "/"))
    return pure.is_absolute() or ".." in pure.parts
