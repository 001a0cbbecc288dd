"""The rule reference, docs/rules.md, generated from the rules table.

SARIF rules point their ``helpUri`` at an anchor of this page and carry the same text as
``help``, so a dashboard and the repository docs never disagree. Regenerate the page with
``python -m mlgate.render.rules_doc > docs/rules.md`` (a test fails when it is out of date).
"""

from __future__ import annotations

from mlgate.scan.rules import ALL_RULES, Rule

REPOSITORY_URL = "https://github.com/mlgate/mlgate"
DOC_PATH = "docs/rules.md"
_INTRO = (
    "# Rules\n\n"
    "Every finding mlgate reports names one of these rules. Ids are stable: they appear in\n"
    "the JSON and SARIF output and users filter on them. The severity shown is the rule's\n"
    "default.\n\n"
    "<!-- Generated from src/mlgate/scan/rules.py by "
    "`python -m mlgate.render.rules_doc > docs/rules.md`; do not edit. -->\n"
)


def rule_uri(rule: Rule) -> str:
    """The rule's section of the reference page (GitHub's anchor of a ``## MLG101`` heading)."""
    return f"{REPOSITORY_URL}/blob/main/{DOC_PATH}#{rule.id.lower()}"


def rule_help_text(rule: Rule) -> str:
    """Plain-text help: what the rule means and where it is documented."""
    return (
        f"{rule.id} {rule.name} (default severity {rule.severity.name}): "
        f"{rule.description} See {rule_uri(rule)}"
    )


def rule_help_markdown(rule: Rule) -> str:
    """Markdown help, also the body of the rule's section in docs/rules.md."""
    return f"**{rule.name}**, default severity {rule.severity.name}.\n\n{rule.description}\n"


def rules_markdown() -> str:
    """The whole reference page."""
    sections = [f"\n## {r.id}\n\n{rule_help_markdown(r)}" for r in ALL_RULES]
    return _INTRO + "".join(sections)


if __name__ == "__main__":
    print(rules_markdown(), end="")
