"""Write the demo's sample folder: benign files and malicious pickles (never executed)."""

from __future__ import annotations

import collections
import gzip
import json
import pickle
import struct
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import payloads


def main(out: Path) -> None:
    benign, malicious = out / "benign", out / "malicious"
    for folder in (benign, malicious):
        folder.mkdir(parents=True, exist_ok=True)
    for p in range(6):
        data = collections.OrderedDict(weights=[1.0, 2.0], meta={"protocol": p})
        (benign / f"config_p{p}.pkl").write_bytes(pickle.dumps(data, protocol=p))
    (benign / "tokenizer.bin").write_bytes(payloads.benign_state_dict())
    samples = {
        name: build(f"demo{index}")
        for index, (name, build) in enumerate(payloads.DEMO_MALICIOUS.items(), start=1)
    }
    for name, data in samples.items():
        (malicious / name).write_bytes(data)
    (malicious / "compressed.joblib").write_bytes(gzip.compress(payloads.os_system("demo8")))
    write_models(out / "models")
    print(f"samples written to {out}")


def write_models(out: Path) -> None:
    """Two Hugging Face-style model folders for the registry demo: one benign, one not."""
    config = json.dumps({"model_type": "bert", "architectures": ["BertModel"], "hidden_size": 4})
    card = "---\nlicense: apache-2.0\ndatasets:\n- acme/corpus\n---\n# tiny-bert\nDemo model.\n"
    tiny, evil = out / "tiny-bert", out / "evil-bert"
    for folder in (tiny, evil):
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "config.json").write_text(config)
        (folder / "README.md").write_text(card)
    (tiny / "model.safetensors").write_bytes(_safetensors(4 * 4))
    (evil / "pytorch_model.bin").write_bytes(payloads.os_system("demo-registry"))


def _safetensors(count: int) -> bytes:
    """A float32 safetensors file with one tensor (written by hand: no numpy needed)."""
    header = {"embeddings.weight": {"dtype": "F32", "shape": [count // 4, 4],
                                    "data_offsets": [0, count * 4]}}
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + struct.pack(f"<{count}f", *range(count))


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "build/samples"))
