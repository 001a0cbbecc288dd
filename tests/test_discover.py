"""`mlgate discover`: precision and recall per rule on the labelled set (tests/discover_cases.py),
the registry and hub cross-checks (a real SQLite registry, a real local hub server), SARIF
regions against the official schema, bounds, and the CLI's exit codes.

Snippets are only ever parsed by mlgate, never imported or run.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from discover_cases import CASES, SHA, Case
from hubserver import HubServer

from mlgate.cli import main
from mlgate.discover import DiscoverLimits, DiscoverOptions, discover_paths
from mlgate.discover.crosscheck import HubCatalogue, RegistryCatalogue
from mlgate.findings import Report, Severity
from mlgate.render.formats import RENDERERS, OutputFormat

MEASURED = {f"MLG6{n:02d}" for n in (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 21, 22, 24)}
SARIF_SCHEMA = Path(__file__).parent / "data" / "sarif-schema-2.1.0.json"
_MARK = re.compile(r"#\s*expect:\s*((?:MLG\d+\s*)+)")
Key = tuple[str, str, tuple[str, ...], int]  # case, rule, members, line


def _cells(code: str) -> list[tuple[str, str]]:
    """A notebook's cells as (type, source) from the "# %% cell|markdown" separators."""
    cells, kind, lines = [], "code", []
    for line in code.splitlines():
        if line.startswith("# %% "):
            cells.append((kind, "\n".join(lines)))
            kind, lines = ("markdown" if "markdown" in line else "code"), []
        else:
            lines.append(line)
    return [*cells, (kind, "\n".join(lines))]


