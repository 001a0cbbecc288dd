"""The validating admission webhook (issue 12) over real HTTPS: AdmissionReview v1 bodies
shaped as the API server sends them, POSTed to a running uvicorn on 127.0.0.1 with a
certificate made here (the client verifies it against the test CA), over a real registry
with models in every relevant state. The audit log is read back for every decision."""

from __future__ import annotations

import datetime as dt
import http.client
import ipaddress
import json
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from pki_factory import CA, make_cert
from registry_models import release, write_benign
from registry_support import as_user

from mlgate.cli import main
from mlgate.hub.commits import commit_id
from mlgate.webhook.policy import Policy, load_policy
from mlgate.webhook.server import WebhookSettings, create_app, https_config

HUB = "https://hub.internal:8443"
POLICY = f"""
default:
  mode: enforce
  hub: {HUB}
namespaces:
  prod: {{require_pinned: true}}
  research: {{mode: warn}}
  quiet: {{mode: audit}}
  storage: {{allow_schemes: [s3]}}
"""


@pytest.fixture
def registry_url() -> None:
    """SQLite for this module; one test runs on PostgreSQL explicitly."""
    return None


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A test CA and a server certificate for 127.0.0.1 signed by it."""
    root = tmp_path_factory.mktemp("tls")
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = make_cert("Webhook Test CA", ca_key, None, CA)
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mlgate-webhook")]))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    paths = {"ca": root / "ca.pem", "cert": root / "cert.pem", "key": root / "key.pem"}
    paths["ca"].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths["cert"].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths["key"].write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return paths


class Webhook:
    """A running webhook at ``url`` over ``registry`` (acting as alice)."""

    def __init__(self, url: str, registry: Any, ca: Path, tmp: Path) -> None:
        self.url = url
        self.registry = registry
        self.context = ssl.create_default_context(cafile=str(ca))
        self.tmp = tmp

    def post(self, body: bytes) -> tuple[int, dict[str, Any]]:
        request = urllib.request.Request(
            f"{self.url}/validate", body, {"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, context=self.context, timeout=10) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"{}")

    def announce(self, length: int) -> int:
        """The status answering a POST that announces a ``length``-byte body, sending none:
        an oversized object is refused before the webhook reads it."""
        host, port = self.url.removeprefix("https://").split(":")
        conn = http.client.HTTPSConnection(host, int(port), context=self.context, timeout=10)
        try:
            conn.putrequest("POST", "/validate")
            conn.putheader("Content-Type", "application/json")
            conn.putheader("Content-Length", str(length))
            conn.endheaders()
            return conn.getresponse().status
        finally:
            conn.close()

    def review(self, obj: dict[str, Any], **fields: Any) -> dict[str, Any]:
        """The response to an AdmissionReview of ``obj``; its uid is checked."""
        request = admission_request(obj, **fields)
        status, body = self.post(json.dumps(review_of(request)).encode())
        assert status == 200, body
        assert body["apiVersion"] == "admission.k8s.io/v1"
        assert body["kind"] == "AdmissionReview"
        assert body["response"]["uid"] == request["uid"]
        response: dict[str, Any] = body["response"]
        return response

    def publish(self, name: str, seed: int = 0, alias: str | None = None) -> Any:
        folder = write_benign(self.tmp / "models" / f"{name.replace('/', '_')}-{seed}", seed)
        return release(self.registry, folder, name, alias)

    def admissions(self) -> list[dict[str, Any]]:
        lines = [json.loads(line) for line in self.registry.auditing.export()]
        return [e for e in lines if e.get("action") == "admission"]


@contextmanager
def serving(registry: Any, tls: dict[str, Path], tmp: Path, policy: Policy) -> Iterator[Webhook]:
    """The webhook's own TLS configuration, served on a random port in a thread."""
    url = (
        None
        if registry.engine.url.get_backend_name() == "sqlite"
        else (registry.engine.url.render_as_string(hide_password=False))
    )
    app = create_app(WebhookSettings(registry.data_dir, url, policy))
    config = https_config(app, tls["cert"], tls["key"], log_level="warning")
    config.host, config.port = "127.0.0.1", 0
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "the webhook did not start"
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield Webhook(f"https://127.0.0.1:{port}", registry, tls["ca"], tmp)
    finally:
        server.should_exit = True
        thread.join(10)


@pytest.fixture
def webhook(registry: Any, tls: dict[str, Path], tmp_path: Path) -> Iterator[Webhook]:
    registry.add_user("mlgate-webhook", "reader")
    policy_file = tmp_path / "policy.yaml"
    policy_file.write_text(POLICY)
    with serving(registry, tls, tmp_path, load_policy(policy_file)) as hook:
        yield hook


