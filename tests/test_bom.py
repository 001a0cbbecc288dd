"""ML-BOM: CycloneDX 1.6/1.7 (strict schema) and SPDX 3.0.1 (JSON schema + SHACL), offline."""

from __future__ import annotations

import copy
import hashlib
import json
import time
from functools import cache
from pathlib import Path
from typing import Any

import payloads
import pytest
from click.testing import CliRunner
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator
from factories import write
from registry_models import release, write_benign
from registry_support import as_user

import mlgate
from mlgate import Config, Severity
from mlgate.bom import build_cyclonedx, build_spdx
from mlgate.bom.model_card import read_front_matter, read_model_card
from mlgate.cli import cli
from mlgate.errors import UnreadableInputError

SPDX_DATA = Path(__file__).parent / "data" / "spdx-3.0.1"
CARD = """---
license: apache-2.0
pipeline_tag: fill-mask
language: en
datasets:
  - wikipedia
  - bookcorpus
base_model: google-bert/bert-base-uncased
tags: [tiny]
---
# Tiny BERT

A model card.
"""
COMMIT = "0123456789ABCDEF0123456789abcdef01234567"


@pytest.fixture(scope="module")
def hf_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real (tiny) Hugging Face folder written by transformers, with a model card."""
    from transformers import BertConfig, BertModel

    folder = tmp_path_factory.mktemp("hf") / "tiny-bert"
    config = BertConfig(
        vocab_size=64,
        hidden_size=8,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=16,
        max_position_embeddings=32,
    )
    BertModel(config).save_pretrained(folder)
    (folder / "README.md").write_text(CARD, encoding="utf-8")
    return folder


@pytest.fixture
def evil_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "evil-model"
    write(folder / "pytorch_model.bin", payloads.os_system("bom"))
    return folder


def cdx(path: Path, version: str = "1.6", **kwargs: Any) -> dict[str, Any]:
    """Build a CycloneDX BOM and check it against the library's strict JSON schema."""
    doc = build_cyclonedx(path, version=version, config=Config(), **kwargs)
    schema = {"1.6": SchemaVersion.V1_6, "1.7": SchemaVersion.V1_7}[version]
    error = JsonStrictValidator(schema).validate_str(json.dumps(doc))
    assert error is None, str(error)
    assert doc["specVersion"] == version
    return doc


@cache
def _spdx_model() -> Any:
    import rdflib

    return rdflib.Graph().parse(SPDX_DATA / "spdx-model.ttl", format="turtle")


def assert_valid_spdx(doc: dict[str, Any]) -> None:
    """The official SPDX 3.0.1 JSON schema and SHACL model (recipe in tests/data/README.md)."""
    import jsonschema
    import pyshacl
    import rdflib

    schema = json.loads((SPDX_DATA / "spdx-json-schema.json").read_text(encoding="utf-8"))
    errors = [e.message for e in jsonschema.Draft202012Validator(schema).iter_errors(doc)]
    assert not errors, errors[:5]
    context = json.loads((SPDX_DATA / "spdx-context.jsonld").read_text(encoding="utf-8"))
    local = copy.deepcopy(doc)
    local["@context"] = context["@context"]  # inline, so nothing is fetched
    data = rdflib.Graph().parse(data=json.dumps(local), format="json-ld")
    model = _spdx_model()
    conforms, _, report = pyshacl.validate(
        data, shacl_graph=model, ont_graph=model, inference="none", advanced=True
    )
    assert conforms, report


def model_component(doc: dict[str, Any]) -> dict[str, Any]:
    return next(c for c in doc["components"] if c["bom-ref"] == "model")


