"""One package per model server (servecmp/servers/<name>/) behind the ServerAdapter seam (base.py, registry.py)."""