def admission_request(
    obj: dict[str, Any] | None,
    *,
    operation: str = "CREATE",
    namespace: str = "default",
    old: dict[str, Any] | None = None,
    dry_run: bool = False,
    sub_resource: str | None = None,
) -> dict[str, Any]:
    """``request`` as the API server sends it."""
    kind = (obj or old or {}).get("kind", "Pod")
    group, _, version = (obj or old or {}).get("apiVersion", "v1").rpartition("/")
    request: dict[str, Any] = {
        "uid": str(uuid.uuid4()),
        "kind": {"group": group, "version": version, "kind": kind},
        "resource": {"group": group, "version": version, "resource": kind.lower() + "s"},
        "requestKind": {"group": group, "version": version, "kind": kind},
        "name": (obj or old or {}).get("metadata", {}).get("name", ""),
        "namespace": namespace,
        "operation": operation,
        "userInfo": {"username": "dev@example.com", "groups": ["system:authenticated"]},
        "object": obj,
        "oldObject": old,
        "dryRun": dry_run,
        "options": {"apiVersion": "meta.k8s.io/v1", "kind": f"{operation.title()}Options"},
    }
    if sub_resource:
        request["subResource"] = sub_resource
    return request


def review_of(request: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request}


def container(model: str | None = None, endpoint: str | None = HUB, **env: str) -> dict[str, Any]:
    """A vLLM-style serving container: ``--model X`` and HF_ENDPOINT (the hub by default)."""
    variables = {"HF_ENDPOINT": endpoint, **env} if endpoint else dict(env)
    return {
        "name": "server",
        "image": "vllm/vllm-openai:v0.6.0",
        "args": ["--model", model] if model else ["--port", "8000"],
        "env": [{"name": k, "value": v} for k, v in variables.items()],
    }


def pod(*containers: dict[str, Any], labels: dict[str, str] | None = None, **notes: str) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "llm", "labels": labels or {}, "annotations": notes},
        "spec": {"containers": list(containers)},
    }


def deployment(*containers: dict[str, Any], replicas: int = 1) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "llm"},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "llm"}},
            "template": {
                "metadata": {"labels": {"app": "llm"}},
                "spec": {"containers": list(containers)},
            },
        },
    }


def cronjob(*containers: dict[str, Any]) -> dict[str, Any]:
    template = {"spec": {"containers": list(containers), "restartPolicy": "Never"}}
    return {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {"name": "nightly-eval"},
        "spec": {"schedule": "0 3 * * *", "jobTemplate": {"spec": {"template": template}}},
    }


def inference_service(uri: str, endpoint: str | None = HUB) -> dict[str, Any]:
    env = [{"name": "HF_ENDPOINT", "value": endpoint}] if endpoint else []
    return {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {"name": "llm"},
        "spec": {
            "predictor": {
                "minReplicas": 1,
                "model": {
                    "modelFormat": {"name": "huggingface"},
                    "storageUri": uri,
                    "env": env,
                    "resources": {"limits": {"cpu": "1"}},
                },
            }
        },
    }


def test_pinned_published_model_is_allowed_and_audited(webhook: Webhook) -> None:
    version = webhook.publish("org/llm")
    commit = commit_id(version)
    response = webhook.review(pod(container(f"hf://org/llm@{commit}")))
    assert response == {"uid": response["uid"], "allowed": True}
    [entry] = webhook.admissions()
    assert entry["actor"] == "mlgate-webhook"
    assert entry["subject"] == "Pod/default/llm"
    assert entry["details"]["allowed"] is True
    assert entry["details"]["user"] == "dev@example.com"
    refs = {r["where"]: r for r in entry["details"]["references"]}
    args = refs["spec.containers[server].args"]
    assert (args["outcome"], args["resolved"]) == ("allow", f"org/llm@1 (commit {commit})")
    assert refs["spec.containers[server].env[HF_ENDPOINT]"]["outcome"] == "allow"


def test_floating_reference_warns_or_is_refused_where_pins_are_required(
    webhook: Webhook,
) -> None:
    commit = commit_id(webhook.publish("org/llm"))
    manifest = deployment(container(None, MODEL_ID="org/llm"))
    response = webhook.review(manifest)
    assert response["allowed"] is True
    [warning] = response["warnings"]
    assert f"floats (main); it names org/llm@1 (commit {commit}) today" in warning
    assert f"pin it: hf://org/llm@{commit}" in warning
    denied = webhook.review(manifest, namespace="prod")
    assert denied["allowed"] is False
    assert denied["status"]["code"] == 403
    assert "spec.template.spec.containers[server].env[MODEL_ID]" in denied["status"]["message"]


