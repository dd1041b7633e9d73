"""The kind path: cluster config, kube-prometheus-stack values, Helm values from an experiment,
in-cluster Locust manifests and cluster measurements (servecmp.cluster)."""
