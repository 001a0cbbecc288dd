"""Unsafe model loading: the calls that run code from the file or repository they load.

Each pattern names its callees and judges one call from the constant values of its decisive
arguments (``weights_only``, ``allow_pickle``, ``safe_mode``, ``Loader``,
``trust_remote_code``, the URI): definitely unsafe is the rule's severity; a value that cannot
be computed (a variable, a ``**mapping``) is MEDIUM, since it may be either. Every verdict
carries the fix to apply.
"""

from __future__ import annotations

import ast
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

from mlgate.discover.calls import CallView
from mlgate.discover.values import UNKNOWN, Binding, const, qualname
from mlgate.findings import Severity
from mlgate.scan import rules
from mlgate.scan.rules import Rule


class TorchLine(Enum):
    """What the project's requirements say about the torch version (CVE-2025-32434)."""

    UNKNOWN = "no torch requirement found"
    VULNERABLE = "requirements admit torch < 2.6.0"
    FIXED = "requirements need torch >= 2.6.0"


@dataclass(frozen=True)
class Verdict:
    rule: Rule
    severity: Severity
    message: str


_FIX_PICKLE = "store tensors as safetensors, or load through mlgate.load (no code runs)"
_FIX_TORCH = "pass weights_only=True (torch >= 2.6.0), or convert to safetensors (mlgate convert)"
_MISSING = object()  # the argument is not passed at all
_SAFE_LOADERS = frozenset(
    f"yaml.{n}" for n in ("SafeLoader", "CSafeLoader", "BaseLoader", "CBaseLoader")
)
_FULL_LOADERS = frozenset({"yaml.FullLoader", "yaml.CFullLoader"})
_EXTERNAL_SCHEMES = ("http://", "https://", "s3://", "gs://", "wasbs://", "abfss://", "ftp://")
_DOWNLOADERS = frozenset(
    {
        "huggingface_hub.hf_hub_download",
        "huggingface_hub.snapshot_download",
        "urllib.request.urlopen",
        "urllib.request.urlretrieve",
        "requests.get",
        "httpx.get",
        "torch.hub.download_url_to_file",
        "keras.utils.get_file",
        "wget.download",
    }
)
_PICKLE_LOADERS = frozenset(
    {
        *(f"{m}.{f}" for m in ("pickle", "dill", "cloudpickle") for f in ("load", "loads")),
        "pickle.Unpickler",
        "dill.Unpickler",
        "joblib.load",
        "pandas.read_pickle",
    }
)


def _value(view: CallView, keyword: str, position: int | None = None) -> object:
    """The constant passed as ``keyword``; :data:`_MISSING` when it is certainly not passed,
    :data:`UNKNOWN` when it cannot be computed (or may come from a ``**mapping``)."""
    binding = view.arg(keyword, position)
    if binding is None:
        return UNKNOWN if view.opaque_kwargs else _MISSING
    return const(binding.expr, binding.env)


def _torch_load(view: CallView, torch: TorchLine) -> Verdict | None:
    flag = _value(view, "weights_only")
    if flag is True:
        if torch is TorchLine.VULNERABLE:
            return Verdict(
                rules.TORCH_WEIGHTS_ONLY_BYPASS,
                Severity.HIGH,
                "torch.load(weights_only=True), but the requirements admit torch < 2.6.0, where "
                "the flag can be bypassed (CVE-2025-32434); fix: require torch>=2.6.0",
            )
        return None
    if flag is False:
        return _verdict(rules.TORCH_LOAD, "torch.load(weights_only=False) unpickles", _FIX_TORCH)
    if flag is _MISSING and torch is TorchLine.FIXED:
        return None  # weights_only defaults to True from torch 2.6.0
    # Certain only when the flag is absent and the project runs a torch where it defaults off.
    known = flag is _MISSING and torch is TorchLine.VULNERABLE
    severity = Severity.HIGH if known else Severity.MEDIUM
    what = "without weights_only" if flag is _MISSING else "with a weights_only not computable"
    return _verdict(rules.TORCH_LOAD, f"torch.load {what} ({torch.value})", _FIX_TORCH, severity)


def _verdict(rule: Rule, what: str, fix: str, severity: Severity | None = None) -> Verdict:
    return Verdict(rule, severity or rule.severity, f"{what}; fix: {fix}")


def _unknown(rule: Rule, what: str, fix: str) -> Verdict:
    return Verdict(rule, Severity.MEDIUM, f"{what} (value not computable); fix: {fix}")


def _flag(view: CallView, rule: Rule, keyword: str, position: int | None, bad: object,
          fix: str) -> Verdict | None:  # fmt: skip
    value = _value(view, keyword, position)
    what = f"{view.callee}({keyword}={bad!r})"
    if value is UNKNOWN:
        return _unknown(rule, what.replace(repr(bad), "?"), fix)
    return _verdict(rule, what, fix) if value == bad and value is not _MISSING else None


