"""Hugging Face repos as scan inputs: ``hf://org/name[@rev]`` and ``https://<hub>/org/name[/tree/rev]``.

The repo is downloaded by the registry's client (:func:`stage_huggingface`: bounded, names
validated, every file checked against the hub's declared size and LFS sha256, pinned to the
commit the revision resolves to) into a temporary folder that is removed after the scan, and
the report names each file ``hf://org/name@<commit>/<file>``. The download is bounded by the
free space of the temporary folder (checked against the listing before one byte is fetched).

Fail closed: a URL that is not a repo of the configured hub, an unknown repo or revision, or
any failed download is an error (exit 2), never a scan of something else or of nothing.

The token is ``HF_TOKEN``, else the file ``huggingface-cli login`` writes (``HF_TOKEN_PATH``,
else ``$HF_HOME/token``, else ``~/.cache/huggingface/token``); it is sent only to the hub.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import unquote, urlsplit

from mlgate.findings import ArtifactResult, Finding, Report
from mlgate.registry.sources import SourceError, SourceLimits, parse_source
from mlgate.registry.sources.base import DEFAULT_LIMITS
from mlgate.registry.sources.huggingface import stage_huggingface

_MAX_TOKEN_BYTES = 4096  # a token file is one short line; a larger one is not a token file


@dataclass(frozen=True)
class HubRepo:
    """One repo revision of the hub, as the user named it (``spelled``)."""

    repo_id: str
    revision: str
    repo_type: str
    spelled: str


@dataclass(frozen=True)
class Downloaded:
    """A repo revision downloaded to ``folder``, pinned to ``commit``."""

    repo: HubRepo
    commit: str
    folder: Path

    @property
    def name(self) -> str:
        """How the report names the downloaded folder: the repo at its exact commit."""
        kind = "" if self.repo.repo_type == "model" else f"{self.repo.repo_type}s/"
        return f"hf://{kind}{self.repo.repo_id}@{self.commit}"


def parse_hub_input(value: str, endpoint: str) -> HubRepo:
    """The repo ``value`` names (``hf://...``, or a URL of a repo on ``endpoint``)."""
    if value.startswith("hf://"):
        _, spec = parse_source(value)
        return HubRepo(spec["repo_id"], spec["revision"], spec["repo_type"], value)
    url, hub = urlsplit(value), urlsplit(endpoint.rstrip("/"))
    if (url.scheme, url.netloc) != (hub.scheme, hub.netloc) or url.query or url.fragment:
        raise SourceError(
            f"{value!r} is not a repo URL of the hub {endpoint} (set --endpoint or HF_ENDPOINT "
            "to scan from another hub)"
        )
    prefix = hub.path.rstrip("/")
    if prefix and not url.path.startswith(prefix + "/"):
        raise SourceError(f"{value!r} is not under the hub {endpoint}")
    return _parse_repo_path(url.path[len(prefix) :].strip("/").split("/"), value)


def _parse_repo_path(parts: list[str], value: str) -> HubRepo:
    """``[org/]name[/tree/rev]``; the revision may be percent-encoded (``refs%2Fpr%2F1``)."""
    revision = "main"
    if len(parts) >= 3 and parts[-2] == "tree":
        revision, parts = unquote(parts[-1]), parts[:-2]
    if not 1 <= len(parts) <= 2 or not all(parts):
        raise SourceError(
            f"{value!r} is not a model repo URL: expected <hub>/org/name or "
            "<hub>/org/name/tree/<revision>"
        )
    return HubRepo("/".join(parts), revision, "model", value)


def hub_token() -> str | None:
    """``HF_TOKEN``, else the token file ``huggingface_hub`` stores; never printed."""
    token = os.environ.get("HF_TOKEN", "").strip()
    if token:
        return _checked(token, "HF_TOKEN")
    path = _token_path()
    try:
        with path.open("rb") as f:
            data = f.read(_MAX_TOKEN_BYTES + 1)
    except FileNotFoundError:
        return None
    except OSError as e:
        raise SourceError(f"cannot read the Hugging Face token file {path}: {e.strerror}") from e
    if len(data) > _MAX_TOKEN_BYTES:
        raise SourceError(f"{path} is too large to be a token file")
    token = data.decode("utf-8", "replace").strip()
    return _checked(token, str(path)) if token else None


def _checked(token: str, where: str) -> str:
    """The token, if it can go in an ``Authorization`` header: a CR or LF in it would add
    headers of its own (header injection), so such a value is refused, never sent."""
    if not token.isascii() or not token.isprintable() or any(c.isspace() for c in token):
        raise SourceError(f"{where} does not hold a token (one word of printable ASCII)")
    return token


def _token_path() -> Path:
    if explicit := os.environ.get("HF_TOKEN_PATH"):
        return Path(explicit)
    home = os.environ.get("HF_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache", "huggingface"
    )
    return Path(home) / "token"


@contextmanager
def local_inputs(
    values: tuple[Path | str, ...], endpoint: str
) -> Iterator[tuple[list[Path], list[Downloaded]]]:
    """The local paths to scan for ``values`` (hub repos downloaded, in the order given) and
    the downloads, all removed on exit."""
    with ExitStack() as stack:
        token = hub_token() if any(isinstance(v, str) for v in values) else None
        paths: list[Path] = []
        downloads: list[Downloaded] = []
        for value in values:
            if isinstance(value, Path):
                paths.append(value)
                continue
            repo = parse_hub_input(value, endpoint)
            downloads.append(stack.enter_context(downloaded(repo, endpoint, token)))
            paths.append(downloads[-1].folder)
        yield paths, downloads


@contextmanager
def downloaded(repo: HubRepo, endpoint: str, token: str | None) -> Iterator[Downloaded]:
    """``repo`` downloaded into a new temporary folder, removed on exit whatever happens."""
    folder = Path(tempfile.mkdtemp(prefix="mlgate-hf-"))
    try:
        free = shutil.disk_usage(folder).free
        limits = SourceLimits(max_total_bytes=min(DEFAULT_LIMITS.max_total_bytes, free))
        staged = stage_huggingface(
            endpoint,
            repo.repo_id,
            repo.revision,
            staging=folder / "repo",
            token=token,
            limits=limits,
            repo_type=repo.repo_type,
        )
        if staged.revision is None:  # a hub source is always pinned (StagedSource)
            raise SourceError(f"the hub gave no commit for {repo.spelled!r}")
        yield Downloaded(repo, staged.revision, folder / "repo")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def relabel(report: Report, downloads: list[Downloaded]) -> Report:
    """``report`` naming each downloaded file ``hf://org/name@<commit>/<file>`` and each
    target as the user spelled it, instead of the temporary folder."""
    return Report(
        targets=tuple(_target(t, downloads) for t in report.targets),
        findings=tuple(_finding(f, downloads) for f in report.findings),
        artifacts=tuple(_artifact(a, downloads) for a in report.artifacts),
    )


def _path(path: str, downloads: list[Downloaded]) -> str:
    for d in downloads:
        root = str(d.folder)
        if path == root or path.startswith(root + os.sep):
            return d.name + path[len(root) :]
    return path


def _target(target: str, downloads: list[Downloaded]) -> str:
    return next((d.repo.spelled for d in downloads if target == str(d.folder)), target)


def _finding(finding: Finding, downloads: list[Downloaded]) -> Finding:
    location = replace(finding.location, path=_path(finding.location.path, downloads))
    return replace(finding, location=location)


def _artifact(artifact: ArtifactResult, downloads: list[Downloaded]) -> ArtifactResult:
    return replace(artifact, artifact=_path(artifact.artifact, downloads))
