"""Offline vulnerability advisories: reading advisory files, version order, matching.

Everything here is pure: bytes and values in, values out; no database, no HTTP. The
importer (storage) and the API call these functions the same way the command line does.
"""
