"""Test doubles. They live ONLY under tests/: never importable from the servecmp package, never
started by the CLI, never reported as a real server."""
