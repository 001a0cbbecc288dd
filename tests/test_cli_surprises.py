"""Output that cannot be turned against its reader, and a command line that does not surprise.

File names, ``--reason`` texts and strings from scanned models are attacker-controlled: they
must not forge report lines, drive the terminal (ANSI CSI/OSC), reorder text (bidi overrides,
CVE-2021-42574), be read as rich markup, or crash an encoder (names that are not UTF-8).
Every file here is real and written in ``tmp_path``; malicious pickles are only scanned.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import click
import pytest
from payloads import benign_state_dict, nested_loads, os_system, shell
from registry_models import init_cli, write_benign

from mlgate.cli import cli, main
from mlgate.errors import ExitCode

# One name per attack: screen clear + window title (OSC), right-to-left override, a forged
# verdict line, rich markup and emoji codes, and bytes that are not UTF-8.
HOSTILE_NAMES = (
    "evil\x1b[2J\x1b]0;owned\x07\u202egpj.pkl".encode(),
    b"x\nPASS: 0 findings at or above HIGH\n.pkl",
    b"[bold red]rich[blink]:warning:.pkl",
    b"bad\xff\xfe.pkl",
)
SGR = re.compile(r"\x1b\[[0-9;]*m")
UNSAFE = ("\x1b", "\x07", "\u202e", "\x85")


def _hostile_folder(root: Path, payload: bytes) -> Path:
    folder = root / "model"
    folder.mkdir()
    for name in HOSTILE_NAMES:
        with open(os.path.join(os.fsencode(folder), name), "wb") as f:
            f.write(payload)
    return folder


@pytest.fixture
def hostile(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder of four malicious pickles with hostile names; cwd is ``tmp_path``."""
    monkeypatch.chdir(tmp_path)
    return _hostile_folder(tmp_path, os_system("surprises"))


def _assert_inert(text: str) -> None:
    for char in UNSAFE:
        assert char not in text, repr(text)
    text.encode("utf-8")  # no lone surrogate left


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("color", ["--no-color", "--color"])
def test_hostile_file_names_cannot_forge_lines_or_drive_the_terminal(
    hostile: Path, capsys: pytest.CaptureFixture[str], color: str
) -> None:
    code, out, _ = _run(capsys, "scan", "model", color)
    assert code == ExitCode.UNSAFE
    if color == "--color":  # rich's own colours only: SGR sequences, nothing else
        out = SGR.sub("", out)
    _assert_inert(out)
    lines = out.splitlines()
    assert sum(line.startswith("PASS") for line in lines) == 0
    assert lines[-1] == "FAIL: 4 findings at or above HIGH"
    assert "model/evil\\x1b[2J\\x1b]0;owned\\x07\\u202egpj.pkl" in lines
    assert "model/x\\nPASS: 0 findings at or above HIGH\\n.pkl" in lines
    assert "model/[bold red]rich[blink]:warning:.pkl" in lines  # markup, emoji: literal
    assert "model/bad\\xff\\xfe.pkl" in lines
    assert "4 artifacts scanned, 0 without findings; 4 findings (4 critical)" in lines


@pytest.mark.parametrize("fmt", ["json", "sarif"])
def test_names_not_utf8_do_not_crash_json_sarif_or_output_file(
    hostile: Path, capsys: pytest.CaptureFixture[str], fmt: str
) -> None:
    code, out, err = _run(capsys, "scan", "model", "--format", fmt)
    assert code == ExitCode.UNSAFE, err
    printed = json.loads(out)
    assert _run(capsys, "scan", "model", "--format", fmt, "-o", f"out.{fmt}")[0] == 1
    written = Path(f"out.{fmt}").read_text(encoding="utf-8")
    assert json.loads(written) == printed
    _assert_inert(out)  # \u escapes only: the JSON text itself is inert
    if fmt == "json":
        assert "model/bad\\xff\\xfe.pkl" in {a["artifact"] for a in printed["artifacts"]}
    else:  # the URI names the file's own bytes
        uris = {
            r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
            for r in printed["runs"][0]["results"]
        }
        assert "model/bad%FF%FE.pkl" in uris
        assert "model/evil%1B%5B2J%1B%5D0%3Bowned%07%E2%80%AEgpj.pkl" in uris


