"""CycloneDX 1.6 / 1.7 ML-BOM of a model, built with cyclonedx-python-lib.

The library has no model for ``modelCard`` (on a component) nor ``data`` (on a ``data``
component); both are added to the serialised JSON afterwards, keyed by bom-ref.

Scan findings become ``vulnerabilities`` that affect the model component. Only findings at or
above a threshold (MEDIUM by default, configurable down to INFO) are listed: lower ones are
observations rather than weaknesses. Severities map one to one (INFO -> "info").
"""

from __future__ import annotations

import json
from typing import Any

from cyclonedx.contrib.license.factories import LicenseFactory
from cyclonedx.model import (
    ExternalReference,
    ExternalReferenceType,
    HashAlgorithm,
    HashType,
    Property,
    XsUri,
)
from cyclonedx.model.bom import Bom
from cyclonedx.model.component import Commit, Component, ComponentType, Pedigree
from cyclonedx.model.contact import OrganizationalContact
from cyclonedx.model.vulnerability import (
    BomTarget,
    Vulnerability,
    VulnerabilityRating,
    VulnerabilityScoreSource,
    VulnerabilitySeverity,
    VulnerabilitySource,
)
from cyclonedx.output.json import BY_SCHEMA_VERSION
from cyclonedx.schema import SchemaVersion
from packageurl import PackageURL

from mlgate.bom.subject import ModelSubject, model_purl
from mlgate.findings import Finding, Severity
from mlgate.provenance.manifest import FileDigest

MODEL_REF = "model"
VERSIONS = {"1.6": SchemaVersion.V1_6, "1.7": SchemaVersion.V1_7}
_HASH_ALGS = {
    "sha256": HashAlgorithm.SHA_256,
    "blake2b": HashAlgorithm.BLAKE2B_512,
    "blake3": HashAlgorithm.BLAKE3,
}
_SEVERITY = {
    Severity.INFO: VulnerabilitySeverity.INFO,
    Severity.LOW: VulnerabilitySeverity.LOW,
    Severity.MEDIUM: VulnerabilitySeverity.MEDIUM,
    Severity.HIGH: VulnerabilitySeverity.HIGH,
    Severity.CRITICAL: VulnerabilitySeverity.CRITICAL,
}


def render_cyclonedx(subject: ModelSubject, version: str = "1.6") -> dict[str, Any]:
    """The CycloneDX BOM of ``subject`` as a JSON-ready dict."""
    if version not in VERSIONS:
        raise ValueError(f"unsupported CycloneDX version {version!r}; expected 1.6 or 1.7")
    from mlgate import __version__  # noqa: PLC0415  (mlgate/__init__ imports this package)

    bom = Bom()
    bom.metadata.timestamp = subject.timestamp
    bom.metadata.authors.add(OrganizationalContact(name=subject.actor))
    bom.metadata.tools.components.add(
        Component(type=ComponentType.APPLICATION, name="mlgate", version=__version__)
    )
    model = _model_component(subject)
    bom.components.add(model)
    datasets = [_dataset_component(name) for name in subject.card.datasets]
    for ds in datasets:
        bom.components.add(ds)
    bom.register_dependency(model, datasets)
    for i, finding in enumerate(subject.findings, 1):
        bom.vulnerabilities.add(_vulnerability(i, finding))
    text = BY_SCHEMA_VERSION[VERSIONS[version]](bom).output_as_string()
    doc: dict[str, Any] = json.loads(text)
    _add_model_card(doc, subject)
    return doc


