"""Manifests: digests equal the reference implementations, parallelism and sharding are
deterministic, ignore rules and symlink refusal hold."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import blake3
import pytest

import mlgate
from mlgate.provenance import FileDigest, Manifest, hash_model
from mlgate.provenance.errors import ProvenanceError, SymlinkRefused
from mlgate.provenance.manifest import CHUNK_SIZE, new_hasher

REFERENCE = {
    "sha256": lambda b: hashlib.sha256(b).hexdigest(),
    "blake2b": lambda b: hashlib.blake2b(b).hexdigest(),
    "blake3": lambda b: blake3.blake3(b).hexdigest(),
}


def make_model(root: Path) -> dict[str, bytes]:
    """A small model folder; returns relative path -> content."""
    content = {
        "config.json": b'{"model_type": "bert"}',
        "model.safetensors": os.urandom(CHUNK_SIZE + 12345),  # spans two reads
        "tokenizer/vocab.txt": b"a\nb\nc\n",
        "empty.bin": b"",
        "sub/deeper/weights-\u00e9.bin": os.urandom(1000),
    }
    for rel, data in content.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
    return content


@pytest.fixture
def model(tmp_path: Path) -> tuple[Path, dict[str, bytes]]:
    root = tmp_path / "model"
    return root, make_model(root)


@pytest.mark.parametrize("algorithm", ["sha256", "blake2b", "blake3"])
def test_digests_equal_reference(model: tuple[Path, dict[str, bytes]], algorithm: str) -> None:
    root, content = model
    manifest = hash_model(root, algorithm)
    assert isinstance(manifest, Manifest)
    assert manifest.algorithm == algorithm and manifest.root == root
    assert {f.path: f.digest for f in manifest.files} == {
        rel: REFERENCE[algorithm](data) for rel, data in content.items()
    }
    assert all(f.size == len(content[f.path]) and f.shard_size is None for f in manifest.files)
    assert all(f.algorithm == algorithm for f in manifest.files)


def test_default_is_sha256_and_sorted_by_utf8_bytes(tmp_path: Path) -> None:
    for name in ["b", "a/z", "B", "\u00e9", "a.b", "a-b"]:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(name.encode())
    manifest = hash_model(tmp_path)
    paths = [f.path for f in manifest.files]
    assert paths == sorted(paths, key=lambda p: p.encode("utf-8"))
    assert manifest.algorithm == "sha256"


def test_single_file_model(tmp_path: Path) -> None:
    f = tmp_path / "model.pt"
    f.write_bytes(b"weights")
    manifest = hash_model(f)
    assert manifest.files == (
        FileDigest("model.pt", "sha256", hashlib.sha256(b"weights").hexdigest(), 7),
    )


def test_exported_from_package() -> None:
    assert mlgate.hash_model is hash_model
    assert "hash_model" in mlgate.__all__


def test_parallel_equals_sequential(model: tuple[Path, dict[str, bytes]]) -> None:
    root, _ = model
    sequential = hash_model(root, workers=1)
    assert hash_model(root, workers=4) == sequential
    assert hash_model(root, workers=2, shard_size=4096) == hash_model(
        root, workers=1, shard_size=4096
    )


def test_sharded_definition_is_stable(tmp_path: Path) -> None:
    data = bytes(range(256)) * 40  # 10240 bytes -> shards 4096, 4096, 2048
    (tmp_path / "w.bin").write_bytes(data)
    (tmp_path / "small.bin").write_bytes(b"x" * 100)
    manifest = hash_model(tmp_path, shard_size=4096, workers=3)
    big, small = manifest.by_path()["w.bin"], manifest.by_path()["small.bin"]
    shards = [hashlib.sha256(data[i : i + 4096]).digest() for i in range(0, len(data), 4096)]
    head = b"mlgate-shards-v1\0" + (4096).to_bytes(8, "big") + len(data).to_bytes(8, "big")
    assert big.digest == hashlib.sha256(head + b"".join(shards)).hexdigest()
    assert big.shard_size == 4096 and big.size == len(data)
    # Files no larger than a shard keep their plain digest.
    assert small.digest == hashlib.sha256(b"x" * 100).hexdigest() and small.shard_size is None
    assert manifest.shard_size == 4096
    # A pinned value: the definition must never change silently.
    assert big.digest == "0972e5d583b1a3069f8bd1c11ec5ee9f3035cab95ad877d9b93cc484d2ad5066"
    # Another shard size gives another digest, never the plain one.
    other = hash_model(tmp_path, shard_size=2048).by_path()["w.bin"].digest
    assert other != big.digest != hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize("algorithm", ["blake2b", "blake3"])
def test_sharded_other_algorithms(tmp_path: Path, algorithm: str) -> None:
    data = os.urandom(5000)
    (tmp_path / "w.bin").write_bytes(data)
    got = hash_model(tmp_path, algorithm, shard_size=2000).files[0].digest
    h = new_hasher(algorithm)
    h.update(b"mlgate-shards-v1\0" + (2000).to_bytes(8, "big") + (5000).to_bytes(8, "big"))
    for i in range(0, 5000, 2000):
        h.update(REFERENCE_RAW[algorithm](data[i : i + 2000]))
    assert got == h.digest().hex()


REFERENCE_RAW = {
    "blake2b": lambda b: hashlib.blake2b(b).digest(),
    "blake3": lambda b: blake3.blake3(b).digest(),
}


def test_ignore_rules(model: tuple[Path, dict[str, bytes]]) -> None:
    root, content = model
    (root / ".git" / "objects").mkdir(parents=True)
    (root / ".git" / "objects" / "x").write_bytes(b"git")
    (root / "sub" / ".git").mkdir()
    (root / "sub" / ".git" / "HEAD").write_bytes(b"ref")
    (root / ".gitattributes").write_bytes(b"*.bin filter=lfs")
    (root / "model.sig").write_bytes(b"{}")
    (root / "mlgate.lock").write_bytes(b"version = 1")
    (root / "README.md").write_bytes(b"# card")
    (root / "logs").mkdir()
    (root / "logs" / "run.txt").write_bytes(b"log")
    (root / ".github").mkdir()
    (root / ".github" / "ci.yml").write_bytes(b"on: push")
    (root / ".gitignore").write_bytes(b"*.tmp")
    paths = {f.path for f in hash_model(root).files}
    # model_signing's ignore_git_paths: root-only; a nested .git is content.
    assert paths == set(content) | {"README.md", "logs/run.txt", "sub/.git/HEAD", "mlgate.lock"}
    everything = {f.path for f in hash_model(root, defaults=False).files}
    hidden = {".git/objects/x", ".gitattributes", "model.sig", ".github/ci.yml", ".gitignore"}
    assert everything == paths | hidden
    # Beside the registry's mlgate.sig, a vendor's model.sig is content.
    (root / "mlgate.sig").write_bytes(b"{}")
    assert {f.path for f in hash_model(root).files} == paths | {"model.sig"}
    (root / "mlgate.sig").unlink()
    patterns = ["*.md", "logs", "tokenizer/*", "sub/.git", "mlgate.lock"]
    paths = {f.path for f in hash_model(root, ignore=patterns).files}
    assert paths == set(content) - {"tokenizer/vocab.txt"}


def test_signature_name_only_ignored_at_root(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "model.sig").write_bytes(b"not the signature")
    assert [f.path for f in hash_model(tmp_path).files] == ["sub/model.sig"]


def test_symlink_refused_and_named(model: tuple[Path, dict[str, bytes]]) -> None:
    root, _ = model
    (root / "link.json").symlink_to(root / "config.json")
    with pytest.raises(SymlinkRefused, match=r"link\.json"):
        hash_model(root)
    assert isinstance(SymlinkRefused("x"), ProvenanceError)
    assert isinstance(SymlinkRefused("x"), mlgate.MlgateError)


def test_symlink_inside_root_allowed_on_request(model: tuple[Path, dict[str, bytes]]) -> None:
    root, content = model
    (root / "link.json").symlink_to("config.json")
    (root / "tok").symlink_to("tokenizer", target_is_directory=True)
    files = hash_model(root, allow_symlinks=True).by_path()
    assert files["link.json"].digest == hashlib.sha256(content["config.json"]).hexdigest()
    assert "tok/vocab.txt" in files


def test_symlink_escaping_root_refused_even_when_allowed(tmp_path: Path) -> None:
    root = tmp_path / "model"
    make_model(root)
    secret = tmp_path / "secret.txt"
    secret.write_bytes(b"outside")
    (root / "escape").symlink_to(secret)
    with pytest.raises(SymlinkRefused, match=r"escape.*escaping"):
        hash_model(root, allow_symlinks=True)


def test_symlink_loop_refused(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "up").symlink_to("..", target_is_directory=True)
    with pytest.raises(SymlinkRefused, match="loop"):
        hash_model(tmp_path, allow_symlinks=True)


def test_errors(tmp_path: Path) -> None:
    with pytest.raises(ProvenanceError, match="cannot read model"):
        hash_model(tmp_path / "missing")
    with pytest.raises(ProvenanceError, match="unknown hash algorithm"):
        hash_model(tmp_path, "md5")
    with pytest.raises(ProvenanceError, match="shard size"):
        hash_model(tmp_path, shard_size=0)
    assert hash_model(tmp_path).files == ()


def test_read_error_in_a_worker_is_raised(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mlgate.provenance import manifest

    for i in range(6):
        (tmp_path / f"f{i}").write_bytes(b"x" * 1000)
    real = manifest._hash_range

    def failing(task: manifest._Task, algorithm: str) -> tuple[bytes, int]:
        if task.rel == "f3":
            raise ProvenanceError("cannot read f3: Input/output error")
        return real(task, algorithm)

    monkeypatch.setattr(manifest, "_hash_range", failing)
    with pytest.raises(ProvenanceError, match="cannot read f3"):
        hash_model(tmp_path, workers=3)
