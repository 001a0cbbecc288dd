"""`mlgate pubkey`: the public key of an existing private key, as `verify --key` takes it."""

from __future__ import annotations

from pathlib import Path

from mlgate.cli import main
from mlgate.errors import ExitCode


def test_pubkey_of_encrypted_key_matches_keygen_output(tmp_path: Path) -> None:
    password = tmp_path / "pw"
    password.write_text("s3cret\n")
    key = tmp_path / "k.pem"
    assert main(["keygen", str(key), "--password-file", str(password)]) == 0
    exported = tmp_path / "exported.pub"
    argv = ["pubkey", "--key", str(key), "--password-file", str(password), "-o", str(exported)]
    assert main(argv) == 0
    assert exported.read_bytes() == (tmp_path / "k.pem.pub").read_bytes()


def test_pubkey_needs_exactly_one_source(tmp_path: Path) -> None:
    assert main(["pubkey"]) == ExitCode.ERROR


def test_pubkey_wrong_password_is_an_error(tmp_path: Path) -> None:
    good, bad = tmp_path / "good", tmp_path / "bad"
    good.write_text("right\n")
    bad.write_text("wrong\n")
    key = tmp_path / "k.pem"
    assert main(["keygen", str(key), "--password-file", str(good)]) == 0
    assert main(["pubkey", "--key", str(key), "--password-file", str(bad)]) == ExitCode.ERROR
