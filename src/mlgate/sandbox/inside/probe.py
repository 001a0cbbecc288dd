"""The behaviour probe: run a loaded model once on generated inputs and describe its output.

Runs inside the sandbox after a clean load, observed like the load (a payload that waits for
``forward()`` is caught in phase ``probe``). Inputs are drawn from a fixed seed so that a
reference model, loaded in the same run, sees exactly the same inputs. The statistics flag a
broken or sabotaged model (NaN/Inf, constant output, drift from a reference); they are not
backdoor detection: a trigger the random inputs do not contain stays invisible.

Stdlib and the model's own framework only (numpy comes with every supported framework).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

_SEED = 1234
_BATCH = 2
_SPATIAL = 8  # side of generated images/sequences for convolutions
_TOKENS = 8


class Unsupported(Exception):
    """The model is of a kind the probe cannot feed (a state dict, a plain array)."""


def run(model: Any) -> Any:
    """The model's output (a numpy array) on generated inputs, or Unsupported."""
    for accepts, call in _RUNNERS:
        if accepts(model):
            return call(model)
    raise Unsupported(f"no probe for {type(model).__name__}")


def statistics(output: Any) -> dict[str, object]:
    import numpy  # noqa: PLC0415

    values = numpy.asarray(output, dtype=numpy.float64)
    finite = values[numpy.isfinite(values)]
    spread = float(finite.std()) if finite.size else 0.0
    return {
        "shape": list(values.shape),
        "nan": int(numpy.isnan(values).sum()),
        "inf": int(numpy.isinf(values).sum()),
        "min": float(finite.min()) if finite.size else None,
        "max": float(finite.max()) if finite.size else None,
        "mean": float(finite.mean()) if finite.size else None,
        "std": spread,
        "constant": bool(values.size > 1 and spread == 0.0),
    }


def max_abs_difference(first: Any, second: Any) -> float:
    import numpy  # noqa: PLC0415

    a, b = numpy.asarray(first, dtype=numpy.float64), numpy.asarray(second, dtype=numpy.float64)
    if a.shape != b.shape:
        return float("inf")
    return float(numpy.nan_to_num(numpy.abs(a - b), nan=numpy.inf).max(initial=0.0))


def _normal(*shape: int) -> Any:
    import numpy  # noqa: PLC0415

    return numpy.random.default_rng(_SEED).standard_normal(shape).astype(numpy.float32)


def _is_torch(model: Any) -> bool:
    return type(model).__module__.startswith("torch") or hasattr(model, "named_modules")


def _torch(model: Any) -> Any:
    import torch  # noqa: PLC0415

    vocab = getattr(getattr(model, "config", None), "vocab_size", None)
    if isinstance(vocab, int):  # a transformers model: token ids, not floats
        ids = torch.from_numpy((abs(_normal(1, _TOKENS)) * 1000).astype("int64") % vocab)
        inputs: Any = ids
    else:
        inputs = torch.from_numpy(_normal(*_torch_shape(model)))
    with torch.no_grad():
        output = model.eval()(inputs)
    return _first_tensor(output).detach().float().numpy()


def _torch_shape(model: Any) -> tuple[int, ...]:
    for _, module in model.named_modules():
        if hasattr(module, "in_features"):
            return (_BATCH, int(module.in_features))
        if hasattr(module, "in_channels") and hasattr(module, "kernel_size"):
            dims = len(module.kernel_size)
            return (_BATCH, int(module.in_channels), *([_SPATIAL] * dims))
    raise Unsupported("no Linear or Conv layer to infer the input shape from")


def _first_tensor(output: Any) -> Any:
    if hasattr(output, "detach"):
        return output
    values = output.values() if hasattr(output, "values") else output
    for value in values:
        if hasattr(value, "detach"):
            return value
    raise Unsupported("the model returned no tensor")


def _is_sklearn(model: Any) -> bool:
    return hasattr(model, "n_features_in_") and hasattr(model, "predict")


def _sklearn(model: Any) -> Any:
    inputs = _normal(_BATCH * 2, int(model.n_features_in_))
    for method in ("predict_proba", "decision_function", "predict"):
        if hasattr(model, method):
            return getattr(model, method)(inputs)
    raise Unsupported("estimator without a prediction method")


def _is_onnxruntime(model: Any) -> bool:
    return hasattr(model, "get_inputs") and hasattr(model, "run")


def _onnxruntime(model: Any) -> Any:
    feed = {}
    for spec in model.get_inputs():
        if "float" not in spec.type:
            raise Unsupported(f"non-float ONNX input {spec.type}")
        shape = [d if isinstance(d, int) and d > 0 else 1 for d in spec.shape]
        feed[spec.name] = _normal(*shape)
    return model.run(None, feed)[0]


def _is_keras(model: Any) -> bool:
    return hasattr(model, "input_shape") and hasattr(model, "predict")


def _keras(model: Any) -> Any:
    shape = [d if isinstance(d, int) else _BATCH for d in model.input_shape]
    return model.predict(_normal(*shape), verbose=0)


_RUNNERS: tuple[tuple[Callable[[Any], bool], Callable[[Any], Any]], ...] = (
    (_is_keras, _keras),  # before torch: a Keras model on the torch backend is an nn.Module
    (_is_torch, _torch),
    (_is_sklearn, _sklearn),
    (_is_onnxruntime, _onnxruntime),
)
