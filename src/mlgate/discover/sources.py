"""Model sources: every model the code loads or downloads, resolved when computable.

References come from the loaders' own arguments (``from_pretrained``, ``hf_hub_download``,
``snapshot_download``, ``pipeline(model=)``, vLLM ``LLM(model=)``, ``SentenceTransformer``,
``torch.hub.load``, URL loaders), from ``HF_ENDPOINT`` set in code, and from any string
constant that is a URL or bucket path to a model file. A hub reference is judged for its
revision (a 40-hex commit pin or not) and its endpoint; cross-checking against the registry
is :mod:`mlgate.discover.crosscheck`'s job.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import urlsplit

from mlgate.discover.calls import CallView
from mlgate.discover.values import MAX_STEPS, Binding, Env, const, qualname

COMMIT = re.compile(r"[0-9a-f]{40}")
_PART = r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,94}[A-Za-z0-9])?"
REPO_ID = re.compile(rf"(?:{_PART}/)?{_PART}")
_HF_URL = re.compile(
    rf"https?://(?:www\.)?huggingface\.co/({_PART}/{_PART})/(?:resolve|blob)/([^/]+)/"
)
MODEL_SUFFIXES = (
    ".bin", ".pt", ".pth", ".ckpt", ".safetensors", ".onnx", ".gguf", ".h5", ".keras",
    ".pkl", ".pickle", ".joblib", ".npz", ".npy", ".pb", ".tflite", ".msgpack", ".tar.gz", ".zip",
)  # fmt: skip
REMOTE_SCHEMES = ("http", "https", "s3", "gs", "hf")
PUBLIC_HUB = "https://huggingface.co"


@dataclass(frozen=True)
class Reference:
    """A model the code names. ``kind``: hub, url, bucket, github (torch.hub), local, or
    dynamic (not computable); ``revision`` as written (None: the default branch)."""

    node: ast.AST
    kind: str
    name: str
    revision: str | None = None
    endpoint: str | None = None  # where it is fetched from, when the code says
    via: str = ""

    @property
    def pinned(self) -> bool:
        return self.revision is not None and COMMIT.fullmatch(self.revision) is not None

    def __str__(self) -> str:
        return self.name if self.revision is None else f"{self.name}@{self.revision}"


# callee -> (keyword, position) of its model argument (a repo id, a URL or a path: what the
# value is decides the kind of reference, see classify)
_LOADERS: dict[str, tuple[str, int | None]] = {
    "huggingface_hub.hf_hub_download": ("repo_id", 0),
    "huggingface_hub.snapshot_download": ("repo_id", 0),
    "transformers.pipeline": ("model", 1),
    "vllm.LLM": ("model", 0),
    "sentence_transformers.SentenceTransformer": ("model_name_or_path", 0),
    "torch.hub.load_state_dict_from_url": ("url", 0),
    "torch.hub.download_url_to_file": ("url", 0),
    "keras.utils.get_file": ("origin", 1),
    "urllib.request.urlretrieve": ("url", 0),
    "wget.download": ("url", 0),
}


def is_reference(view: CallView) -> bool:
    callee = view.callee or ""
    return view.method == "from_pretrained" or callee in _LOADERS or callee == "torch.hub.load"


def references(view: CallView) -> Iterator[Reference]:
    """The model references one call makes (none for an unrelated call)."""
    callee = view.callee or ""
    if view.method == "from_pretrained":
        yield from _named(view, view.arg("pretrained_model_name_or_path", 0))
    elif callee in _LOADERS:
        yield from _named(view, view.arg(*_LOADERS[callee]))
    elif callee == "torch.hub.load":
        yield from _torch_hub(view)


def _named(view: CallView, binding: Binding | None) -> Iterator[Reference]:
    if binding is None:
        return
    value = const(binding.expr, binding.env)
    revision = _string(view, "revision")
    endpoint = _string(view, "endpoint")
    if not isinstance(value, str):
        yield Reference(view.node, "dynamic", ast.unparse(binding.expr)[:200], via=view.via)
        return
    yield classify(view.node, value, revision, endpoint, view.via)


def _string(view: CallView, keyword: str) -> str | None:
    binding = view.arg(keyword)
    value = const(binding.expr, binding.env) if binding is not None else None
    return value if isinstance(value, str) else None


def classify(
    node: ast.AST, value: str, revision: str | None = None, endpoint: str | None = None,
    via: str = "",
) -> Reference:  # fmt: skip
    """What kind of model ``value`` names: a hub repo id, a URL, a bucket path or a local path."""
    hf_url = _HF_URL.match(value)
    if hf_url:
        return Reference(node, "hub", hf_url.group(1), hf_url.group(2), PUBLIC_HUB, via)
    scheme = urlsplit(value).scheme.lower() if "://" in value else ""
    if scheme in ("s3", "gs"):
        return Reference(node, "bucket", value, endpoint=f"{scheme}://", via=via)
    if scheme:
        parts = urlsplit(value)
        return Reference(node, "url", value, endpoint=f"{scheme}://{parts.netloc}", via=via)
    if REPO_ID.fullmatch(value) and not value.lower().endswith(MODEL_SUFFIXES):
        return Reference(node, "hub", value, revision, endpoint, via)
    return Reference(node, "local", value, via=via)


def _torch_hub(view: CallView) -> Iterator[Reference]:
    repo = view.arg("repo_or_dir", 0)
    if repo is None or _string(view, "source") == "local":
        return
    value = const(repo.expr, repo.env)
    if not isinstance(value, str):
        yield Reference(view.node, "dynamic", ast.unparse(repo.expr)[:200], via=view.via)
        return
    name, _, ref = value.partition(":")
    yield Reference(view.node, "github", name, ref or None, "https://github.com", view.via)


_ENV_SETTERS = ("os.environ.setdefault", "os.putenv")


def endpoint_settings(tree: ast.Module, env: Env) -> Iterator[Reference]:
    """``os.environ["HF_ENDPOINT"] = ...`` (and ``setdefault``): the hub the process uses."""
    for node in ast.walk(tree):
        value = _endpoint_assignment(node, env)
        if value is not None:
            yield Reference(node, "endpoint", value, endpoint=value.rstrip("/"))


def _endpoint_assignment(node: ast.AST, env: Env) -> str | None:
    if isinstance(node, ast.Assign) and len(node.targets) == 1:
        target = node.targets[0]
        if (
            isinstance(target, ast.Subscript)
            and qualname(target.value, env) == "os.environ"
            and const(target.slice, env) == "HF_ENDPOINT"
        ):
            value = const(node.value, env)
            return value if isinstance(value, str) else None
    if not (isinstance(node, ast.Call) and len(node.args) == 2):
        return None
    setter = (qualname(node.func, env) or "") in _ENV_SETTERS
    value = (
        const(node.args[1], env) if setter and const(node.args[0], env) == "HF_ENDPOINT" else None
    )
    return value if isinstance(value, str) else None


def model_urls(tree: ast.Module, seen: set[int]) -> Iterator[Reference]:
    """String constants that are URLs or bucket paths of a model file, not already part of a
    loader call (``seen``: ids of the constants those calls consumed)."""
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Constant) and isinstance(node.value, str)) or id(node) in seen:
            continue
        text = node.value
        if len(text) > 2048 or "://" not in text or any(c.isspace() for c in text):
            continue
        if urlsplit(text).scheme.lower() in REMOTE_SCHEMES and _model_file(text):
            yield classify(node, text)


def _model_file(url: str) -> bool:
    path = urlsplit(url).path.lower()
    return path.endswith(MODEL_SUFFIXES) or _HF_URL.match(url) is not None


def consumed(view: CallView) -> set[int]:
    """Ids of the string constants a reference call uses, directly or through the names it
    passes (``URL = "..."; load_state_dict_from_url(URL)``): not reported a second time."""
    ids: set[int] = set()
    pending = [*view.args, *view.keywords.values()]
    for _ in range(MAX_STEPS):
        if not pending:
            break
        binding = pending.pop()
        for node in ast.walk(binding.expr):
            if isinstance(node, ast.Constant):
                ids.add(id(node))
            elif isinstance(node, ast.Name) and (inner := binding.env.lookup(node.id)):
                pending.append(inner)
    return ids