def test_version_revoked_after_deploy_is_denied_on_update(webhook: Webhook) -> None:
    version = webhook.publish("org/llm")
    manifest = deployment(container(f"org/llm@{commit_id(version)}"))
    assert webhook.review(manifest)["allowed"] is True
    webhook.registry.revoke(version.ref, "CVE-2026-0001: backdoored tokenizer")
    scaled = deployment(container(f"org/llm@{commit_id(version)}"), replicas=3)
    denied = webhook.review(scaled, operation="UPDATE", old=manifest)
    assert denied["allowed"] is False
    message = denied["status"]["message"]
    assert "org/llm@1 was revoked by alice: CVE-2026-0001: backdoored tokenizer" in message
    assert "mlgate models show org/llm" in message
    assert [e["details"]["allowed"] for e in webhook.admissions()] == [True, False]


def test_rejected_quarantined_and_unknown_models_are_denied(webhook: Webhook) -> None:
    pat = as_user(webhook.registry, "pat")
    folder = write_benign(webhook.tmp / "bad", 7)
    scanned = pat.ingest(folder, name="org/bad")
    as_user(webhook.registry, "rita").reject(scanned.ref, "license forbids serving")
    pat.ingest(write_benign(webhook.tmp / "new", 8), name="org/new", scan=False)
    job = cronjob(container("org/bad"), container("hf://org/new"), container("org/ghost"))
    denied = webhook.review(job)
    assert denied["allowed"] is False
    message = denied["status"]["message"]
    assert "org/bad@1 was rejected by rita: license forbids serving" in message
    assert "org/new@1 is quarantined" in message
    assert "no model 'org/ghost' on this hub" in message
    assert "mlgate ingest hf://org/ghost" in message


def test_alias_moved_by_rollback_is_resolved_again(webhook: Webhook) -> None:
    webhook.publish("org/llm", 0, alias="production")
    second = webhook.publish("org/llm", 1, alias="production")
    isvc = inference_service("hf://org/llm@production")
    [warning] = webhook.review(isvc)["warnings"]
    assert f"names org/llm@2 (commit {commit_id(second)}) today" in warning
    webhook.registry.rollback("org/llm", "production")
    [warning] = webhook.review(isvc)["warnings"]
    assert "names org/llm@1 " in warning
    assert webhook.review(isvc, namespace="prod")["allowed"] is False


def test_shadow_models_and_foreign_endpoints_are_denied(webhook: Webhook) -> None:
    webhook.publish("org/llm")
    cases = {
        "shadow model: meta/llama would be fetched": pod(container("meta/llama", None)),
        "shadow model: org/llm would be fetched": pod(container("hf://org/llm", None)),
        "shadow model: org/x would": inference_service("https://huggingface.co/org/x", None),
        "points Hugging Face clients away from the private hub: set HF_ENDPOINT=https://hub": (
            pod(container("org/llm", "https://hub.internal.attacker.example"))
        ),
    }
    for expected, manifest in cases.items():
        denied = webhook.review(manifest)
        assert denied["allowed"] is False, expected
        assert expected in denied["status"]["message"]


def test_other_storage_needs_the_policy(webhook: Webhook) -> None:
    isvc = inference_service("s3://models/llm")
    denied = webhook.review(isvc)
    assert "is s3 storage, which mlgate cannot check" in denied["status"]["message"]
    allowed = webhook.review(isvc, namespace="storage")
    assert (allowed["allowed"], allowed.get("warnings")) == (True, None)


def test_warn_and_audit_modes_allow_but_record_the_denial(webhook: Webhook) -> None:
    manifest = pod(container("meta/llama", None))
    warned = webhook.review(manifest, namespace="research")
    assert warned["allowed"] is True
    assert warned["warnings"][0].startswith("mlgate would deny it: spec.containers[server]")
    quiet = webhook.review(manifest, namespace="quiet")
    assert quiet["allowed"] is True
    assert "warnings" not in quiet
    modes = [(e["details"]["mode"], e["details"]["message"]) for e in webhook.admissions()]
    assert [m for m, _ in modes] == ["warn", "audit"]
    assert all("shadow model" in message for _, message in modes)


def test_dry_run_is_decided_but_not_audited(webhook: Webhook) -> None:
    denied = webhook.review(pod(container("meta/llama", None)), dry_run=True)
    assert denied["allowed"] is False
    assert webhook.admissions() == []


def test_exemption_needs_a_reason_and_is_audited(webhook: Webhook) -> None:
    label = {"mlgate.io/exempt": "true"}
    bare = pod(container("meta/llama", None), labels=label)
    assert (
        "needs the annotation mlgate.io/exempt-reason"
        in (webhook.review(bare)["status"]["message"])
    )
    reason = "INC-42: vendor hotfix, approved by security"
    exempt = pod(container("meta/llama", None), labels=label, **{"mlgate.io/exempt-reason": reason})
    response = webhook.review(exempt)
    assert response["allowed"] is True
    assert response["warnings"] == [f"exempt from mlgate: {reason}"]
    assert webhook.admissions()[-1]["details"]["exemption"] == reason


