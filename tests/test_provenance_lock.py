"""Hash-pin lock files: round trip, every tamper detected and named, CLI exit codes."""

from __future__ import annotations

import json
import os
import tomllib
from pathlib import Path

import pytest

from mlgate.cli import main
from mlgate.errors import ExitCode
from mlgate.provenance import (
    Difference,
    compare,
    hash_model,
    read_lock,
    verify_lock,
    write_lock,
)
from mlgate.provenance.errors import LockError, LockMismatch


@pytest.fixture
def model(tmp_path: Path) -> Path:
    root = tmp_path / "model"
    (root / "tokenizer").mkdir(parents=True)
    (root / "config.json").write_bytes(b'{"model_type": "bert"}')
    (root / "model.safetensors").write_bytes(os.urandom(20000))
    (root / "tokenizer" / "vocab.txt").write_bytes(b"a\nb\n")
    return root


@pytest.fixture
def lock_path(model: Path, tmp_path: Path) -> Path:
    path = tmp_path / "mlgate.lock"
    write_lock(hash_model(model), path, name="org/bert", source="hf", revision="abc123")
    return path


def test_round_trip(model: Path, tmp_path: Path) -> None:
    manifest = hash_model(model, "blake3", ignore=["*.txt"], shard_size=8192)
    path = tmp_path / "l.lock"
    written = write_lock(manifest, path, name="n", source="s", revision="r", ignore=["*.txt"])
    lock = read_lock(path)
    assert lock == written
    assert (lock.name, lock.source, lock.revision) == ("n", "s", "r")
    assert lock.algorithm == "blake3" and lock.shard_size == 8192 and lock.ignore == ("*.txt",)
    assert lock.files == manifest.files
    # Readable TOML holding every file's path, digest and size.
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    assert data["model"] == {"name": "n", "source": "s", "revision": "r"}
    assert {f["path"] for f in data["files"]} == {"config.json", "model.safetensors"}
    assert compare(lock, manifest) == []
    assert verify_lock(model, path) == []


def test_name_defaults_to_model_folder(model: Path, tmp_path: Path) -> None:
    assert write_lock(hash_model(model), tmp_path / "l.lock").name == "model"


