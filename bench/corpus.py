"""Mixed-format corpus benchmark: files/s and MB/s on a folder of a few hundred models.

Builds (once, then reuses) a folder of benign models in every format mlgate reads plus a
set of malicious pickles, then times `mlgate scan`, ModelScan and ModelAudit on the whole
folder in the same run, and counts how many of the malicious files each tool flags.

    .venv/bin/python bench/corpus.py [--out DIR] [--runs N] [--quick]
"""

from __future__ import annotations

import os

os.environ.setdefault("KERAS_BACKEND", "torch")  # before keras is imported by a builder

import argparse
import gzip
import io
import json
import os
import pickle
import sys
from collections.abc import Callable
from pathlib import Path

import gguf
import joblib
import keras
import numpy as np
import onnx
import torch
from measure import Sample, best_of
from onnx import TensorProto, helper, numpy_helper
from safetensors.numpy import save_file
from sklearn.linear_model import LogisticRegression
from tools import MLGATE, Tool, install

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "samples"))
import payloads

CORPUS_VERSION = "2"
TOOLS = (
    Tool("mlgate", str(MLGATE),
         lambda exe, d, tmp: [str(exe), "scan", str(d), "--format", "json", "-o",
                              str(tmp / "mlgate.json")], frozenset({0, 1})),
    Tool("modelscan", "modelscan",
         lambda exe, d, tmp: [str(exe), "scan", "-p", str(d), "-r", "json", "-o",
                              str(tmp / "modelscan.json")], frozenset({0, 1, 2, 3}),
         ("modelscan==0.8.8",)),
    Tool("modelaudit", "modelaudit",
         lambda exe, d, tmp: [str(exe), "scan", str(d), "--format", "json", "--output",
                              str(tmp / "modelaudit.json")], frozenset({0, 1, 2}),
         ("modelaudit==0.2.54",)),
)
Builder = Callable[[Path, int], None]
SERIOUS = frozenset({"HIGH", "CRITICAL"})


def _torch_zip(path: Path, i: int) -> None:
    torch.save({f"layer{k}.weight": torch.randn(8 + i % 7, 16) for k in range(6)}, path)


def _torch_legacy(path: Path, i: int) -> None:
    torch.save({"w": torch.randn(4, i % 5 + 1)}, path, _use_new_zipfile_serialization=False)


def _joblib(path: Path, i: int) -> None:
    x = np.random.default_rng(i).normal(size=(30, 3))
    model = LogisticRegression().fit(x, (x[:, 0] > 0).astype(int))
    joblib.dump(model, path, compress=(0, 3, "gzip", "bz2", "xz")[i % 5])


def _pickle(path: Path, i: int) -> None:
    path.write_bytes(pickle.dumps({"step": i, "weights": np.ones((4, 4)) * i}, protocol=i % 6))


def _npy(path: Path, i: int) -> None:
    np.save(path, np.arange(100 + i, dtype=np.float32))


def _npz(path: Path, i: int) -> None:
    np.savez(path, a=np.ones(i + 1), b=np.zeros((2, 2)))


def _onnx(path: Path, i: int) -> None:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8])
    weight = numpy_helper.from_array(np.ones((8, 8), dtype=np.float32) * i, "w")
    nodes = [helper.make_node("MatMul", ["x", "w"], ["h"]), helper.make_node("Relu", ["h"], ["y"])]
    graph = helper.make_graph(nodes, f"g{i}", [x], [y], initializer=[weight])
    onnx.save_model(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]),
                    str(path))


def _keras(path: Path, i: int) -> None:
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(4 + i % 3),
                              keras.layers.Dense(2)])
    model.save(path)


