"""Review, publication, aliases, retirement and consumption on both backends."""

from __future__ import annotations

from pathlib import Path

import pytest
from registry_models import BENIGN_FILES, blob_count, release, write_benign
from registry_support import as_user

from mlgate.provenance.signing import verify_model
from mlgate.registry.errors import NotFound, PermissionDenied, RegistryError, TransitionRefused
from mlgate.registry.lifecycle import State
from mlgate.registry.policy import RegistryPolicy


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Two benign folders with different weights (v1 and v2 of one model)."""
    root = tmp_path_factory.mktemp("review-models")
    return write_benign(root / "v1", seed=0), write_benign(root / "v2", seed=1)


# -- review ---------------------------------------------------------------------------------


def test_two_approvals_needed_from_distinct_reviewers(registry, models) -> None:
    registry.set_policy(RegistryPolicy(required_approvals=2))
    rita, rex = as_user(registry, "rita"), as_user(registry, "rex")
    as_user(registry, "pat").ingest(models[0], name="org/m")
    once = rita.approve("org/m@1", "weights only")
    assert once.state is State.SCANNED
    assert registry.pending_reason(once) == "1 of 2 approvals"
    with pytest.raises(TransitionRefused, match="rita has already approved org/m@1"):
        rita.approve("org/m@1", "still fine")
    twice = rex.approve("org/m@1", "agreed")
    assert twice.state is State.APPROVED
    assert registry.pending_reason(twice) is None
    assert [(d.actor, d.decision) for d in twice.decisions] == [
        ("rita", "approve"),
        ("rex", "approve"),
    ]


def test_without_separation_of_duties_the_ingester_may_approve_alone(registry, models) -> None:
    registry.add_user("pat", "publisher,reviewer")
    pat = as_user(registry, "pat")
    pat.ingest(models[0], name="m")
    registry.set_policy(RegistryPolicy(separation_of_duties=False))
    assert pat.approve("m@1", "mine, and policy allows it").state is State.APPROVED


def test_only_an_admin_sets_policy_or_adds_users(registry) -> None:
    with pytest.raises(PermissionDenied, match=r"rita \(reviewer\) may not administer"):
        as_user(registry, "rita").set_policy(RegistryPolicy(auto_reject_at=None))
    with pytest.raises(PermissionDenied, match=r"pat \(publisher\) may not administer"):
        as_user(registry, "pat").add_user("mallory", "admin")
    assert registry.policy == RegistryPolicy()
    assert "mallory" not in registry.users()


def test_rejection_needs_a_reason_and_a_rejected_version_is_never_published(
    registry, models
) -> None:
    pat, rita = as_user(registry, "pat"), as_user(registry, "rita")
    pat.ingest(models[0], name="m")
    with pytest.raises(TransitionRefused, match="a rejection needs a reason"):
        rita.reject("m@1", "  ")
    rejected = rita.reject("m@1", "unknown provenance")
    assert rejected.state is State.REJECTED
    assert [(d.actor, d.decision, d.reason) for d in rejected.decisions] == [
        ("rita", "reject", "unknown provenance")
    ]
    with pytest.raises(TransitionRefused, match="only an approved version can be published"):
        pat.publish("m@1")
    with pytest.raises(TransitionRefused, match="only a scanned version can be approved"):
        as_user(registry, "rex").approve("m@1", "overrule")
    assert registry.show("m@1").state is State.REJECTED


def test_an_unscanned_version_is_neither_approved_nor_published(registry, models) -> None:
    pat = as_user(registry, "pat")
    quarantined = pat.ingest(models[0], name="m", scan=False)
    assert (quarantined.state, quarantined.risk) == (State.QUARANTINED, "unscanned")
    with pytest.raises(TransitionRefused, match="only a scanned version can be approved"):
        as_user(registry, "rita").approve("m@1", "trust me")
    with pytest.raises(TransitionRefused, match="only an approved version can be published"):
        pat.publish("m@1")
    with pytest.raises(TransitionRefused, match="only published versions are served"):
        pat.pull("m@1", registry.data_dir.parent / "out")
    assert pat.scan("m@1").state is State.SCANNED  # a later scan lets review begin


# -- aliases and retirement -----------------------------------------------------------------


def test_rollback_and_revocation_move_production(registry, models) -> None:
    pat = as_user(registry, "pat")
    release(registry, models[0], "m", alias="production")
    release(registry, models[1], "m", alias="production")
    assert registry.show("m@production").number == 2
    assert pat.rollback("m", "production").number == 1
    assert pat.rollback("m", "production", to="2").number == 2
    revoked = registry.revoke("m@2", "leaked training data")
    assert revoked.state is State.REVOKED and revoked.aliases == ()
    assert registry.show("m@production").number == 1  # fell back to the previous one
    with pytest.raises(TransitionRefused, match="no earlier published version"):
        pat.rollback("m", "production")
    registry.revoke("m@1", "withdrawn")
    with pytest.raises(NotFound, match="m@production does not exist"):
        registry.show("m@production")
    assert registry.models()[0].aliases == {}
    with pytest.raises(NotFound, match="m has no alias 'production'"):
        pat.rollback("m", "production")


def test_revocation_needs_an_admin_and_a_reason(registry, models) -> None:
    release(registry, models[0], "m")
    with pytest.raises(PermissionDenied, match="pat \\(publisher\\) may not revoke"):
        as_user(registry, "pat").revoke("m@1", "oops")
    with pytest.raises(TransitionRefused, match="needs a reason"):
        registry.revoke("m@1", "")
    assert registry.show("m@1").state is State.PUBLISHED


def test_aliases_point_only_at_published_versions(registry, models, tmp_path: Path) -> None:
    pat = as_user(registry, "pat")
    release(registry, models[0], "m")
    pat.ingest(models[1], name="m")
    with pytest.raises(TransitionRefused, match="m@2 is scanned: only a published version"):
        pat.set_alias("m", "production", "2")
    with pytest.raises(RegistryError, match="invalid alias '7'"):
        pat.set_alias("m", "7", "1")
    assert pat.set_alias("m", "production", "1").number == 1
    deprecated = pat.deprecate("m@1", "superseded soon")
    assert deprecated.state is State.DEPRECATED
    with pytest.raises(TransitionRefused, match="only a published version can be staging"):
        pat.set_alias("m", "staging", "1")
    pulled = as_user(registry, "rob").pull("m@production", tmp_path / "out")
    assert pulled.state is State.DEPRECATED  # deprecated versions are still served
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(
        [*BENIGN_FILES, "mlgate.sig"]
    )


# -- consumers ------------------------------------------------------------------------------


def test_pull_writes_signed_files_and_records_each_download(
    registry, models, tmp_path: Path
) -> None:
    release(registry, models[0], "org/m", alias="production")
    dest = tmp_path / "pulled"
    as_user(registry, "rob").pull("org/m@production", dest)
    for name in BENIGN_FILES:
        assert (dest / name).read_bytes() == (models[0] / name).read_bytes()
    result = verify_model(dest, registry.org_public_key())
    assert result.verified, result.problems
    (dest / "config.json").write_text('{"model_type": "evil"}')
    assert not verify_model(dest, registry.org_public_key()).verified
    downloads = registry.show("org/m@1").downloads
    assert sorted((d.actor, d.path) for d in downloads) == [("rob", n) for n in BENIGN_FILES]
    with pytest.raises(RegistryError, match="is not empty"):
        registry.pull("org/m@1", dest)
    assert len(registry.show("org/m@1").downloads) == len(BENIGN_FILES)


def test_publish_refuses_a_blob_modified_in_the_store(registry, models) -> None:
    pat = as_user(registry, "pat")
    version = pat.ingest(models[0], name="org/m")
    as_user(registry, "rita").approve(version.ref, "reviewed")
    weights = next(f for f in version.files if f.path == "model.safetensors")
    blob = registry.blobs.path(weights.digest)
    blob.chmod(0o600)
    data = bytearray(blob.read_bytes())
    data[-1] ^= 0x01
    blob.write_bytes(bytes(data))  # in place: the scanner's hard-linked view sees it too
    with pytest.raises(RegistryError, match=r"no longer match the digests recorded at ingest"):
        pat.publish(version.ref)
    after = registry.show(version.ref)
    assert after.state is State.APPROVED and after.signature is None


def test_failed_pull_leaves_no_partial_folder(registry, models, tmp_path: Path) -> None:
    version = release(registry, models[0], "org/m")
    last = max(version.files, key=lambda f: f.path)  # copied last: the others are written first
    blob = registry.blobs.path(last.digest)
    original = blob.read_bytes()
    blob.chmod(0o600)
    blob.write_bytes(b"corrupted in the store")
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(RegistryError, match="is corrupt"):
        as_user(registry, "rob").pull(version.ref, out / "pulled")
    assert list(out.iterdir()) == []
    assert registry.show(version.ref).downloads == ()
    blob.write_bytes(original)
    (out / "pulled").mkdir()  # an empty destination folder is filled in one rename
    as_user(registry, "rob").pull(version.ref, out / "pulled")
    assert verify_model(out / "pulled", registry.org_public_key()).verified


def test_ingest_refuses_the_name_reserved_for_the_registry_signature(registry, tmp_path) -> None:
    folder = write_benign(tmp_path / "m")
    (folder / "mlgate.sig").write_text("{}")
    with pytest.raises(RegistryError, match=r"mlgate\.sig, the name the registry serves its own"):
        as_user(registry, "pat").ingest(folder, name="org/m")


def test_identical_content_is_stored_once_and_found_by_content(registry, models) -> None:
    pat = as_user(registry, "pat")
    first = pat.ingest(models[0], name="a")
    second = pat.ingest(models[0], name="b")
    assert first.content_digest == second.content_digest
    assert blob_count(registry.data_dir) == len(BENIGN_FILES)
    pat.ingest(models[1], name="a")
    assert blob_count(registry.data_dir) == len(BENIGN_FILES) + 1  # only the weights differ
    digests = {f.path: f.digest for f in first.files}
    assert [v.ref for v in registry.find_by_content(digests)] == ["b@1", "a@1"]
    assert registry.find_by_content({**digests, "extra.bin": "0" * 64}) == []
    assert registry.find_by_content({"config.json": digests["config.json"]}) == []
    assert registry.find_by_content({}) == []


def test_inventory_history_and_version_references(registry, models) -> None:
    pat = as_user(registry, "pat")
    release(registry, models[0], "m", alias="production")
    pat.ingest(models[1], name="m")
    as_user(registry, "rita").reject("m@2", "not needed")
    [summary] = registry.models()
    assert (summary.name, summary.owner, summary.aliases) == ("m", "pat", {"production": 1})
    assert [(v.number, v.state) for v in summary.versions] == [
        (1, State.PUBLISHED),
        (2, State.REJECTED),
    ]
    assert [(h.version, h.from_state, h.to_state, h.actor) for h in registry.history("m")] == [
        (1, None, "quarantined", "pat"),
        (1, "quarantined", "scanned", "pat"),
        (1, "scanned", "approved", "rita"),
        (1, "approved", "published", "pat"),
        (2, None, "quarantined", "pat"),
        (2, "quarantined", "scanned", "pat"),
        (2, "scanned", "rejected", "rita"),
    ]
    assert registry.show("m").number == 2  # the newest version
    assert registry.show("m@1").number == 1
    assert registry.show("m@production").number == 1
    for missing in ("m@3", "m@staging", "other"):
        with pytest.raises(NotFound):
            registry.show(missing)
    with pytest.raises(NotFound):
        registry.history("other")
