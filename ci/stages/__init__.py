"""The stage implementations; the registry of stages is ci/registry.py."""
