"""``mlgate admit``: the one command a pipeline runs before promoting or deploying a model.

Four checks, each required unless the policy explicitly turns it off:

1. **scan**: no static-scan finding at or above the policy's severity, every file analysed;
2. **digests**: every file matches its pin, from a lock file kept outside the model (``--lock``)
   or from the registry (the folder must be exactly one recorded version's files);
3. **signature**: the registry's ``mlgate.sig`` (written by ``pull``), else ``model.sig``,
   verifies against one of the trusted keys and covers every file;
4. **registry**: that version is published (not revoked, rejected or still in review).

The gate fails closed: a check that cannot be carried out (no lock and no registry, no
trusted key, unreachable database) fails with a line saying why. A lock inside the folder being
admitted is never a trust anchor (whoever altered the weights can regenerate it), and every
file of the folder counts, ``.git/`` included: only the signature being checked and the
Hugging Face client's bookkeeping files (:mod:`mlgate.provenance.client_metadata`) are left out.
"""

from __future__ import annotations

import glob
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlgate.config import read_policy_table
from mlgate.errors import ConfigError, MlgateError
from mlgate.findings import Report, Severity

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric import ec

    from mlgate.provenance.manifest import Manifest
    from mlgate.provenance.signing import VerificationResult
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
    manifests: dict[tuple[str, int | None], Manifest] = field(default_factory=dict)

    def signature(self) -> Path:
        """The signature the gate checks: the registry's, else the OMS default."""
        from mlgate.provenance.signing import find_signature  # noqa: PLC0415

        return find_signature(self.model)

    def manifest(self, algorithm: str = "sha256", shard_size: int | None = None) -> Manifest:
        """Every file of the model but the checked signature and the Hugging Face client's
        own bookkeeping files (no default ignore: a pickle under ``.git/`` or
        ``.cache/huggingface/`` must be pinned like any other file); hashed once per method."""
        from mlgate.provenance.client_metadata import client_bookkeeping  # noqa: PLC0415
        from mlgate.provenance.manifest import hash_model  # noqa: PLC0415

        key = (algorithm, shard_size)
        if key not in self.manifests:
            signature = self.signature()
            own = [glob.escape(signature.name)] if signature.parent == self.model else []
            left_out = own + (client_bookkeeping(self.model) if self.model.is_dir() else [])
            self.manifests[key] = hash_model(
                self.model, algorithm, left_out, shard_size=shard_size, defaults=False
            )
        return self.manifests[key]

    def actual(self) -> dict[str, str]:
        """The model's files: path -> SHA-256."""
        return {f.path: f.digest for f in self.manifest().files}

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
    failures = [f"{f.severity.name} {f.rule_id} {f.location}: {f.message}" for f in blocking]
    # Incomplete always refuses, findings or not: the part not analysed may hold the payload.
    failures += [f"not fully analysed: {a.artifact}" for a in report.artifacts if not a.complete]
    return CheckResult(
        "scan", not failures, _scan_summary(report, ctx.policy.fail_on), tuple(failures)
    )


def _scan_summary(report: Report, fail_on: Severity) -> str:
    """The headline of the scan check; it states what the failure lines below it detail."""
    from mlgate.render.text import plural  # noqa: PLC0415

    parts = [plural(len(report.artifacts), "artifact")]
    blocking = report.at_or_above(fail_on)
    if blocking:
        worst = max(f.severity for f in blocking).name
        parts.append(
            f"{plural(len(blocking), 'finding')} at or above {fail_on.name} (worst: {worst})"
        )
    incomplete = sum(1 for a in report.artifacts if not a.complete)
    if incomplete:
        parts.append(f"{incomplete} not fully analysed")
    if len(parts) == 1:
        parts.append(f"no finding at or above {fail_on.name}")
    return ", ".join(parts)


def _check_digests(ctx: _Context) -> CheckResult:
    results = []
    if ctx.lock is not None:
        results.append(_compare_with_lock(ctx, ctx.lock))
    if ctx.registry is not None and (ctx.lock is None or ctx.policy.expect is not None):
        results.append(_compare_with_registry(ctx))
    if not results:
        return CheckResult(
            "digests",
            False,
            "nothing to pin against",
            ("no lock given (--lock, kept outside the model) and no registry",),
        )
    return CheckResult(
        "digests",
        all(r.passed for r in results),
        "; ".join(r.summary for r in results),
        tuple(line for r in results for line in r.failures),
    )


def _compare_with_lock(ctx: _Context, lock_path: Path) -> CheckResult:
    from mlgate.provenance.lock import compare, read_lock  # noqa: PLC0415

    if lock_path.resolve().is_relative_to(ctx.model.resolve()):
        return CheckResult(
            "digests",
            False,
            "lock inside the model",
            (
                f"{lock_path} is inside the model being admitted: whoever altered the model "
                "could have rewritten it; give a lock kept outside it, or use the registry",
            ),
        )
    lock = read_lock(lock_path)
    # The lock's own ignore patterns are not applied: a file it does not pin is a failure.
    differences = compare(lock, ctx.manifest(lock.algorithm, lock.shard_size))
    return CheckResult(
        "digests",
        not differences,
        f"every file matches {lock_path.name}",
        tuple(str(d) for d in differences),
    )


def _compare_with_registry(ctx: _Context) -> CheckResult:
    assert ctx.registry is not None
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


def _check_signature(ctx: _Context) -> CheckResult:
    from mlgate.provenance.signing import verify_model  # noqa: PLC0415

    keys = _trusted_keys(ctx)
    if not keys:
        return CheckResult(
            "signature",
            False,
            "no trusted key",
            ("no trusted key: give --key or trusted-keys in the policy",),
        )
    signature = ctx.signature()
    if not signature.is_file():
        return CheckResult("signature", False, "unsigned", (f"no signature at {signature}",))
    problems: list[str] = []
    for name, key in keys:
        result = verify_model(ctx.model, key, signature)
        if result.verified:
            return _check_coverage(ctx, result, name)
        problems.append(f"{name}: {'; '.join(result.problems)}")
    return CheckResult("signature", False, "not verified", tuple(problems))


def _check_coverage(ctx: _Context, result: VerificationResult, name: str) -> CheckResult:
    """A verified signature must also cover every file: the OMS ignore paths it records (the
    root ``.git/`` by default) would otherwise let unsigned content ride along."""
    if not ctx.model.is_dir():
        return CheckResult("signature", True, f"signed by {result.signer} ({name})")
    signed = {r.name for r in result.resources}
    unsigned = sorted(set(ctx.actual()) - signed)
    return CheckResult(
        "signature",
        not unsigned,
        f"signed by {result.signer} ({name})",
        tuple(f"not covered by the signature: {p}" for p in unsigned),
    )


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
