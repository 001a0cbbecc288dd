"""Packaging traps: subpackages left out of wheels, API names shadowed by subpackages."""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import mlgate

SRC = Path(__file__).resolve().parents[1] / "src" / "mlgate"


def test_every_source_folder_is_a_regular_package() -> None:
    # setuptools' package discovery skips folders without __init__.py (namespace packages).
    missing = [
        str(d.relative_to(SRC))
        for d in SRC.rglob("*")
        if d.is_dir() and any(d.glob("*.py")) and not (d / "__init__.py").exists()
    ]
    assert not missing


def test_api_functions_survive_subpackage_imports() -> None:
    for module in ("mlgate.scan.engine", "mlgate.bom.cyclonedx", "mlgate.provenance.signing"):
        importlib.import_module(module)
    assert callable(mlgate.scan) and not isinstance(mlgate.scan, type(mlgate))
    assert callable(mlgate.bom) and not isinstance(mlgate.bom, type(mlgate))


def test_cli_start_up_does_not_load_other_stages() -> None:
    heavy = ("h5py", "jinja2", "cryptography", "cyclonedx", "numpy")
    code = f"import sys, mlgate.cli; print(sorted(m for m in sys.modules if m in {heavy!r}))"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True).stdout.strip()
    assert loaded == "[]"
