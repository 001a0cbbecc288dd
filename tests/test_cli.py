"""The command line: exit codes, --fail-on, --output, --config, explain and rules.

``mlgate.cli.main`` runs in-process (it returns the exit code); the installed console script
runs once in a subprocess. Every test runs in its own empty working directory so that no
``mlgate.toml`` or ``pyproject.toml`` is discovered by accident.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from payloads import benign_state_dict, glob0, os_system, proto, s, shell

from mlgate.cli import main
from mlgate.errors import ExitCode
from mlgate.scan.rules import ALL_RULES

CUSTOM = "mycompany.tools.fetch"


def _custom_global_call(module: str, name: str) -> bytes:
    """Protocol-0 ``module.name('x')``: a global on neither list (MEDIUM unknown-global)."""
    return glob0(module, name) + b"(Vx\ntR."


def _attribute_chain_call(module: str, dotted: str, arg: str) -> bytes:
    """Protocol-4 STACK_GLOBAL of a dotted name (``module`` then ``getattr`` per part)."""
    return proto(4) + s(module) + s(dotted) + b"\x93" + s(arg) + b"\x85R."


class Files:
    """Artifacts written into the test's working directory."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.clean = self.write("clean.pkl", benign_state_dict())
        self.evil = self.write("evil.pkl", os_system("cli-evil"))
        self.custom = self.write("custom.pkl", _custom_global_call("mycompany.tools", "fetch"))

    def write(self, name: str, data: bytes) -> str:
        path = self.root / name
        path.write_bytes(data)
        return name  # relative: the tests run in ``root``

    def config(self, text: str, name: str = "mlgate-test.toml") -> str:
        (self.root / name).write_text(text, encoding="utf-8")
        return name


@pytest.fixture
def files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Files:
    monkeypatch.chdir(tmp_path)
    return Files(tmp_path)


def _json_scan(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict[str, object]]:
    code = main(["scan", *args, "--format", "json"])
    out = capsys.readouterr().out
    return code, json.loads(out)


def _findings(report: dict[str, object]) -> list[dict[str, object]]:
    findings = report["findings"]
    assert isinstance(findings, list)
    return findings


# --- exit codes -----------------------------------------------------------------------------


def test_clean_scan_exits_0(files: Files, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["scan", files.clean]) == ExitCode.CLEAN == 0
    out = capsys.readouterr().out
    assert out.splitlines()[-1] == "PASS: 0 findings at or above HIGH"


def test_malicious_scan_exits_1(files: Files, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["scan", files.clean, files.evil]) == ExitCode.UNSAFE == 1
    out = capsys.readouterr().out
    assert "CRITICAL" in out and "MLG101" in out
    assert out.splitlines()[-1] == "FAIL: 1 finding at or above HIGH"


def test_missing_path_exits_2(files: Files, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["scan", files.clean, "no-such-model.pkl"]) == ExitCode.ERROR == 2
    captured = capsys.readouterr()
    assert "Path 'no-such-model.pkl' does not exist" in captured.err
    assert "PASS" not in captured.out and "FAIL" not in captured.out


@pytest.mark.parametrize("argv", [
    ["scan"],                                        # PATHS is required
    ["scan", "clean.pkl", "--fail-on", "bogus"],
    ["scan", "clean.pkl", "--format", "xml"],
    ["scan", "clean.pkl", "--config", "missing.toml"],
    ["explain", "no-such-model.pkl"],
    ["no-such-command"],
])
def test_usage_errors_exit_2(files: Files, capsys: pytest.CaptureFixture[str],
                             argv: list[str]) -> None:
    assert main(argv) == ExitCode.ERROR
    assert capsys.readouterr().err.strip()


@pytest.mark.parametrize(("target", "fail_on", "expected"), [
    ("custom", None, 0),            # MEDIUM unknown global, default threshold HIGH
    ("custom", "LOW", 1),
    ("custom", "medium", 1),        # case-insensitive
    ("custom", "HIGH", 0),
    ("custom", "CRITICAL", 0),
    ("evil", "CRITICAL", 1),
    ("evil", "LOW", 1),
    ("clean", "INFO", 0),
])
def test_fail_on_changes_exit_code(files: Files, capsys: pytest.CaptureFixture[str],
                                   target: str, fail_on: str | None, expected: int) -> None:
    argv = ["scan", getattr(files, target)]
    if fail_on is not None:
        argv += ["--fail-on", fail_on]
    assert main(argv) == expected
    verdict = capsys.readouterr().out.splitlines()[-1]
    assert verdict.startswith("FAIL" if expected else "PASS")
    assert verdict.endswith(f"at or above {(fail_on or 'HIGH').upper()}")