def _yaml(view: CallView) -> Verdict | None:
    fix = "use yaml.safe_load (or Loader=yaml.SafeLoader)"
    if view.callee in ("yaml.unsafe_load", "yaml.unsafe_load_all"):
        return _verdict(rules.YAML_UNSAFE, f"{view.callee} builds any Python object", fix)
    if view.callee in ("yaml.full_load", "yaml.full_load_all"):
        return _verdict(rules.YAML_UNSAFE, f"{view.callee} (FullLoader)", fix, Severity.MEDIUM)
    binding = view.arg("Loader", 1)
    if binding is None:
        if view.opaque_kwargs:
            return _unknown(rules.YAML_UNSAFE, f"{view.callee} loader", fix)
        return _verdict(rules.YAML_UNSAFE, f"{view.callee} without a Loader", fix, Severity.MEDIUM)
    loader = qualname(binding.expr, binding.env)
    if loader in _SAFE_LOADERS:
        return None
    if loader in _FULL_LOADERS:
        return _verdict(rules.YAML_UNSAFE, f"{view.callee}(Loader={loader})", fix, Severity.MEDIUM)
    if loader is None or not loader.startswith("yaml."):
        return _unknown(rules.YAML_UNSAFE, f"{view.callee} loader", fix)
    return _verdict(rules.YAML_UNSAFE, f"{view.callee}(Loader={loader})", fix)


def _mlflow(view: CallView) -> Verdict | None:
    fix = "register the model in the MLflow tracking server (models:/...) after a scan"
    uri = _value(view, "model_uri", 0)
    if isinstance(uri, str):
        if uri.lower().startswith(_EXTERNAL_SCHEMES):
            return _verdict(rules.MLFLOW_EXTERNAL, f"{view.callee} on {uri!r}", fix)
        return None
    return _unknown(rules.MLFLOW_EXTERNAL, f"{view.callee} URI", fix)


def _torch_hub(view: CallView) -> Verdict | None:
    if _value(view, "source") == "local":
        return None
    fix = "vendor the weights as safetensors through the hub, never the repo's code"
    return _verdict(rules.TORCH_HUB_LOAD, "torch.hub.load runs the repo's hubconf.py", fix)


def _hydra(view: CallView) -> Verdict | None:
    config = view.arg("config", 0)
    if config is None or not _downloaded(config):
        return None
    fix = "instantiate only configs from the repository; check _target_ against an allowlist"
    return _verdict(rules.HYDRA_DOWNLOADED, f"{view.callee} on a downloaded config", fix)


def _downloaded(binding: Binding, steps: int = 8) -> bool:
    """True when the value is computed from a download (hub, URL) in the same scopes."""
    for node in ast.walk(binding.expr):
        if isinstance(node, ast.Call) and qualname(node.func, binding.env) in _DOWNLOADERS:
            return True
        inner = binding.env.lookup(node.id) if isinstance(node, ast.Name) else None
        if inner is not None and steps > 0 and _downloaded(inner, steps - 1):
            return True
    return False


def _by_callee(view: CallView, torch: TorchLine) -> Verdict | None:
    callee = view.callee or ""
    if callee in _PICKLE_LOADERS:
        return _verdict(rules.PICKLE_LOAD, f"{callee} runs any code in the data", _FIX_PICKLE)
    if callee.startswith("mlflow.") and callee.endswith(".load_model"):
        return _mlflow(view)
    check = _CHECKS.get(callee)
    return check(view, torch) if check is not None else None


_KERAS_FIX = "keep safe_mode=True; replace Lambda layers by registered custom layers"
_CHECKS: dict[str, Callable[[CallView, TorchLine], Verdict | None]] = {
    "torch.load": _torch_load,
    "numpy.load": lambda v, t: _flag(
        v, rules.NUMPY_ALLOW_PICKLE, "allow_pickle", 2, True, "keep allow_pickle=False"
    ),
    "keras.models.load_model": lambda v, t: _flag(
        v, rules.KERAS_UNSAFE, "safe_mode", None, False, _KERAS_FIX
    ),
    "keras.saving.load_model": lambda v, t: _flag(
        v, rules.KERAS_UNSAFE, "safe_mode", None, False, _KERAS_FIX
    ),
    "keras.config.enable_unsafe_deserialization": lambda v, t: _verdict(
        rules.KERAS_UNSAFE, "enable_unsafe_deserialization() turns safe_mode off", _KERAS_FIX
    ),
    "torch.hub.load": lambda v, t: _torch_hub(v),
    "yaml.load": lambda v, t: _yaml(v),
    "yaml.load_all": lambda v, t: _yaml(v),
    "yaml.unsafe_load": lambda v, t: _yaml(v),
    "yaml.unsafe_load_all": lambda v, t: _yaml(v),
    "yaml.full_load": lambda v, t: _yaml(v),
    "yaml.full_load_all": lambda v, t: _yaml(v),
    "hydra.utils.instantiate": lambda v, t: _hydra(v),
    "hydra.utils.call": lambda v, t: _hydra(v),
}


def judge(view: CallView, torch: TorchLine) -> list[Verdict]:
    """The unsafe-loading verdicts on one call (none for a safe or unrelated call)."""
    return [v for v in (_by_callee(view, torch), _remote_code(view)) if v is not None]


def _remote_code(view: CallView) -> Verdict | None:
    if "trust_remote_code" not in view.keywords and not view.opaque_kwargs:
        return None
    fix = "keep trust_remote_code=False; vet and vendor the code, pin the revision"
    value = _value(view, "trust_remote_code")
    if value is True:
        return _verdict(rules.TRUST_REMOTE_CODE, "trust_remote_code=True", fix)
    if value is UNKNOWN and "trust_remote_code" in view.keywords:
        return _unknown(rules.TRUST_REMOTE_CODE, "trust_remote_code", fix)
    return None


def is_sink(view: CallView) -> bool:
    """True for a call that may load unsafely or reference a model (wrappers expand to it)."""
    callee = view.callee or ""
    return (
        callee in _PICKLE_LOADERS
        or callee in _CHECKS
        or (callee.startswith("mlflow.") and callee.endswith(".load_model"))
        or "trust_remote_code" in view.keywords
        or view.opaque_kwargs
    )
