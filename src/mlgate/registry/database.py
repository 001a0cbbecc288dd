"""Engine set-up and transactions for the registry database (SQLite or PostgreSQL).

Registry writes are serialised: every write transaction takes one database-wide lock first
(``BEGIN IMMEDIATE`` on SQLite, a transaction-scoped advisory lock on PostgreSQL). Writes are
short (the slow work of an ingest, copying and hashing, happens outside them), and a single
writer at a time is what keeps the audit hash chain linear and version numbers gap-free
without lost updates.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, inspect, text
from sqlalchemy.exc import ArgumentError, OperationalError, SQLAlchemyError

from mlgate.registry.errors import RegistryError, SchemaOutdated

# Connections kept open (opened lazily: a CLI command still opens one): more than a hub runs
# requests at once, so that a busy hub does not open and close a connection, and re-run its
# set-up, per request (SQLAlchemy's default keeps 5 and closes the overflow after each use).
_POOL: dict[str, int] = {"pool_size": 20, "max_overflow": 20}
_PG_WRITE_LOCK = 0x6D6C67  # "mlg": the advisory lock id all registry writers share
_WRITE = "mlgate_write"


def sqlite_url(data_dir: Path) -> str:
    """URL of the embedded registry database inside ``data_dir``."""
    return f"sqlite:///{(data_dir / 'registry.db').resolve()}"


def make_engine(url: str) -> Engine:
    """An engine for ``url`` with the registry's locking and durability settings."""
    try:
        if url.startswith("sqlite"):
            engine = create_engine(url, connect_args={"timeout": 60}, **_POOL)
            _configure_sqlite(engine)
        else:
            engine = create_engine(url, pool_pre_ping=True, **_POOL)
            event.listen(engine, "begin", _pg_begin)
    except (ArgumentError, ImportError) as e:
        raise RegistryError(f"cannot use registry database {_redact(url)}: {e}") from e
    return engine


def _configure_sqlite(engine: Engine) -> None:
    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        # pysqlite's own transaction handling cannot emit BEGIN IMMEDIATE; take it over.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=60000")
        cursor.close()

    def on_begin(conn: Connection) -> None:
        write = conn.get_execution_options().get(_WRITE, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

    event.listen(engine, "connect", on_connect)
    event.listen(engine, "begin", on_begin)


def _pg_begin(conn: Connection) -> None:
    if conn.get_execution_options().get(_WRITE, False):
        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_WRITE_LOCK})


@contextmanager
def write_transaction(engine: Engine) -> Iterator[Connection]:
    """A transaction that holds the registry-wide write lock until it commits."""
    with _translate(), engine.connect() as plain:
        conn = plain.execution_options(**{_WRITE: True})
        with conn.begin():
            yield conn


@contextmanager
def read_transaction(engine: Engine) -> Iterator[Connection]:
    """A consistent read-only view (no lock taken)."""
    with _translate(), engine.connect() as conn, conn.begin():
        yield conn


@contextmanager
def _translate() -> Iterator[None]:
    try:
        yield
    except OperationalError as e:
        raise RegistryError(f"registry database unavailable: {e.orig or e}") from e


def migrate(engine: Engine) -> str:
    """Bring the schema to the newest revision; return it."""
    from alembic import command  # noqa: PLC0415  (only needed when migrating)

    config = _alembic_config()
    try:
        with engine.begin() as conn:
            config.attributes["connection"] = conn
            command.upgrade(config, "head")
    except SQLAlchemyError as e:
        raise RegistryError(f"schema migration failed: {e}") from e
    return head_revision()


# The newest migration's revision id (migrations/versions/). Every command checks the schema
# against it with one query, without importing Alembic (~0.3 s plus a scan of the migration
# scripts); tests/test_registry_lifecycle.py checks it equals Alembic's own head.
SCHEMA_HEAD = "0003"


def head_revision() -> str:
    """The newest schema revision this mlgate knows."""
    return SCHEMA_HEAD


def current_revision(engine: Engine) -> str | None:
    """The schema revision of the database (None: not initialised), read from the table
    Alembic keeps it in."""
    with read_transaction(engine) as conn:
        if not inspect(conn).has_table("alembic_version"):
            return None
        rows = conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
    if len(rows) > 1:  # branched migrations: mlgate's history is linear
        raise RegistryError(f"registry schema has several heads {sorted(rows)}")
    return str(rows[0]) if rows else None


def require_current(engine: Engine) -> None:
    """Raise unless the database schema is initialised and at the head revision."""
    current = current_revision(engine)
    if current is None:
        raise RegistryError("the registry is not initialised: run `mlgate registry init`")
    if current != head_revision():
        raise SchemaOutdated(
            f"registry schema is at {current}, this mlgate needs {head_revision()}: "
            "run `mlgate registry migrate`"
        )


def _alembic_config() -> Any:
    from alembic.config import Config  # noqa: PLC0415

    config = Config()
    config.set_main_option("script_location", "mlgate.registry:migrations")
    return config


def _redact(url: str) -> str:
    """The URL without its password, for messages."""
    head, sep, tail = url.rpartition("@")
    if not sep or ":" not in head.split("//", 1)[-1]:
        return url
    scheme, _, creds = head.partition("//")
    user = creds.split(":", 1)[0]
    return f"{scheme}//{user}:***@{tail}"
