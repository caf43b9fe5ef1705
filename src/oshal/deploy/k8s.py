"""``oshal deploy k8s``: plain Kubernetes YAML for the platform on the Postgres and Redis you already run.

One folder of files, applied in name order: the namespace; the fleet's manifests and the trusted connector publisher
key as ConfigMaps, and the control plane's volume; the migration Job; the control plane (Deployment, Service,
PodDisruptionBudget); per bot a Deployment, a PodDisruptionBudget, a KEDA ``ScaledObject`` scaling it on its lane's
pending entries and the ``TriggerAuthentication`` that lets KEDA log in as the bot's own Redis user; and the
NetworkPolicies (a bot reaches only Redis, the control plane's gateway and DNS, plus HTTPS when a model harness
calls its provider). Secrets are referenced by name, never included: ``oshal-platform`` and one ``oshal-bot-NAME``
per bot, created from the folder ``oshal deploy secrets`` writes (the commands are in :func:`secret_commands`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from oshal.bots.manifest import BotManifest
from oshal.connectors.publisher_keys import key_id, parse_public_key
from oshal.deploy import secrets as names
from oshal.deploy.spec import (
    API_PORT,
    BOT_RESOURCES,
    CONTROL_PLANE_RESOURCES,
    FLEET,
    HOME,
    MIGRATE_RESOURCES,
    MODEL_BOT_RESOURCES,
    NODE_CREDENTIALS,
    SECRETS,
    TMP,
    USER_ID,
    calls_out,
    node_secret,
    redis_password_secret,
)
from oshal.mesh.redis_keys import LANE_GROUP, acl_user, lane_stream

APP = "oshal"
CONTROL_PLANE = "oshal-control-plane"
PLATFORM_SECRET = "oshal-platform"  # noqa: S105 - a Secret's name
# The migration's secrets, and the control plane's subset (no owner URL, no bootstrap key).
MIGRATE_SECRETS = (names.DATABASE_URL, names.API_DATABASE_URL, names.REDIS_URL, names.DISPATCH_KEY,
                   names.SECRETS_KEK, names.BOOTSTRAP_KEY)
CONTROL_PLANE_SECRETS = (names.API_DATABASE_URL, names.REDIS_URL, names.DISPATCH_KEY, names.SECRETS_KEK)


@dataclass(frozen=True, slots=True)
class K8sOptions:
    image: str
    namespace: str = "oshal"
    redis_address: str = "redis:6379"  # host:port of the Redis the bots and KEDA reach
    redis_tls: bool = False
    redis_cidr: str | None = None  # Redis outside the cluster: the bots' egress goes to this block
    max_replicas: int = 8
    drain_timeout_s: float = 20.0
    home_size: str = "1Gi"
    provider_configured: bool = False


def bot_resource(bot: str) -> str:
    return f"oshal-bot-{bot}"


def _labels(component: str, bot: str | None = None) -> dict[str, str]:
    labels = {"app.kubernetes.io/name": APP, "app.kubernetes.io/component": component}
    if bot:
        labels["oshal.dev/bot"] = bot
    return labels


def _meta(name: str, options: K8sOptions, labels: dict[str, str]) -> dict[str, Any]:
    return {"name": name, "namespace": options.namespace, "labels": labels}


_POD_SECURITY: dict[str, Any] = {"runAsNonRoot": True, "runAsUser": USER_ID, "runAsGroup": USER_ID,
                                 "fsGroup": USER_ID, "seccompProfile": {"type": "RuntimeDefault"}}
_CONTAINER_SECURITY: dict[str, Any] = {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                                       "runAsNonRoot": True, "capabilities": {"drop": ["ALL"]}}
_TMP = {"name": "tmp", "emptyDir": {"medium": "Memory", "sizeLimit": "64Mi"}}


def _secret_volume(name: str, secret: str, items: list[tuple[str, str]]) -> dict[str, Any]:
    return {"name": name, "secret": {"secretName": secret, "defaultMode": 0o440,
                                     "items": [{"key": k, "path": p} for k, p in items]}}


def _fleet_volume() -> dict[str, Any]:
    return {"name": "fleet", "configMap": {"name": "oshal-fleet"}}


def _container(name: str, options: K8sOptions, args: list[str], env: dict[str, str], mounts: list[dict[str, Any]],
               resources: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "image": options.image, "args": args,
            "env": [{"name": k, "value": v} for k, v in env.items()],
            "volumeMounts": [{"name": "tmp", "mountPath": TMP}, {"name": "fleet", "mountPath": FLEET,
                                                                     "readOnly": True}, *mounts],
            "resources": resources, "securityContext": _CONTAINER_SECURITY}


def _pod(containers: list[dict[str, Any]], volumes: list[dict[str, Any]], *, grace_s: int,
         restart: str = "Always") -> dict[str, Any]:
    return {"automountServiceAccountToken": False, "securityContext": _POD_SECURITY, "restartPolicy": restart,
            "terminationGracePeriodSeconds": grace_s, "containers": containers,
            "volumes": [_TMP, _fleet_volume(), *volumes]}


def namespace(options: K8sOptions) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": options.namespace, "labels": {"app.kubernetes.io/name": APP}}}


def fleet_config(fleet: dict[str, BotManifest], options: K8sOptions) -> dict[str, Any]:
    data = {f"{name}.yaml": yaml.safe_dump(fleet[name].model_dump(mode="json"), sort_keys=False)
            for name in sorted(fleet)}
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": _meta("oshal-fleet", options, _labels("fleet")),
            "data": data}


def trust_config(public_key: str, options: K8sOptions) -> tuple[dict[str, Any], str]:
    """The curated connectors' publisher key as a ConfigMap, and its path in the trust store (publisher/kid.pub)."""
    kid = key_id(parse_public_key(public_key))
    config = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": _meta("oshal-trust", options, _labels("trust")),
              "data": {"oshal.pub": public_key.strip() + "\n"}}
    return config, f"oshal/{kid}.pub"


