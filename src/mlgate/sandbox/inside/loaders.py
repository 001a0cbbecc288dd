"""The real loaders, called the way an unsuspecting user calls them.

Each loader is split in two: ``prepare`` imports the framework (before the model is touched,
so its own imports and start-up activity are not blamed on the model) and ``load`` reads the
model. Unsafe switches are on where a careless user would turn them on (``weights_only=False``,
``allow_pickle=True``, ``trust_remote_code=True``, Keras ``safe_mode=False``): the sandbox is
where the worst case is meant to happen.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Loader:
    name: str
    modules: tuple[str, ...]
    load: Callable[[str], Any]


def _pickle(path: str) -> Any:
    import pickle  # noqa: PLC0415

    with open(path, "rb") as stream:
        return pickle.load(stream)


def _torch(path: str) -> Any:
    import torch  # noqa: PLC0415

    return torch.load(path, map_location="cpu", weights_only=False)


def _torchscript(path: str) -> Any:
    import torch  # noqa: PLC0415

    return torch.jit.load(path, map_location="cpu")  # type: ignore[no-untyped-call]


def _joblib(path: str) -> Any:
    import joblib  # noqa: PLC0415

    return joblib.load(path)


def _numpy(path: str) -> Any:
    import numpy  # noqa: PLC0415

    loaded = numpy.load(path, allow_pickle=True)
    if hasattr(loaded, "files"):  # .npz: members are read lazily, read them all
        return {name: loaded[name] for name in loaded.files}
    return loaded


LOADERS: dict[str, Loader] = {
    "pickle": Loader("pickle", ("pickle",), _pickle),
    "torch": Loader("torch", ("torch",), _torch),
    "torchscript": Loader("torchscript", ("torch",), _torchscript),
    "joblib": Loader("joblib", ("joblib",), _joblib),
    "numpy": Loader("numpy", ("numpy",), _numpy),
}


def prepare(loader: Loader) -> None:
    """Import the framework before the model is opened."""
    for module in loader.modules:
        importlib.import_module(module)
