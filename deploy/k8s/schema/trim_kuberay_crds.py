"""Make kuberay-v1.json, the small offline schema tests/test_deploy.py checks RayCluster and RayJob manifests with.

Source: KubeRay's CRDs (helm-chart/kuberay-operator/crds/ray.io_rayclusters.yaml and ray.io_rayjobs.yaml in
github.com/ray-project/kuberay); the commit is recorded in the output. Their openAPIV3Schema for `ray.io/v1`
is kept with three changes that make it about 30 times smaller:
  - descriptions dropped;
  - every pod template (`template`, `submitterPodTemplate`) becomes "any object": the test validates each one
    against Kubernetes' own PodTemplateSpec schema (kubernetes-validate) instead;
  - objects with listed properties refuse others (`additionalProperties: false`), as `kubectl apply
    --validate=strict` does: a misspelt field such as `shutdownAfterJobFinish` is an error, not silently dropped.

    python deploy/k8s/schema/trim_kuberay_crds.py KUBERAY_CHECKOUT COMMIT > deploy/k8s/schema/kuberay-v1.json
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import yaml

POD_TEMPLATES = {"template", "submitterPodTemplate"}
ANY_OBJECT = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}


def trim(node):
    if isinstance(node, list):
        return [trim(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {}
    for key, value in node.items():
        if key == "description":
            continue
        if key == "properties":
            out[key] = {name: ANY_OBJECT if name in POD_TEMPLATES else trim(sub) for name, sub in value.items()}
        else:
            out[key] = trim(value)
    if "properties" in out and not out.get("x-kubernetes-preserve-unknown-fields"):
        out.setdefault("additionalProperties", False)
    return out


def crd_schema(path: Path) -> dict:
    crd = yaml.safe_load(path.read_text())
    version = next(v for v in crd["spec"]["versions"] if v["name"] == "v1")
    schema = version["schema"]["openAPIV3Schema"]
    schema["properties"].pop("status", None)  # written by the operator, never by a manifest
    schema["properties"]["metadata"] = {"type": "object"}  # checked by the test against ObjectMeta
    return trim(schema)


def main(checkout: str, commit: str) -> None:
    crds = Path(checkout) / "helm-chart" / "kuberay-operator" / "crds"
    out = {"source": f"github.com/ray-project/kuberay@{commit} helm-chart/kuberay-operator/crds (ray.io/v1)",
           "RayCluster": crd_schema(crds / "ray.io_rayclusters.yaml"),
           "RayJob": crd_schema(crds / "ray.io_rayjobs.yaml")}
    json.dump(out, sys.stdout, indent=None, separators=(",", ":"), sort_keys=True)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main(*sys.argv[1:3])
