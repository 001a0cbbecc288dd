"""``mlgate admit``: the one command a pipeline runs before promoting or deploying a model.

Four checks, each required unless the policy explicitly turns it off:

1. **scan**: no static-scan finding at or above the policy's severity, every file analysed;
2. **digests**: every file matches its pin, from ``mlgate.lock`` or else from the registry
   (the folder must be exactly one recorded version's files);
3. **signature**: ``model.sig`` verifies against one of the trusted keys;
4. **registry**: that version is published (not revoked, rejected or still in review).

The gate fails closed: a check that cannot be carried out (no lock and no registry, no
trusted key, unreachable database) fails with a line saying why.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlgate.config import read_policy_table
from mlgate.errors import ConfigError, MlgateError
from mlgate.findings import Report, Severity

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric import ec

    from mlgate.registry.records import Version
    from mlgate.registry.service import Registry

CHECKS = ("scan", "digests", "signature", "registry")


@dataclass(frozen=True)
class AdmitPolicy:
    """What ``admit`` requires. ``trusted_keys``: PEM public keys (paths); ``expect``: the
    registry reference the model must be (e.g. ``org/model@production``)."""

    fail_on: Severity = Severity.HIGH
    require: tuple[str, ...] = CHECKS
    trusted_keys: tuple[Path, ...] = ()
    expect: str | None = None


@dataclass(frozen=True)
class CheckResult:
    """One check's outcome: ``failures`` has one line per problem (empty: passed)."""

    name: str
    passed: bool
    summary: str
    failures: tuple[str, ...] = ()


@dataclass(frozen=True)
class AdmitResult:
    """Every check's outcome; admitted only when all required checks passed."""

    model: Path
    checks: tuple[CheckResult, ...] = field(default=())

    @property
    def admitted(self) -> bool:
        """True when every check that ran passed."""
        return all(c.passed for c in self.checks)


def load_admit_policy(path: Path) -> AdmitPolicy:
    """Read the ``[admit]`` table of a TOML policy file (key paths relative to it)."""
    table = read_policy_table(path, "admit")
    unknown = sorted(set(table) - {"fail-on", "require", "trusted-keys", "expect"})
    if unknown:
        raise ConfigError(f"{path}: unknown [admit] keys {unknown}")
    try:
        fail_on = Severity.parse(str(table.get("fail-on", "HIGH")))
    except ValueError as e:
        raise ConfigError(f"{path}: fail-on: {e}") from e
    require = tuple(table.get("require", CHECKS))
    bad = sorted(set(require) - set(CHECKS))
    if bad:
        raise ConfigError(f"{path}: unknown checks {bad}; checks are {', '.join(CHECKS)}")
    keys = tuple((path.parent / k).resolve() for k in table.get("trusted-keys", ()))
    expect = table.get("expect")
    return AdmitPolicy(fail_on, require, keys, str(expect) if expect else None)


def admit(
    model: Path, policy: AdmitPolicy, *, registry: Registry | None = None, lock: Path | None = None
) -> AdmitResult:
    """Run every required check on the model folder (or file) at ``model``."""
    if not model.exists():
        raise MlgateError(f"{model} does not exist")
    state = _Context(model, policy, registry, lock)
    steps: dict[str, Callable[[_Context], CheckResult]] = {
        "scan": _check_scan,
        "digests": _check_digests,
        "signature": _check_signature,
        "registry": _check_registry,
    }
    results = []
    for name in CHECKS:
        if name not in policy.require:
            continue
        try:
            results.append(steps[name](state))
        except MlgateError as e:
            results.append(CheckResult(name, False, "could not be checked", (str(e),)))
    return AdmitResult(model, tuple(results))


@dataclass
class _Context:
    model: Path
    policy: AdmitPolicy
    registry: Registry | None
    lock: Path | None
    matched: list[Version] | None = None
    digests: dict[str, str] | None = None

    def actual(self) -> dict[str, str]:
        """The model's files: path -> SHA-256 (hashed once)."""
        if self.digests is None:
            from mlgate.provenance.manifest import hash_model  # noqa: PLC0415

            self.digests = {f.path: f.digest for f in hash_model(self.model).files}
        return self.digests

    def versions(self) -> list[Version]:
        """Registry versions whose files are exactly the model's (computed once)."""
        if self.matched is None:
            assert self.registry is not None
            self.matched = self.registry.find_by_content(self.actual())
        return self.matched

    def expected(self) -> Version | None:
        if self.policy.expect is None or self.registry is None:
            return None
        return self.registry.show(self.policy.expect)


def _check_scan(ctx: _Context) -> CheckResult:
    from mlgate.api import scan  # noqa: PLC0415

    report = scan(ctx.model)
    blocking = report.at_or_above(ctx.policy.fail_on)
    incomplete = [a.artifact for a in report.artifacts if not a.complete]
    failures = [f"{f.severity.name} {f.rule_id} {f.location}: {f.message}" for f in blocking]
    failures += [f"not fully analysed: {a}" for a in incomplete if not blocking]
    return CheckResult(
        "scan", not failures, _scan_summary(report, ctx.policy.fail_on), tuple(failures)
    )


