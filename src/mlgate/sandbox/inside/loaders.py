"""The real loaders, called the way an unsuspecting user calls them.

Each loader is split in two: ``prepare`` imports the framework (before the model is touched,
so its own imports and start-up activity are not blamed on the model) and ``load`` reads the
model. Unsafe switches are on where a careless user would turn them on (``weights_only=False``,
``allow_pickle=True``, ``trust_remote_code=True``, Keras ``safe_mode=False``): the sandbox is
where the worst case is meant to happen.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Loader:
    name: str
    modules: tuple[str, ...]
    load: Callable[[str], Any]
    # Modules imported before the model only when the target environment has them.
    optional: tuple[str, ...] = ()


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


def _keras(path: str) -> Any:
    keras = importlib.import_module("keras")  # untyped package

    # safe_mode=False is what a user passes to open a model with a Lambda layer: it lets the
    # layer's marshalled Python function be rebuilt (and run, when the model is called).
    return keras.saving.load_model(path, safe_mode=False)


def _onnx(path: str) -> Any:
    import onnx  # noqa: PLC0415

    model = onnx.load(path)
    try:
        onnxruntime = importlib.import_module("onnxruntime")  # optional in the target env
    except ImportError:
        onnx.checker.check_model(model)
        return model
    # The runtime is what deployments use; creating a session loads custom-op libraries and
    # external data, which is where an ONNX file can reach native code or the filesystem.
    return onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])


def _transformers(path: str) -> Any:
    from transformers import AutoModel  # noqa: PLC0415

    # trust_remote_code=True: the model directory's own Python (config.json auto_map) is
    # imported, as it is for every user who copies this line from a model card.
    return AutoModel.from_pretrained(path, trust_remote_code=True, local_files_only=True)


def _gguf(path: str) -> Any:
    import gguf  # noqa: PLC0415

    reader = gguf.GGUFReader(path)
    return {"fields": len(reader.fields), "tensors": len(reader.tensors)}


LOADERS: dict[str, Loader] = {
    "pickle": Loader("pickle", ("pickle",), _pickle),
    "torch": Loader("torch", ("torch",), _torch),
    "torchscript": Loader("torchscript", ("torch",), _torchscript),
    "joblib": Loader("joblib", ("joblib",), _joblib),
    # numpy.load imports zipfile inside the call (.npz), numpy.memmap imports mmap (GGUFReader
    # maps the file): imported beforehand, they are the framework's start-up, not the model's.
    "numpy": Loader("numpy", ("numpy", "zipfile"), _numpy),
    "keras": Loader("keras", ("keras",), _keras),
    "onnx": Loader("onnx", ("onnx",), _onnx, optional=("onnxruntime",)),
    "transformers": Loader("transformers", ("transformers",), _transformers),
    "gguf": Loader("gguf", ("gguf", "mmap"), _gguf),
}


def prepare(loader: Loader) -> None:
    """Import the framework before the model is opened."""
    # Keras 3 needs a backend; torch is the one the sandbox's environments have (the
    # environment is cleared, so a caller's KERAS_BACKEND does not reach here).
    os.environ.setdefault("KERAS_BACKEND", "torch")
    for module in loader.modules:
        importlib.import_module(module)
    for module in loader.optional:
        try:
            importlib.import_module(module)
        except ImportError:
            continue
