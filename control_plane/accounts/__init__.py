"""Orgs, users, memberships and API tokens."""