def test_text_report_to_a_file_with_names_not_utf8(
    hostile: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _run(capsys, "scan", "model", "-o", "report.txt")[0] == ExitCode.UNSAFE
    _assert_inert(Path("report.txt").read_text(encoding="utf-8"))


@pytest.mark.parametrize(
    "argv",
    [
        ["hash", "model", "--lock-out", "model.lock"],
        ["sign", "model", "--key", "key.pem"],
        ["bom", "model", "-o", "bom.json"],
    ],
    ids=["hash-lock", "sign", "bom"],
)
def test_names_not_utf8_are_refused_with_a_message_not_a_crash(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
    argv: list[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    with open(os.path.join(os.fsencode(folder), b"w\xff.bin"), "wb") as f:
        f.write(b"\0" * 8)
    assert main(["keygen", "key.pem", "--no-password"]) == 0
    capsys.readouterr()
    code, out, err = _run(capsys, *argv)
    assert code == ExitCode.ERROR
    assert "w\\xff.bin is not valid UTF-8" in err and "rename it" in err
    assert "Traceback" not in out + err
    assert not {"model.lock", "bom.json"} & {p.name for p in tmp_path.iterdir()}
    assert not (folder / "model.sig").exists()


def test_hash_prints_names_not_utf8_escaped(
    hostile: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = _run(capsys, "hash", "model")
    assert code == ExitCode.CLEAN
    _assert_inert(out)
    assert out.count("\n") == len(HOSTILE_NAMES)
    code, out, _ = _run(capsys, "hash", "model", "--format", "json")
    assert "bad\\xff\\xfe.pkl" in {f["path"] for f in json.loads(out)["files"]}


def test_explain_escapes_hostile_names_and_strings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    _hostile_folder(tmp_path, os_system("surprises\x1b]8;;http://x\x07\u202e"))
    code, out, _ = _run(capsys, "explain", "model")
    assert code == ExitCode.CLEAN
    _assert_inert(out)
    headers = [line for line in out.splitlines() if line.startswith("# ")]
    assert len(headers) == len(HOSTILE_NAMES)
    assert not any(line.startswith("PASS") for line in out.splitlines())
    assert shell("surprises")[:-1] in out


def test_error_messages_escape_hostile_paths(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    Path("clean.pkl").write_bytes(benign_state_dict())
    code, _, err = _run(capsys, "scan", "clean.pkl", "-o", "no-dir\n\x1b[2J\u202e/r.json")
    assert code == ExitCode.ERROR
    _assert_inert(err)
    assert len(err.splitlines()) == 1 and "no-dir\\n\\x1b[2J\\u202e/r.json" in err


def test_usage_errors_escape_hostile_paths(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    Path("d\nFAIL x\x1b[2J\u202e").mkdir()
    assert main(["keygen", "key.pem", "--no-password"]) == 0
    code, _, err = _run(capsys, "sign", "--blob", "d\nFAIL x\x1b[2J\u202e", "--key", "key.pem")
    assert code == ExitCode.ERROR
    _assert_inert(err)
    assert "d\\nFAIL x\\x1b[2J\\u202e is a folder" in err


def test_scan_explain_and_rules_agree_on_a_findings_severity(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """pickle.loads of an os.system payload: rules said MLG105 is LOW, explain said the call
    is HIGH, scan reported a CRITICAL MLG105. Explain now shows the scan's own verdict on
    each call, and rules says its column is only the default and why."""
    monkeypatch.chdir(tmp_path)
    Path("nested.pkl").write_bytes(nested_loads("surprises-nested"))
    code, out, _ = _run(capsys, "scan", "nested.pkl", "--format", "json")
    nested = [f for f in json.loads(out)["findings"] if f["rule_id"] == "MLG105"]
    assert code == ExitCode.UNSAFE and [f["severity"] for f in nested] == ["CRITICAL"]
    explained = _run(capsys, "explain", "nested.pkl")[1]
    (call,) = [line for line in explained.splitlines() if "loads(" in line]
    assert "# CRITICAL MLG105:" in call, explained
    assert "# CRITICAL MLG101:" in explained  # the payload's own call, as scan reports it
    out = _run(capsys, "rules")[1]
    assert "MLG105  LOW" in out
    note = out.split("\n\n", 1)[1]
    assert "default" in note and "MLG105" in note and "CRITICAL" in note and "explain" in note


# --- registry commands ----------------------------------------------------------------------

HOSTILE_REASON = "ok\nFAIL nothing\x1b]0;owned\x07 [bold]\u202e"


def test_review_reasons_and_registry_output_stay_inert(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    cli = init_cli(tmp_path, capsys, monkeypatch)
    model = write_benign(tmp_path / "bert\x1b[2J\u202e")
    assert cli("ingest", model, "--name", "org/bert", actor="pat") == 0
    assert cli("approve", "org/bert@1", "--reason", HOSTILE_REASON, actor="rita") == 0
    _assert_inert(cli.out)
    for argv in (("models", "show", "org/bert@1"), ("models", "history", "org/bert"),
                 ("models", "list")):
        assert cli(*argv, actor="rob") == 0
        _assert_inert(cli.out)
        assert not any(line.startswith("FAIL") for line in cli.out.splitlines()), cli.out
    assert cli("models", "history", "org/bert", actor="rob") == 0
    assert "ok\\nFAIL nothing\\x1b]0;owned\\x07 [bold]\\u202e" in cli.out


def test_models_show_lists_the_findings_to_judge_with_model_paths(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    cli = init_cli(tmp_path, capsys, monkeypatch)
    model = write_benign(tmp_path / "bert")
    (model / "extra.bin").write_bytes(os_system("surprises-show"))
    assert cli("ingest", model, "--name", "org/bert", actor="pat") == ExitCode.UNSAFE
    assert cli("models", "show", "org/bert@1", actor="rob") == 0
    _assert_inert(cli.out)
    lines = cli.out.splitlines()
    at = lines.index("  CRITICAL")
    assert lines[at + 1].startswith("    MLG101 extra.bin@") and "os.system" in lines[at + 1]
    assert lines.index("  INFO") > at and "  findings: 5 (1 critical, 4 info)" in lines
    assert cli("models", "show", "org/bert@1", "--format", "json", actor="rob") == 0
    shown = json.loads(cli.out)
    report = shown["scan_report"]
    paths = {a["artifact"] for a in report["artifacts"]}
    assert paths == {"README.md", "config.json", "extra.bin", "model.safetensors"}
    assert {f["location"]["path"] for f in report["findings"]} <= paths | {"."}
    # The summary is the scan's verdict on each file, not the ingest-time guess.
    assert shown["formats"] == sorted({f["format"] for f in shown["files"]})
    assert shown["formats"] == sorted({a["format"] for a in report["artifacts"]})


def test_admit_headline_agrees_with_its_details(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    write_benign(tmp_path / "bert")
    (tmp_path / "bert" / "extra\nPASS scan\u202e.bin").write_bytes(os_system("surprises-admit"))
    skip = ["--skip", "digests", "--skip", "signature", "--skip", "registry"]
    code, out, _ = _run(capsys, "admit", "bert", "--no-registry", *skip)
    assert code == ExitCode.UNSAFE
    _assert_inert(out)
    lines = out.splitlines()
    assert lines[0] == "FAIL scan: 4 artifacts, 1 finding at or above HIGH (worst: CRITICAL)"
    assert lines[1].startswith("  CRITICAL MLG101 bert/extra\\nPASS scan\\u202e.bin")
    assert [line for line in lines if line.startswith("PASS")] == []


# --- one spelling, one style ----------------------------------------------------------------


def _commands() -> list[tuple[str, click.Command]]:
    """Every command of the CLI, with its full name (``models show``...)."""
    found: list[tuple[str, click.Command]] = []
    pending: list[tuple[str, click.Command]] = [("", cli)]
    while pending:
        name, command = pending.pop()
        if isinstance(command, click.Group):
            ctx = click.Context(command)
            for sub in command.list_commands(ctx):
                child = command.get_command(ctx, sub)
                assert child is not None
                pending.append((f"{name} {sub}".strip(), child))
        else:
            found.append((name, command))
    return sorted(found, key=lambda item: item[0])


def test_every_option_of_every_command_has_help() -> None:
    missing = [
        f"mlgate {name} {'/'.join(p.opts)}"
        for name, command in _commands()
        for p in command.params
        if isinstance(p, click.Option) and not p.hidden and not p.help
    ]
    assert not missing, missing


def test_output_files_are_named_o_output_everywhere_old_spellings_still_work(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    spellings = {
        name: sorted(
            o
            for p in command.params
            if isinstance(p, click.Option) and {"-o", "--output", "--out"} & set(p.opts)
            for o in p.opts
        )
        for name, command in _commands()
    }
    writers = {name: opts for name, opts in spellings.items() if opts}
    assert set(writers) == {
        "audit export", "bom", "discover", "models bom", "pubkey", "sandbox", "scan"
    }
    for name, opts in writers.items():
        assert {"-o", "--output"} <= set(opts) <= {"-o", "--output", "--out"}, (name, opts)
        help_text = dict(_commands())[name].get_help(click.Context(cli, info_name=name))
        assert "-o, --output" in help_text and "--out " not in help_text  # alias: hidden
    run = init_cli(tmp_path, capsys, monkeypatch)
    assert run("audit", "export", "--out", "old.jsonl") == 0  # scripts written for 0.1
    assert run("audit", "export", "-o", "new.jsonl") == 0
    assert Path("old.jsonl").read_text() == Path("new.jsonl").read_text() != ""


@pytest.mark.parametrize(
    "argv",
    [
        ["scan", "missing"],
        ["explain", "missing"],
        ["hash", "missing"],
        ["verify", "missing"],
        ["sign", "missing"],
        ["bom", "missing"],
        ["convert", "missing", "out"],
        ["admit", "missing"],
        ["ingest", "missing", "--data-dir", "home"],
    ],
    ids=lambda argv: argv[0],
)
def test_missing_paths_are_refused_in_one_style(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
    argv: list[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    code, _, err = _run(capsys, *argv)
    assert code == ExitCode.ERROR
    assert "Path 'missing' does not exist." in err, err
    assert err.startswith("Usage: mlgate") or err.startswith("Error:")


# --- keys and the registry's secrets ---------------------------------------------------------


def test_keygen_never_overwrites_a_key_silently(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key = tmp_path / "key.pem"
    assert _run(capsys, "keygen", str(key), "--no-password")[0] == 0
    before = key.read_bytes(), (tmp_path / "key.pem.pub").read_bytes()
    code, _, err = _run(capsys, "keygen", str(key), "--no-password")
    assert code == ExitCode.ERROR and "already exists" in err and "--force" in err
    assert (key.read_bytes(), (tmp_path / "key.pem.pub").read_bytes()) == before
    (tmp_path / "other.pem.pub").write_text("a public key someone relies on\n")
    code, _, err = _run(capsys, "keygen", str(tmp_path / "other.pem"), "--no-password")
    assert code == ExitCode.ERROR and "other.pem.pub already exists" in err
    assert not (tmp_path / "other.pem").exists()
    assert _run(capsys, "keygen", str(key), "--no-password", "--force")[0] == 0
    assert key.read_bytes() != before[0] and key.stat().st_mode & 0o777 == 0o600


def test_keygen_without_terminal_or_password_option_says_what_to_do(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "mlgate", "keygen", str(tmp_path / "key.pem")],
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120, check=False,
    )
    assert proc.returncode == ExitCode.ERROR
    assert "no terminal" in proc.stderr and "--password-file" in proc.stderr
    assert "--no-password" in proc.stderr
    assert not (tmp_path / "key.pem").exists()


def test_registry_init_protects_its_database_and_warns_about_the_plain_org_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    run = init_cli(tmp_path, capsys, monkeypatch)
    home = run.data_dir
    assert home.stat().st_mode & 0o777 == 0o700
    assert (home / "registry.db").stat().st_mode & 0o777 == 0o600
    assert (home / "keys").stat().st_mode & 0o777 == 0o700
    assert main(["registry", "init", "--data-dir", "fresh", "--as", "alice"]) == 0
    err = capsys.readouterr().err
    assert f"is NOT encrypted: {tmp_path / 'fresh' / 'keys' / 'org.pem'}\n" in err
    assert "--signing-key" in err and "MLGATE_SIGNING_KEY_PASSWORD" in err
    for command in (["registry", "init"], ["publish"], ["audit", "checkpoint"]):
        assert main([*command, "--help"]) == 0
        assert "MLGATE_SIGNING_KEY_PASSWORD" in capsys.readouterr().out.replace("\n", " ")


def test_registry_init_records_a_relative_signing_key_as_absolute(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["keygen", "org.pem", "--no-password"]) == 0
    args = ["--data-dir", str(tmp_path / "home"), "--as", "alice"]
    assert main(["registry", "init", "--signing-key", "org.pem", *args]) == 0
    assert "NOT encrypted" not in capsys.readouterr().err  # the user chose this key
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # a later command, from another folder, still finds the key
    assert main(["audit", "checkpoint", *args]) == 0, capsys.readouterr().err


def test_verify_never_takes_the_models_own_lock_as_anchor(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Like admit, verify needs the lock named: one inside the folder can be regenerated by
    whoever altered the weights, so it is never picked up implicitly."""
    model = write_benign(tmp_path / "bert")
    assert _run(capsys, "hash", str(model), "--lock-out", str(model / "mlgate.lock"))[0] == 0
    code, _, err = _run(capsys, "verify", str(model))
    assert code == ExitCode.ERROR and "give --lock FILE" in err
    lock = tmp_path / "bert.lock"
    assert _run(capsys, "hash", str(model), "--lock-out", str(lock))[0] == 0
    code, out, _ = _run(capsys, "verify", str(model), "--lock", str(lock))
    assert code == ExitCode.CLEAN and out.startswith("lock: verified")
    (model / "config.json").write_text("{}")
    code, out, _ = _run(capsys, "verify", str(model), "--lock", str(lock))
    assert code == ExitCode.UNSAFE and "config.json" in out


def test_unwritable_pubkey_and_audit_export_outputs_are_errors_not_tracebacks(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    run = init_cli(tmp_path, capsys, monkeypatch)
    key = run.data_dir / "keys" / "org.pem"
    for argv in (["pubkey", "--key", str(key), "-o", "no-dir/org.pub"],
                 ["audit", "export", "-o", "no-dir/log.jsonl", "--data-dir", str(run.data_dir),
                  "--as", "alice"]):
        code, _, err = _run(capsys, *argv)
        assert code == ExitCode.ERROR and "cannot write no-dir/" in err, err
