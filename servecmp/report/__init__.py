"""Reports built from stored results only: HTML + Markdown."""