def test_malformed_and_hostile_requests_never_allow(webhook: Webhook) -> None:
    good = review_of(admission_request(pod(container("meta/llama", None))))
    for body in (
        b"{not json",
        b"[]",
        json.dumps({**good, "kind": "Pod"}).encode(),
        json.dumps({**good, "apiVersion": "admission.k8s.io/v1beta1"}).encode(),
        json.dumps({**good, "request": {**good["request"], "uid": ""}}).encode(),
        json.dumps({**good, "request": {**good["request"], "operation": "PATCH"}}).encode(),
        b"[" * 100_000 + b"]" * 100_000,
    ):
        status, answer = webhook.post(body)
        assert status == 400, body[:80]
        assert "response" not in answer
    assert webhook.announce(4 * 1024 * 1024) == 413
    config_map = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}}
    assert "not understood" in webhook.review(config_map)["status"]["message"]
    crowded = pod(*[container(f"org/m{i}") for i in range(70)])
    assert "more than 64 model references" in webhook.review(crowded)["status"]["message"]
    secret = pod(container(None, HUB) | {"env": [{"name": "MODEL_ID", "valueFrom": {}}]})
    assert "ConfigMap or Secret" in webhook.review(secret)["status"]["message"]
    crlf = webhook.review(pod(container("evil\r\nX-Injected: 1", None)))
    assert "\r" not in crlf["status"]["message"] and "\\r\\n" in crlf["status"]["message"]


def test_delete_and_status_updates_are_allowed(webhook: Webhook) -> None:
    manifest = pod(container("meta/llama", None))
    assert webhook.review(None, operation="DELETE", old=manifest)["allowed"] is True
    status = webhook.review(manifest, operation="UPDATE", old=manifest, sub_resource="status")
    assert status["allowed"] is True
    ephemeral = webhook.review(
        manifest, operation="UPDATE", old=manifest, sub_resource="ephemeralcontainers"
    )
    assert ephemeral["allowed"] is False


def test_on_postgresql(postgres_url: str, tls: dict[str, Path], tmp_path: Path) -> None:
    from mlgate.registry import init_registry

    registry = init_registry(tmp_path / "pg", postgres_url, admin="alice")
    for user, role in (("pat", "publisher"), ("rita", "reviewer"), ("mlgate-webhook", "reader")):
        registry.add_user(user, role)
    policy = Policy.model_validate({"default": {"hub": HUB}})
    try:
        with serving(registry, tls, tmp_path, policy) as hook:
            version = hook.publish("org/llm")
            pinned = container(f"hf://org/llm@{commit_id(version)}")
            assert hook.review(deployment(pinned))["allowed"] is True
            registry.revoke(version.ref, "withdrawn")
            assert hook.review(deployment(pinned))["allowed"] is False
            assert [e["details"]["allowed"] for e in hook.admissions()] == [True, False]
    finally:
        registry.engine.dispose()


def test_cli_refuses_to_start_without_the_webhook_user(
    registry: Any, tls: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["webhook", "--tls-cert", str(tls["cert"]), "--tls-key", str(tls["key"])]
    code = main([*args, "--data-dir", str(registry.data_dir)])
    assert code == 2
    assert "mlgate registry user mlgate-webhook --role reader" in capsys.readouterr().err


def test_cli_serves_https(registry: Any, tls: dict[str, Path], tmp_path: Path) -> None:
    """``mlgate webhook`` in its own process: TLS from the given PEM files, the policy file."""
    registry.add_user("mlgate-webhook", "reader")
    policy_file = tmp_path / "policy.yaml"
    policy_file.write_text(POLICY)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [sys.executable, "-m", "mlgate", "webhook", "--port", str(port)]
    command += ["--tls-cert", str(tls["cert"]), "--tls-key", str(tls["key"])]
    command += ["--policy", str(policy_file), "--data-dir", str(registry.data_dir)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        hook = Webhook(f"https://127.0.0.1:{port}", registry, tls["ca"], tmp_path)
        deadline = time.monotonic() + 20
        while True:
            try:
                response = hook.review(pod(container("meta/llama", None)), namespace="research")
                break
            except urllib.error.URLError:
                assert process.poll() is None and time.monotonic() < deadline, "did not start"
                time.sleep(0.1)
        assert response["allowed"] is True
        assert "shadow model" in response["warnings"][0]
    finally:
        process.terminate()
        process.wait(10)


def test_health_route_answers_without_a_review(webhook: Webhook) -> None:
    """``GET /healthz``: the Deployment's probes (deploy/kubernetes/deployment.yaml)."""
    with urllib.request.urlopen(f"{webhook.url}/healthz", context=webhook.context) as r:
        assert (r.status, json.loads(r.read())) == (200, {"status": "ok"})