def _write(case: Case, folder: Path) -> None:
    folder.mkdir(parents=True)
    for name, text in case.extra.items():
        (folder / name).write_text(text)
    if not case.notebook:
        (folder / "snippet.py").write_text(case.code)
        return
    cells = [
        {
            "cell_type": kind,
            "metadata": {},
            "source": src.splitlines(keepends=True),
            **({"outputs": [], "execution_count": None} if kind == "code" else {}),
        }
        for kind, src in _cells(case.code)
    ]
    document = {"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    (folder / "snippet.ipynb").write_text(json.dumps(document, indent=1))


def _expected(case: Case) -> set[Key]:
    keys: set[Key] = set()
    blocks = _cells(case.code) if case.notebook else [("code", case.code)]
    for number, (_, source) in enumerate(blocks, start=1):
        members = (f"cell {number}",) if case.notebook else ()
        for line_no, line in enumerate(source.splitlines(), start=1):
            if mark := _MARK.search(line):
                keys |= {(case.name, rule, members, line_no) for rule in mark.group(1).split()}
    return keys


def _found(report: Report, root: Path) -> set[Key]:
    keys: set[Key] = set()
    for f in report.findings:
        if f.rule_id in MEASURED and f.location.region is not None:
            case = Path(f.location.path).relative_to(root).parts[0]
            keys.add((case, f.rule_id, f.location.members, f.location.region.line))
    return keys


@pytest.fixture(scope="module")
def labelled(tmp_path_factory: pytest.TempPathFactory) -> tuple[Report, Path]:
    root = tmp_path_factory.mktemp("labelled")
    for case in CASES:
        _write(case, root / case.name)
    return discover_paths([root / c.name for c in CASES]), root


def test_labelled_set_is_large_and_balanced() -> None:
    assert len(CASES) >= 60
    assert len({c.name for c in CASES}) == len(CASES)
    positives = Counter(rule for c in CASES for (_, rule, _, _) in _expected(c))
    assert set(positives) == MEASURED, MEASURED - set(positives)
    safe = [c for c in CASES if not _expected(c)]
    assert len(safe) >= 30  # the safe variants that precision is measured on
    assert sum(c.notebook for c in CASES) >= 3


def test_precision_and_recall_per_rule(labelled: tuple[Report, Path]) -> None:
    report, root = labelled
    expected = set().union(*(_expected(c) for c in CASES))
    found = _found(report, root)
    rows, failures = [], []
    for rule in sorted(MEASURED):
        tp = len({k for k in found & expected if k[1] == rule})
        fp = sorted(k for k in found - expected if k[1] == rule)
        fn = sorted(k for k in expected - found if k[1] == rule)
        precision = tp / (tp + len(fp)) if tp + len(fp) else 1.0
        recall = tp / (tp + len(fn)) if tp + len(fn) else 1.0
        rows.append(
            f"{rule}: tp={tp} fp={len(fp)} fn={len(fn)} "
            f"precision={precision:.2f} recall={recall:.2f}"
        )
        if recall < 0.95 or precision < 0.90:
            failures.append(f"{rule}: false positives {fp}, missed {fn}")
    print("\n" + "\n".join(rows))
    assert not failures, "\n".join(failures)
    assert report.complete


def test_every_finding_has_a_region_and_a_fix(labelled: tuple[Report, Path]) -> None:
    report, _ = labelled
    loading = [f for f in report.findings if "MLG601" <= f.rule_id <= "MLG610"]
    assert loading and all("fix:" in f.message for f in loading)
    assert all(f.location.region is not None for f in report.findings if f.rule_id >= "MLG600")


# --- cross-checks ----------------------------------------------------------------------------


def _project(tmp_path: Path) -> Path:
    code = f'''
from transformers import AutoModel
a = AutoModel.from_pretrained("org/approved", revision="{SHA}")
b = AutoModel.from_pretrained("org/approved")
c = AutoModel.from_pretrained("org/pending")
d = AutoModel.from_pretrained("someone/unknown")
'''
    project = tmp_path / "project"
    project.mkdir()
    (project / "app.py").write_text(code)
    return project


def _shadows(report: Report) -> dict[int, str]:
    return {
        f.location.region.line: f.message
        for f in report.findings  # type: ignore[union-attr]
        if f.rule_id == "MLG623"
    }


def test_registry_cross_check_reports_shadow_models(tmp_path: Path) -> None:
    from registry_models import write_benign

    from mlgate.registry import init_registry, open_registry
    from mlgate.registry.ingest import HubOptions

    registry = init_registry(tmp_path / "reg", admin="alice")
    registry.add_user("pat", "publisher")
    registry.add_user("rita", "reviewer")
    pat = open_registry(tmp_path / "reg", actor="pat")
    with HubServer() as hub:
        files = {p.name: p.read_bytes() for p in write_benign(tmp_path / "m").iterdir()}
        commit = hub.add_repo("org/approved", files)
        hub.add_repo("org/pending", files)
        approved = pat.ingest("hf://org/approved@main", hub=HubOptions(hub.url))
        pat.ingest("hf://org/pending@main", hub=HubOptions(hub.url))
    open_registry(tmp_path / "reg", actor="rita").approve(approved.ref, "reviewed")
    pat.publish(approved.ref)
    project = _project(tmp_path)
    (project / "app.py").write_text((project / "app.py").read_text().replace(SHA, commit))

    catalogue = RegistryCatalogue(open_registry(tmp_path / "reg", actor="alice"))
    shadows = _shadows(discover_paths([project], DiscoverOptions(catalogue=catalogue)))
    assert set(shadows) == {5, 6}, shadows
    assert "in the registry but not published (" in shadows[5]
    assert "not in the registry" in shadows[6]

    (project / "app.py").write_text((project / "app.py").read_text().replace(commit, SHA))
    pinned_elsewhere = _shadows(discover_paths([project], DiscoverOptions(catalogue=catalogue)))
    assert "not a published version" in pinned_elsewhere[3]

    out = tmp_path / "r.json"
    argv = [
        "discover",
        str(project),
        "--data-dir",
        str(tmp_path / "reg"),
        "--as",
        "alice",
        "--format",
        "json",
        "-o",
        str(out),
    ]
    assert main(argv) == 1
    assert {f["rule_id"] for f in json.loads(out.read_text())["findings"]} >= {"MLG623"}


def test_hub_cross_check_asks_the_hub(tmp_path: Path) -> None:
    project = _project(tmp_path)
    with HubServer() as hub:
        commit = hub.add_repo("org/approved", {"config.json": b"{}"})
        hub.add_repo("org/pending", {"config.json": b"{}"})
        hub.fail(403, path_contains="org/pending")
        (project / "app.py").write_text((project / "app.py").read_text().replace(SHA, commit))
        report = discover_paths(
            [project], DiscoverOptions(hub=hub.url, catalogue=HubCatalogue(hub.url))
        )
        asked = [r.path for r in hub.requests]
    shadows = _shadows(report)
    assert set(shadows) == {5, 6}, shadows
    assert "refused by the hub" in shadows[5] and "not on the hub" in shadows[6]
    assert len(asked) == 4  # one question per distinct reference
    assert not any(f.rule_id == "MLG622" for f in report.findings)  # all from the hub


def test_unreachable_hub_is_an_error_not_a_pass(tmp_path: Path, capsys: Any) -> None:
    project = _project(tmp_path)
    with HubServer() as hub:
        url = hub.url
    assert main(["discover", str(project), "--hub", url]) == 2
    assert "could not be asked" in capsys.readouterr().err


# --- SARIF, bounds, CLI ---------------------------------------------------------------------


def test_sarif_regions_validate_and_count_characters(tmp_path: Path) -> None:
    (tmp_path / "m.py").write_text('import pickle\nlabel = "é→"; x = pickle.loads(b)\n')
    report = discover_paths([tmp_path])
    log = json.loads(RENDERERS[OutputFormat.SARIF](report, Severity.HIGH, False))
    schema = json.loads(SARIF_SCHEMA.read_text())
    validator = jsonschema.Draft7Validator(schema)
    assert not list(validator.iter_errors(log))
    [result] = [r for r in log["runs"][0]["results"] if r["ruleId"] == "MLG603"]
    region = result["locations"][0]["physicalLocation"]["region"]
    assert region == {"startLine": 2, "startColumn": 19, "endLine": 2, "endColumn": 34}
    assert log["runs"][0]["columnKind"] == "unicodeCodePoints"
    json_report = json.loads(RENDERERS[OutputFormat.JSON](report, Severity.HIGH, False))
    [finding] = [f for f in json_report["findings"] if f["rule_id"] == "MLG603"]
    assert finding["location"]["region"] == {
        "line": 2,
        "column": 19,
        "end_line": 2,
        "end_column": 34,
    }


def test_bounds_are_findings_never_crashes(tmp_path: Path) -> None:
    (tmp_path / "big.py").write_text("x = 1\n" * 40_000)
    (tmp_path / "deep.py").write_text("x = " + "a." * 20000 + "b\n")
    (tmp_path / "nested.py").write_text("x = " + "[" * 300 + "]" * 300 + "\n")
    (tmp_path / "py2.py").write_text('print "hello"\n')
    (tmp_path / "nb.ipynb").write_text(
        json.dumps(
            {
                "cells": [
                    {"cell_type": "code", "source": "def broken(:\n"},
                    {"cell_type": "code", "source": "import pickle\npickle.loads(b)\n"},
                ]
            }
        )
    )
    report = discover_paths(
        [tmp_path], DiscoverOptions(limits=DiscoverLimits(max_source_bytes=100_000))
    )
    by_file = {Path(a.artifact).name: a.complete for a in report.artifacts}
    assert by_file == dict.fromkeys(("big.py", "deep.py", "nested.py", "py2.py", "nb.ipynb"), False)
    rules = {(Path(f.location.path).name, f.rule_id) for f in report.findings}
    assert {
        ("big.py", "MLG301"),
        ("deep.py", "MLG301"),
        ("nested.py", "MLG302"),
        ("py2.py", "MLG302"),
        ("nb.ipynb", "MLG302"),
    } <= rules
    # The broken cell is left out; the notebook's other cells are still analysed.
    assert ("nb.ipynb", "MLG603") in rules
    assert report.exit_code(Severity.HIGH) == 2


def test_file_count_is_capped(tmp_path: Path) -> None:
    for i in range(5):
        (tmp_path / f"m{i}.py").write_text("x = 1\n")
    report = discover_paths([tmp_path], DiscoverOptions(limits=DiscoverLimits(max_files=3)))
    assert sum(a.complete for a in report.artifacts) == 3
    assert any(f.rule_id == "MLG301" for f in report.findings) and not report.complete


def test_framework_versions_from_every_manifest_kind(tmp_path: Path) -> None:
    (tmp_path / "requirements-dev.txt").write_text(
        "-r base.txt\ntransformers[torch]>=4.40 ; python_version>'3'\n"
    )
    (tmp_path / "Pipfile.lock").write_text(
        json.dumps({"default": {"keras": {"version": "==3.1.0"}}})
    )
    (tmp_path / "uv.lock").write_text('[[package]]\nname = "vllm"\nversion = "0.6.0"\n')
    (tmp_path / "pyproject.toml").write_text(
        '[tool.poetry.dependencies]\npython = "^3.11"\njoblib = "^1.3"\n'
        '[tool.poetry.group.dev.dependencies]\nmlflow = {version = "2.9"}\n'
    )
    (tmp_path / "environment.yml").write_text(
        "dependencies:\n  - conda-forge::numpy=1.26\n  - pip:\n    - onnx==1.15\n"
    )
    report = discover_paths([tmp_path])
    found = {
        (Path(f.location.path).name, f.message) for f in report.findings if f.rule_id == "MLG630"
    }
    assert found == {
        ("requirements-dev.txt", "transformers >=4.40"),
        ("Pipfile.lock", "keras ==3.1.0"),
        ("uv.lock", "vllm ==0.6.0"),
        ("pyproject.toml", "joblib ^1.3"),
        ("pyproject.toml", "mlflow 2.9"),
        ("environment.yml", "numpy =1.26"),
        ("environment.yml", "onnx ==1.15"),
    }
    assert report.complete and report.exit_code(Severity.HIGH) == 0


def test_cli_exit_codes(tmp_path: Path, capsys: Any) -> None:
    clean, unsafe, broken = (tmp_path / n for n in ("clean", "unsafe", "broken"))
    for folder in (clean, unsafe, broken):
        folder.mkdir()
    (clean / "a.py").write_text("import json\njson.load(f)\n")
    (unsafe / "a.py").write_text("import joblib\njoblib.load(p)\n")
    (broken / "a.py").write_text("def (:\n")
    assert main(["discover", str(clean)]) == 0
    assert main(["discover", str(unsafe)]) == 1
    assert main(["discover", str(unsafe), "--fail-on", "critical"]) == 0
    assert main(["discover", str(broken)]) == 2
    assert "not fully analysed" in capsys.readouterr().err
    assert main(["rules"]) == 0
    assert "MLG623  HIGH      shadow-model" in capsys.readouterr().out
