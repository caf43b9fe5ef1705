"""`oshal deploy k8s` against the Kubernetes schemas (kubernetes-validate, which bundles the upstream OpenAPI schemas)
and KEDA's CRD schemas (vendored from kedacore/keda, config/crd/bases; Apache-2.0; see schemas/SOURCES.md)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from conftest import REPO
from oshal.bots.manifest import load_fleet
from oshal.mesh.redis_keys import LANE_GROUP, acl_user, lane_stream

SCHEMAS = Path(__file__).parent / "schemas"
OSHAL = [sys.executable, "-m", "oshal.cli.main"]
FLEET = load_fleet(REPO / "fleet")
K8S_VERSION = "1.30.0"


def _crd_schema(file: str) -> dict[str, Any]:
    crd = yaml.safe_load((SCHEMAS / file).read_text())
    [served] = [v for v in crd["spec"]["versions"] if v["name"] == "v1alpha1"]
    schema: dict[str, Any] = served["schema"]["openAPIV3Schema"]
    return schema


KEDA = {"ScaledObject": _crd_schema("keda.sh_scaledobjects.yaml"),
        "TriggerAuthentication": _crd_schema("keda.sh_triggerauthentications.yaml")}


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict[str, Any]], str]:
    folder = tmp_path_factory.mktemp("k8s")
    env = {k: v for k, v in os.environ.items() if not k.startswith("OSHAL_")}
    done = subprocess.run([*OSHAL, "deploy", "k8s", "--out", str(folder / "k8s"), "--fleet", str(REPO / "fleet"),
                           "--redis-address", "redis.data.svc:6379", "--image", "registry.example/oshal:0.1.0"],
                          env={**env, "OSHAL_CONNECTORS_DIR": str(REPO / "connectors")},
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    documents = [d for f in sorted((folder / "k8s").glob("*.yaml")) for d in yaml.safe_load_all(f.read_text()) if d]
    return folder / "k8s", documents, done.stderr


def _of(documents: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in documents if d["kind"] == kind}


def test_every_builtin_object_is_valid_under_the_kubernetes_schemas(
        generated: tuple[Path, list[dict[str, Any]], str]) -> None:
    _, documents, _ = generated
    builtin = [d for d in documents if not d["apiVersion"].startswith("keda.sh/")]
    assert {d["kind"] for d in builtin} == {"Namespace", "ConfigMap", "PersistentVolumeClaim", "Job", "Deployment",
                                            "Service", "PodDisruptionBudget", "NetworkPolicy"}
    for document in builtin:
        kubernetes_validate.validate(document, K8S_VERSION, strict=True)


def test_every_keda_object_is_valid_under_its_crd_schema(generated: tuple[Path, list[dict[str, Any]], str]) -> None:
    _, documents, _ = generated
    keda = [d for d in documents if d["apiVersion"].startswith("keda.sh/")]
    assert len(keda) == 2 * len(FLEET)
    for document in keda:
        jsonschema.Draft7Validator(KEDA[document["kind"]]).validate(document)


def test_the_validators_reject_broken_objects(generated: tuple[Path, list[dict[str, Any]], str]) -> None:
    _, documents, _ = generated
    scaled = dict(_of(documents, "ScaledObject")["oshal-bot-echo"])
    scaled["spec"] = {**scaled["spec"], "scaleTargetRef": {}}  # `name` is required
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft7Validator(KEDA["ScaledObject"]).validate(scaled)
    deployment = dict(_of(documents, "Deployment")["oshal-bot-echo"])
    deployment["spec"] = {**deployment["spec"], "replicas": "two"}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, K8S_VERSION, strict=True)


def test_one_deployment_and_one_scaled_object_per_bot_on_its_lane(
        generated: tuple[Path, list[dict[str, Any]], str]) -> None:
    _, documents, _ = generated
    deployments, scaled = _of(documents, "Deployment"), _of(documents, "ScaledObject")
    assert set(deployments) == {"oshal-control-plane", *(f"oshal-bot-{b}" for b in FLEET)}
    for name, manifest in FLEET.items():
        pod = deployments[f"oshal-bot-{name}"]["spec"]["template"]["spec"]
        [container] = pod["containers"]
        assert container["args"] == ["node", "--bot", name, "--replicas", "1"]
        assert container["livenessProbe"]["exec"]["command"] == ["oshal", "node", "--check"]
        assert container["resources"]["requests"]["memory"] and container["resources"]["limits"]["memory"]
        [trigger] = scaled[f"oshal-bot-{name}"]["spec"]["triggers"]
        assert trigger["type"] == "redis-streams"
        assert trigger["metadata"]["stream"] == lane_stream(name) and trigger["metadata"]["consumerGroup"] == LANE_GROUP
        assert trigger["metadata"]["username"] == acl_user(name)
        assert int(trigger["metadata"]["pendingEntriesCount"]) >= 1
        assert trigger["metadata"]["address"] == "redis.data.svc:6379"
        assert scaled[f"oshal-bot-{name}"]["spec"]["minReplicaCount"] == manifest.replicas
        auth = _of(documents, "TriggerAuthentication")[trigger["authenticationRef"]["name"]]
        assert auth["spec"]["secretTargetRef"] == [{"parameter": "password", "name": f"oshal-bot-{name}",
                                                    "key": f"redis-password-{name}"}]


def test_pods_run_sealed_and_secrets_are_referenced_never_included(
        generated: tuple[Path, list[dict[str, Any]], str]) -> None:
    _, documents, stderr = generated
    assert not [d for d in documents if d["kind"] == "Secret"]
    pods = [d["spec"]["template"]["spec"] for d in documents if d["kind"] in ("Deployment", "Job")]
    for pod in pods:
        assert pod["securityContext"]["runAsNonRoot"] is True and pod["automountServiceAccountToken"] is False
        for container in pod["containers"]:
            security = container["securityContext"]
            assert security["readOnlyRootFilesystem"] is True and security["capabilities"] == {"drop": ["ALL"]}
            assert security["allowPrivilegeEscalation"] is False
            assert all("value" in e and "KEY" not in e["name"] for e in container["env"])
    assert "create secret generic oshal-platform" in stderr and "create secret generic oshal-bot-echo" in stderr
    job = _of(documents, "Job")["oshal-migrate"]
    assert job["spec"]["template"]["spec"]["containers"][0]["args"] == ["migrate"]


def test_bots_reach_only_redis_the_gateway_and_dns(generated: tuple[Path, list[dict[str, Any]], str]) -> None:
    _, documents, _ = generated
    policy = _of(documents, "NetworkPolicy")["oshal-bots"]["spec"]
    assert policy["policyTypes"] == ["Ingress", "Egress"] and policy["ingress"] == []
    ports = sorted((rule["ports"][0]["port"], rule["ports"][0]["protocol"]) for rule in policy["egress"])
    assert ports == [(53, "UDP"), (6379, "TCP"), (8800, "TCP")]
    model_bots = sorted(n for n, m in FLEET.items() if m.harness != "deterministic")
    extra = _of(documents, "NetworkPolicy").get("oshal-model-bots")
    if model_bots:
        assert extra is not None and extra["spec"]["podSelector"]["matchExpressions"][0]["values"] == model_bots
    else:
        assert extra is None  # every shipped bot is deterministic: none gets a route out
