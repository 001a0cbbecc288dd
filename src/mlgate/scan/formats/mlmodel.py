"""MLflow ``MLmodel`` files: which code ``mlflow.pyfunc.load_model`` imports.

The ``python_function`` flavour names a ``loader_module`` that MLflow imports and whose
``_load_pyfunc`` it calls; every flavour may name a ``code`` directory (``code_paths``) that
MLflow puts on ``sys.path`` first, so the model's own modules shadow installed ones; "models
from code" name a Python file (``model_code_path``) that MLflow runs. A loader module outside
MLflow's own flavours is code the model brings (or a module of the environment called with the
model's data): at least HIGH, and judged by the pickle policy like any other name. The pickled
model files a flavour names are scanned on their own.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import Any

from mlgate.findings import Location
from mlgate.scan import rules
from mlgate.scan.config_refs import IMPORTABLE, report_reference, shown
from mlgate.scan.context import ScanContext
from mlgate.scan.pickle.verdicts import Category
from mlgate.scan.source import Source

PYFUNC = "python_function"
_OWN_NAMESPACE = "mlflow."  # MLflow's flavour loaders, which read the model's files themselves


def analyse_mlmodel(doc: dict[Any, Any], source: Source, ctx: ScanContext) -> str:
    """Report the code an ``MLmodel`` makes MLflow import; returns a description."""
    flavors = doc.get("flavors")
    if not isinstance(flavors, dict):
        return "MLflow MLmodel without flavours: nothing is loaded from it"
    location = ctx.at(source)
    for name, conf in flavors.items():
        if isinstance(conf, dict):
            _code_dir(str(name), conf, source, ctx)
    pyfunc = flavors.get(PYFUNC)
    if isinstance(pyfunc, dict):
        _loader_module(pyfunc.get("loader_module"), location, ctx)
        _model_code(pyfunc.get("model_code_path"), location, ctx)
    names = ", ".join(shown(str(n)) for n in list(flavors)[:10])
    return f"MLflow MLmodel (flavours {names}): loader modules and code paths checked"


def _code_dir(flavor: str, conf: dict[Any, Any], source: Source, ctx: ScanContext) -> None:
    code = conf.get("code")
    if not isinstance(code, str) or not code:
        return
    ctx.add(
        rules.LOADS_CODE,
        ctx.at(source),
        f"flavour {shown(flavor)}: MLflow puts the code directory {shown(code)} "
        f"({_code_state(source.folder, code)}) first on sys.path before loading, so the "
        "model's own modules are imported (code_paths)",
        code,
    )


def _code_state(folder: Path | None, code: str) -> str:
    pure = PurePosixPath(code.replace("\\", "/"))
    if pure.is_absolute() or ".." in pure.parts:
        return "outside the model folder"
    if folder is None:
        return "location unknown"
    return "present, its files analysed" if (folder / code).is_dir() else "NOT present"


def _loader_module(module: object, location: Location, ctx: ScanContext) -> None:
    if not isinstance(module, str):
        return
    if module.startswith(_OWN_NAMESPACE) and IMPORTABLE.fullmatch(module):
        return  # MLflow's flavour loader: it reads the model files, scanned on their own
    ref = f"{module}._load_pyfunc"
    verdict = ctx.policy.classify_reference(ref) if IMPORTABLE.fullmatch(ref) else None
    if verdict is not None and verdict.category not in (Category.SAFE, Category.UNKNOWN):
        report_reference(ctx, location, ref, "mlflow.pyfunc.load_model calls", "loader_module")
        return
    ctx.add(
        rules.LOADS_CODE,
        location,
        f"python_function loader_module {shown(module)} is not an MLflow flavour: "
        "mlflow.pyfunc.load_model imports it and calls its _load_pyfunc with the model's data",
        module,
    )


def _model_code(path: object, location: Location, ctx: ScanContext) -> None:
    if isinstance(path, str) and path:
        ctx.add(
            rules.LOADS_CODE,
            location,
            f"python_function model_code_path {shown(path)}: mlflow.pyfunc.load_model runs "
            "this Python file to build the model (models from code)",
            path,
        )