def _model_component(subject: ModelSubject) -> Component:
    card = subject.card
    files = subject.manifest.files
    single = subject.path.is_file()
    external = []
    if subject.download_url:
        external.append(
            ExternalReference(
                type=ExternalReferenceType.DISTRIBUTION, url=XsUri(subject.download_url)
            )
        )
    if subject.signature:
        # Relative to the model folder: the BOM travels with the model, not with this host.
        external.append(
            ExternalReference(
                type=ExternalReferenceType.DIGITAL_SIGNATURE,
                url=XsUri(subject.signature.reference),
                comment="OpenSSF Model Signing (Sigstore bundle) signature of the model",
                hashes=[_hash("sha256", subject.signature.sha256)],
            )
        )
    return Component(
        type=ComponentType.MACHINE_LEARNING_MODEL,
        bom_ref=MODEL_REF,
        # A hub model "org/name" is group "org", name "name", as in its purl.
        name=_split_repo(subject.hub_repo)[1] if subject.hub_repo else subject.name,
        version=subject.revision,
        group=_split_repo(subject.hub_repo)[0] if subject.hub_repo else None,
        purl=model_purl(subject),
        hashes=[_hash(files[0].algorithm, files[0].digest)] if single and files else None,
        licenses=[LicenseFactory().make_from_string(card.license)] if card.license else None,
        external_references=external,
        pedigree=_pedigree(subject),
        properties=_properties(subject),
        components=None if single else [_file_component(i, f) for i, f in enumerate(files, 1)],
    )


def _hash(algorithm: str, digest: str) -> HashType:
    return HashType(alg=_HASH_ALGS[algorithm], content=digest)


def _file_component(index: int, digest: FileDigest) -> Component:
    return Component(
        type=ComponentType.FILE,
        bom_ref=f"file-{index}",
        name=digest.path,
        hashes=[_hash(digest.algorithm, digest.digest)],
        properties=[Property(name="mlgate:size", value=str(digest.size))],
    )


def _dataset_component(name: str) -> Component:
    return Component(
        type=ComponentType.DATA,
        bom_ref=f"dataset:{name}",
        name=name,
        # Model cards list datasets by Hugging Face Hub id.
        external_references=[
            ExternalReference(
                type=ExternalReferenceType.DISTRIBUTION,
                url=XsUri(f"https://huggingface.co/datasets/{name}"),
            )
        ],
    )


def _pedigree(subject: ModelSubject) -> Pedigree | None:
    ancestors = [
        Component(
            type=ComponentType.MACHINE_LEARNING_MODEL,
            bom_ref=f"base-model:{base}",
            name=base,
            purl=PackageURL("huggingface", *_split_repo(base)),
        )
        for base in subject.card.base_models
    ]
    commits = []
    if subject.revision:
        url = f"{subject.download_url}/tree/{subject.revision}" if subject.hub_repo else None
        commits.append(Commit(uid=subject.revision, url=XsUri(url) if url else None))
    notes = (
        f"Ingested by {subject.actor} at {subject.timestamp.isoformat()}"
        f" from {subject.source or 'a local path'}"
        + (f" at revision {subject.revision}" if subject.revision else "")
    )
    return Pedigree(ancestors=ancestors, commits=commits, notes=notes)


def _split_repo(repo: str) -> tuple[str | None, str]:
    namespace, _, name = repo.rpartition("/")
    return namespace or None, name


def _properties(subject: ModelSubject) -> list[Property]:
    props = {
        "mlgate:ingested-by": subject.actor,
        "mlgate:ingested-at": subject.timestamp.isoformat(),
        "mlgate:source": subject.source,
        "mlgate:revision": subject.revision,
        "mlgate:manifest-algorithm": subject.manifest.algorithm,
        "mlgate:manifest-sha256": subject.manifest_sha256,
    }
    return [Property(name=k, value=v) for k, v in props.items() if v]


def _vulnerability(index: int, finding: Finding) -> Vulnerability:
    source = VulnerabilitySource(name="mlgate")
    return Vulnerability(
        bom_ref=f"finding-{index}",
        id=f"{finding.rule_id}:{finding.location}",
        source=source,
        ratings=[
            VulnerabilityRating(
                source=source,
                severity=_SEVERITY[finding.severity],
                method=VulnerabilityScoreSource.OTHER,
            )
        ],
        description=finding.message,
        detail=finding.evidence or None,
        affects=[BomTarget(ref=MODEL_REF)],
        properties=[
            Property(name="mlgate:rule", value=finding.rule_id),
            Property(name="mlgate:location", value=str(finding.location)),
        ],
    )