def _gguf(path: Path, i: int, template: str | None = None) -> None:
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_block_count(1)
    writer.add_chat_template(template or CHATML)
    writer.add_tensor("tok_embd.weight", np.zeros((4, 8 + i), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


CHATML = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
          "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
SSTI = "{{ self.__init__.__globals__.__builtins__.__import__('os').popen('id').read() }}"


def _safetensors(path: Path, i: int) -> None:
    save_file({f"t{k}": np.ones((16, 8 + i % 4), dtype=np.float32) for k in range(4)}, path)


MALICIOUS = payloads.DEMO_MALICIOUS
BENIGN: dict[str, tuple[Builder, str, int]] = {
    "torchzip": (_torch_zip, ".pt", 60),
    "legacy": (_torch_legacy, ".pth", 20),
    "joblib": (_joblib, ".joblib", 40),
    "pickle": (_pickle, ".pkl", 40),
    "npy": (_npy, ".npy", 30),
    "npz": (_npz, ".npz", 20),
    "safetensors": (_safetensors, ".safetensors", 50),
    "onnx": (_onnx, ".onnx", 30),
    "keras": (_keras, ".keras", 10),
    "gguf": (_gguf, ".gguf", 20),
}


def build(root: Path, scale: int) -> tuple[int, int, list[str]]:
    """Build the corpus; returns (files, bytes, malicious file names)."""
    stamp = root / ".corpus"
    if not (stamp.is_file() and stamp.read_text() == f"{CORPUS_VERSION}/{scale}"):
        for kind, (builder, ext, count) in BENIGN.items():
            folder = root / "benign" / kind
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(max(1, count // scale)):
                builder(folder / f"{kind}{i}{ext}", i)
        _malicious(root / "malicious")
        stamp.write_text(f"{CORPUS_VERSION}/{scale}")
    files = [p for p in root.rglob("*") if p.is_file() and p.name != ".corpus"]
    bad = sorted(p.name for p in (root / "malicious").iterdir())
    return len(files), sum(p.stat().st_size for p in files), bad


def _malicious(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, make in MALICIOUS.items():
        (folder / name).write_bytes(make(f"corpus-{name}"))
    (folder / "gzip_joblib.joblib").write_bytes(gzip.compress(payloads.os_system("corpus-gz")))
    buf = io.BytesIO()
    torch.save({"w": torch.ones(2)}, buf)
    # A pickle/zip polyglot: torch.load runs the leading pickle.
    polyglot = payloads.os_system("corpus-poly")[:-1] + b"0N." + buf.getvalue()
    (folder / "polyglot.pt").write_bytes(polyglot)
    _gguf(folder / "template_injection.gguf", 0, SSTI)
    _onnx(folder / "external_escape.onnx", 0)
    _escape_external_data(folder / "external_escape.onnx")


def _escape_external_data(path: Path) -> None:
    model = onnx.load(str(path))  # the benchmark built this file itself
    tensor = model.graph.initializer[0]
    tensor.ClearField("raw_data")
    tensor.data_location = TensorProto.EXTERNAL
    entry = tensor.external_data.add()
    entry.key, entry.value = "location", "../../../../etc/passwd"
    onnx.save_model(model, str(path))


def flagged(tool: str, report: Path, root: Path) -> tuple[int, int] | None:
    """(malicious files, benign files) a tool's JSON report names in HIGH/CRITICAL issues."""
    try:
        data = json.loads(report.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    key = "findings" if tool == "mlgate" else "issues"
    issues = [i for i in data.get(key, []) if str(i.get("severity", "")).upper() in SERIOUS]
    text = json.dumps(issues)
    named = {p for p in root.rglob("*") if p.is_file() and p.name in text}
    bad = sum(1 for p in named if p.parent.name == "malicious")
    return bad, len(named) - bad


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "out")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="a tenth of the corpus, one run")
    args = parser.parse_args(argv)
    scale, runs = (10, 1) if args.quick else (1, args.runs)
    root = args.out / ("corpus-quick" if args.quick else "corpus")
    files, size, bad = build(root, scale)
    print(f"mixed corpus: {files} files, {size / 1e6:.1f} MB, {len(bad)} malicious "
          f"({', '.join(sorted(BENIGN))} + malicious pickles); best of {runs} runs")
    print(f"   {'tool':<12}{'seconds':>9}{'files/s':>10}{'MB/s':>9}{'peak MB':>9}"
          f"{'caught':>9}{'false+':>8}  exit   (caught/false+: files in HIGH/CRITICAL issues)")
    scratch = args.out / "scratch"
    scratch.mkdir(parents=True, exist_ok=True)
    for tool in TOOLS:
        exe = install(tool, args.out / "venvs", lambda m: print(f"bench: {m}", file=sys.stderr))
        if isinstance(exe, str):
            print(f"   {tool.name:<12}n/a: {exe}")
            continue
        sample = best_of(tool.command(exe, root, scratch), scratch, runs, timeout=1800)
        counts = flagged(tool.name, scratch / f"{tool.name}.json", root)
        cells = (f"{counts[0]}/{len(bad)}", str(counts[1])) if counts else ("n/a", "n/a")
        _row(tool.name, sample, files, size, cells)
    return 0


def _row(name: str, s: Sample, files: int, size: int, cells: tuple[str, str]) -> None:
    if s.timed_out:
        print(f"   {name:<12}timed out")
        return
    print(f"   {name:<12}{s.seconds:>9.2f}{files / s.seconds:>10.1f}"
          f"{size / 1e6 / s.seconds:>9.1f}{s.peak_mb:>9.1f}{cells[0]:>9}{cells[1]:>8}"
          f"  {s.exit_code}")


if __name__ == "__main__":
    sys.exit(main())