def test_fail_on_from_config_and_cli_override(files: Files,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    cfg = files.config('fail-on = "MEDIUM"\n')
    assert main(["scan", files.custom, "--config", cfg]) == 1
    assert main(["scan", files.custom, "--config", cfg, "--fail-on", "HIGH"]) == 0


# --- --output -------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["text", "json", "sarif"])
def test_output_writes_file(files: Files, capsys: pytest.CaptureFixture[str],
                            fmt: str) -> None:
    target = files.root / "reports" / f"report.{fmt}"
    target.parent.mkdir()
    assert main(["scan", files.evil, "--format", fmt, "--output", str(target)]) == 1
    assert capsys.readouterr().out == ""
    text = target.read_text(encoding="utf-8")
    assert "\x1b[" not in text
    if fmt == "text":
        assert text.splitlines()[-1] == "FAIL: 1 finding at or above HIGH"
    elif fmt == "json":
        report = json.loads(text)
        assert report["schema"] == "mlgate.scan/1"
        assert report["summary"]["passed"] is False
    else:
        log = json.loads(text)
        assert log["version"] == "2.1.0"
        assert [r["ruleId"] for r in log["runs"][0]["results"]] == ["MLG101"]


def test_output_clean_scan_also_writes_file(files: Files) -> None:
    target = files.root / "clean.json"
    assert main(["scan", files.clean, "--format", "json", "-o", str(target)]) == 0
    assert json.loads(target.read_text(encoding="utf-8"))["summary"]["passed"] is True


def test_unwritable_output_exits_2(files: Files, capsys: pytest.CaptureFixture[str]) -> None:
    """BUG (src/mlgate/cli.py, _emit/main): an --output that cannot be written is an error
    (exit 2 with a message); today the OSError escapes main(), and the console script dies
    with a traceback and exit status 1, which a CI gate reads as "findings"."""
    target = files.root / "no-such-dir" / "report.json"
    try:
        code = main(["scan", files.clean, "--format", "json", "--output", str(target)])
    except OSError as e:
        pytest.fail(f"main() raised {e!r} instead of returning exit code 2")
    assert code == ExitCode.ERROR
    assert "report.json" in capsys.readouterr().err  # says which file could not be written


# --- --config: allow and deny ---------------------------------------------------------------


def test_custom_global_is_medium_unknown_without_config(
        files: Files, capsys: pytest.CaptureFixture[str]) -> None:
    code, report = _json_scan(capsys, files.custom)
    assert code == 0
    [finding] = _findings(report)
    assert (finding["rule_id"], finding["severity"]) == ("MLG103", "MEDIUM")
    assert CUSTOM in str(finding["message"])


def test_config_deny_custom_global_fails_the_gate(
        files: Files, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = files.config(f'[deny]\n"{CUSTOM}" = "HIGH"\n')
    code, report = _json_scan(capsys, files.custom, "--config", cfg)
    assert code == 1
    [finding] = _findings(report)
    assert finding["severity"] == "HIGH"
    assert finding["rule_id"] == "MLG102"
    assert CUSTOM in str(finding["message"])


def test_config_deny_module_pattern(files: Files, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = files.config('[deny]\n"mycompany.*" = "CRITICAL"\n')
    assert main(["scan", files.custom, "--config", cfg, "--fail-on", "CRITICAL"]) == 1


@pytest.mark.parametrize("allow", [CUSTOM, "mycompany.tools.*", "mycompany.*"])
def test_config_allow_removes_unknown_global_finding(
        files: Files, capsys: pytest.CaptureFixture[str], allow: str) -> None:
    cfg = files.config(f'allow = ["{allow}"]\n')
    code, report = _json_scan(capsys, files.custom, "--config", cfg, "--fail-on", "INFO")
    assert code == 0
    assert _findings(report) == []


@pytest.mark.parametrize("allow", [
    '["os.system"]', '["os.*"]', '["posix.system", "posix.*"]', '["os.system", "os.*"]',
])
def test_config_allow_cannot_lift_builtin_deny(
        files: Files, capsys: pytest.CaptureFixture[str], allow: str) -> None:
    cfg = files.config(f"allow = {allow}\n")
    code, report = _json_scan(capsys, files.evil, "--config", cfg)
    assert code == 1
    assert [(f["rule_id"], f["severity"]) for f in _findings(report)] == [("MLG101", "CRITICAL")]


def test_config_allow_cannot_lift_attribute_chain_to_os_system(
        files: Files, capsys: pytest.CaptureFixture[str]) -> None:
    """BUG (src/mlgate/scan/pickle/policy.py, _user_verdict): a user allow pattern for a
    module also allows any attribute chain below it. ``mycompany.models`` + ``os.system`` (a
    protocol-4 dotted name: the loader does getattr(mycompany.models, 'os').system) is CRITICAL
    without configuration, yet ``allow = ["mycompany.*"]`` makes it vanish, contradicting
    "the allowlist can only add names mlgate would otherwise call unknown"."""
    chain = files.write("chain.pkl", _attribute_chain_call(
        "mycompany.models", "os.system", shell("cli-chain")))
    code, report = _json_scan(capsys, chain)
    assert code == 1
    assert [f["severity"] for f in _findings(report)] == ["CRITICAL"]

    cfg = files.config('allow = ["mycompany.*"]\n')
    code, report = _json_scan(capsys, chain, "--config", cfg)
    assert [f["severity"] for f in _findings(report)] == ["CRITICAL"]
    assert code == 1


def test_config_deny_cannot_downgrade_builtin_deny(
        files: Files, capsys: pytest.CaptureFixture[str]) -> None:
    """BUG (src/mlgate/scan/pickle/policy.py, _user_verdict): user deny entries are looked up
    before the built-in tables, so ``[deny] "os.system" = "LOW"`` turns the CRITICAL
    code-execution finding into a LOW one and the gate passes. The configuration may extend
    the denylist (or raise a severity) but must not weaken a built-in entry."""
    cfg = files.config('[deny]\n"os.system" = "LOW"\n')
    code, report = _json_scan(capsys, files.evil, "--config", cfg)
    assert [f["severity"] for f in _findings(report)] == ["CRITICAL"]
    assert code == 1


# --- configuration discovery and errors -----------------------------------------------------


def test_mlgate_toml_is_discovered(files: Files, capsys: pytest.CaptureFixture[str]) -> None:
    files.config(f'[deny]\n"{CUSTOM}" = "HIGH"\n', name="mlgate.toml")
    assert main(["scan", files.custom]) == 1


def test_pyproject_tool_mlgate_is_discovered(files: Files,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    files.config(f'[project]\nname = "x"\n\n[tool.mlgate.deny]\n"{CUSTOM}" = "HIGH"\n',
                 name="pyproject.toml")
    assert main(["scan", files.custom]) == 1


@pytest.mark.parametrize(("text", "expected"), [
    ('fail-on = "SEVERE"\n', "unknown severity 'SEVERE'"),
    ("nonsense = 1\n", "unknown keys ['nonsense']"),
    ("allow = [\n", "cannot read configuration"),
    ('allow = "mycompany.*"\n', "allow must be a list of strings"),
    ('deny = ["os.system"]\n', "deny must be a table"),
    ('[deny]\n"mycompany.x" = "DANGER"\n', "unknown severity 'DANGER'"),
    ("[limits]\nmax-depth = -1\n", "must be a positive number"),
    ("[limits]\nno-such-limit = 3\n", "unknown limit 'no-such-limit'"),
])
def test_invalid_config_exits_2_with_message(files: Files, capsys: pytest.CaptureFixture[str],
                                             text: str, expected: str) -> None:
    cfg = files.config(text, name="bad.toml")
    assert main(["scan", files.evil, "--config", cfg]) == ExitCode.ERROR
    captured = capsys.readouterr()
    assert captured.out == ""  # no report on a configuration error
    [line] = captured.err.strip().splitlines()
    assert line.startswith("mlgate: error: bad.toml: ")
    assert expected in line
    assert "Traceback" not in captured.err


def test_invalid_discovered_config_exits_2(files: Files,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    files.config("fail-on = 3\n", name="mlgate.toml")
    assert main(["scan", files.clean]) == ExitCode.ERROR
    assert "mlgate.toml" in capsys.readouterr().err


# --- explain and rules ----------------------------------------------------------------------


def test_explain_shows_the_call_as_pseudo_python(files: Files,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["explain", files.evil]) == 0
    out = capsys.readouterr().out
    assert "system(" in out
    assert shell("cli-evil") in out
    call = next(line for line in out.splitlines() if "system(" in line)
    assert f"system({shell('cli-evil')!r})" in call
    assert "CRITICAL" in call


def test_explain_benign_pickle(files: Files, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["explain", files.clean]) == 0
    out = capsys.readouterr().out
    assert "result = {'layers'" in out
    assert "CRITICAL" not in out


def test_explain_file_without_pickle(files: Files, capsys: pytest.CaptureFixture[str]) -> None:
    files.write("notes.txt", b"just text\n")
    assert main(["explain", "notes.txt"]) == 0
    assert "no pickle found" in capsys.readouterr().out


def test_rules_lists_every_rule_id(files: Files, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rules"]) == 0
    lines = capsys.readouterr().out.split("\n\n")[0].splitlines()
    assert [line.split()[0] for line in lines] == [r.id for r in ALL_RULES]
    for line, rule in zip(lines, ALL_RULES, strict=True):
        assert line.split()[1] == rule.severity.name
        assert rule.name in line


# --- the installed console script -----------------------------------------------------------


def _console_script() -> str:
    candidate = Path(sys.executable).with_name("mlgate")
    found = str(candidate) if candidate.exists() else shutil.which("mlgate")
    assert found, "the mlgate console script is not installed next to the test interpreter"
    return found


def test_console_script_subprocess(files: Files) -> None:
    proc = subprocess.run(
        [_console_script(), "scan", files.clean, files.evil, "--format", "json"],
        cwd=files.root, capture_output=True, text=True, timeout=120, check=False,
    )
    assert proc.returncode == 1, proc.stderr
    report = json.loads(proc.stdout)
    assert report["summary"]["max_severity"] == "CRITICAL"
    assert report["summary"]["passed"] is False
    assert report["targets"] == [files.clean, files.evil]
    assert proc.stderr == ""
