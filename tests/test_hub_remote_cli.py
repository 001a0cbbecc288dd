"""``mlgate ... --hub URL --token T`` prints what the local command prints and exits alike:
each step runs remotely on model org/a and locally on its twin org/b (same sources, same
users), and every read runs both ways on the same model."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from hub_api_support import running_hub
from hubjobs_support import WORKER, Worker
from hubserver import HubServer
from registry_models import Cli, init_cli, write_benign, write_malicious

from mlgate.hub.settings import HubSettings
from mlgate.registry import open_registry
from mlgate.registry.orgkey import pem_text

USERS = ("alice", "pat", "rita", "rob")
# (arguments with {m} for the model, acting user, expected exit code)
STEPS: list[tuple[tuple[str, ...], str, int]] = [
    (("ingest", "hf://org/up@v1", "--name", "{m}"), "pat", 0),
    (("approve", "{m}@1", "--reason", "looked at it"), "rita", 0),
    (("publish", "{m}@1", "--alias", "production"), "pat", 0),
    (("ingest", "hf://org/up@v2", "--name", "{m}"), "pat", 0),
    (("approve", "{m}@2", "--reason", "fine"), "rita", 0),
    (("publish", "{m}@2", "--alias", "production"), "pat", 0),
    (("rollback", "{m}", "--alias", "production"), "pat", 0),
    (("alias", "{m}", "staging", "2"), "pat", 0),
    (("ingest", "hf://org/up@v3", "--name", "{m}"), "pat", 0),
    (("approve", "{m}@3", "--reason", "mine"), "rob", 2),
    (("reject", "{m}@3", "--reason", "duplicate"), "rita", 0),
    (("publish", "{m}@3"), "pat", 2),
    (("deprecate", "{m}@2", "--reason", "old"), "pat", 0),
    (("revoke", "{m}@1", "--reason", "leaked"), "alice", 0),
    (("models", "show", "{m}@9"), "rob", 2),
]
READS: list[tuple[str, ...]] = [
    ("models", "list"),
    ("models", "list", "--format", "json"),
    ("models", "show", "org/a@2"),
    ("models", "show", "org/a@staging", "--format", "json"),
    ("models", "history", "org/a"),
    ("models", "bom", "org/a@2"),
    ("audit", "verify"),
    ("audit", "export"),
    ("registry", "users"),
    ("registry", "policy"),
    ("token", "list"),
    ("lineage", "org/a@2"),
    ("affected", "--digest", "sha256:" + "0" * 64, "--format", "json"),
]


@pytest.fixture
def hub(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Cli, str, HubServer]]:
    for name in ("MLGATE_HUB", "MLGATE_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    cli = init_cli(tmp_path, capsys, monkeypatch)
    assert cli("registry", "user", WORKER, "--role", "publisher") == 0
    folder = write_benign(tmp_path / "tiny")
    with HubServer() as upstream:
        for seed in (1, 2, 3):  # three upstream commits, tagged v1..v3
            folder = write_benign(tmp_path / f"tiny-{seed}", seed=seed)
            files = {p.name: p.read_bytes() for p in folder.iterdir()}
            upstream.add_repo("org/up", files, tags=(f"v{seed}",))
        worker = Worker(open_registry(cli.data_dir), tmp_path / "worker.log", "--upstream",
                        upstream.url)  # fmt: skip
        try:
            with running_hub(HubSettings(cli.data_dir, upstream=upstream.url)) as url:
                yield cli, url, upstream
        finally:
            worker.stop()


def test_remote_commands_print_what_local_ones_do(hub: tuple[Cli, str, HubServer]) -> None:
    cli, url, upstream = hub
    tokens = {}
    for user in USERS:
        assert cli("token", "create", "--label", "cli", actor=user) == 0
        tokens[user] = cli.out.strip()
        assert cli.err.startswith("created token ") and tokens[user] not in cli.err

    def remote(*args: str, user: str) -> tuple[int, str, str]:
        code = cli.raw(*args, "--hub", url, "--token", tokens[user])
        return code, cli.out, cli.err

    def local(*args: str, user: str) -> tuple[int, str, str]:
        code = cli(*args, actor=user)
        return code, cli.out, cli.err

    for args, user, expected in STEPS:
        on_a = [a.format(m="org/a") for a in args] + ["--endpoint", upstream.url]
        on_b = [a.format(m="org/b") for a in args] + ["--endpoint", upstream.url]
        if args[0] not in ("ingest",):
            on_a, on_b = on_a[:-2], on_b[:-2]
        got = remote(*on_a, user=user)
        want = local(*on_b, user=user)
        assert got[0] == want[0] == expected, (args, got, want)
        assert (got[1].replace("org/a", "org/b"), got[2].replace("org/a", "org/b")) == want[1:]

    key = cli.data_dir.parent / "org.pub.pem"
    key.write_text(pem_text(open_registry(cli.data_dir).org_public_key()))
    for args in [*READS, ("audit", "verify", "--key", str(key))]:
        got, want = remote(*args, user="rob"), local(*args, user="rob")
        assert got == want, args
        assert got[0] == 0 and got[1], args
    assert tokens["rob"] not in cli.out + cli.err


def test_remote_mode_refuses_what_it_cannot_mean(hub: tuple[Cli, str, HubServer]) -> None:
    cli, url, _ = hub
    assert cli("token", "create", "--label", "cli", actor="pat") == 0
    pat = cli.out.strip()
    with_hub = ("--hub", url, "--token", pat)
    assert cli.raw("approve", "org/a@1", "--reason", "x", *with_hub, "--as", "alice") == 2
    assert "--as does not apply with --hub" in cli.err
    assert cli.raw("registry", "check", *with_hub) == 2
    assert "runs where the registry is" in cli.err
    assert cli.raw("models", "list", "--hub", url) == 2
    assert "a token is required" in cli.err
    assert cli.raw("models", "list", "--hub", url, "--token", "mlg_bad") == 2
    assert "not an mlgate token" in cli.err and "mlg_bad" not in cli.err
    assert cli.raw("models", "list", "--hub", "ftp://x", "--token", pat) == 2
    assert cli.raw("models", "list", "--hub", "http://127.0.0.1:9", "--token", pat) == 2
    assert "cannot reach the hub" in cli.err and pat not in cli.err


def test_remote_ingest_of_a_local_model_uploads_it(hub: tuple[Cli, str, HubServer]) -> None:
    cli, url, _ = hub
    assert cli("token", "create", "--label", "cli", actor="pat") == 0
    with_hub = ("--hub", url, "--token", cli.out.strip())
    root = cli.data_dir.parent
    evil = write_malicious(root / "evil", str(root / "pwned"))
    (root / "out").mkdir()
    (root / "out" / "passwd").symlink_to("/etc/passwd")  # a link out: refused alike
    sources = {root / "tiny": 0, evil: 1, root / "tiny" / "config.json": 0, root / "out": 2}
    for source, expected in sources.items():
        code = cli.raw("ingest", str(source), "--name", "org/a", *with_hub)
        got = (code, cli.out.replace("org/a", "org/b"), cli.err.replace("org/a", "org/b"))
        want = (cli("ingest", str(source), "--name", "org/b", actor="pat"), cli.out, cli.err)
        assert got == want and got[0] == expected, source
    assert cli.raw("ingest", str(root / "tiny"), *with_hub) == 0  # named as locally
    assert cli.out.startswith("tiny@1: scanned ") and f"from {root / 'tiny'})" in cli.out
    assert not (root / "pwned").exists()
    assert not [p for p in (cli.data_dir / "uploads").iterdir() if p.is_dir()]


def test_tokens_through_the_hub(hub: tuple[Cli, str, HubServer]) -> None:
    cli, url, _ = hub
    assert cli("token", "create", "--label", "admin", actor="alice") == 0
    alice = cli.out.strip()
    with_hub = ("--hub", url, "--token", alice)
    assert cli.raw("token", "create", "--label", "ci", "--user", "rob", *with_hub) == 0
    rob = cli.out.strip()
    assert cli.raw("token", "list", "--all", *with_hub) == 0
    rows = cli.out.splitlines()
    assert len(rows) == 2 and "rob" in rows[1] and "reader" in rows[1] and "active" in rows[1]
    token_id = rob.split("_")[1]
    assert cli.raw("token", "revoke", token_id, *with_hub) == 0
    assert cli.out.startswith(f"revoked token {token_id} of rob (reader; does not expire): ci")
    assert cli.raw("models", "list", "--hub", url, "--token", rob) == 2
    assert f"token {token_id} (ci) is revoked" in cli.err
    assert cli.raw("token", "create", "--label", "x", "--roles", "admin", "--hub", url) == 2


def test_remote_pull_downloads_through_the_hub_like_a_local_pull(
    hub: tuple[Cli, str, HubServer],
) -> None:
    cli, url, upstream = hub
    registry = open_registry(cli.data_dir, None, "alice")
    tokens = {u: registry.acting_as(u).tokens.create(label="pull").secret for u in ("pat", "rob")}
    for model in ("org/a", "org/b"):
        assert cli("ingest", "hf://org/up@v1", "--name", model, "--endpoint", upstream.url,
                   actor="pat") == 0  # fmt: skip
        assert cli("approve", f"{model}@1", "--reason", "ok", actor="rita") == 0
        assert cli("publish", f"{model}@1", "--alias", "production", actor="pat") == 0
    out = cli.data_dir.parent
    remote = cli.raw("pull", "org/a@production", str(out / "a"), "--hub", url, "--token",
                     tokens["rob"])  # fmt: skip
    remote_out = cli.out
    assert remote == 0 and cli("pull", "org/b@production", str(out / "b"), actor="rob") == 0
    assert remote_out.replace("org/a", "org/b").replace(str(out / "a"), str(out / "b")) == cli.out
    files = sorted(p.relative_to(out / "a").as_posix() for p in (out / "a").rglob("*"))
    assert "mlgate.sig" in files and files == sorted(
        p.relative_to(out / "b").as_posix() for p in (out / "b").rglob("*")
    )
    assert cli("admit", str(out / "a"), actor="rob") == 0  # the served bytes, the signature
    downloads = {(d.actor, d.path) for d in registry.show("org/a@1").downloads}
    assert {a for a, _ in downloads} == {"rob"} and len(downloads) == len(files) - 1
    # Not served: refused with the reason, and nothing is left behind.
    assert cli("revoke", "org/a@1", "--reason", "leaked", actor="alice") == 0
    code = cli.raw("pull", "org/a@1", str(out / "c"), "--hub", url, "--token", tokens["rob"])
    assert code == 2 and "revoked" in cli.err and not (out / "c").exists()
