"""Every model reference in a Kubernetes object, found where serving stacks take them.

Pure functions on the parsed JSON of an object (no I/O). Covered: Pods and every workload
that templates one (Deployment, StatefulSet, DaemonSet, ReplicaSet, Job, CronJob), where
vLLM / TGI / Ollama / ``transformers`` servers take a model in container args (``--model``,
``--model-id``) and env (``MODEL_ID``, ``HF_MODEL_ID``; ``HF_ENDPOINT`` and
``HF_HUB_OFFLINE`` say where the client fetches from), and KServe ``InferenceService``
(``serving.kserve.io/v1beta1``: ``storageUri`` / ``storage`` of the predictor, transformer
and explainer, plus their containers).

Bounded: an object yields at most :data:`MAX_REFERENCES` references of at most
:data:`MAX_VALUE` characters, else :class:`UnreadableObject` (the webhook denies it: a
manifest stuffed with references must not buy an allow by exhausting the checker).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from mlgate.errors import MlgateError

MAX_REFERENCES = 64
MAX_VALUE = 2048
MODEL_FLAGS = frozenset({"--model", "--model-id", "--model_id"})
MODEL_ENV = frozenset({"MODEL_ID", "HF_MODEL_ID"})
ENDPOINT_ENV = "HF_ENDPOINT"
OFFLINE_ENV = "HF_HUB_OFFLINE"
WORKLOAD_TEMPLATE = {
    "Deployment": ("spec", "template", "spec"),
    "StatefulSet": ("spec", "template", "spec"),
    "DaemonSet": ("spec", "template", "spec"),
    "ReplicaSet": ("spec", "template", "spec"),
    "Job": ("spec", "template", "spec"),
    "CronJob": ("spec", "jobTemplate", "spec", "template", "spec"),
    "Pod": ("spec",),
}
INFERENCE_SERVICE = "InferenceService"
KSERVE_COMPONENTS = ("predictor", "transformer", "explainer")
CONTAINER_LISTS = ("initContainers", "containers", "ephemeralContainers")


class UnreadableObject(MlgateError):
    """The object cannot be checked (unknown kind, too many or too long references)."""


class Kind(StrEnum):
    """What a reference says: a model to load, the hub a client fetches from, or that the
    client must not fetch at all (the model comes from a mounted volume)."""

    MODEL = "model"
    ENDPOINT = "endpoint"
    OFFLINE = "offline"


@dataclass(frozen=True)
class Reference:
    """One reference: ``value`` as written (None when set from a ConfigMap or Secret, which
    the webhook cannot read), ``where`` in the object, and ``endpoint``: the HF_ENDPOINT of
    the same container or KServe component (None when unset)."""

    kind: Kind
    where: str
    value: str | None
    endpoint: str | None = None


def supported(kind: str) -> bool:
    """Whether objects of ``kind`` are understood."""
    return kind in WORKLOAD_TEMPLATE or kind == INFERENCE_SERVICE


def references(obj: Mapping[str, Any]) -> tuple[Reference, ...]:
    """Every reference in ``obj`` (a Kubernetes object), bounded."""
    kind = obj.get("kind")
    if not isinstance(kind, str) or not supported(kind):
        raise UnreadableObject(f"objects of kind {kind!r} are not understood by the webhook")
    found = _inference_service(obj) if kind == INFERENCE_SERVICE else _workload(obj, kind)
    refs: list[Reference] = []
    for ref in found:
        if len(refs) == MAX_REFERENCES:
            raise UnreadableObject(f"more than {MAX_REFERENCES} model references in one object")
        if ref.value is not None and len(ref.value) > MAX_VALUE:
            raise UnreadableObject(f"a model reference at {ref.where} is over {MAX_VALUE} chars")
        refs.append(ref)
    return tuple(refs)


def _workload(obj: Mapping[str, Any], kind: str) -> Iterator[Reference]:
    spec: Any = obj
    path = WORKLOAD_TEMPLATE[kind]
    for key in path:
        spec = _mapping(spec).get(key)
    yield from _pod_spec(_mapping(spec), ".".join(path))


def _pod_spec(spec: Mapping[str, Any], where: str) -> Iterator[Reference]:
    for field in CONTAINER_LISTS:
        for i, container in enumerate(_list(spec.get(field))):
            name = _mapping(container).get("name")
            label = name if isinstance(name, str) and name else str(i)
            yield from _container(_mapping(container), f"{where}.{field}[{label}]")


def _container(container: Mapping[str, Any], where: str) -> Iterator[Reference]:
    env = _env(container, where)
    endpoint = next((r.value for r in env if r.kind is Kind.ENDPOINT), None)
    yield from env
    for value in _flag_values(container):
        yield Reference(Kind.MODEL, f"{where}.args", value, endpoint)
    if isinstance(container.get("storageUri"), str):
        yield Reference(Kind.MODEL, f"{where}.storageUri", container["storageUri"], endpoint)
    storage = container.get("storage")
    if isinstance(storage, Mapping):
        value = f"storage://{storage.get('key', '')}/{storage.get('path', '')}"
        yield Reference(Kind.MODEL, f"{where}.storage", value, endpoint)


def _env(container: Mapping[str, Any], where: str) -> list[Reference]:
    found = []
    for var in _list(container.get("env")):
        name, value = _mapping(var).get("name"), _mapping(var).get("value")
        literal = value if isinstance(value, str) else None
        at = f"{where}.env[{name}]"
        if name in MODEL_ENV:
            found.append(Reference(Kind.MODEL, at, literal))
        elif name == ENDPOINT_ENV:
            found.append(Reference(Kind.ENDPOINT, at, literal))
        elif name == OFFLINE_ENV:
            found.append(Reference(Kind.OFFLINE, at, literal))
    endpoint = next((r.value for r in found if r.kind is Kind.ENDPOINT), None)
    return [Reference(r.kind, r.where, r.value, endpoint) for r in found]


def _flag_values(container: Mapping[str, Any]) -> Iterator[str]:
    """The values of ``--model X`` / ``--model=X`` / ``--model-id X`` in command + args."""
    words = _list(container.get("command")) + _list(container.get("args"))
    for i, word in enumerate(words):
        if not isinstance(word, str):
            continue
        flag, eq, value = word.partition("=")
        if flag not in MODEL_FLAGS:
            continue
        if eq:
            yield value
        elif i + 1 < len(words) and isinstance(words[i + 1], str):
            yield words[i + 1]


def _inference_service(obj: Mapping[str, Any]) -> Iterator[Reference]:
    spec = _mapping(obj.get("spec"))
    for component in KSERVE_COMPONENTS:
        body = _mapping(spec.get(component))
        where = f"spec.{component}"
        yield from _pod_spec(body, where)
        # Every runtime section (model, sklearn, huggingface, art...) is a container spec.
        for key, section in body.items():
            if key not in CONTAINER_LISTS and isinstance(section, Mapping):
                yield from _container(section, f"{where}.{key}")


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []
