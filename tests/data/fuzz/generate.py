"""Regenerate the seed corpus of tests/test_fuzz.py: one small real file per parser entry.

Every seed is written by the real library of its format (torch, numpy, joblib, onnx, keras,
h5py, gguf, py7zr, safetensors, msgpack, tensorboard's TF protos); TF SavedModels, Keras 2
files and a converter-made TFLite model come from ../keras2 (real TensorFlow). Seeds of the
hostile kind (a pickle calling os.system, a Keras Lambda) are built, never loaded. Crashing
inputs found by the campaign are kept in regressions/ and are not regenerated.

    PYTHONPATH=src .venv/bin/python tests/data/fuzz/generate.py tests/data/fuzz
"""

from __future__ import annotations

import bz2
import gzip
import io
import json
import lzma
import os
import pickle
import sys
import tarfile
import zipfile
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "torch")

import gguf
import h5py
import joblib
import lz4.frame
import msgpack
import numpy as np
import onnx
import py7zr
import torch
from onnx import TensorProto, helper
from safetensors.numpy import save as safetensors_save
from tensorboard.compat.proto import graph_pb2, node_def_pb2

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT / "samples"))

import payloads  # noqa: E402

STATE = {"w": np.arange(6, dtype=np.float32).reshape(2, 3), "step": 3, "name": "seed"}


def pickles(out: Path) -> None:
    (out / "state_p2.pkl").write_bytes(pickle.dumps(STATE, protocol=2))
    (out / "state_p0.pkl").write_bytes(pickle.dumps({"a": [1, 2.5, "x"], "b": None}, protocol=0))
    (out / "os_system.pkl").write_bytes(payloads.os_system("fuzz"))
    joblib.dump(STATE, out / "state.joblib")


def torch_files(out: Path) -> None:
    tensors = {"w": torch.arange(6.0).reshape(2, 3), "b": torch.zeros(2, dtype=torch.int64)}
    torch.save(tensors, out / "zip.pt")
    torch.save(tensors, out / "legacy.pt", _use_new_zipfile_serialization=False)

    class Net(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.relu(x) * 2

    torch.jit.save(torch.jit.script(Net()), out / "scripted.pt")


def archives(out: Path) -> None:
    inner = pickle.dumps(STATE, protocol=4)
    with tarfile.open(out / "model.tar", "w") as tar:
        info = tarfile.TarInfo("model/weights.pkl")
        info.size = len(inner)
        tar.addfile(info, io.BytesIO(inner))
    with py7zr.SevenZipFile(out / "model.7z", "w") as z:
        z.writestr(inner, "weights.pkl")
    with zipfile.ZipFile(out / "model.zip", "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("weights.pkl", inner)
    (out / "model.pkl.gz").write_bytes(gzip.compress(inner, mtime=0))
    (out / "model.pkl.bz2").write_bytes(bz2.compress(inner))
    (out / "model.pkl.xz").write_bytes(lzma.compress(inner))
    (out / "model.pkl.lz4").write_bytes(lz4.frame.compress(inner))


def arrays(out: Path) -> None:
    np.save(out / "array.npy", STATE["w"])
    np.savez(out / "arrays.npz", w=STATE["w"], b=np.ones(3, dtype=np.int8))
    np.save(out / "objects.npy", np.array([{"k": 1}, None], dtype=object), allow_pickle=True)
    (out / "model.safetensors").write_bytes(
        safetensors_save({"w": STATE["w"], "b": np.ones(3, dtype=np.float16)}, {"fmt": "np"})
    )


def onnx_model(out: Path) -> None:
    weight = helper.make_tensor("W", TensorProto.FLOAT, [3, 2], [0.0] * 6)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["y"]), helper.make_node("Relu", ["y"], ["z"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3])],
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, [1, 2])],
        [weight],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    onnx.save(model, out / "model.onnx")


def tf_graphdef(out: Path) -> None:
    graph = graph_pb2.GraphDef()
    for name, op in (("x", "Placeholder"), ("y", "MatMul"), ("p", "PrintV2")):
        graph.node.append(node_def_pb2.NodeDef(name=name, op=op))
    graph.node[2].attr["output_stream"].s = b"stderr"
    (out / "frozen.pb").write_bytes(graph.SerializeToString())


