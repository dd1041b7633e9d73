"""tfserving (placeholder on branch tune so search.py installs; seam-core's adapter module replaces this file at merge)."""
