"""``mlgate admit`` end to end: a model ingested, reviewed, published and pulled from a real
registry is admitted; every way of tampering with it, or with its registry state, is refused
with the failing check named. Also the CI examples shipped in ``examples/ci``."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest
import yaml
from cli_support import assert_real_commands
from registry_support import as_user

from mlgate.cli import main
from mlgate.gate import AdmitPolicy, admit
from mlgate.registry.orgkey import pem_text

ROOT = Path(__file__).resolve().parents[1]
MODEL = "org/tiny"
PASSED = ["PASS scan", "PASS digests", "PASS signature", "PASS registry", "ADMITTED"]


def _benign(folder: Path, tag: str = "v1") -> Path:
    import numpy as np
    from safetensors.numpy import save_file

    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"model_type": "bert", "tag": tag}))
    save_file(
        {"w": np.arange(6, dtype=np.float32).reshape(2, 3)}, str(folder / "model.safetensors")
    )
    return folder


def _publish(registry, folder: Path, alias: str | None = "production"):  # type: ignore[no-untyped-def]
    pat = as_user(registry, "pat")
    version = pat.ingest(folder, name=MODEL)
    as_user(registry, "rita").approve(version.ref, "weights only")
    return pat.publish(version.ref, alias=alias)


@pytest.fixture
def published(registry, tmp_path: Path) -> Path:
    """``org/tiny@1`` published as production and pulled (with mlgate.sig) by rob."""
    _publish(registry, _benign(tmp_path / "src"))
    pulled = tmp_path / "pulled"
    as_user(registry, "rob").pull(f"{MODEL}@1", pulled)
    return pulled


def _admit(registry, model: Path, *extra: str) -> int:  # type: ignore[no-untyped-def]
    args = ["admit", str(model), "--data-dir", str(registry.data_dir), "--as", "rob", *extra]
    if registry.engine.url.get_backend_name() != "sqlite":
        args += ["--registry", registry.engine.url.render_as_string(hide_password=False)]
    return main(args)


def _lines(capsys: pytest.CaptureFixture[str]) -> str:
    return capsys.readouterr().out


def _public_key(registry, path: Path) -> Path:  # type: ignore[no-untyped-def]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(pem_text(registry.org_public_key()))
    return path


def _other_key(path: Path) -> Path:
    from mlgate.provenance.keys import generate_private_key, public_pem

    path.write_bytes(public_pem(generate_private_key().public_key()))
    return path


sqlite_only = pytest.mark.parametrize("registry_url", ["sqlite"], indirect=True)


def test_published_and_pulled_model_is_admitted(registry, published: Path, capsys) -> None:
    assert _admit(registry, published) == 0
    out = _lines(capsys)
    for line in PASSED:
        assert line in out, out
    assert f"PASS registry: {MODEL}@1 is published" in out


@sqlite_only
def test_python_api_admits_and_names_every_check(registry, published: Path) -> None:
    result = admit(published, AdmitPolicy(), registry=as_user(registry, "rob"))
    assert result.admitted
    assert [c.name for c in result.checks] == ["scan", "digests", "signature", "registry"]
    refused = admit(published, AdmitPolicy(expect=f"{MODEL}@2"), registry=registry)
    assert not refused.admitted
    assert "does not exist" in refused.checks[1].failures[0]


@sqlite_only
@pytest.mark.parametrize("change", ["tampered", "added", "removed"])
def test_changed_copy_is_refused(registry, published: Path, capsys, change: str) -> None:
    weights = published / "model.safetensors"
    if change == "tampered":
        data = bytearray(weights.read_bytes())
        data[-1] ^= 0x01  # one bit of one weight
        weights.write_bytes(bytes(data))
    elif change == "added":
        (published / "extra.py").write_text("print('hi')\n")
    else:
        weights.unlink()
    named = {
        "tampered": "modified: model.safetensors",
        "added": "added: extra.py",
        "removed": "missing: model.safetensors",
    }[change]
    assert _admit(registry, published) == 1
    out = _lines(capsys)
    assert f"FAIL digests: no exact match; closest is {MODEL}@1" in out
    assert named in out and "FAIL signature: not verified" in out
    assert "FAIL registry: unknown model" in out and "REFUSED" in out
    assert _admit(registry, published, "--expect", f"{MODEL}@production") == 1
    assert named in _lines(capsys)


@sqlite_only
def test_unsigned_copy_is_refused(registry, published: Path, capsys) -> None:
    (published / "mlgate.sig").unlink()
    assert _admit(registry, published) == 1
    out = _lines(capsys)
    assert "FAIL signature: unsigned" in out and "PASS digests" in out


@sqlite_only
def test_signature_by_an_untrusted_key_is_refused(registry, published: Path, tmp_path, capsys):
    other = _other_key(tmp_path / "other.pub")
    assert _admit(registry, published, "--key", str(other)) == 1
    out = _lines(capsys)
    assert "FAIL signature: not verified" in out and f"  {other}: " in out
    ours = _public_key(registry, tmp_path / "org.pub")
    assert _admit(registry, published, "--key", str(other), "--key", str(ours)) == 0


@sqlite_only
def test_revoked_version_is_refused(registry, published: Path, capsys) -> None:
    as_user(registry, "alice").revoke(f"{MODEL}@1", "weights leaked")
    assert _admit(registry, published) == 1
    out = _lines(capsys)
    assert f"FAIL registry: not published\n  not admissible: {MODEL}@1 is revoked" in out
    assert "PASS signature" in out  # the copy itself is intact: only its status changed


@sqlite_only
def test_approved_but_unpublished_version_is_refused(registry, tmp_path: Path, capsys) -> None:
    pat = as_user(registry, "pat")
    version = pat.ingest(_benign(tmp_path / "src"), name=MODEL)
    as_user(registry, "rita").approve(version.ref, "weights only")
    copy = tmp_path / "copied"  # pull refuses it: copy the blobs by hand, as an insider could
    for f in version.files:
        registry.copy_out(f.digest, copy / f.path)
    assert _admit(registry, copy) == 1
    out = _lines(capsys)
    assert "PASS digests" in out and "FAIL signature: unsigned" in out
    assert f"not admissible: {MODEL}@1 is approved" in out


@sqlite_only
def test_malicious_pickle_fails_the_scan(registry, tmp_path: Path, capsys) -> None:
    import payloads

    folder = tmp_path / "evil"
    folder.mkdir()
    (folder / "pytorch_model.bin").write_bytes(payloads.os_system("admit-evil"))
    assert _admit(registry, folder) == 1
    out = _lines(capsys)
    assert "FAIL scan" in out and "CRITICAL" in out and "REFUSED" in out


def test_no_registry_and_no_lock_fails_closed(tmp_path: Path, capsys) -> None:
    folder = _benign(tmp_path / "m")
    assert main(["admit", str(folder), "--data-dir", str(tmp_path / "none")]) == 1
    out = _lines(capsys)
    assert "FAIL digests: nothing to pin against" in out
    assert "FAIL signature: no trusted key" in out
    assert "FAIL registry: no registry" in out and "PASS scan" in out


@sqlite_only
def test_lock_file_mode_without_registry(registry, published: Path, tmp_path: Path, capsys):
    key = _public_key(registry, tmp_path / "keys" / "org.pub")
    lock = tmp_path / "mlgate.lock"
    assert main(["hash", str(published), "--lock-out", str(lock)]) == 0
    capsys.readouterr()
    base = ["admit", str(published), "--no-registry", "--key", str(key), "--lock", str(lock)]
    assert main([*base, "--skip", "registry"]) == 0
    out = _lines(capsys)
    assert "PASS digests: every file matches mlgate.lock" in out
    assert "SKIP registry: not required by the policy" in out and "ADMITTED" in out
    assert main(base) == 1
    assert "FAIL registry: no registry" in _lines(capsys)

    policy = tmp_path / "policy.toml"  # key paths are relative to the policy file
    policy.write_text(
        '[admit]\nfail-on = "MEDIUM"\nrequire = ["scan", "digests", "signature"]\n'
        'trusted-keys = ["keys/org.pub"]\n'
    )
    with_lock = ["admit", str(published), "--no-registry", "--lock", str(lock)]
    assert main([*with_lock, "--policy", str(policy)]) == 0
    assert "no finding at or above MEDIUM" in _lines(capsys)

    (published / "config.json").write_text("{}")
    assert main([*with_lock, "--policy", str(policy)]) == 1
    out = _lines(capsys)
    assert "FAIL digests" in out and "config.json" in out


@sqlite_only
def test_expect_refuses_tampered_weights_pinned_by_a_lock_inside_the_copy(
    registry, published: Path, capsys
) -> None:
    weights = published / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0x01
    weights.write_bytes(bytes(data))
    lock = published / "mlgate.lock"  # regenerated from the tampered bytes, shipped alongside
    assert main(["hash", str(published), "--lock-out", str(lock)]) == 0
    capsys.readouterr()
    expect = ["--expect", f"{MODEL}@production", "--skip", "signature"]
    assert _admit(registry, published, *expect) == 1
    out = _lines(capsys)
    assert "FAIL digests" in out and "modified: model.safetensors" in out, out
    assert "added: mlgate.lock" in out
    assert _admit(registry, published, *expect, "--lock", str(lock)) == 1
    assert "is inside the model being admitted" in _lines(capsys)


@sqlite_only
def test_pickle_under_git_does_not_ride_along(registry, published: Path, tmp_path, capsys):
    import payloads

    from mlgate.provenance.keys import generate_private_key, public_pem
    from mlgate.provenance.signing import sign_model

    for hidden in (".git/objects/evil.pkl", "sub/.git/evil.pkl"):
        (published / hidden).parent.mkdir(parents=True, exist_ok=True)
        (published / hidden).write_bytes(payloads.os_system("git-ride-along"))
    assert _admit(registry, published, "--skip", "scan") == 1  # .git scanning: the driver's
    out = _lines(capsys)
    assert "added: .git/objects/evil.pkl" in out and "added: sub/.git/evil.pkl" in out, out
    assert "FAIL signature" in out

    # Signed like model_signing (root .git/ ignored), pinned by a lock kept outside: the
    # signature verifies, yet the file it does not cover refuses the model.
    local, key = _benign(tmp_path / "local"), generate_private_key()
    sign_model(local, key)
    lock, pub = tmp_path / "local.lock", tmp_path / "vendor.pub"
    pub.write_bytes(public_pem(key.public_key()))
    assert main(["hash", str(local), "--lock-out", str(lock)]) == 0
    base = ["admit", str(local), "--no-registry", "--skip", "registry", "--skip", "scan"]
    base += ["--key", str(pub), "--lock", str(lock)]
    assert main(base) == 0
    (local / ".git" / "hooks").mkdir(parents=True)
    (local / ".git" / "hooks" / "evil.pkl").write_bytes(payloads.os_system("git-ride-along"))
    capsys.readouterr()
    assert main(base) == 1
    out = _lines(capsys)
    assert "not covered by the signature: .git/hooks/evil.pkl" in out, out
    assert "added: .git/hooks/evil.pkl" in out


@sqlite_only
def test_vendor_signature_and_lock_survive_pull_and_admit(registry, tmp_path: Path, capsys):
    from mlgate.provenance.keys import generate_private_key
    from mlgate.provenance.lock import read_lock
    from mlgate.provenance.signing import sign_model, verify_model

    vendor = generate_private_key()
    src = _benign(tmp_path / "src")
    assert main(["hash", str(src), "--lock-out", str(src / "mlgate.lock")]) == 0
    sign_model(src, vendor)
    shipped = {n: (src / n).read_bytes() for n in ("model.sig", "mlgate.lock")}
    _publish(registry, src)
    pulled = tmp_path / "pulled"
    as_user(registry, "rob").pull(f"{MODEL}@1", pulled)
    assert {n: (pulled / n).read_bytes() for n in shipped} == shipped  # not clobbered
    capsys.readouterr()
    assert _admit(registry, pulled, "--expect", f"{MODEL}@production") == 0, _lines(capsys)
    vendor_sig = verify_model(
        pulled, vendor.public_key(), pulled / "model.sig", ignore=["mlgate.sig"]
    )
    assert vendor_sig.verified, vendor_sig.problems
    ingest = [json.loads(line) for line in registry.audit_export() if '"ingest"' in line]
    evidence = ingest[0]["details"]["vendor_evidence"]
    assert sorted(evidence) == ["mlgate.lock", "model.sig"]
    assert all(v.startswith("matches the content") for v in evidence.values()), evidence
    lock = tmp_path / "pulled.lock"  # lock mode: the vendor's files are pinned like the rest
    assert main(["hash", str(pulled), "--lock-out", str(lock)]) == 0
    assert {"model.sig", "mlgate.lock"} <= {f.path for f in read_lock(lock).files}
    key = _public_key(registry, tmp_path / "org.pub")
    capsys.readouterr()
    offline = ["--no-registry", "--skip", "registry", "--lock", str(lock), "--key", str(key)]
    assert main(["admit", str(pulled), *offline]) == 0, _lines(capsys)


def test_bad_policy_file_is_an_error(tmp_path: Path, capsys) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text('[admit]\nrequire = ["scan", "vibes"]\n')
    folder = _benign(tmp_path / "m")
    assert main(["admit", str(folder), "--policy", str(policy)]) == 2
    assert "unknown checks ['vibes']" in capsys.readouterr().err


@sqlite_only
def test_expect_alias_follows_rollback(registry, tmp_path: Path, capsys) -> None:
    _publish(registry, _benign(tmp_path / "v1", "v1"))
    _publish(registry, _benign(tmp_path / "v2", "v2"))
    pulled = tmp_path / "pulled"
    as_user(registry, "rob").pull(f"{MODEL}@production", pulled)
    expect = ["--expect", f"{MODEL}@production"]
    assert _admit(registry, pulled, *expect) == 0
    assert f"PASS registry: {MODEL}@2 is published" in _lines(capsys)

    as_user(registry, "pat").rollback(MODEL, "production")
    assert _admit(registry, pulled, *expect) == 1
    out = _lines(capsys)
    assert "FAIL digests" in out and "  modified: config.json" in out
    assert _admit(registry, pulled) == 0  # still a published version, just not production


# -- CI examples ------------------------------------------------------------------------------

EXAMPLES = [
    "examples/ci/github-actions.yml",
    "examples/ci/gitlab-ci.yml",
    "examples/ci/pre-commit-config.yaml",
    ".pre-commit-hooks.yaml",
]


def _example_commands(relative: str) -> list[list[str]]:
    """The mlgate command lines an example runs, as argument lists (after ``mlgate``)."""
    document = yaml.safe_load((ROOT / relative).read_text(encoding="utf-8"))
    if relative.endswith("pre-commit-config.yaml"):  # hook ids -> our hooks' entries + args
        ours = {h["id"]: h["entry"] for h in yaml.safe_load((ROOT / EXAMPLES[3]).read_text())}
        hooks = [h for repo in document["repos"] for h in repo["hooks"]]
        lines = [shlex.join([*shlex.split(ours[h["id"]]), *h.get("args", [])]) for h in hooks]
    else:
        lines = _commands(document)
    return [shlex.split(line)[1:] for line in lines]


def _commands(document: object) -> list[str]:
    """Every shell line of a CI file (``run:``, ``script:``, ``entry:``) that calls mlgate."""
    found: list[str] = []
    if isinstance(document, dict):
        for key, value in document.items():
            if key in {"run", "script", "entry"}:
                texts = value if isinstance(value, list) else [value]
                for text in texts:
                    found += [
                        ln.strip()
                        for ln in str(text).splitlines()
                        if ln.strip().startswith("mlgate ")
                    ]
            else:
                found += _commands(value)
    elif isinstance(document, list):
        for item in document:
            found += _commands(item)
    return found


@pytest.mark.parametrize("relative", EXAMPLES)
def test_ci_example_parses_and_runs_real_commands(relative: str) -> None:
    assert_real_commands(_example_commands(relative), relative)


def test_pre_commit_hooks_define_scan_and_admit() -> None:
    hooks = {h["id"]: h for h in yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())}
    assert set(hooks) == {"mlgate-scan", "mlgate-admit"}
    assert hooks["mlgate-scan"]["entry"] == "mlgate scan"
    assert hooks["mlgate-scan"].get("files") or hooks["mlgate-scan"].get("types_or")
    assert all(h["language"] == "python" for h in hooks.values())
