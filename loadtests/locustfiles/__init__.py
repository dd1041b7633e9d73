"""Thin locustfiles for the Locust CLI / web UI (run them by path with ``locust -f``).

Configuration (custom Locust arguments, each with an environment variable):

  --sc-experiment / SERVECMP_EXPERIMENT   experiment YAML (default experiments/quick.yaml)
  --sc-target     / SERVECMP_TARGET       target name from the experiment, e.g. torchserve-rest-json
  --sc-address    / SERVECMP_ADDRESS      host:port (127.0.0.1 / ::1 only, unless cluster mode)
  --sc-payloads   / SERVECMP_PAYLOADS     PayloadSet .npz or run dir (default: built from the model)
  --sc-cluster-mode / SERVECMP_CLUSTER_MODE=1   accept a cluster Service DNS name (kind path)
  --sc-max-in-flight / SERVECMP_MAX_IN_FLIGHT   open loop in-flight bound (default 64)

  closed_loop.py        closed-loop users; the user count comes from -u / the web UI
  concurrency_sweep.py  ConcurrencySweepShape over load.concurrency
  open_loop.py          OpenLoopShape at load.rate (single process: no --processes / workers)
  rate_sweep.py         RateSweepShape over load.rates with the p99 SLO (single process)
"""
