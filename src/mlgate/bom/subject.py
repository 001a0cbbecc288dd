"""Everything a BOM says about a model, gathered once for both CycloneDX and SPDX."""

from __future__ import annotations

import getpass
import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from packageurl import PackageURL

from mlgate.api import scan
from mlgate.bom.model_card import ModelCard, read_model_card
from mlgate.config import Config
from mlgate.findings import Finding, Severity, relative_finding
from mlgate.provenance.manifest import Manifest, hash_model, signature_name

# Hub sources given as a URL: https://huggingface.co/ORG/NAME[/tree/REVISION]
_HF_URL = re.compile(
    r"^https?://(?:www\.)?(?:huggingface\.co|hf\.co)/(?P<repo>[^/?#]+(?:/[^/?#]+)?)"
    r"(?:/tree/(?P<rev>[^/?#]+))?/?$"
)
_HF_NAMES = frozenset({"hf", "huggingface", "huggingface.co", "hf.co"})


@dataclass(frozen=True)
class Signature:
    """A detached signature found beside the model."""

    reference: str  # relative to the model folder (or to the file's folder)
    sha256: str


@dataclass(frozen=True)
class ModelSubject:
    """The model, its metadata, provenance and scan findings."""

    path: Path
    name: str
    hub_repo: str | None  # "org/name" when the model came from the Hugging Face Hub
    source: str | None
    revision: str | None
    actor: str
    timestamp: datetime
    manifest: Manifest
    card: ModelCard
    findings: tuple[Finding, ...]
    signature: Signature | None

    @property
    def download_url(self) -> str | None:
        """Where the model can be fetched from, when known."""
        if self.hub_repo:
            return f"https://huggingface.co/{self.hub_repo}"
        if self.source and "://" in self.source:
            return self.source
        return None

    @property
    def manifest_sha256(self) -> str:
        """One digest over the whole manifest (sorted ``digest  path`` lines), for identity."""
        lines = "".join(f"{f.digest}  {f.path}\n" for f in self.manifest.files)
        return hashlib.sha256(lines.encode()).hexdigest()


def gather(
    path: Path,
    *,
    name: str | None = None,
    source: str | None = None,
    revision: str | None = None,
    actor: str | None = None,
    algorithm: str = "sha256",
    allow_symlinks: bool = False,
    min_severity: Severity = Severity.MEDIUM,
    config: Config | None = None,
) -> ModelSubject:
    """Hash, scan and read the metadata of the model at ``path``."""
    hub_repo, url_revision = _hub_repo(source, name)
    # No sharding: a BOM states plain whole-file digests that any tool can recompute.
    manifest = hash_model(path, algorithm=algorithm, allow_symlinks=allow_symlinks)
    report = scan(path, config=config)
    findings = tuple(
        relative_finding(f, path) for f in report.sorted_findings() if f.severity >= min_severity
    )
    return ModelSubject(
        path=path,
        name=name or hub_repo or path.name,
        hub_repo=hub_repo,
        source=source,
        revision=revision or url_revision,
        actor=actor or _os_user(),
        timestamp=datetime.now(UTC).replace(microsecond=0),
        manifest=manifest,
        card=read_model_card(path),
        findings=findings,
        signature=_signature(path),
    )


def model_purl(subject: ModelSubject) -> PackageURL:
    """The package URL: ``pkg:huggingface/ORG/NAME@COMMIT`` for hub models, else generic."""
    if subject.hub_repo:
        namespace, _, name = subject.hub_repo.rpartition("/")
        # The purl spec asks for a lowercased commit hash for huggingface purls.
        version = subject.revision.lower() if subject.revision else None
        return PackageURL("huggingface", namespace or None, name, version)
    qualifiers = {"checksum": f"sha256:{subject.manifest_sha256}"}
    if subject.download_url:
        qualifiers["download_url"] = subject.download_url
    return PackageURL("generic", None, subject.name, subject.revision, qualifiers)


def _hub_repo(source: str | None, name: str | None) -> tuple[str | None, str | None]:
    """``(org/name, revision)`` when ``source`` says the model came from the Hugging Face Hub."""
    if not source:
        return None, None
    match = _HF_URL.match(source.strip())
    if match:
        return match["repo"], match["rev"]
    if source.strip().lower() in _HF_NAMES and name:
        return name, None
    return None, None


def _signature(path: Path) -> Signature | None:
    # A pulled folder's signature is the registry's mlgate.sig (a vendor's model.sig beside it
    # is content, listed in the manifest); the rule is signature_name's, which the manifest
    # and `mlgate verify` (provenance.signing.find_signature, ~0.5 s to import) follow too.
    sig = path / signature_name(path) if path.is_dir() else path.with_name(path.name + ".sig")
    if sig.is_symlink() or not sig.is_file():
        return None
    digest = hashlib.sha256()
    with sig.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return Signature(reference=sig.name, sha256=digest.hexdigest())


def _os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry and no LOGNAME/USER (some containers)
        return "unknown"
