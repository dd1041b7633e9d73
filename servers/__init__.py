"""One package per model server (servers/<name>/) behind the ServerAdapter seam (base.py, registry.py)."""