def _scan_summary(report: Report, fail_on: Severity) -> str:
    """The headline of the scan check; it states what the failure lines below it detail."""
    from mlgate.render.text import plural  # noqa: PLC0415

    scanned = plural(len(report.artifacts), "artifact")
    blocking = report.at_or_above(fail_on)
    if blocking:
        found = plural(len(blocking), "finding")
        worst = max(f.severity for f in blocking).name
        return f"{scanned}, {found} at or above {fail_on.name} (worst: {worst})"
    incomplete = sum(1 for a in report.artifacts if not a.complete)
    if incomplete:
        return f"{scanned}, {incomplete} not fully analysed"
    return f"{scanned}, no finding at or above {fail_on.name}"


def _check_digests(ctx: _Context) -> CheckResult:
    lock = ctx.lock or default_lock(ctx.model)
    if lock is not None:
        from mlgate.provenance.lock import verify_lock  # noqa: PLC0415

        differences = verify_lock(ctx.model, lock)
        return CheckResult(
            "digests",
            not differences,
            f"every file matches {lock.name}",
            tuple(str(d) for d in differences),
        )
    if ctx.registry is None:
        return CheckResult(
            "digests",
            False,
            "nothing to pin against",
            ("no mlgate.lock in the model and no registry given",),
        )
    expected = ctx.expected()
    if expected is not None:
        return _compare_with_version(ctx, expected)
    if ctx.versions():
        return CheckResult(
            "digests", True, f"every file matches registry version {ctx.versions()[0].ref}"
        )
    closest = ctx.registry.closest_version(ctx.actual())
    if closest is None:
        return CheckResult(
            "digests", False, "no match", ("no registry version shares any file with it",)
        )
    compared = _compare_with_version(ctx, closest)
    return CheckResult(
        "digests", False, f"no exact match; closest is {closest.ref}", compared.failures
    )


def _compare_with_version(ctx: _Context, expected: Version) -> CheckResult:
    actual = ctx.actual()
    pinned = {f.path: f.digest for f in expected.files}
    failures = [
        f"modified: {p}" for p in sorted(pinned.keys() & actual.keys()) if pinned[p] != actual[p]
    ]
    failures += [f"missing: {p}" for p in sorted(pinned.keys() - actual.keys())]
    failures += [f"added: {p}" for p in sorted(actual.keys() - pinned.keys())]
    return CheckResult(
        "digests", not failures, f"every file matches {expected.ref}", tuple(failures)
    )


def default_lock(model: Path) -> Path | None:
    """``MODEL/mlgate.lock`` when the model folder has one (``admit`` and ``verify`` use it)."""
    from mlgate.provenance.manifest import LOCK_FILE  # noqa: PLC0415

    candidate = model / LOCK_FILE if model.is_dir() else None
    return candidate if candidate is not None and candidate.is_file() else None


def _check_signature(ctx: _Context) -> CheckResult:
    from mlgate.provenance.signing import default_signature_path, verify_model  # noqa: PLC0415

    keys = _trusted_keys(ctx)
    if not keys:
        return CheckResult(
            "signature",
            False,
            "no trusted key",
            ("no trusted key: give --key or trusted-keys in the policy",),
        )
    signature = default_signature_path(ctx.model)
    if not signature.is_file():
        return CheckResult("signature", False, "unsigned", (f"no signature at {signature}",))
    problems: list[str] = []
    for name, key in keys:
        result = verify_model(ctx.model, key)
        if result.verified:
            return CheckResult("signature", True, f"signed by {result.signer} ({name})")
        problems.append(f"{name}: {'; '.join(result.problems)}")
    return CheckResult("signature", False, "not verified", tuple(problems))


def _trusted_keys(ctx: _Context) -> Sequence[tuple[str, Any]]:
    keys: list[tuple[str, ec.EllipticCurvePublicKey | Path]] = [
        (str(p), p) for p in ctx.policy.trusted_keys
    ]
    if not keys and ctx.registry is not None:
        public = ctx.registry.org_public_key()
        if public is not None:
            keys.append(("the registry's organisation key", public))
    return keys


def _check_registry(ctx: _Context) -> CheckResult:
    from mlgate.registry.lifecycle import State  # noqa: PLC0415

    if ctx.registry is None:
        return CheckResult(
            "registry", False, "no registry", ("no registry given (--data-dir / --registry)",)
        )
    expected = ctx.expected()
    candidates = [expected] if expected is not None else ctx.versions()
    if not candidates:
        return CheckResult(
            "registry", False, "unknown model", ("no registry version holds exactly these files",)
        )
    published = [v for v in candidates if v.state is State.PUBLISHED]
    if published:
        return CheckResult("registry", True, f"{published[0].ref} is published")
    states = ", ".join(f"{v.ref} is {v.state.value}" for v in candidates)
    return CheckResult("registry", False, "not published", (f"not admissible: {states}",))
