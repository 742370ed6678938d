"""Targets: the repositories of a registry (Snyk's targets resource)."""
