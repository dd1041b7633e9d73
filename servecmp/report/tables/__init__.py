"""Table builders: one module per family of report tables."""
