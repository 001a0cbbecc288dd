"""SPDX 3.0.1 JSON-LD of a model with the AI and Dataset profiles, built with spdx-python-model.

The model is an ``ai_AIPackage`` that ``contains`` one ``software_File`` per manifest entry,
is ``trainedOn`` its ``dataset_DatasetPackage`` elements, is a ``descendantOf`` its base
models and ``hasAssociatedVulnerability`` one ``security_Vulnerability`` per scan finding
(SPDX has no generic severity field: the severity is in the vulnerability's summary and
comment). Element ids are IRIs under a fresh ``urn:uuid:`` namespace per document.
"""

from __future__ import annotations

import io
import json
import re
import uuid
from typing import Any

from license_expression import ExpressionError, get_spdx_licensing
from spdx_python_model import v3_0_1 as spdx

from mlgate.bom.subject import ModelSubject, model_purl
from mlgate.findings import Finding
from mlgate.provenance.manifest import FileDigest

_HASH_ALGS = {
    "sha256": spdx.HashAlgorithm.sha256,
    "blake2b": spdx.HashAlgorithm.blake2b512,
    "blake3": spdx.HashAlgorithm.blake3,
}
_PROFILES = ("core", "software", "ai", "dataset", "security", "simpleLicensing")


class _Ids:
    """Element IRIs in one document namespace."""

    def __init__(self) -> None:
        self.base = f"urn:uuid:{uuid.uuid4()}#"
        self.count = 0

    def __call__(self, kind: str) -> str:
        self.count += 1
        return f"{self.base}{kind}-{self.count}"


def render_spdx(subject: ModelSubject) -> dict[str, Any]:
    """The SPDX 3.0.1 document of ``subject`` as a JSON-ready dict."""
    from mlgate import __version__  # noqa: PLC0415  (mlgate/__init__ imports this package)

    ids = _Ids()
    creation = spdx.CreationInfo(specVersion="3.0.1", created=subject.timestamp)
    person = spdx.Person(spdxId=ids("person"), name=subject.actor, creationInfo=creation)
    tool = spdx.Tool(spdxId=ids("tool"), name=f"mlgate {__version__}", creationInfo=creation)
    creation.createdBy = [person]
    creation.createdUsing = [tool]
    elements: list[Any] = [person, tool]

    def relate(src: Any, kind: Any, targets: list[Any]) -> None:
        if targets:
            elements.append(
                spdx.Relationship(
                    spdxId=ids("relationship"),
                    creationInfo=creation,
                    from_=src,
                    relationshipType=kind,
                    to=targets,
                )
            )

    model = _ai_package(subject, ids("model"), creation)
    files = [_file(ids("file"), f, creation) for f in subject.manifest.files]
    datasets = [_dataset(ids("dataset"), name, creation) for name in subject.card.datasets]
    bases = [
        spdx.ai_AIPackage(
            spdxId=ids("base-model"),
            name=base,
            creationInfo=creation,
            software_downloadLocation=f"https://huggingface.co/{base}",
            software_primaryPurpose=spdx.software_SoftwarePurpose.model,
        )
        for base in subject.card.base_models
    ]
    vulns = [_vulnerability(ids("finding"), f, creation) for f in subject.findings]
    elements += [model, *files, *datasets, *bases, *vulns]
    relate(model, spdx.RelationshipType.contains, files)
    relate(model, spdx.RelationshipType.trainedOn, datasets)
    relate(model, spdx.RelationshipType.descendantOf, bases)
    relate(model, spdx.RelationshipType.hasAssociatedVulnerability, vulns)
    if subject.card.license:
        license_ = spdx.simplelicensing_LicenseExpression(
            spdxId=ids("license"),
            creationInfo=creation,
            simplelicensing_licenseExpression=_license(subject.card.license),
        )
        elements.append(license_)
        relate(model, spdx.RelationshipType.hasDeclaredLicense, [license_])

    document = spdx.SpdxDocument(
        spdxId=ids("document"),
        name=f"ML-BOM of {subject.name}",
        creationInfo=creation,
        rootElement=[model],
        element=list(elements),
        profileConformance=[getattr(spdx.ProfileIdentifierType, p) for p in _PROFILES],
    )
    objects = spdx.SHACLObjectSet()
    for obj in [document, *elements]:
        objects.add(obj)
    out = io.BytesIO()
    spdx.JSONLDSerializer().write(objects, out)
    doc: dict[str, Any] = json.loads(out.getvalue())
    return doc


