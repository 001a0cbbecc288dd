"""Every rule the code can report is registered (SARIF descriptors, `mlgate rules`)."""

from __future__ import annotations

import re
from pathlib import Path

from mlgate.scan import rules

SRC = Path(__file__).resolve().parents[1] / "src" / "mlgate"


def test_every_rule_used_in_src_is_registered() -> None:
    used = {
        name
        for path in SRC.rglob("*.py")
        for name in re.findall(r"\brules\.([A-Z_]+)\b", path.read_text(encoding="utf-8"))
    }
    registered = {name for name, value in vars(rules).items() if value in rules.ALL_RULES}
    assert used <= registered, sorted(used - registered)


def test_rule_ids_are_unique() -> None:
    ids = [r.id for r in rules.ALL_RULES]
    assert len(ids) == len(set(ids))
    assert set(rules.RULES_BY_ID) == set(ids)
