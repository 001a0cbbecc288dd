"""Kinds of verdict the policy gives a global, and helpers to build its tables."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from mlgate.findings import Severity


class Category(Enum):
    """What calling (or importing) a global can do."""

    SAFE = "safe"
    CODE_EXECUTION = "code-execution"
    CODE_OBJECT = "serialized-code"
    SYSTEM = "system-access"
    GADGET = "gadget"
    DESERIALIZER = "deserializer"
    UNKNOWN = "unknown"


class Loader(Enum):
    """How a deserialising callable reads its argument, for nested/chained analysis."""

    PICKLE = "pickle"  # pickle/dill/cloudpickle/_pickle .loads / .load / Unpickler
    TORCH = "torch"  # torch.load and torch.storage._load_from_bytes
    NUMPY = "numpy"  # numpy.load (.npy / .npz / pickle)
    JOBLIB = "joblib"
    MARSHAL = "marshal"  # code objects: never analysable as data


@dataclass(frozen=True)
class Verdict:
    """The policy's decision about one global."""

    category: Category
    severity: Severity | None
    reason: str
    loader: Loader | None = None

    @property
    def is_safe(self) -> bool:
        return self.category is Category.SAFE


def verdict(
    cat: Category, sev: Severity | None, reason: str, loader: Loader | None = None
) -> Verdict:
    return Verdict(cat, sev, reason, loader)


SAFE = verdict(Category.SAFE, None, "allowlisted")


def code_execution(reason: str) -> Verdict:
    return verdict(Category.CODE_EXECUTION, Severity.CRITICAL, reason)


def system_access(reason: str) -> Verdict:
    return verdict(Category.SYSTEM, Severity.HIGH, reason)


def gadget(reason: str, sev: Severity = Severity.HIGH) -> Verdict:
    return verdict(Category.GADGET, sev, reason)


def deserializer(loader: Loader, reason: str) -> Verdict:
    return verdict(Category.DESERIALIZER, Severity.HIGH, reason, loader)


def code_object(reason: str) -> Verdict:
    return verdict(Category.CODE_OBJECT, Severity.CRITICAL, reason)