def _ai_package(subject: ModelSubject, spdx_id: str, creation: Any) -> Any:
    card = subject.card
    model = spdx.ai_AIPackage(
        spdxId=spdx_id,
        name=subject.name,
        creationInfo=creation,
        software_primaryPurpose=spdx.software_SoftwarePurpose.model,
        software_downloadLocation=subject.download_url or "NOASSERTION",
        software_packageUrl=model_purl(subject).to_string(),
        software_sourceInfo=(
            f"Ingested by {subject.actor} at {subject.timestamp.isoformat()}"
            f" from {subject.source or 'a local path'}"
            + (f" at revision {subject.revision}" if subject.revision else "")
        ),
        ai_typeOfModel=[t for t in (card.model_type, card.architecture) if t],
        ai_hyperparameter=[spdx.DictionaryEntry(key=k, value=v) for k, v in card.parameters],
    )
    if subject.revision:
        model.software_packageVersion = subject.revision
    if card.task:
        model.ai_domain = [card.task]
        model.ai_informationAboutApplication = f"Task: {card.task}"
    if card.parameter_count is not None:
        model.summary = f"{card.parameter_count} parameters (from safetensors headers)"
    if card.datasets:
        model.ai_informationAboutTraining = "Datasets: " + ", ".join(card.datasets)
    if len(subject.manifest.files) == 1 and subject.path.is_file():
        digest = subject.manifest.files[0]
        model.verifiedUsing = [
            spdx.Hash(algorithm=_HASH_ALGS[digest.algorithm], hashValue=digest.digest)
        ]
    if subject.signature:
        model.externalRef = [
            spdx.ExternalRef(
                externalRefType=spdx.ExternalRefType.other,
                locator=[subject.signature.reference],
                comment=(
                    "OpenSSF Model Signing signature, relative to the model;"
                    f" sha256 {subject.signature.sha256}"
                ),
            )
        ]
    return model


def _file(spdx_id: str, digest: FileDigest, creation: Any) -> Any:
    return spdx.software_File(
        spdxId=spdx_id,
        name=digest.path,
        creationInfo=creation,
        verifiedUsing=[spdx.Hash(algorithm=_HASH_ALGS[digest.algorithm], hashValue=digest.digest)],
    )


def _dataset(spdx_id: str, name: str, creation: Any) -> Any:
    return spdx.dataset_DatasetPackage(
        spdxId=spdx_id,
        name=name,
        creationInfo=creation,
        # Model cards name datasets by Hugging Face Hub id; their type is not stated there.
        software_downloadLocation=f"https://huggingface.co/datasets/{name}",
        software_primaryPurpose=spdx.software_SoftwarePurpose.data,
        dataset_datasetType=[spdx.dataset_DatasetType.noAssertion],
    )


def _vulnerability(spdx_id: str, finding: Finding, creation: Any) -> Any:
    severity = finding.severity.name
    return spdx.security_Vulnerability(
        spdxId=spdx_id,
        name=f"{finding.rule_id}:{finding.location}",
        creationInfo=creation,
        summary=f"{severity}: {finding.message}",
        description=finding.message,
        comment=f"severity {severity}"
        + (f"; evidence: {finding.evidence}" if finding.evidence else ""),
        externalIdentifier=[
            spdx.ExternalIdentifier(
                externalIdentifierType=spdx.ExternalIdentifierType.securityOther,
                identifier=f"{finding.rule_id}:{finding.location}",
                issuingAuthority="mlgate",
            )
        ],
    )


def _license(text: str) -> str:
    """An SPDX license expression; names outside the SPDX list become ``LicenseRef-...``."""
    licensing = get_spdx_licensing()
    try:
        parsed = licensing.parse(text)
    except ExpressionError:  # malformed text falls back to a LicenseRef
        parsed = None
    if parsed is not None and not licensing.unknown_license_keys(parsed):
        return str(parsed.render())
    return "LicenseRef-" + (re.sub(r"[^A-Za-z0-9.-]+", "-", text).strip("-") or "unknown")
