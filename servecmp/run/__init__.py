"""Local runtime: the servers as plain processes on this machine (the embedded default)."""