def flip_bit(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def test_one_bit_flip(model: Path, lock_path: Path) -> None:
    flip_bit(model / "model.safetensors", 12345)
    assert verify_lock(model, lock_path) == [Difference("changed", "model.safetensors")]


def test_changed_content_same_size(model: Path, lock_path: Path) -> None:
    (model / "config.json").write_bytes(b'{"model_type": "gpt2"}')
    assert verify_lock(model, lock_path) == [Difference("changed", "config.json")]


def test_added(model: Path, lock_path: Path) -> None:
    (model / "extra.py").write_bytes(b"import os")
    assert verify_lock(model, lock_path) == [Difference("added", "extra.py")]


def test_removed(model: Path, lock_path: Path) -> None:
    (model / "tokenizer" / "vocab.txt").unlink()
    assert verify_lock(model, lock_path) == [Difference("removed", "tokenizer/vocab.txt")]


def test_renamed(model: Path, lock_path: Path) -> None:
    (model / "config.json").rename(model / "tokenizer" / "config.json")
    diffs = verify_lock(model, lock_path)
    assert diffs == [Difference("renamed", "tokenizer/config.json", old_path="config.json")]
    assert str(diffs[0]) == "renamed: config.json -> tokenizer/config.json"


def test_two_identical_files_one_renamed_one_removed(model: Path, tmp_path: Path) -> None:
    (model / "a").write_bytes(b"same")
    (model / "b").write_bytes(b"same")
    path = tmp_path / "l.lock"
    write_lock(hash_model(model), path)
    (model / "a").rename(model / "c")
    (model / "b").unlink()
    assert verify_lock(model, path) == [Difference("removed", "b"), Difference("renamed", "c", "a")]


def test_several_changes_all_reported(model: Path, lock_path: Path) -> None:
    flip_bit(model / "config.json", 0)
    (model / "tokenizer" / "vocab.txt").unlink()
    (model / "new.bin").write_bytes(b"new")
    kinds = {(d.kind, d.path) for d in verify_lock(model, lock_path)}
    assert kinds == {
        ("changed", "config.json"),
        ("removed", "tokenizer/vocab.txt"),
        ("added", "new.bin"),
    }


def test_lock_records_ignore_patterns(model: Path, tmp_path: Path) -> None:
    path = tmp_path / "l.lock"
    write_lock(hash_model(model, ignore=["*.md"]), path, ignore=["*.md"])
    (model / "README.md").write_bytes(b"# edited freely")
    assert verify_lock(model, path) == []


def test_algorithm_mismatch(model: Path, lock_path: Path) -> None:
    with pytest.raises(LockMismatch, match="sha256"):
        compare(read_lock(lock_path), hash_model(model, "blake2b"))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("not = [toml", "not valid TOML"),
        ("version = 7", "unsupported version"),
        ('version = 1\n[hashing]\nalgorithm = "md5"', "unknown algorithm"),
        ('version = 1\n[hashing]\nalgorithm = "sha256"\n[[files]]\npath = "a"', "malformed"),
        (
            'version = 1\n[hashing]\nalgorithm = "sha256"\n'
            '[[files]]\npath = "a"\ndigest = "00"\nsize = "big"',
            "files.size must be int",
        ),
    ],
)
def test_malformed_lock(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.lock"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(LockError, match=message):
        read_lock(path)


def test_missing_lock(tmp_path: Path) -> None:
    with pytest.raises(LockError, match="cannot read"):
        read_lock(tmp_path / "nope.lock")


# --- CLI ------------------------------------------------------------------------------------


def test_cli_hash_text_and_json(model: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["hash", str(model)]) == ExitCode.CLEAN
    lines = capsys.readouterr().out.splitlines()
    assert [line.split("  ")[1] for line in lines] == [
        "config.json",
        "model.safetensors",
        "tokenizer/vocab.txt",
    ]
    assert main(["hash", str(model), "--format", "json", "--algorithm", "blake3"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["algorithm"] == "blake3" and len(doc["files"]) == 3


def test_cli_hash_writes_lock_and_verify_passes(
    model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lock = tmp_path / "out.lock"
    argv = ["hash", str(model), "--lock-out", str(lock), "--name", "org/m", "--source", "hf"]
    assert main([*argv, "--revision", "r1", "--shard-size", "4K", "--ignore", "*.md"]) == 0
    assert read_lock(lock).shard_size == 4096 and read_lock(lock).revision == "r1"
    capsys.readouterr()
    assert main(["verify", str(model), "--lock", str(lock)]) == ExitCode.CLEAN
    assert "verified" in capsys.readouterr().out


def test_cli_verify_fails_naming_each_file(
    model: Path, lock_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    flip_bit(model / "model.safetensors", 0)
    (model / "tokenizer" / "vocab.txt").rename(model / "vocab.txt")
    assert main(["verify", str(model), "--lock", str(lock_path)]) == ExitCode.UNSAFE
    out = capsys.readouterr().out
    assert "changed: model.safetensors" in out
    assert "renamed: tokenizer/vocab.txt -> vocab.txt" in out
    assert "NOT verified" in out


def test_cli_verify_without_check_is_an_error(
    model: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["verify", str(model)]) == ExitCode.ERROR
    assert "nothing to verify" in capsys.readouterr().err


def test_cli_could_not_complete(
    model: Path, tmp_path: Path, lock_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.lock"
    bad.write_text("version = 9", encoding="utf-8")
    assert main(["verify", str(model), "--lock", str(bad)]) == ExitCode.ERROR
    assert "unsupported version" in capsys.readouterr().err
    (model / "link").symlink_to("config.json")
    assert main(["verify", str(model), "--lock", str(lock_path)]) == ExitCode.ERROR
    assert "link" in capsys.readouterr().err
    assert main(["verify", str(model), "--lock", str(lock_path), "--allow-symlinks"]) == 1
    assert main(["hash", str(model)]) == ExitCode.ERROR
    assert main(["hash", str(model), "--shard-size", "lots"]) == ExitCode.ERROR


def test_cli_lock_written_inside_model_is_not_pinned(
    model: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ["mlgate.lock", "pins/my [v1].lock"]:
        lock = model / name
        lock.parent.mkdir(exist_ok=True)
        assert main(["hash", str(model), "--lock-out", str(lock)]) == 0
        assert name not in {f.path for f in read_lock(lock).files}
        assert main(["verify", str(model), "--lock", str(lock)]) == ExitCode.CLEAN
    capsys.readouterr()


def test_sharded_lock_detects_flip_in_any_shard(model: Path, tmp_path: Path) -> None:
    path = tmp_path / "l.lock"
    write_lock(hash_model(model, shard_size=4096, workers=2), path)
    assert verify_lock(model, path, workers=2) == []
    flip_bit(model / "model.safetensors", 19999)  # the last, short shard
    assert verify_lock(model, path) == [Difference("changed", "model.safetensors")]


def test_single_file_model_lock(model: Path, tmp_path: Path) -> None:
    single = model / "model.safetensors"
    path = tmp_path / "single.lock"
    write_lock(hash_model(single), path)
    assert [f.path for f in read_lock(path).files] == ["model.safetensors"]
    assert verify_lock(single, path) == []
    flip_bit(single, 7)
    assert verify_lock(single, path) == [Difference("changed", "model.safetensors")]
