"""Dependency declarations: which ML frameworks a project uses, at which versions.

Reads pip requirement files, ``pyproject.toml`` (PEP 621, PEP 735 groups, Poetry), Poetry and
uv lock files, Pipfile and Pipfile.lock, and conda ``environment.yml``; TOML through tomllib,
JSON through json, YAML through ``yaml.safe_load`` (no object construction). Nothing is
resolved or installed: a specifier is read as written, and :func:`admits_below` answers the
one question the analysis asks of it (can the project run a version older than a fix?).
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import PurePath
from typing import Any

import yaml

from mlgate.errors import MlgateError

FRAMEWORKS = frozenset(
    """torch transformers keras tensorflow tensorflow-cpu tensorflow-gpu tf-keras joblib numpy
    mlflow llama-cpp-python onnx onnxruntime vllm safetensors huggingface-hub dill cloudpickle
    pandas pyyaml hydra-core sentence-transformers diffusers accelerate scikit-learn xgboost
    lightgbm jax flax timm peft datasets langchain llama-index ollama openai anthropic litellm
    gguf""".split()
)
_CONDA_NAMES = {"pytorch": "torch", "py-xgboost": "xgboost"}
_PEP508 = re.compile(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[[^\]]*\])?\s*([^;@]*)")
_CLAUSE = re.compile(r"(===|==|~=|!=|<=|>=|<|>|\^|~|=)?\s*v?(\d+(?:\.\d+)*)(\.\*)?")
_LOWER_BOUNDS = frozenset({"===", "==", "~=", ">=", ">", "^", "~", "=", None})


class ManifestError(MlgateError):
    """A dependency file could not be parsed."""


@dataclass(frozen=True)
class Dependency:
    """One declared dependency: normalised name, specifier as written, where it is declared."""

    name: str
    spec: str
    path: str
    line: int


def normalise(name: str) -> str:
    """PEP 503 name; conda's names for the same package mapped to PyPI's."""
    plain = re.sub(r"[-_.]+", "-", name).lower()
    return _CONDA_NAMES.get(plain, plain)


def manifest_kind(path: PurePath) -> str | None:
    """The parser for a dependency file, judged by its name (None: not one)."""
    name = path.name.lower()
    if name in _BY_NAME:
        return name
    if name.endswith((".txt", ".in")) and (
        "requirements" in name
        or name.startswith("constraints")
        or path.parent.name == "requirements"
    ):
        return "requirements"
    if re.fullmatch(r"environment[\w.-]*\.ya?ml", name):
        return "environment.yml"
    return None


def parse_manifest(path: str, kind: str, text: str) -> list[Dependency]:
    """Every dependency declared in ``text`` (the file at ``path``)."""
    try:
        if kind == "requirements":
            return list(_requirements(path, text))
        entries = _BY_NAME[kind](text)
    except (ValueError, yaml.YAMLError, RecursionError, TypeError, AttributeError) as e:
        raise ManifestError(f"{kind} could not be parsed: {str(e)[:200]}") from e
    return [Dependency(normalise(n), s.strip(), path, _line_of(text, n)) for n, s in entries]


def _requirements(path: str, text: str) -> Iterator[Dependency]:
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split(" #", 1)[0].strip().rstrip("\\").strip()
        if not line or line.startswith(("#", "-", "git+", "http:", "https:", "file:", ".")):
            continue
        match = _PEP508.match(line)
        if match:
            yield Dependency(normalise(match.group(1)), match.group(2).strip(), path, number)


Entries = Iterator[tuple[str, str]]


def _pep508(items: object) -> Entries:
    for item in items if isinstance(items, list) else ():
        match = _PEP508.match(item) if isinstance(item, str) else None
        if match:
            yield match.group(1), match.group(2)


def _poetry_table(table: object) -> Entries:
    for name, entry in table.items() if isinstance(table, dict) else ():
        version = entry.get("version", "") if isinstance(entry, dict) else entry
        if name != "python" and isinstance(version, str):
            yield name, version


def _pyproject(text: str) -> Entries:
    data = tomllib.loads(text)
    project = data.get("project", {})
    yield from _pep508(project.get("dependencies"))
    for group in (project.get("optional-dependencies") or {}).values():
        yield from _pep508(group)
    for group in (data.get("dependency-groups") or {}).values():
        yield from _pep508(group)
    poetry = data.get("tool", {}).get("poetry", {})
    yield from _poetry_table(poetry.get("dependencies"))
    yield from _poetry_table(poetry.get("dev-dependencies"))
    for group in (poetry.get("group") or {}).values():
        yield from _poetry_table(group.get("dependencies") if isinstance(group, dict) else None)


def _lock(text: str) -> Entries:
    for package in tomllib.loads(text).get("package", []):
        if isinstance(package, dict) and isinstance(package.get("version"), str):
            yield package["name"], f"=={package['version']}"


def _pipfile(text: str) -> Entries:
    data = tomllib.loads(text)
    yield from _poetry_table(data.get("packages"))
    yield from _poetry_table(data.get("dev-packages"))


def _pipfile_lock(text: str) -> Entries:
    data = json.loads(text)
    for section in ("default", "develop"):
        for name, value in (data.get(section) or {}).items():
            if isinstance(value, dict):
                yield name, str(value.get("version", ""))


def _conda(text: str) -> Entries:
    data: Any = yaml.safe_load(text)
    for item in (data or {}).get("dependencies") or []:
        if isinstance(item, dict):
            yield from _pep508(item.get("pip"))
        elif isinstance(item, str):
            match = re.match(r"(?:[\w.-]+::)?([A-Za-z0-9][A-Za-z0-9._-]*)\s*(.*)", item)
            if match:  # conda's "name=1.2=build": the build string is no version
                yield match.group(1), re.sub(r"^(=?[^=]+|==[^=]+)=.*$", r"\1", match.group(2))


_BY_NAME = {
    "pyproject.toml": _pyproject,
    "poetry.lock": _lock,
    "uv.lock": _lock,
    "pipfile": _pipfile,
    "pipfile.lock": _pipfile_lock,
    "environment.yml": _conda,
}


def _line_of(text: str, name: str) -> int:
    """The first line that names ``name`` (TOML, JSON and YAML parsers give no positions)."""
    match = re.search(rf"(?im)^.*(?<![\w-]){re.escape(name)}(?![\w-])", text)
    return text.count("\n", 0, match.start()) + 1 if match else 1


def admits_below(spec: str, fixed: tuple[int, ...]) -> bool | None:
    """True when ``spec`` lets a version older than ``fixed`` be installed, False when it
    does not, None when it says nothing (no version: the resolver's newest)."""
    alternatives = [a for a in spec.split("||") if a.strip() not in ("", "*")]
    if not alternatives:
        return None
    return any(_alternative_admits(a, fixed) for a in alternatives)


def _alternative_admits(spec: str, fixed: tuple[int, ...]) -> bool:
    for clause in re.split(r"[,\s]+(?=[<>=!~^\d])", spec.strip()):
        match = _CLAUSE.fullmatch(clause.strip())
        if match is None:
            continue  # unreadable clause: it cannot prove the old versions out
        op, version, _wildcard = match.groups()
        release = tuple(int(p) for p in version.split("."))
        if op in _LOWER_BOUNDS and not _below(release, fixed):
            return False
    return True


def _below(release: tuple[int, ...], fixed: tuple[int, ...]) -> bool:
    """True when ``release`` (or every version it prefixes, for ``2.5.*``) is older."""
    width = max(len(release), len(fixed))
    return release + (0,) * (width - len(release)) < fixed + (0,) * (width - len(fixed))
