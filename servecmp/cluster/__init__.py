"""The kind path behind ``servecmp kind preflight|values|up|load|down``: preflight, Helm values from
an experiment, images, the in-cluster load Jobs, cluster measurements and provenance."""

from pathlib import Path

# A checkout's root and the folder with the Dockerfiles, kind config and versions.env: the kind
# path runs from a checkout (it builds images from it), never from an installed wheel.
ROOT = Path(__file__).resolve().parents[2]
KIND_DIR = ROOT / "deploy" / "kind"