def home_claim(options: K8sOptions) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": _meta("oshal-home", options, _labels("control-plane")),
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": options.home_size}}}}


def migrate_job(options: K8sOptions) -> dict[str, Any]:
    container = _container("migrate", options, ["migrate"], {"OSHAL_MODE": "prod"},
                           [{"name": "secrets", "mountPath": SECRETS, "readOnly": True},
                            {"name": "home", "mountPath": HOME}], MIGRATE_RESOURCES.as_k8s())
    volumes = [_secret_volume("secrets", PLATFORM_SECRET, [(n, n) for n in MIGRATE_SECRETS]),
               {"name": "home", "emptyDir": {}}]
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": _meta("oshal-migrate", options, _labels("migrate")),
            "spec": {"backoffLimit": 3, "ttlSecondsAfterFinished": 86400,
                     "template": {"metadata": {"labels": _labels("migrate")},
                                  "spec": _pod([container], volumes, grace_s=30, restart="OnFailure")}}}


def control_plane(options: K8sOptions, trust_path: str | None) -> list[dict[str, Any]]:
    labels = _labels("control-plane")
    mounts: list[dict[str, Any]] = [{"name": "secrets", "mountPath": SECRETS, "readOnly": True},
                                    {"name": "home", "mountPath": HOME}]
    volumes: list[dict[str, Any]] = [
        _secret_volume("secrets", PLATFORM_SECRET, [(n, n) for n in CONTROL_PLANE_SECRETS]),
        {"name": "home", "persistentVolumeClaim": {"claimName": "oshal-home"}}]
    if trust_path:
        mounts.append({"name": "trust", "mountPath": f"{HOME}/trust", "readOnly": True})
        volumes.append({"name": "trust", "configMap": {"name": "oshal-trust",
                                                      "items": [{"key": "oshal.pub", "path": trust_path}]}})
    container = _container("control-plane", options, ["serve", "--host", "0.0.0.0", "--port", str(API_PORT)],  # noqa: S104
                           {"OSHAL_MODE": "prod"}, mounts, CONTROL_PLANE_RESOURCES.as_k8s())
    container["ports"] = [{"name": "http", "containerPort": API_PORT}]
    container["startupProbe"] = {"httpGet": {"path": "/healthz", "port": "http"}, "periodSeconds": 2,
                                 "failureThreshold": 60}
    container["livenessProbe"] = {"httpGet": {"path": "/healthz", "port": "http"}, "periodSeconds": 10,
                                  "timeoutSeconds": 5, "failureThreshold": 3}
    container["readinessProbe"] = {"httpGet": {"path": "/readyz", "port": "http"}, "periodSeconds": 5,
                                   "timeoutSeconds": 5, "failureThreshold": 2}
    deployment = {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": _meta(CONTROL_PLANE, options, labels),
        # One replica on a ReadWriteOnce volume: the old pod lets go of it before the new one starts.
        "spec": {"replicas": 1, "strategy": {"type": "Recreate"}, "selector": {"matchLabels": labels},
                 "template": {"metadata": {"labels": labels},
                              "spec": _pod([container], volumes, grace_s=int(options.drain_timeout_s) + 10)}},
    }
    service = {"apiVersion": "v1", "kind": "Service", "metadata": _meta(CONTROL_PLANE, options, labels),
               "spec": {"selector": labels, "ports": [{"name": "http", "port": API_PORT, "targetPort": "http"}]}}
    budget = {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
              "metadata": _meta(CONTROL_PLANE, options, labels),
              "spec": {"maxUnavailable": 1, "selector": {"matchLabels": labels}}}
    return [deployment, service, budget]