def _add_model_card(doc: dict[str, Any], subject: ModelSubject) -> None:
    """Add ``modelCard`` to the model and ``data`` to dataset components (not in the library)."""
    card = subject.card
    params: dict[str, Any] = {}
    if card.task:
        params["task"] = card.task
    if card.model_type:
        params["architectureFamily"] = card.model_type
    if card.architecture:
        params["modelArchitecture"] = card.architecture
    if card.datasets:
        params["datasets"] = [{"ref": f"dataset:{name}"} for name in card.datasets]
    props = [{"name": f"config:{k}", "value": v} for k, v in card.parameters]
    if card.parameter_count is not None:
        props.append({"name": "mlgate:parameter-count", "value": str(card.parameter_count)})
    for key, values in (
        ("library", (card.library,) if card.library else ()),
        ("language", card.languages),
        ("tag", card.tags),
        ("base_model", card.base_models),
    ):
        props += [{"name": f"card:{key}", "value": v} for v in values]
    model_card: dict[str, Any] = {"bom-ref": "model-card"}
    if params:
        model_card["modelParameters"] = params
    if props:
        model_card["properties"] = props
    for component in doc.get("components", []):
        if component.get("bom-ref") == MODEL_REF:
            component["modelCard"] = model_card
        elif component.get("type") == "data":
            component["data"] = [{"type": "dataset", "name": component["name"]}]


def add_dynamic_test(
    doc: dict[str, Any], report: dict[str, Any], min_severity: Severity = Severity.MEDIUM
) -> None:
    """Add a registry version's dynamic test (its files loaded in the sandbox) to its BOM, as
    the static scan is: properties of the model component saying it ran and how it ended, and
    each finding at or above ``min_severity`` as a vulnerability marked ``mlgate:test`` =
    ``dynamic``. Added to the serialised JSON: the stored report is JSON, not findings."""
    summary = {
        "mlgate:dynamic-test": "complete" if report["complete"] else "incomplete",
        "mlgate:dynamic-test-trigger": report["trigger"],
        "mlgate:dynamic-test-findings": str(len(report["findings"])),
    }
    for component in doc.get("components", []):
        if component.get("bom-ref") == MODEL_REF:
            component.setdefault("properties", []).extend(
                {"name": k, "value": v} for k, v in summary.items()
            )
    listed = [f for f in report["findings"] if Severity[f["severity"]] >= min_severity]
    vulnerabilities = doc.setdefault("vulnerabilities", [])
    for i, finding in enumerate(listed, 1):
        vulnerabilities.append(_dynamic_vulnerability(i, finding))
    if not vulnerabilities:
        del doc["vulnerabilities"]


def _dynamic_vulnerability(index: int, finding: dict[str, Any]) -> dict[str, Any]:
    """The JSON :func:`_vulnerability` renders, from a finding of the stored dynamic report."""
    source = {"name": "mlgate"}
    artifact = finding["location"]["artifact"]
    entry: dict[str, Any] = {
        "bom-ref": f"dynamic-finding-{index}",
        "id": f"{finding['rule_id']}:{artifact}",
        "source": source,
        "ratings": [{"source": source, "severity": finding["severity"].lower(), "method": "other"}],
        "description": finding["message"],
        "affects": [{"ref": MODEL_REF}],
        "properties": [
            {"name": "mlgate:rule", "value": finding["rule_id"]},
            {"name": "mlgate:location", "value": artifact},
            {"name": "mlgate:test", "value": "dynamic"},
        ],
    }
    if finding.get("evidence"):
        entry["detail"] = finding["evidence"]
    return entry
