"""Re-create the vendored CRD schemas (run by hand when the kube-prometheus-stack pin moves):

    python tests/crds/vendor.py /work/.mirror/prometheus-community+helm-charts/repo kube-prometheus-stack-67.8.0

Writes tests/crds/<plural>.json: only ``spec.versions[v1].schema.openAPIV3Schema`` of each CRD,
with ``description`` strings dropped (data, not code). See tests/crds/README.md.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

CRDS = ("servicemonitors", "podmonitors", "prometheusrules")
SRC = "charts/kube-prometheus-stack/charts/crds/crds/crd-{}.yaml"


def strip(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: strip(v) for k, v in node.items() if k != "description"}
    if isinstance(node, list):
        return [strip(v) for v in node]
    return node


def main(repo: str, tag: str) -> None:
    out = Path(__file__).parent
    for plural in CRDS:
        path = SRC.format(plural)
        text = subprocess.run(
            ["git", "-C", repo, "show", f"{tag}:{path}"], check=True, capture_output=True, text=True
        ).stdout
        crd = next(d for d in yaml.safe_load_all(text) if d)
        (version,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1"]
        doc = {
            "source": f"prometheus-community/helm-charts {tag}:{path}",
            "operator_version": crd["metadata"]["annotations"]["operator.prometheus.io/version"],
            "group": crd["spec"]["group"],
            "kind": crd["spec"]["names"]["kind"],
            "version": "v1",
            "openAPIV3Schema": strip(version["schema"]["openAPIV3Schema"]),
        }
        (out / f"{plural}.json").write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    main(*sys.argv[1:3])
