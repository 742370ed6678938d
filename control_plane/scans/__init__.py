"""Scans: every scan of a project, its outcome and its SBOMs."""
