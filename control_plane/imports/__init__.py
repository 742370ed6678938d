"""Imports and re-tests: targets, projects and queued scans for images a caller names."""
