"""Regenerate the legacy Keras 2 (tf.keras) fixtures of this folder with real TensorFlow.

Not run by the tests or CI (TensorFlow is not a test dependency): the files it writes are
committed. Run it in a separate environment, see README.md:

    python3 -m venv /tmp/tfenv
    /tmp/tfenv/bin/pip install tensorflow-cpu tf-keras   # tf-keras with --no-deps if needed
    /tmp/tfenv/bin/python tests/data/keras2/generate.py tests/data/keras2
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")  # tf.keras is Keras 2 (tf-keras)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import tensorflow as tf
import tf_keras as keras

# What is kept of a SavedModel folder: the metadata, the graph, the fingerprint and the
# (small) variables. assets/ is empty for these models.
KEPT = (
    "keras_metadata.pb",
    "saved_model.pb",
    "fingerprint.pb",
    "variables/variables.index",
    "variables/variables.data-00000-of-00001",
)


def dense() -> keras.Model:
    return keras.Sequential(
        [keras.Input(shape=(4,), name="x"), keras.layers.Dense(2, name="dense")], name="dense"
    )


def with_lambda() -> keras.Model:
    """A Lambda layer: Keras 2 stores its bytecode, marshalled and base64-encoded."""
    inputs = keras.Input(shape=(4,), name="x")
    doubled = keras.layers.Lambda(lambda t: tf.nn.relu(t) * 2.0, name="double")(inputs)
    outputs = keras.layers.Dense(2, name="dense")(doubled)
    return keras.Model(inputs, outputs, name="with_lambda")


def save_savedmodel(model: keras.Model, folder: Path) -> None:
    scratch = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(scratch, ignore_errors=True)
    model.save(scratch, save_format="tf", include_optimizer=False)
    shutil.rmtree(folder, ignore_errors=True)
    for name in KEPT:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(scratch / name, folder / name)
    shutil.rmtree(scratch)


def move_metadata_into_graph(src: Path, dst: Path) -> None:
    """The pre-TF-2.5 layout: no keras_metadata.pb, each Keras object's JSON metadata in its
    SavedUserObject of saved_model.pb, which tf-keras still reads when the file is absent."""
    from tensorflow.core.protobuf import saved_model_pb2
    from tf_keras.protobuf import saved_metadata_pb2

    shutil.rmtree(dst, ignore_errors=True)
    shutil.copytree(src, dst)
    (dst / "keras_metadata.pb").unlink()
    metadata = saved_metadata_pb2.SavedMetadata.FromString(
        (src / "keras_metadata.pb").read_bytes()
    )
    saved = saved_model_pb2.SavedModel.FromString((src / "saved_model.pb").read_bytes())
    nodes = saved.meta_graphs[0].object_graph_def.nodes
    for obj in metadata.nodes:
        nodes[obj.node_id].user_object.metadata = obj.metadata
    (dst / "saved_model.pb").write_bytes(saved.SerializeToString())
    # Proof that the layout is live: tf-keras rebuilds the model, Lambda included, from it.
    loaded = keras.models.load_model(dst)
    assert any(isinstance(layer, keras.layers.Lambda) for layer in loaded.layers)
    assert loaded(np.full((1, 4), -1.0, dtype="float32")).shape == (1, 2)


def save_tflite(model: keras.Model, path: Path) -> None:
    path.write_bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert())


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    tf.random.set_seed(0)
    np.random.seed(0)
    model = dense()
    save_savedmodel(model, out / "dense_savedmodel")
    save_tflite(model, out / "dense.tflite")
    keras.backend.clear_session()
    model = with_lambda()
    save_savedmodel(model, out / "lambda_savedmodel")
    move_metadata_into_graph(out / "lambda_savedmodel", out / "lambda_legacy_savedmodel")
    model.save(out / "lambda.h5", include_optimizer=False)
    (out / "VERSIONS.txt").write_text(
        f"python {sys.version.split()[0]}\ntensorflow {tf.__version__}\n"
        f"tf-keras {keras.__version__}\n"
    )


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent)
