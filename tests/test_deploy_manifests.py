"""The Kustomize base in deploy/kubernetes (issue 12): every manifest parses with the safe
loader and validates (strict: no unknown field) against the Kubernetes OpenAPI schemas that
``kubernetes-validate`` ships offline; the cert-manager and Kustomize kinds, which it has no
schema for, are checked field by field. The pieces agree with each other (the Service
selects the Deployment's pods, the webhook calls the Service, the certificate names the
Service, the TLS Secret is the certificate's) and with the code: the webhook's rules cover
every kind ``mlgate.webhook.references`` reads, the policy loads with the webhook's loader,
and the container's command line is a real ``mlgate webhook`` one."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from cli_support import assert_real_command

from mlgate.webhook.policy import Mode, load_policy
from mlgate.webhook.references import INFERENCE_SERVICE, WORKLOAD_TEMPLATE

BASE = Path(__file__).resolve().parents[1] / "deploy" / "kubernetes"
NAMESPACE = "mlgate-system"
# An older release the base must still work on, and the newest the package ships.
KUBERNETES = ("1.30", kubernetes_validate.latest_version())
# Kinds with no schema in kubernetes-validate (CRDs, Kustomize's own file).
CUSTOM = {("cert-manager.io/v1", "Issuer"), ("cert-manager.io/v1", "Certificate")}
EXPECTED = {
    ("v1", "Namespace"),
    ("v1", "ServiceAccount"),
    ("v1", "Service"),
    ("apps/v1", "Deployment"),
    ("policy/v1", "PodDisruptionBudget"),
    ("networking.k8s.io/v1", "NetworkPolicy"),
    ("admissionregistration.k8s.io/v1", "ValidatingWebhookConfiguration"),
    *CUSTOM,
}
# The API group and plural resource of each kind the webhook reads.
RESOURCES = {
    "Pod": ("", "pods"),
    "Deployment": ("apps", "deployments"),
    "StatefulSet": ("apps", "statefulsets"),
    "DaemonSet": ("apps", "daemonsets"),
    "ReplicaSet": ("apps", "replicasets"),
    "Job": ("batch", "jobs"),
    "CronJob": ("batch", "cronjobs"),
    INFERENCE_SERVICE: ("serving.kserve.io", "inferenceservices"),
}


def kustomization() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((BASE / "kustomization.yaml").read_text())
    return loaded


def documents() -> Iterator[dict[str, Any]]:
    for name in kustomization()["resources"]:
        yield from (d for d in yaml.safe_load_all((BASE / name).read_text()) if d)


@pytest.fixture(scope="module")
def objects() -> dict[tuple[str, str], dict[str, Any]]:
    """Every object of the base by (kind, name)."""
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for doc in documents():
        key = (doc["kind"], doc["metadata"]["name"])
        assert key not in found, f"{key} twice"
        found[key] = doc
    return found


def test_every_file_is_in_the_base_and_parses() -> None:
    listed = {*kustomization()["resources"], "kustomization.yaml", "policy.yaml"}
    assert {p.name for p in BASE.glob("*.yaml")} == listed
    assert kustomization()["namespace"] == NAMESPACE
    assert {(d["apiVersion"], d["kind"]) for d in documents()} == EXPECTED


@pytest.mark.parametrize(
    "doc", [d for d in documents() if (d["apiVersion"], d["kind"]) not in CUSTOM], ids=str
)
def test_kubernetes_objects_match_the_openapi_schemas(doc: dict[str, Any]) -> None:
    for version in KUBERNETES:
        kubernetes_validate.validate(doc, version, strict=True)


def test_a_schema_violation_is_caught(objects: dict[tuple[str, str], Any]) -> None:
    """The validation above can fail: a misspelt field or a wrong type is refused."""
    hook = objects["ValidatingWebhookConfiguration", "mlgate-webhook"]
    for change in ({"failurPolicy": "Fail"}, {"timeoutSeconds": "5"}):
        broken = {**hook, "webhooks": [{**hook["webhooks"][0], **change}]}
        with pytest.raises(kubernetes_validate.ValidationError):
            kubernetes_validate.validate(broken, KUBERNETES[0], strict=True)


def webhook(objects: dict[tuple[str, str], Any]) -> dict[str, Any]:
    hook: dict[str, Any] = objects["ValidatingWebhookConfiguration", "mlgate-webhook"]
    [entry] = hook["webhooks"]
    return {**entry, "annotations": hook["metadata"]["annotations"]}


def test_webhook_fails_closed_within_a_budget(objects: dict[tuple[str, str], Any]) -> None:
    hook = webhook(objects)
    assert hook["failurePolicy"] == "Fail"
    assert hook["sideEffects"] == "None"
    assert hook["admissionReviewVersions"] == ["v1"]
    assert 1 <= hook["timeoutSeconds"] <= 10
    [expression] = hook["namespaceSelector"]["matchExpressions"]
    assert expression["key"] == "kubernetes.io/metadata.name"
    assert expression["operator"] == "NotIn"
    assert set(expression["values"]) == {NAMESPACE, "kube-system"}


def test_webhook_rules_cover_every_kind_the_webhook_reads(
    objects: dict[tuple[str, str], Any],
) -> None:
    covered = set()
    for rule in webhook(objects)["rules"]:
        assert set(rule["operations"]) == {"CREATE", "UPDATE"}
        covered |= {(g, r) for g in rule["apiGroups"] for r in rule["resources"]}
    kinds = {*WORKLOAD_TEMPLATE, INFERENCE_SERVICE}
    assert set(RESOURCES) == kinds
    assert {RESOURCES[k] for k in kinds} <= covered
    assert ("", "pods/ephemeralcontainers") in covered  # checked by review.py


def test_the_pieces_name_each_other(objects: dict[tuple[str, str], Any]) -> None:
    deployment = objects["Deployment", "mlgate-webhook"]
    service = objects["Service", "mlgate-webhook"]
    pod = deployment["spec"]["template"]
    labels = pod["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert service["spec"]["selector"].items() <= labels.items()
    for kind in ("PodDisruptionBudget", "NetworkPolicy"):
        selector = objects[kind, "mlgate-webhook"]["spec"]
        selector = selector.get("selector") or selector["podSelector"]
        assert selector["matchLabels"].items() <= labels.items()
    client = webhook(objects)["clientConfig"]["service"]
    assert (client["name"], client["namespace"], client["path"]) == (
        "mlgate-webhook",
        NAMESPACE,
        "/validate",
    )
    [port] = service["spec"]["ports"]
    assert client["port"] == port["port"]
    [container] = pod["spec"]["containers"]
    [container_port] = container["ports"]
    assert port["targetPort"] == container_port["name"]
    args = container["args"]
    assert args[args.index("--port") + 1] == str(container_port["containerPort"]) == "8443"
    ingress = objects["NetworkPolicy", "mlgate-webhook"]["spec"]["ingress"]
    assert ingress == [{"ports": [{"port": 8443, "protocol": "TCP"}]}]


def test_certificate_serves_the_service_and_is_injected(
    objects: dict[tuple[str, str], Any],
) -> None:
    certificate = objects["Certificate", "mlgate-webhook"]["spec"]
    assert f"mlgate-webhook.{NAMESPACE}.svc" in certificate["dnsNames"]
    issuer = certificate["issuerRef"]
    assert ("Issuer", issuer["name"]) in objects
    ca_secret = objects["Issuer", issuer["name"]]["spec"]["ca"]["secretName"]
    assert objects["Certificate", "mlgate-webhook-ca"]["spec"]["secretName"] == ca_secret
    annotations = webhook(objects)["annotations"]
    assert annotations["cert-manager.io/inject-ca-from"] == f"{NAMESPACE}/mlgate-webhook"
    volumes = objects["Deployment", "mlgate-webhook"]["spec"]["template"]["spec"]["volumes"]
    tls = next(v for v in volumes if v["name"] == "tls")
    assert tls["secret"]["secretName"] == certificate["secretName"]


def test_container_runs_a_real_mlgate_webhook_command(
    objects: dict[tuple[str, str], Any],
) -> None:
    [container] = objects["Deployment", "mlgate-webhook"]["spec"]["template"]["spec"]["containers"]
    assert container["command"] == ["mlgate"]
    assert_real_command(container["args"])
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    args = container["args"]
    assert args[args.index("--tls-cert") + 1].startswith(mounts["tls"] + "/")
    assert args[args.index("--policy") + 1] == f"{mounts['policy']}/policy.yaml"
    assert container["readinessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["securityContext"]["readOnlyRootFilesystem"] is True


def test_service_account_is_granted_nothing(objects: dict[tuple[str, str], Any]) -> None:
    """The webhook calls no Kubernetes API: no Role, no binding, no mounted token."""
    assert not {k for k, _ in objects if "Role" in k}
    assert objects["ServiceAccount", "mlgate-webhook"]["automountServiceAccountToken"] is False


def test_policy_configmap_loads_with_the_webhooks_loader() -> None:
    [generator] = kustomization()["configMapGenerator"]
    assert generator["name"] == "mlgate-webhook-policy"
    assert generator["files"] == ["policy.yaml"]
    policy = load_policy(BASE / "policy.yaml")
    assert policy.default.mode is Mode.AUDIT  # the documented rollout starts in audit


def test_the_guides_policy_example_loads(tmp_path: Path) -> None:
    """The policy shown in docs/kubernetes.md is one the webhook accepts."""
    guide = (BASE.parents[1] / "docs" / "kubernetes.md").read_text()
    section = guide[guide.index("## Policy") :]
    example = section.split("```yaml\n", 1)[1].split("```", 1)[0]
    (tmp_path / "policy.yaml").write_text(example)
    policy = load_policy(tmp_path / "policy.yaml")
    assert policy.rules("prod").require_pinned is True
    assert policy.rules("research").mode is Mode.WARN