def _scaling_target(manifest: BotManifest) -> int:
    """Pending entries per replica to scale out at: half of what one replica holds at once (its concurrency), so a
    saturated lane asks for more replicas before work waits behind it."""
    return max(1, manifest.concurrency // 2)


def bot(manifest: BotManifest, options: K8sOptions) -> list[dict[str, Any]]:
    name, resource = manifest.name, bot_resource(manifest.name)
    labels = _labels("bot", name)
    env = {"OSHAL_MODE": "prod", "OSHAL_NODE_CREDENTIALS": NODE_CREDENTIALS,
           "OSHAL_API_URL": f"http://{CONTROL_PLANE}:{API_PORT}"}
    model = calls_out(manifest, provider_configured=options.provider_configured)
    container = _container("node", options, ["node", "--bot", name, "--replicas", "1"], env,
                           [{"name": "credentials", "mountPath": SECRETS, "readOnly": True}],
                           (MODEL_BOT_RESOURCES if model else BOT_RESOURCES).as_k8s())
    probe = {"exec": {"command": ["oshal", "node", "--check"]}, "timeoutSeconds": 10}
    container["startupProbe"] = {**probe, "periodSeconds": 5, "failureThreshold": 24}
    container["livenessProbe"] = {**probe, "periodSeconds": 20, "failureThreshold": 3}
    volumes = [_secret_volume("credentials", resource, [("credentials.json", NODE_CREDENTIALS.rsplit("/", 1)[-1])])]
    deployment = {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": _meta(resource, options, labels),
        # No `replicas`: the ScaledObject owns the count (from the manifest's replicas up). A rolling update starts
        # the new pod first; the old one drains on SIGTERM (its messages finish or stay pending for a live replica).
        "spec": {"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
                 "selector": {"matchLabels": labels},
                 "template": {"metadata": {"labels": labels},
                              "spec": _pod([container], volumes, grace_s=int(options.drain_timeout_s) + 10)}},
    }
    budget = {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": _meta(resource, options, labels),
              "spec": {"maxUnavailable": 1, "selector": {"matchLabels": labels}}}
    auth = {"apiVersion": "keda.sh/v1alpha1", "kind": "TriggerAuthentication",
            "metadata": _meta(resource, options, labels),
            "spec": {"secretTargetRef": [{"parameter": "password", "name": resource,
                                          "key": redis_password_secret(name)}]}}
    metadata = {"address": options.redis_address, "stream": lane_stream(name), "consumerGroup": LANE_GROUP,
                "pendingEntriesCount": str(_scaling_target(manifest)), "username": acl_user(name)}
    if options.redis_tls:
        metadata["enableTLS"] = "true"
    scaled = {"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject", "metadata": _meta(resource, options, labels),
              "spec": {"scaleTargetRef": {"name": resource}, "minReplicaCount": manifest.replicas,
                       "maxReplicaCount": max(manifest.replicas, options.max_replicas),
                       "pollingInterval": 15, "cooldownPeriod": 120,
                       "triggers": [{"type": "redis-streams", "metadata": metadata,
                                     "authenticationRef": {"name": resource}}]}}
    return [deployment, budget, auth, scaled]


def _port(address: str) -> int:
    return int(address.rsplit(":", 1)[1]) if ":" in address else 6379


def network_policies(fleet: dict[str, BotManifest], options: K8sOptions) -> list[dict[str, Any]]:
    bots = {"matchLabels": _labels("bot")}
    redis_peer: dict[str, Any] = ({"ipBlock": {"cidr": options.redis_cidr}} if options.redis_cidr
                                  else {"podSelector": {"matchLabels": {"app.kubernetes.io/name": "redis"}}})
    dns = {"to": [{"namespaceSelector": {}, "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}],
           "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]}
    policies: list[dict[str, Any]] = [{
        "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": _meta("oshal-bots", options, _labels("bot")),
        "spec": {"podSelector": bots, "policyTypes": ["Ingress", "Egress"], "ingress": [], "egress": [
            {"to": [redis_peer], "ports": [{"protocol": "TCP", "port": _port(options.redis_address)}]},
            {"to": [{"podSelector": {"matchLabels": _labels("control-plane")}}],
             "ports": [{"protocol": "TCP", "port": API_PORT}]},
            dns]},
    }, {
        "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": _meta(CONTROL_PLANE, options, _labels("control-plane")),
        "spec": {"podSelector": {"matchLabels": _labels("control-plane")}, "policyTypes": ["Ingress"],
                 "ingress": [{"ports": [{"protocol": "TCP", "port": API_PORT}]}]},
    }, {
        "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": _meta("oshal-migrate", options, _labels("migrate")),
        "spec": {"podSelector": {"matchLabels": _labels("migrate")}, "policyTypes": ["Ingress"], "ingress": []},
    }]
    model_bots = sorted(n for n, m in fleet.items() if calls_out(m, provider_configured=options.provider_configured))
    if model_bots:
        policies.append({
            "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": _meta("oshal-model-bots", options, _labels("bot")),
            "spec": {"podSelector": {"matchLabels": _labels("bot"), "matchExpressions": [
                {"key": "oshal.dev/bot", "operator": "In", "values": model_bots}]},
                "policyTypes": ["Egress"],
                "egress": [{"to": [{"ipBlock": {"cidr": "0.0.0.0/0"}}], "ports": [{"protocol": "TCP", "port": 443}]}]},
        })
    return policies


def manifests(fleet: dict[str, BotManifest], options: K8sOptions,
              trusted_key: str | None = None) -> dict[str, list[dict[str, Any]]]:
    """File name -> its documents, in the order to apply them."""
    config = [fleet_config(fleet, options), home_claim(options)]
    trust_path = None
    if trusted_key:
        trust, trust_path = trust_config(trusted_key, options)
        config.insert(1, trust)
    files = {"00-namespace.yaml": [namespace(options)], "10-config.yaml": config,
             "20-migrate-job.yaml": [migrate_job(options)],
             "30-control-plane.yaml": control_plane(options, trust_path)}
    files["40-bots.yaml"] = [doc for name in sorted(fleet) for doc in bot(fleet[name], options)]
    files["50-network-policies.yaml"] = network_policies(fleet, options)
    return files


def secret_commands(fleet: dict[str, BotManifest], options: K8sOptions, secrets_dir: Path) -> list[str]:
    """The kubectl commands that create the Secrets the manifests reference, from ``oshal deploy secrets``' folder."""
    folder = str(secrets_dir)
    platform = " ".join(f"--from-file={n}={folder}/{n}" for n in MIGRATE_SECRETS)
    lines = [f"kubectl -n {options.namespace} create secret generic {PLATFORM_SECRET} {platform}"]
    for name in sorted(fleet):
        lines.append(f"kubectl -n {options.namespace} create secret generic {bot_resource(name)} "
                     f"--from-file=credentials.json={folder}/{node_secret(name)} "
                     f"--from-file={redis_password_secret(name)}={folder}/{redis_password_secret(name)}")
    return lines
