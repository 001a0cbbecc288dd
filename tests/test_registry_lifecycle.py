"""Registry lifecycle on both backends: quarantine, scan, review, publish, aliases."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from registry_support import as_user

from mlgate.registry.errors import PermissionDenied, TransitionRefused
from mlgate.registry.lifecycle import State


def _safetensors(path: Path) -> None:
    import numpy as np
    from safetensors.numpy import save_file

    save_file({"w": np.arange(6, dtype=np.float32).reshape(2, 3)}, str(path))


@pytest.fixture
def benign(tmp_path: Path) -> Path:
    folder = tmp_path / "tiny"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "bert"}))
    (folder / "README.md").write_text("---\nlicense: apache-2.0\n---\n# tiny\n")
    _safetensors(folder / "model.safetensors")
    return folder


@pytest.fixture
def malicious(tmp_path: Path) -> Path:
    import payloads

    folder = tmp_path / "evil"
    folder.mkdir()
    (folder / "pytorch_model.bin").write_bytes(payloads.os_system("registry-evil"))
    return folder


def test_benign_model_goes_from_quarantine_to_production(registry, benign: Path) -> None:
    pat, rita = as_user(registry, "pat"), as_user(registry, "rita")
    version = pat.ingest(benign, name="org/tiny")
    assert version.state is State.SCANNED
    assert version.risk in {"none", "info", "low"}
    assert version.license == "apache-2.0"
    assert {f.path for f in version.files} == {"config.json", "README.md", "model.safetensors"}
    assert rita.approve("org/tiny@1", "weights only").state is State.APPROVED
    published = pat.publish("org/tiny@1", alias="production")
    assert published.state is State.PUBLISHED
    assert published.signature and published.bom
    assert published.aliases == ("production",)
    history = [(h.from_state, h.to_state) for h in registry.history("org/tiny")]
    assert history == [(None, "quarantined"), ("quarantined", "scanned"),
                       ("scanned", "approved"), ("approved", "published")]
    assert registry.audit_verify().ok


def test_malicious_model_is_auto_rejected_and_never_served(registry, malicious: Path,
                                                           tmp_path: Path) -> None:
    pat, rita = as_user(registry, "pat"), as_user(registry, "rita")
    version = pat.ingest(malicious, name="org/evil")
    assert version.state is State.REJECTED
    assert version.decisions[0].actor == "mlgate-policy"
    assert "MLG" in version.decisions[0].reason
    with pytest.raises(TransitionRefused, match="only a scanned version can be approved"):
        rita.approve("org/evil@1", "looks fine to me")
    with pytest.raises(TransitionRefused, match="only published versions are served"):
        pat.pull("org/evil@1", tmp_path / "out")


def test_roles_and_separation_of_duties(registry, benign: Path) -> None:
    pat, rob = as_user(registry, "pat"), as_user(registry, "rob")
    with pytest.raises(PermissionDenied, match="rob \\(reader\\) may not ingest"):
        rob.ingest(benign)
    registry.add_user("pat", "publisher,reviewer")
    pat.ingest(benign, name="tiny")
    version = pat.approve("tiny@1", "I ingested it and I like it")
    assert version.state is State.SCANNED  # the ingester's approval alone is not enough
    assert "separation of duties" in (pat.pending_reason(version) or "")
    assert as_user(registry, "rita").approve("tiny@1", "second pair of eyes").state \
        is State.APPROVED


def test_schema_check_is_one_query_that_follows_the_migrations(registry) -> None:
    """Every command checks the schema against SCHEMA_HEAD with one query, without importing
    Alembic (0.3 s of every command's start-up); the constant must follow the migrations, or
    every command would refuse a freshly migrated registry."""
    from alembic.script import ScriptDirectory
    from sqlalchemy import text

    from mlgate.registry import database
    from mlgate.registry.errors import RegistryError, SchemaOutdated

    script = ScriptDirectory.from_config(database._alembic_config())
    assert script.get_current_head() == database.SCHEMA_HEAD
    assert database.current_revision(registry.engine) == database.SCHEMA_HEAD
    database.require_current(registry.engine)
    with registry.engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '0000'"))
    with pytest.raises(SchemaOutdated):
        database.require_current(registry.engine)
    with registry.engine.begin() as conn:
        conn.execute(text("DROP TABLE alembic_version"))
    with pytest.raises(RegistryError, match="not initialised"):
        database.require_current(registry.engine)


def test_opening_a_registry_does_not_import_alembic(registry_home: Path) -> None:
    import subprocess
    import sys

    from mlgate.registry import init_registry

    init_registry(registry_home, admin="alice")
    probe = (
        "import sys; from mlgate.registry import open_registry; "
        f"open_registry({str(registry_home)!r}, None, 'alice').models(); "
        "print('alembic' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          check=True)
    assert done.stdout.strip() == "False", done.stderr


def test_listing_models_takes_the_same_few_queries_at_any_inventory_size(
    registry, tmp_path: Path
) -> None:
    """``models list`` used one query per model and per version (1,049 at 500 models)."""
    from registry_models import release, write_benign
    from sqlalchemy import event

    def count_queries() -> int:
        seen: list[str] = []
        listener = lambda *args: seen.append(args[2])  # noqa: E731
        event.listen(registry.engine, "before_cursor_execute", listener)
        try:
            summaries = registry.models()
        finally:
            event.remove(registry.engine, "before_cursor_execute", listener)
        assert summaries
        return len(seen)

    source = write_benign(tmp_path / "m")
    release(registry, source, "org/first", alias="production")
    few = count_queries()
    for i in range(6):
        registry.ingest(source, name=f"org/m{i}", scan=False)
        registry.ingest(source, name=f"org/m{i}", scan=False)
    assert count_queries() == few
    listed = {m.name: m for m in registry.models()}
    assert listed["org/first"].aliases == {"production": 1}
    assert [v.number for v in listed["org/m5"].versions] == [1, 2]
