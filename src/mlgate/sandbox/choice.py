"""Which real loader a model is opened with when ``--loader auto`` (the default).

By what a user would call on the file: the extension first, then the content where one
extension covers several loaders (a ``.pt`` zip holding ``constants.pkl`` is TorchScript,
``torch.jit.load``; any other ``.pt`` is ``torch.load``). A directory with a ``config.json``
is what ``AutoModel.from_pretrained`` opens.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

from mlgate.sandbox.errors import SandboxUnavailableError

_BY_SUFFIX = {
    ".pkl": "pickle",
    ".pickle": "pickle",
    ".dill": "pickle",
    ".pt": "torch",
    ".pth": "torch",
    ".bin": "torch",
    ".ckpt": "torch",
    ".joblib": "joblib",
    ".npy": "numpy",
    ".npz": "numpy",
    ".keras": "keras",
    ".h5": "keras",
    ".onnx": "onnx",
    ".gguf": "gguf",
}


def choose_loader(model: Path) -> str:
    """The loader for ``model``, or an error naming the choices."""
    if model.is_dir():
        loader = "transformers" if (model / "config.json").is_file() else None
    else:
        loader = _BY_SUFFIX.get(model.suffix.lower())
    if loader == "torch" and _is_torchscript(model):
        return "torchscript"
    if loader is None:
        raise SandboxUnavailableError(
            f"cannot tell which loader opens {model.name!r}",
            remedy="pass --loader with the loader your code calls",
        )
    return loader


def _is_torchscript(model: Path) -> bool:
    try:
        with zipfile.ZipFile(model) as archive:
            return any(n.endswith("/constants.pkl") for n in archive.namelist()[:10_000])
    except (OSError, zipfile.BadZipFile):
        return False
