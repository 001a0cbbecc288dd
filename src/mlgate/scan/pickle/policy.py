"""Classification of the globals a pickle imports: safe, dangerous (by kind) or unknown.

Lookup order, most specific first: exact denylist, exact allowlist, denylisted module prefix
(longest wins), allowlisted class pattern, then *unknown*. An allow pattern never overrides a
denied module: ``pandas.io.pytables.HDFStore`` stays denied although pandas classes are allowed.
Verdicts come from these tables only, never from what is importable on the scanning machine.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache

from mlgate.findings import Severity
from mlgate.scan import rules
from mlgate.scan.pickle.policy_data import (
    CLASS_MODULE_PREFIXES,
    DANGEROUS_METHOD_SUFFIXES,
    EXACT_ALLOW,
    EXACT_DENY,
    FUNCTION_MODULE_PREFIXES,
    MODULE_ALIASES,
    MODULE_DENY,
)
from mlgate.scan.pickle.verdicts import SAFE, Category, Loader, Verdict, verdict

_STORAGE_SUFFIX = "Storage"
# Bounds of a dotted name judged split by split (honest import paths are far shorter).
MAX_REFERENCE_PARTS = 32
MAX_REFERENCE_CHARS = 512
# The name under which a whole module (``import x``, not ``from x import y``) is classified.
MODULE_MARK = "<module>"
# The rule a finding about a global (or a configured reference) reports, by its category.
RULE_FOR = {
    Category.CODE_EXECUTION: rules.CODE_EXECUTION,
    Category.SYSTEM: rules.SYSTEM_ACCESS,
    Category.GADGET: rules.DYNAMIC_CALL,
    Category.CODE_OBJECT: rules.CODE_OBJECT,
    Category.DESERIALIZER: rules.SYSTEM_ACCESS,
    Category.UNKNOWN: rules.UNKNOWN_GLOBAL,
    Category.SAFE: rules.UNKNOWN_GLOBAL,
}

__all__ = [
    "MODULE_MARK",
    "RULE_FOR",
    "Category",
    "Loader",
    "Policy",
    "UserPolicy",
    "Verdict",
    "normalise_module",
]


@dataclass(frozen=True)
class UserPolicy:
    """Additions from the user's configuration file (``[tool.mlgate]`` / ``mlgate.toml``)."""

    allow: frozenset[str] = frozenset()
    deny: Mapping[str, Severity] = field(default_factory=dict)


class Policy:
    """Classifies globals; one instance per scan, with the user's additions merged in."""

    def __init__(self, user: UserPolicy | None = None) -> None:
        self._user = user or UserPolicy()
        self._classify = lru_cache(maxsize=65536)(self._classify_uncached)

    def __reduce__(self) -> tuple[type[Policy], tuple[UserPolicy]]:
        # Sent to the worker processes of `scan -j N` as the user's additions; the cache of
        # verdicts (a wrapped bound method) cannot be pickled and is rebuilt there.
        return (Policy, (self._user,))

    def classify(self, module: str, name: str) -> Verdict:
        """Classify the global ``module.name`` (name may be dotted)."""
        return self._classify(module, name)

    def classify_reference(self, ref: str) -> Verdict:
        """Classify a dotted name that a configuration makes a loader resolve and call (Hydra
        ``_target_``, MLflow ``loader_module``, a TorchServe handler...).

        A dotted name does not say where the module ends (Hydra imports the longest prefix
        that imports), so every split is classified: a denied split wins, the worst first;
        otherwise the split before the first capitalised segment (the class) decides, as it
        would for a pickle global. A single name is classified as a module.
        """
        parts = ref.split(".", MAX_REFERENCE_PARTS)
        if len(parts) > MAX_REFERENCE_PARTS or len(ref) > MAX_REFERENCE_CHARS:
            return verdict(Category.GADGET, Severity.HIGH, "a name too long to be judged")
        splits = [(".".join(parts[:i]), ".".join(parts[i:])) for i in range(1, len(parts))]
        verdicts = [self.classify(m, n) for m, n in splits] or [self.classify(ref, MODULE_MARK)]
        denied = [v for v in verdicts if v.category not in (Category.SAFE, Category.UNKNOWN)]
        if denied:
            return max(denied, key=lambda v: v.severity or Severity.INFO)
        last = len(parts) - 1
        first_class = next((i for i in range(1, len(parts)) if parts[i][:1].isupper()), last)
        return verdicts[max(first_class, 1) - 1]

    def _classify_uncached(self, module: str, name: str) -> Verdict:
        module = normalise_module(module)
        return _apply_user(self._user, module, name, _builtin_verdict(module, name))