def keras_files(out: Path) -> None:
    import keras

    inputs = keras.Input(shape=(3,))
    doubled = keras.layers.Lambda(lambda t: t * 2.0)(inputs)
    model = keras.Model(inputs, keras.layers.Dense(2)(doubled))
    model.save(out / "lambda.keras")
    model.save(out / "lambda_keras3.h5")
    # The same archive without its HDF5 weights: mutants then reach the config reader, not
    # libhdf5 (whose hang keeps HDF5-carrying seeds out of CI runs, see test_fuzz.py).
    with (
        zipfile.ZipFile(out / "lambda.keras") as full,
        zipfile.ZipFile(out / "lambda_config_only.keras", "w") as config_only,
    ):
        for name in ("metadata.json", "config.json"):
            config_only.writestr(full.getinfo(name), full.read(name))
    with h5py.File(out / "plain.h5", "w") as f:
        f.create_dataset("w", data=STATE["w"])
        f.attrs["note"] = "plain hdf5"


def gguf_model(out: Path) -> None:
    w = gguf.GGUFWriter(str(out / "model.gguf"), "llama")
    w.add_block_count(1)
    w.add_token_list(["<s>", "</s>", "hi"])
    w.add_chat_template("{% for m in messages %}{{ m['content'] }}{% endfor %}")
    w.add_tensor("tok_embd.weight", np.zeros((3, 4), dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def msgpack_model(out: Path) -> None:
    """Flax's layout (flax.serialization): nested maps, arrays as ext type 1 holding
    msgpack (shape, dtype name, raw bytes)."""
    w = STATE["w"]
    blob = msgpack.ExtType(1, msgpack.packb((list(w.shape), w.dtype.name, w.tobytes())))
    data = msgpack.packb({"params": {"dense": {"kernel": blob, "bias": [0.0, 1.0]}}})
    (out / "flax_model.msgpack").write_bytes(data)


def json_configs(out: Path) -> None:
    (out / "config.json").write_text(
        json.dumps({"architectures": ["BertModel"], "model_type": "bert", "hidden_size": 8})
    )
    (out / "tokenizer_config.json").write_text(
        json.dumps({"chat_template": "{% for m in messages %}{{ m.content }}{% endfor %}"})
    )


def python_source(out: Path) -> None:
    """Remote code of a Hub repository (trust_remote_code=True), read as Python source."""
    (out / "modeling_seed.py").write_text(
        "import torch\n\n\nclass Seed(torch.nn.Module):\n"
        "    def forward(self, x):\n        return torch.relu(x)\n"
    )


def yaml_configs(out: Path) -> None:
    """Configurations loaders instantiate: a NeMo/Hydra config (anchors, aliases,
    interpolations), an MLflow MLmodel and a TorchServe manifest."""
    (out / "model_config.yaml").write_text(
        "target: nemo.collections.asr.models.EncDecCTCModel\n"
        "defaults: &defaults {sample_rate: 16000, window: hann}\n"
        "preprocessor:\n  _target_: torch.nn.modules.linear.Linear\n  <<: *defaults\n"
        "  rate: ${defaults.sample_rate}\ntags: [a, !!str b, !!python/tuple [1, 2]]\n"
    )
    (out / "MLmodel").write_text(
        "artifact_path: model\nflavors:\n  python_function:\n    loader_module: mlflow.sklearn\n"
        "    model_path: model.pkl\n  sklearn:\n    code: null\n    pickled_model: model.pkl\n"
    )
    (out / "MANIFEST.json").write_text(
        json.dumps(
            {"runtime": "python", "archiverVersion": "0.12.0",
             "model": {"modelName": "m", "handler": "image_classifier",
                       "serializedFile": "model.pt"}}
        )
    )


WRITERS = {
    "pickle": pickles,
    "torch": torch_files,
    "archive": archives,
    "numpy": arrays,
    "onnx": onnx_model,
    "protobuf": tf_graphdef,
    "keras": keras_files,
    "gguf": gguf_model,
    "msgpack": msgpack_model,
    "json": json_configs,
    "python": python_source,
    "yaml": yaml_configs,
}


def main(out: Path) -> None:
    for folder, writer in WRITERS.items():
        (out / folder).mkdir(parents=True, exist_ok=True)
        writer(out / folder)


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent)
