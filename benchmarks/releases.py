"""Realistic Dify Enterprise release payloads for the Kubernetes source benchmark.

A Dify chart release carries its templates, its default values, the rendered
manifest and the user config. The text here is synthetic but shaped like the chart:
one Deployment, Service and ConfigMap per component, with varied keys and numbers,
so it compresses about as well as real YAML does.
"""

from __future__ import annotations

import base64
import random
from datetime import datetime
from typing import Any

COMPONENTS = (
    "api",
    "worker",
    "web",
    "sandbox",
    "ssrf-proxy",
    "plugin-daemon",
    "enterprise",
    "enterprise-audit",
    "enterprise-frontend",
    "gateway",
    "unstructured",
    "redis",
    "postgresql",
    "weaviate",
    "minio",
    "celery-beat",
    "nginx",
    "otel-collector",
    "qdrant",
    "opensearch",
)
WORDS = (
    "replicas image repository tag pullPolicy resources limits requests cpu memory "
    "env name value valueFrom secretKeyRef configMapKeyRef key port targetPort "
    "protocol livenessProbe readinessProbe httpGet path initialDelaySeconds "
    "periodSeconds timeoutSeconds failureThreshold volumeMounts mountPath volumes "
    "persistentVolumeClaim claimName nodeSelector tolerations affinity annotations "
    "labels selector matchLabels serviceAccountName securityContext runAsUser "
    "fsGroup command args terminationGracePeriodSeconds strategy rollingUpdate "
    "maxSurge maxUnavailable"
).split()


def _yaml_block(rng: random.Random, component: str, lines: int) -> str:
    out = []
    for _ in range(lines):
        depth = rng.randrange(0, 5)
        word = rng.choice(WORDS)
        if rng.random() < 0.3:
            key = f"{component.replace('-', '')}.{word}"
            value = f"{{{{ .Values.{key} | default {rng.randrange(1, 9000)} }}}}"
        elif rng.random() < 0.5:
            value = (
                f"{component}-{rng.choice(WORDS).lower()}-{rng.randrange(0, 1 << 20):x}"
            )
        else:
            value = str(rng.randrange(0, 100000))
        out.append(f"{'  ' * depth}{word}: {value}")
    return "\n".join(out) + "\n"


def chart_parts(seed: int = 7) -> tuple[list[dict[str, str]], dict[str, Any], str]:
    """Return (templates, default values, manifest pattern) of a Dify-like chart.

    The manifest pattern contains NAMESPACE where the release namespace goes.
    """
    rng = random.Random(seed)
    templates = []
    manifest = []
    values: dict[str, Any] = {
        "enterprise": {
            "enabled": True,
            "licenseMode": "online",
            "licenseServer": "https://licenses.dify.ai",
        }
    }
    for component in COMPONENTS:
        for kind in ("deployment", "service", "configmap"):
            text = _yaml_block(rng, component, 45 if kind == "deployment" else 20)
            templates.append(
                {
                    "name": f"templates/{component}/{kind}.yaml",
                    "data": base64.b64encode(text.encode()).decode(),
                }
            )
            manifest.append(
                f"---\n# Source: dify/templates/{component}/{kind}.yaml\n"
                f"metadata:\n  name: dify-{component}\n  namespace: NAMESPACE\n"
                + _yaml_block(rng, component, 25 if kind == "deployment" else 10)
            )
        section = values.setdefault(component.replace("-", ""), {})
        for word in rng.sample(WORDS, 30):
            section[word] = rng.choice(
                [rng.randrange(0, 5000), f"{component}-{word}", True, {"cpu": "500m"}]
            )
    return templates, values, "".join(manifest)


def dify_release(
    namespace: str,
    revision: int,
    status: str,
    mode: str,
    deployed: datetime,
    parts: tuple[list[dict[str, str]], dict[str, Any], str],
) -> dict[str, Any]:
    """Build the release object of one namespace's Dify revision."""
    from k8s_simulator import helm_release

    templates, defaults, manifest = parts
    config = {
        "enterprise": {"licenseMode": mode},
        "global": {"host": f"{namespace}.dify.example.com"},
        "api": {"replicas": 2},
    }
    return helm_release(
        "dify",
        namespace,
        revision,
        status,
        config,
        deployed,
        chart_values=defaults,
        templates=templates,
        manifest=manifest.replace("NAMESPACE", namespace),
    )