def _builtin_verdict(module: str, name: str) -> Verdict:
    full = f"{module}.{name}"
    if full in EXACT_DENY:
        return EXACT_DENY[full]
    suffix = _dangerous_suffix(name)
    if suffix is not None:
        return suffix
    if full in EXACT_ALLOW:
        return SAFE
    denied = _longest_prefix(MODULE_DENY, module)
    if denied is not None:
        return denied
    if _allowed_by_pattern(module, name, full):
        return SAFE
    return verdict(Category.UNKNOWN, Severity.MEDIUM, "not on the allowlist")


def _apply_user(user: UserPolicy, module: str, name: str, builtin: Verdict) -> Verdict:
    """User entries extend the built-in policy; they never weaken it.

    A deny entry can only raise a severity, and an allow entry only applies to a name the
    built-in tables call unknown (so ``allow = ["mycompany.*"]`` cannot lift
    ``mycompany.models.os.system`` or anything else that is denied on its own).
    """
    keys = _candidates(f"{module}.{name}", module)
    denied = [user.deny[k] for k in keys if k in user.deny]
    if denied:
        severity = max([*denied, builtin.severity or Severity.INFO])
        category = (
            Category.SYSTEM
            if builtin.category in (Category.SAFE, Category.UNKNOWN)
            else builtin.category
        )
        return verdict(category, severity, f"denied by configuration ({builtin.reason})")
    if builtin.category is Category.UNKNOWN and any(k in user.allow for k in keys):
        return verdict(Category.SAFE, None, "allowed by configuration")
    return builtin


@lru_cache(maxsize=8192)
def normalise_module(module: str) -> str:
    """Map accelerator/legacy module names to the module a reviewer knows."""
    for alias, target in MODULE_ALIASES.items():
        if module == alias or module.startswith(alias + "."):
            return target + module[len(alias) :]
    return module


def _candidates(full: str, module: str) -> list[str]:
    parts = module.split(".")
    return [full, *(".".join(parts[:i]) + ".*" for i in range(len(parts), 0, -1))]


def _longest_prefix(table: Mapping[str, Verdict], module: str) -> Verdict | None:
    parts = module.split(".")
    for i in range(len(parts), 0, -1):
        hit = table.get(".".join(parts[:i]))
        if hit is not None:
            return hit
    return None


def _dangerous_suffix(name: str) -> Verdict | None:
    return DANGEROUS_METHOD_SUFFIXES.get(name.rsplit(".", 1)[-1])


def _allowed_by_pattern(module: str, name: str, full: str) -> bool:
    head = name.split(".", 1)[0]
    if "." in name:
        return False  # attribute chains of allowed classes can reach anything
    if module.startswith("torch") and head.endswith(_STORAGE_SUFFIX) and head[:1].isupper():
        return module in ("torch", "torch.storage", "torch.cuda")
    if any(full.startswith(p) for p in FUNCTION_MODULE_PREFIXES):
        return not head.startswith("__") or head.startswith("__pyx_unpickle")
    if head[:1].isupper() or head.startswith("__pyx_unpickle") or head.startswith("_unpickle"):
        return any(_prefix_matches(module, p) for p in CLASS_MODULE_PREFIXES)
    return False


def _prefix_matches(module: str, prefix: str) -> bool:
    if prefix.endswith("."):
        return module == prefix[:-1] or module.startswith(prefix)
    return module == prefix or module.startswith(prefix + ".")


def policy_tables() -> Sequence[tuple[str, Verdict]]:
    """All built-in denylist entries, for documentation and tests."""
    return [*EXACT_DENY.items(), *MODULE_DENY.items()]
