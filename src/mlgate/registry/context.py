"""What every registry service shares: the database, the blob store, the acting identity,
the policy, role checks around each transaction, and the audit log they append to.

The services (intake, decisions, aliases, downloads, auditing, admin) each hold one
:class:`RegistryContext` rather than reaching into one another or into the database directly.
"""

from __future__ import annotations

import getpass
import os
import shutil
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine, select

from mlgate.registry import audit, database, store
from mlgate.registry import schema as t
from mlgate.registry.blobs import BlobStore
from mlgate.registry.errors import RegistryError
from mlgate.registry.policy import RegistryPolicy
from mlgate.registry.records import Version
from mlgate.registry.roles import Action, Role, narrow, parse_roles, require

if TYPE_CHECKING:
    from mlgate.registry.orgkey import OrgKey

# Settings keys.
SIGNING_KEY = "signing_key"
PUBLIC_KEY = "signing_public_key"
POLICY_SETTING = "policy"


def default_actor() -> str:
    """The acting identity: ``MLGATE_ACTOR``, else the operating-system user."""
    return os.environ.get("MLGATE_ACTOR") or getpass.getuser()


def split_ref(ref: str) -> tuple[str, str | None]:
    """``name@3`` / ``name@production`` / ``name`` -> (name, selector)."""
    name, _, selector = ref.partition("@")
    return name, selector or None


class RegistryContext:
    """An open registry's shared state: ``engine`` (SQLite or PostgreSQL), ``data_dir`` with
    its blob store, and ``actor``, the identity every call acts as.

    ``scope`` narrows the actor's roles: a hub API token carries a subset of its owner's
    roles, and a request made with it may do no more than that subset (None: all roles).
    """

    def __init__(
        self,
        engine: Engine,
        data_dir: Path,
        actor: str,
        scope: frozenset[Role] | None = None,
    ) -> None:
        self.engine = engine
        self.data_dir = data_dir
        self.actor = actor
        self.scope = scope
        self.blobs = BlobStore(data_dir / "blobs")
        self._key: OrgKey | None = None

    @property
    def policy(self) -> RegistryPolicy:
        """The policy the registry enforces."""
        with database.read_transaction(self.engine) as conn:
            text = store.get_setting(conn, POLICY_SETTING)
        return RegistryPolicy.from_json(text) if text else RegistryPolicy()

    def roles_of(self, conn: Connection, name: str) -> frozenset[Role]:
        """The roles of user ``name`` (none if unknown)."""
        text = conn.execute(
            select(t.principals.c.roles).where(t.principals.c.name == name)
        ).scalar()
        return parse_roles(text) if text else frozenset()

    def actor_roles(self, conn: Connection) -> frozenset[Role]:
        """The roles the acting identity holds now, narrowed to the ``scope`` (a scope role
        counts while the identity's roles cover it)."""
        roles = self.roles_of(conn, self.actor)
        return roles if self.scope is None else narrow(roles, self.scope)

    def org_public_key(self) -> Any:
        """The organisation public key recorded at set-up (None if there is none)."""
        with database.read_transaction(self.engine) as conn:
            pem = store.get_setting(conn, PUBLIC_KEY)
        from mlgate.registry.orgkey import public_key_from_pem  # noqa: PLC0415  (cryptography)

        return public_key_from_pem(pem, "registry key") if pem else None

    def org_key(self) -> OrgKey:
        """The organisation's signing key, loaded once."""
        if self._key is None:
            with database.read_transaction(self.engine) as conn:
                spec = store.get_setting(conn, SIGNING_KEY)
            if not spec:
                raise RegistryError(
                    "no organisation signing key is configured: "
                    "`mlgate registry init --signing-key` sets one"
                )
            from mlgate.registry.orgkey import load_org_key  # noqa: PLC0415  (cryptography)

            self._key = load_org_key(spec)
        return self._key

    def view(self, digest: str, files: Any) -> Path:
        """A read-only folder of hard links to a version's blobs (what the scanner, the
        signer and the BOM read); built once per content digest."""
        root = self.data_dir / "views" / digest
        if root.is_dir():
            return root
        tmp = self.scratch()
        for f in files:
            self.blobs.link_view(f.digest, tmp / f.path)
        root.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.rename(tmp, root)
        except OSError:
            shutil.rmtree(tmp, ignore_errors=True)  # built concurrently by another process
        return root

    def scratch(self) -> Path:
        path = self.data_dir / "tmp" / uuid.uuid4().hex
        path.mkdir(parents=True)
        return path

    def row(self, conn: Connection, ref: str) -> Any:
        name, selector = split_ref(ref)
        return store.version_row(conn, name, selector)

    def subject(self, conn: Connection, row: Any) -> str:
        name = conn.execute(select(t.models.c.name).where(t.models.c.id == row.model_id))
        return f"{name.scalar()}@{row.number}"

    def append_audit(
        self,
        conn: Connection,
        action: str,
        subject: str,
        details: Mapping[str, Any],
        *,
        actor: str | None = None,
        checkpoint: bool = True,
    ) -> audit.AuditEntry:
        entry = audit.append(conn, store.now(), actor or self.actor, action, subject, details)
        every = self._checkpoint_every(conn)
        if checkpoint and entry.seq % every == 0 and store.get_setting(conn, SIGNING_KEY):
            audit.checkpoint(conn, entry, self.org_key(), entry.at)
        return entry

    def _checkpoint_every(self, conn: Connection) -> int:
        text = store.get_setting(conn, POLICY_SETTING)
        return RegistryPolicy.from_json(text).checkpoint_every if text else 50

    def require(self, action: Action) -> None:
        """Fail early, before slow work, when the actor may not do ``action``."""
        with self.read(action):
            pass

    @contextmanager
    def write(self, action: Action) -> Iterator[Connection]:
        with database.write_transaction(self.engine) as conn:
            require(self.actor, self.actor_roles(conn), action)
            yield conn

    @contextmanager
    def read(self, action: Action) -> Iterator[Connection]:
        with database.read_transaction(self.engine) as conn:
            require(self.actor, self.actor_roles(conn), action)
            yield conn

    def show(self, ref: str) -> Version:
        """Everything recorded about a version (``name@N``, ``name@alias`` or ``name``)."""
        with self.read(Action.READ) as conn:
            name, _ = split_ref(ref)
            return store.to_version(conn, self.row(conn, ref), name, detail=True)
