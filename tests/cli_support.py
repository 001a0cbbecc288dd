"""Checking command lines written for people (CI examples, docs) against the real CLI: the
subcommand they name exists and takes every option they use."""

from __future__ import annotations

import shlex

import click

from mlgate.cli import cli, main


def resolve(tokens: list[str]) -> tuple[list[str], click.Command]:
    """The subcommand path a command line names, and its click command."""
    command: click.Command = cli
    path: list[str] = []
    ctx = click.Context(cli)
    for token in tokens:
        if not isinstance(command, click.Group) or token.startswith("-"):
            break
        sub = command.get_command(ctx, token)
        if sub is None:
            break
        command, path = sub, [*path, token]
    return path, command


def assert_real_commands(commands: list[list[str]], where: str) -> None:
    """``where`` shows commands, and each is real (:func:`assert_real_command`)."""
    assert commands, f"{where} shows no mlgate command"
    for tokens in commands:
        assert_real_command(tokens)


def assert_real_command(tokens: list[str]) -> None:
    """``tokens`` (after ``mlgate``) name a command, not a group, and only its options."""
    line = shlex.join(tokens)
    path, command = resolve(tokens)
    assert path and not isinstance(command, click.Group), line
    known = {opt for p in command.params for opt in (*p.opts, *p.secondary_opts)}
    used = {t.split("=", 1)[0] for t in tokens if t.startswith("--")}
    assert used <= known | {"--help"}, f"{line}: unknown options {used - known}"
    assert main([*path, "--help"]) == 0