def elements(doc: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [e for e in doc["@graph"] if e.get("type") == kind]


# CycloneDX


@pytest.mark.parametrize("version", ["1.6", "1.7"])
def test_cyclonedx_hf_folder(hf_folder: Path, version: str) -> None:
    doc = cdx(hf_folder, version, actor="alice")
    model = model_component(doc)
    assert model["type"] == "machine-learning-model"
    assert model["name"] == "tiny-bert"
    assert model["purl"].startswith("pkg:generic/tiny-bert?checksum=sha256:")
    files = {c["name"]: c for c in model["components"]}
    assert set(files) == {"README.md", "config.json", "model.safetensors"}
    digest = hashlib.sha256((hf_folder / "config.json").read_bytes()).hexdigest()
    assert files["config.json"]["hashes"] == [{"alg": "SHA-256", "content": digest}]
    params = model["modelCard"]["modelParameters"]
    assert params["task"] == "fill-mask"
    assert params["architectureFamily"] == "bert"
    assert params["modelArchitecture"] == "BertModel"
    assert params["datasets"] == [{"ref": "dataset:wikipedia"}, {"ref": "dataset:bookcorpus"}]
    props = {p["name"]: p["value"] for p in model["modelCard"]["properties"]}
    assert props["config:hidden_size"] == "8"
    assert props["card:base_model"] == "google-bert/bert-base-uncased"
    from safetensors import safe_open

    with safe_open(hf_folder / "model.safetensors", framework="np") as f:
        expected = sum(f.get_tensor(k).size for k in f.keys())  # noqa: SIM118
    assert props["mlgate:parameter-count"] == str(expected)
    assert model["licenses"] == [{"license": {"id": "Apache-2.0"}}]
    data = [c for c in doc["components"] if c["type"] == "data"]
    assert {c["name"] for c in data} == {"wikipedia", "bookcorpus"}
    assert all(c["data"][0]["type"] == "dataset" for c in data)
    ancestors = model["pedigree"]["ancestors"]
    assert ancestors[0]["purl"] == "pkg:huggingface/google-bert/bert-base-uncased"
    assert doc["metadata"]["authors"] == [{"name": "alice"}]
    assert {p["name"]: p["value"] for p in model["properties"]}["mlgate:ingested-by"] == "alice"
    deps = {d["ref"]: d.get("dependsOn", []) for d in doc["dependencies"]}
    assert sorted(deps["model"]) == ["dataset:bookcorpus", "dataset:wikipedia"]
    assert "vulnerabilities" not in doc  # a clean model: nothing at MEDIUM or above


def test_cyclonedx_hub_purl_and_provenance(hf_folder: Path) -> None:
    doc = cdx(hf_folder, source="huggingface", name="acme/tiny-bert", revision=COMMIT)
    model = model_component(doc)
    assert model["purl"] == f"pkg:huggingface/acme/tiny-bert@{COMMIT.lower()}"
    assert (model["group"], model["name"], model["version"]) == ("acme", "tiny-bert", COMMIT)
    assert model["pedigree"]["commits"] == [
        {"uid": COMMIT, "url": f"https://huggingface.co/acme/tiny-bert/tree/{COMMIT}"}
    ]
    refs = {r["type"]: r["url"] for r in model["externalReferences"]}
    assert refs["distribution"] == "https://huggingface.co/acme/tiny-bert"


def test_cyclonedx_hub_url_source(hf_folder: Path) -> None:
    doc = cdx(hf_folder, source=f"https://huggingface.co/acme/tiny-bert/tree/{COMMIT}")
    assert model_component(doc)["purl"] == f"pkg:huggingface/acme/tiny-bert@{COMMIT.lower()}"


def test_cyclonedx_malicious_pickle_findings_are_vulnerabilities(evil_folder: Path) -> None:
    doc = cdx(evil_folder)
    vulns = doc["vulnerabilities"]
    assert vulns
    for v in vulns:
        assert v["affects"] == [{"ref": "model"}]
        assert v["source"] == {"name": "mlgate"}
        assert v["ratings"][0]["severity"] in {"medium", "high", "critical"}
        assert v["id"].startswith("MLG") and ":pytorch_model.bin" in v["id"]  # relative path
        assert v["description"]
    assert any(v["ratings"][0]["severity"] == "critical" for v in vulns) or any(
        v["ratings"][0]["severity"] == "high" for v in vulns
    )


def test_cyclonedx_min_severity_info_lists_everything(hf_folder: Path) -> None:
    report = mlgate.scan(hf_folder, config=Config())
    doc = cdx(hf_folder, "1.7", min_severity=Severity.INFO)
    assert len(doc.get("vulnerabilities", [])) == len(report.findings)


def test_cyclonedx_single_file_with_signature(evil_folder: Path) -> None:
    model_file = evil_folder / "pytorch_model.bin"
    sig = write(evil_folder / "pytorch_model.bin.sig", b'{"mediaType": "bundle"}')
    doc = cdx(model_file)
    model = model_component(doc)
    digest = hashlib.sha256(model_file.read_bytes()).hexdigest()
    assert model["hashes"] == [{"alg": "SHA-256", "content": digest}]
    assert "components" not in model
    (ref,) = [r for r in model["externalReferences"] if r["type"] == "digital-signature"]
    assert ref["url"] == "pytorch_model.bin.sig"
    assert ref["hashes"][0]["content"] == hashlib.sha256(sig.read_bytes()).hexdigest()
    assert "modelCard" in model  # present even with no metadata (just its bom-ref)


def test_cyclonedx_folder_signature_reference(hf_folder: Path, tmp_path: Path) -> None:
    import shutil

    folder = shutil.copytree(hf_folder, tmp_path / "signed")
    write(folder / "model.sig", b"{}")
    model = model_component(cdx(folder))
    refs = [r for r in model["externalReferences"] if r["type"] == "digital-signature"]
    assert [r["url"] for r in refs] == ["model.sig"]
    assert "model.sig" not in {c["name"] for c in model["components"]}  # not in the manifest


def test_pulled_folder_references_the_registry_signature_not_the_vendors(
    registry, tmp_path: Path
) -> None:
    # pull writes the registry's signature as mlgate.sig; the vendor's model.sig is content.
    vendor = write(write_benign(tmp_path / "vendor") / "model.sig", b'{"vendor": "bundle"}')
    release(registry, vendor.parent, "org/m")
    pulled = tmp_path / "pulled"
    as_user(registry, "rob").pull("org/m@1", pulled)
    model = model_component(cdx(pulled))
    (ref,) = [r for r in model["externalReferences"] if r["type"] == "digital-signature"]
    assert ref["url"] == "mlgate.sig"
    sig = (pulled / "mlgate.sig").read_bytes()
    assert ref["hashes"][0]["content"] == hashlib.sha256(sig).hexdigest()
    assert "model.sig" in {c["name"] for c in model["components"]}  # the vendor's, as content
    assert "mlgate.sig" not in {c["name"] for c in model["components"]}


def test_cyclonedx_rejects_unknown_version(hf_folder: Path) -> None:
    with pytest.raises(ValueError, match=r"1\.6 or 1\.7"):
        build_cyclonedx(hf_folder, version="1.4", config=Config())


# SPDX


def test_spdx_hf_folder_valid(hf_folder: Path) -> None:
    doc = build_spdx(
        hf_folder, source="huggingface", name="acme/tiny-bert", revision=COMMIT, config=Config()
    )
    assert_valid_spdx(doc)
    (ai,) = [e for e in elements(doc, "ai_AIPackage") if e["name"] == "acme/tiny-bert"]
    assert ai["software_packageUrl"] == f"pkg:huggingface/acme/tiny-bert@{COMMIT.lower()}"
    assert ai["software_packageVersion"] == COMMIT
    assert ai["ai_typeOfModel"] == ["bert", "BertModel"]
    datasets = elements(doc, "dataset_DatasetPackage")
    assert {d["name"] for d in datasets} == {"wikipedia", "bookcorpus"}
    kinds = {r["relationshipType"]: r for r in elements(doc, "Relationship")}
    assert set(kinds["trainedOn"]["to"]) == {d["spdxId"] for d in datasets}
    assert kinds["trainedOn"]["from"] == ai["spdxId"]
    assert len(kinds["contains"]["to"]) == 3
    (lic,) = elements(doc, "simplelicensing_LicenseExpression")
    assert lic["simplelicensing_licenseExpression"] == "Apache-2.0"


def test_spdx_malicious_pickle_vulnerabilities_valid(evil_folder: Path) -> None:
    write(evil_folder / "model.sig", b"{}")
    doc = build_spdx(evil_folder, config=Config())
    assert_valid_spdx(doc)
    vulns = elements(doc, "security_Vulnerability")
    assert vulns
    (rel,) = [
        r
        for r in elements(doc, "Relationship")
        if r["relationshipType"] == "hasAssociatedVulnerability"
    ]
    assert set(rel["to"]) == {v["spdxId"] for v in vulns}
    (ai,) = elements(doc, "ai_AIPackage")
    assert ai["externalRef"][0]["locator"] == ["model.sig"]


def test_spdx_single_file_valid(evil_folder: Path) -> None:
    doc = build_spdx(evil_folder / "pytorch_model.bin", config=Config())
    assert_valid_spdx(doc)
    (ai,) = elements(doc, "ai_AIPackage")
    assert ai["verifiedUsing"][0]["algorithm"] == "sha256"


def test_spdx_validation_rejects_a_broken_document(evil_folder: Path) -> None:
    doc = build_spdx(evil_folder, config=Config())
    (ai,) = [e for e in doc["@graph"] if e.get("type") == "ai_AIPackage"]
    ai["ai_bogus"] = "x"
    with pytest.raises(AssertionError):
        assert_valid_spdx(doc)


# Model card parsing and CLI


def test_front_matter_is_bounded_and_safe(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text("---\n!!python/object/apply:os.system ['echo hi']\n---\n")
    assert read_front_matter(readme) == {}
    readme.write_text("---\nlicense: mit\n")  # never closed
    assert read_front_matter(readme) == {}
    readme.write_bytes(b"---\nlicense: mit\n---\n" + b"x" * (2 << 20))
    assert read_front_matter(readme) == {}  # over the size cap
    (tmp_path / "config.json").write_text("[1, 2]")
    assert read_model_card(tmp_path).architecture is None


@pytest.mark.parametrize(
    "nesting",
    ["[" * 20_000 + "]" * 20_000, '[ "]" ' * 10_000, "\n" + "- " * 20_000 + "x"],
    ids=["brackets", "quoted-closers", "block-sequences"],
)
def test_deeply_nested_front_matter_ends_fast_with_an_error(tmp_path: Path, nesting: str) -> None:
    # PyYAML's time grows with the square of the nesting: 20,000 brackets took minutes.
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text('{"model_type": "bert"}')
    (folder / "README.md").write_text(f"---\nlicense: mit\ntags: {nesting}\n---\n")
    start = time.monotonic()
    with pytest.raises(UnreadableInputError, match=r"nested too deeply \(more than 32 levels\)"):
        build_cyclonedx(folder)
    assert time.monotonic() - start < 2


def test_cli_bom(hf_folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "bom.json"
    runner = CliRunner()
    result = runner.invoke(
        cli, ["bom", str(hf_folder), "-o", str(out), "--cyclonedx-version", "1.7", "--actor", "bob"]
    )
    assert result.exit_code == 0, result.output
    doc = json.loads(out.read_text())
    assert doc["specVersion"] == "1.7"
    assert JsonStrictValidator(SchemaVersion.V1_7).validate_str(out.read_text()) is None
    result = runner.invoke(cli, ["bom", str(hf_folder), "--spdx"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["@context"] == "https://spdx.org/rdf/3.0.1/spdx-context.jsonld"


def test_public_api_export(hf_folder: Path) -> None:
    assert "bom" in mlgate.__all__
    assert mlgate.bom(hf_folder, config=Config())["bomFormat"] == "CycloneDX"


def test_config_only_folder_with_custom_license(tmp_path: Path) -> None:
    folder = tmp_path / "t5ish"
    write(
        folder / "config.json",
        json.dumps(
            {
                "architectures": ["T5ForConditionalGeneration"],
                "model_type": "t5",
                "d_model": 16,
                "task_specific_params": {"summarization": {"max_length": 20}},
            }
        ).encode(),
    )
    write(folder / "README.md", b"---\nlicense: llama2\ndatasets: c4\n---\n")
    doc = cdx(folder, "1.7")
    model = model_component(doc)
    assert model["modelCard"]["modelParameters"]["task"] == "summarization"
    assert model["licenses"] == [{"license": {"name": "llama2"}}]
    spdx_doc = build_spdx(folder, config=Config())
    assert_valid_spdx(spdx_doc)
    (lic,) = elements(spdx_doc, "simplelicensing_LicenseExpression")
    assert lic["simplelicensing_licenseExpression"] == "LicenseRef-llama2"


def test_symlinks_refused_unless_allowed(evil_folder: Path) -> None:
    (evil_folder / "alias.bin").symlink_to("pytorch_model.bin")
    result = CliRunner().invoke(cli, ["bom", str(evil_folder)])
    assert result.exit_code != 0
    model = model_component(cdx(evil_folder, allow_symlinks=True))
    assert {c["name"] for c in model["components"]} == {"alias.bin", "pytorch_model.bin"}
