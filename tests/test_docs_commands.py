"""The ``mlgate`` command lines of the README, the hub guide and the Kubernetes guide name real
commands and options: a renamed option or command fails here, not in a reader's terminal."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from cli_support import assert_real_commands

ROOT = Path(__file__).resolve().parents[1]
DOCS = ["README.md", "docs/hub.md", "docs/kubernetes.md"]
_SHELL_BLOCK = re.compile(r"^```sh\n(.*?)^```", re.MULTILINE | re.DOTALL)
_OPTIONAL = re.compile(r"\[[^\]\n]*\]")  # `[--upstream URL]`: optional parts shown in brackets


def command_lines(relative: str) -> list[list[str]]:
    """Every ``mlgate ...`` line of the document's ``sh`` blocks (continuations joined,
    comments and bracketed optional parts removed), as arguments after ``mlgate``."""
    text = (ROOT / relative).read_text(encoding="utf-8")
    found = []
    for block in _SHELL_BLOCK.findall(text):
        for line in block.replace("\\\n", " ").splitlines():
            tokens = shlex.split(_OPTIONAL.sub("", line), comments=True)
            if tokens[:1] == ["mlgate"]:
                found.append(tokens[1:])
    return found


@pytest.mark.parametrize("relative", DOCS)
def test_documented_commands_exist(relative: str) -> None:
    assert_real_commands(command_lines(relative), relative)
