"""The registry: inventory, lifecycle, roles, aliases and downloads, as one Python API.

Every change checks the actor's role and the lifecycle, records who did it, and appends an
audit entry in the same transaction, so the inventory and its audit log never disagree.

:class:`Registry` is the facade; the work is done by small services sharing one
:class:`~mlgate.registry.context.RegistryContext`: ``admin`` (policy, users), ``intake``
(ingest, scan), ``decisions`` (approve, reject, publish, deprecate, revoke), ``aliases``
(alias, rollback, fall-back on revoke), ``downloads`` (pull, download records, queries) and
``auditing`` (verify, export, checkpoint), ``tokens`` (hub API tokens), ``jobs`` (background
jobs' durable state), ``upstream`` (pull-through requests), ``rescans`` (retro-hunt) and
``lineage`` (built from, affected versions, bulk revoke).
Front ends may use the services directly.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine, select

from mlgate.registry import audit, database, store
from mlgate.registry import schema as t
from mlgate.registry.admin import Admin
from mlgate.registry.aliases import Aliases
from mlgate.registry.auditing import Auditing
from mlgate.registry.blobs import BlobStore
from mlgate.registry.context import (
    POLICY_SETTING,
    PUBLIC_KEY,
    SIGNING_KEY,
    RegistryContext,
    default_actor,
    split_ref,
)
from mlgate.registry.decisions import Decisions
from mlgate.registry.downloads import Downloads
from mlgate.registry.errors import PermissionDenied, RegistryError
from mlgate.registry.ingest import HubOptions
from mlgate.registry.intake import POLICY_ACTOR, Intake
from mlgate.registry.jobstate import Jobs
from mlgate.registry.lineage import Lineage
from mlgate.registry.policy import RegistryPolicy
from mlgate.registry.records import ModelSummary, StateChange, Version
from mlgate.registry.rescan import Rescans
from mlgate.registry.roles import Action, Role
from mlgate.registry.sources import SourceLimits
from mlgate.registry.tokens import Tokens
from mlgate.registry.upstream import Upstream

if TYPE_CHECKING:
    from mlgate.registry.orgkey import OrgKey

__all__ = [
    "POLICY_ACTOR",
    "Registry",
    "default_actor",
    "init_registry",
    "open_registry",
    "split_ref",
]


class Registry:
    """An open registry: a database (SQLite or PostgreSQL) plus a blob store on disk.

    Open one with :func:`open_registry` or create one with :func:`init_registry`. ``actor``
    is the identity every call acts as; its roles come from the registry's user table.
    """

    def __init__(
        self,
        engine: Engine,
        data_dir: Path,
        actor: str,
        scope: frozenset[Role] | None = None,
    ) -> None:
        self.context = RegistryContext(engine, data_dir, actor, scope)
        self.admin = Admin(self.context)
        self.aliases = Aliases(self.context)
        self.decisions = Decisions(self.context, self.aliases)
        self.intake = Intake(self.context, self.decisions)
        self.downloads = Downloads(self.context)
        self.auditing = Auditing(self.context)
        self.tokens = Tokens(self.context)
        self.jobs = Jobs(self.context)
        self.upstream = Upstream(self.context)
        self.rescans = Rescans(self.context, self.intake, self.aliases)
        self.lineage = Lineage(self.context, self.decisions)

    def acting_as(self, actor: str, scope: frozenset[Role] | None = None) -> Registry:
        """The same registry (engine, blob store, loaded key) acting as ``actor`` with at
        most the roles in ``scope``: how the hub serves each authenticated request."""
        other = Registry(self.engine, self.data_dir, actor, scope)
        other.context._key = self.context._key
        return other

    @property
    def engine(self) -> Engine:
        return self.context.engine

    @property
    def data_dir(self) -> Path:
        return self.context.data_dir

    @property
    def actor(self) -> str:
        return self.context.actor

    @property
    def blobs(self) -> BlobStore:
        return self.context.blobs

    # -- set-up -----------------------------------------------------------------------

    @property
    def policy(self) -> RegistryPolicy:
        """The policy the registry enforces."""
        return self.context.policy

    def set_policy(self, policy: RegistryPolicy) -> None:
        """Replace the policy (admin only; audited)."""
        self.admin.set_policy(policy)

    def add_user(self, name: str, roles: str | frozenset[Role]) -> None:
        """Create or update a user with ``roles`` (admin only; audited)."""
        self.admin.add_user(name, roles)

    def users(self) -> dict[str, tuple[str, ...]]:
        """Every user and their roles."""
        return self.admin.users()

    def roles_of(self, conn: Connection, name: str) -> frozenset[Role]:
        """The roles of user ``name`` (none if unknown)."""
        return self.context.roles_of(conn, name)

    # -- ingest and scan ------------------------------------------------------------------

    def ingest(
        self,
        source: str | Path,
        *,
        name: str | None = None,
        owner: str | None = None,
        hub: HubOptions | None = None,
        limits: SourceLimits | None = None,
        scan: bool = True,
    ) -> Version:
        """Quarantine the model at ``source`` (a path or ``hf://org/name@rev``) as a new
        version, then scan it (unless ``scan=False``) and apply the auto-reject policy."""
        return self.intake.ingest(source, name=name, owner=owner, hub=hub, limits=limits, scan=scan)

    def scan(self, ref: str) -> Version:
        """Scan a version statically, attach the report and apply the auto-reject policy."""
        return self.intake.scan(ref)

    # -- review and publication -----------------------------------------------------------

    def approve(self, ref: str, reason: str) -> Version:
        """Record the actor's approval; the version is approved once policy is satisfied."""
        return self.decisions.approve(ref, reason)

    def pending_reason(self, version: Version) -> str | None:
        """Why a scanned version is not approved yet (None when it is not waiting)."""
        return self.decisions.pending_reason(version)

    def reject(self, ref: str, reason: str) -> Version:
        """Reject a scanned version, with the reviewer's reason."""
        return self.decisions.reject(ref, reason)

    def publish(self, ref: str, *, alias: str | None = None) -> Version:
        """Sign an approved version with the organisation key, attach its ML-BOM, publish."""
        return self.decisions.publish(ref, alias=alias)

    def deprecate(self, ref: str, reason: str) -> Version:
        """Mark a published version deprecated: still served, no new aliases."""
        return self.decisions.deprecate(ref, reason)

    def revoke(self, ref: str, reason: str) -> Version:
        """Withdraw a version for good; aliases on it fall back to the previous published
        version they pointed at (or are removed when there is none)."""
        return self.decisions.revoke(ref, reason)

    # -- aliases ------------------------------------------------------------------------

    def set_alias(self, name: str, alias: str, ref: str) -> Version:
        """Point ``alias`` (e.g. ``production``) of model ``name`` at a published version."""
        return self.aliases.set_alias(name, alias, ref)

    def rollback(self, name: str, alias: str, to: str | None = None) -> Version:
        """Move ``alias`` back to the version it pointed at before (or to version ``to``)."""
        return self.aliases.rollback(name, alias, to)

    # -- consumers ----------------------------------------------------------------------

    def pull(self, ref: str, dest: Path) -> Version:
        """Write a served version's files and the registry's signature into the empty folder
        ``dest``; see :meth:`Downloads.pull`."""
        return self.downloads.pull(ref, dest)

    def copy_out(self, digest: str, target: Path) -> None:
        """Copy a blob to ``target``, refusing it if its content no longer matches."""
        self.downloads.copy_out(digest, target)

    def record_downloads(self, ref: str, paths: list[str]) -> None:
        """Record that the actor downloaded ``paths`` of a version."""
        self.downloads.record_downloads(ref, paths)

    def find_by_content(self, digests: Mapping[str, str]) -> list[Version]:
        """Versions whose files are exactly ``digests`` (path -> SHA-256), newest first."""
        return self.downloads.find_by_content(digests)

    def closest_version(self, digests: Mapping[str, str]) -> Version | None:
        """The version sharing the most (path, SHA-256) pairs with ``digests`` (newest on a
        tie), to name what differs when nothing matches exactly; None if nothing is shared."""
        return self.downloads.closest_version(digests)

    # -- queries ------------------------------------------------------------------------

    def show(self, ref: str) -> Version:
        """Everything recorded about a version (``name@N``, ``name@alias`` or ``name``)."""
        return self.context.show(ref)

    def models(self) -> list[ModelSummary]:
        """Every model with its versions."""
        return self.downloads.models()

    def history(self, name: str) -> tuple[StateChange, ...]:
        """Every state change of every version of model ``name``, oldest first."""
        return self.downloads.history(name)

    # -- audit --------------------------------------------------------------------------

    def audit_verify(self, public_key: Any = None) -> audit.AuditVerification:
        """Verify the audit chain and its checkpoints (against ``public_key``, else the
        public key the registry recorded at set-up)."""
        return self.auditing.verify(public_key)

    def org_public_key(self) -> Any:
        """The organisation public key recorded at set-up (None if there is none)."""
        return self.context.org_public_key()

    def audit_export(self) -> Iterator[str]:
        """The audit log as JSON lines."""
        return self.auditing.export()

    def audit_checkpoint(self) -> audit.Checkpoint:
        """Sign the current head of the audit log now."""
        return self.auditing.checkpoint()

    # -- internals ----------------------------------------------------------------------

    def org_key(self) -> OrgKey:
        """The organisation's signing key, loaded once."""
        return self.context.org_key()

    def view(self, digest: str, files: Any) -> Path:
        """A read-only folder of hard links to a version's blobs (what the scanner, the
        signer and the BOM read); built once per content digest."""
        return self.context.view(digest, files)

    def require(self, action: Action) -> None:
        """Fail early, before slow work, when the actor may not do ``action``."""
        self.context.require(action)


def open_registry(
    data_dir: Path | str, url: str | None = None, actor: str | None = None
) -> Registry:
    """Open an initialised registry: ``url`` (a SQLAlchemy URL, e.g.
    ``postgresql+psycopg://host/db``) or the embedded SQLite database in ``data_dir``.
    Blobs always live in ``data_dir``."""
    root = Path(data_dir)
    engine = database.make_engine(url or database.sqlite_url(root))
    if url is None and not (root / "registry.db").is_file():
        raise RegistryError(f"no registry in {root}: run `mlgate registry init` first")
    database.require_current(engine)
    return Registry(engine, root, actor or default_actor())


def init_registry(
    data_dir: Path | str,
    url: str | None = None,
    *,
    admin: str | None = None,
    signing_key: str | None = None,
    policy: RegistryPolicy | None = None,
) -> Registry:
    """Create (or migrate) a registry; ``admin`` becomes its first administrator.

    Without ``signing_key`` a new P-256 organisation key is generated, unencrypted, in
    ``data_dir/keys/org.pem`` (mode 0600); keep a copy of its public key for verification.
    A key file is recorded by its absolute path: later commands may run from anywhere.
    """
    root = Path(data_dir).absolute()
    # The database holds the audit log and who may do what; the data dir, the key: owner only.
    root.mkdir(mode=0o700, parents=True, exist_ok=True)
    if url is None:
        _private_file(root / "registry.db")
    engine = database.make_engine(url or database.sqlite_url(root))
    database.migrate(engine)
    actor = admin or default_actor()
    spec = _key_spec(signing_key) if signing_key else str(_generate_key(root / "keys" / "org.pem"))
    from mlgate.registry.orgkey import load_org_key, pem_text  # noqa: PLC0415  (cryptography)

    key = load_org_key(spec)
    with database.write_transaction(engine) as conn:
        if conn.execute(select(t.principals.c.name).limit(1)).first() is not None:
            raise PermissionDenied("the registry is already initialised: an admin adds users")
        conn.execute(
            t.principals.insert().values(
                name=actor, roles=Role.ADMIN.value, created_at=store.now(), created_by=actor
            )
        )
        store.put_setting(conn, SIGNING_KEY, spec)
        store.put_setting(conn, PUBLIC_KEY, pem_text(key.public_key))
        store.put_setting(conn, POLICY_SETTING, (policy or RegistryPolicy()).to_json())
        audit.append(
            conn,
            store.now(),
            actor,
            "init",
            "registry",
            {
                "admin": actor,
                "key_id": key.key_id,
                "policy": json.loads((policy or RegistryPolicy()).to_json()),
            },
        )
    BlobStore(root / "blobs").ensure()
    registry = Registry(engine, root, actor)
    registry.context._key = key
    return registry


def _private_file(path: Path) -> None:
    """Create ``path`` readable by its owner only (SQLite gives its journals the same mode)."""
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
    path.chmod(0o600)


def _key_spec(signing_key: str) -> str:
    """A ``pkcs11:`` URI as given; a key file as an absolute path."""
    return signing_key if signing_key.startswith("pkcs11:") else str(Path(signing_key).absolute())


def _generate_key(path: Path) -> Path:
    from mlgate.provenance.keys import generate_private_key, private_pem  # noqa: PLC0415

    if path.exists():
        return path
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(private_pem(generate_private_key(), None))
    return path
