"""Registry test fixtures: the same tests run on the embedded SQLite registry and on a real
PostgreSQL server (a fresh database per test).

PostgreSQL is at ``MLGATE_TEST_POSTGRES`` (default ``postgresql+psycopg://postgres@127.0.0.1:5432``).
When it cannot be reached the PostgreSQL variants skip with the reason, except when
``MLGATE_REQUIRE_POSTGRES=1`` (set by ``.ci/run``): then they fail, so CI can never skip them.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

PG_SERVER = os.environ.get("MLGATE_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432")
REQUIRE_PG = os.environ.get("MLGATE_REQUIRE_POSTGRES") == "1"


def _admin_engine():  # type: ignore[no-untyped-def]
    from sqlalchemy import create_engine

    return create_engine(f"{PG_SERVER}/postgres", isolation_level="AUTOCOMMIT")


@pytest.fixture(scope="session")
def postgres_available() -> bool:
    try:
        with _admin_engine().connect() as conn:
            conn.exec_driver_sql("SELECT 1")
    except Exception as e:
        if REQUIRE_PG:
            pytest.fail(f"PostgreSQL is required (MLGATE_REQUIRE_POSTGRES=1) but: {e}")
        return False
    return True


@pytest.fixture
def postgres_url(postgres_available: bool) -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test, dropped afterwards."""
    if not postgres_available:
        pytest.skip(f"PostgreSQL not reachable at {PG_SERVER} (set MLGATE_TEST_POSTGRES)")
    name = f"mlgate_test_{uuid.uuid4().hex[:12]}"
    admin = _admin_engine()
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        yield f"{PG_SERVER}/{name}"
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def registry_url(request: pytest.FixtureRequest) -> str | None:
    """None (embedded SQLite in the data dir) or a fresh PostgreSQL database URL."""
    return sqlite_unless_asked(request)


def sqlite_unless_asked(request: pytest.FixtureRequest) -> str | None:
    """SQLite (None), or a fresh PostgreSQL database when the parameter (the fixture's own,
    or a test's ``indirect`` one) is ``postgresql``; modules that run SQLite by default
    define their own ``registry_url`` fixture returning this."""
    if getattr(request, "param", "sqlite") == "sqlite":
        return None
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
def registry_home(tmp_path: Path) -> Path:
    return tmp_path / "registry"


@pytest.fixture
def registry(registry_home: Path, registry_url: str | None):  # type: ignore[no-untyped-def]
    """An initialised registry with users alice (admin), pat (publisher), rita and rex
    (reviewers), rob (reader). Acts as alice; use ``as_user`` for others."""
    from mlgate.registry import init_registry

    reg = init_registry(registry_home, registry_url, admin="alice")
    reg.add_user("pat", "publisher")
    reg.add_user("rita", "reviewer")
    reg.add_user("rex", "reviewer")
    reg.add_user("rob", "reader")
    yield reg
    reg.engine.dispose()


def as_user(reg, actor: str):  # type: ignore[no-untyped-def]
    """The same registry, acting as ``actor``."""
    from mlgate.registry import open_registry

    return open_registry(reg.data_dir, None if reg.engine.url.get_backend_name() == "sqlite"
                         else reg.engine.url.render_as_string(hide_password=False), actor)
