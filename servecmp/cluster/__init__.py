"""The kind path behind ``servecmp kind preflight|values|up|load|down``: preflight, Helm values from
an experiment, images, the in-cluster load Jobs, cluster measurements and provenance."""
