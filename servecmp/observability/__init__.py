"""Observability: the load generator's own metrics, scrape configs, recording rules, dashboards.

Modules
  names              metric / label / recorded-series names shared by every other module (the contract)
  generator_metrics  prometheus-client metrics of the load generator (Locust ``events.request``)
  process_exporter   psutil CPU / memory of local server process trees, labelled by server
  scrape_config      prometheus.yml for a local run
  rules              recording rules (source of helm/servecmp/files/recording-rules.yaml)
  dashboards         Grafana dashboards as code (source of helm/servecmp/dashboards/*.json)
  queries            the PromQL the report stores in ``prometheus/series.json``
  check              which dashboard panel queries return no data on a live Prometheus
"""
