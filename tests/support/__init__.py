"""Helpers the tests share: free ports, subprocess servers, real peers (registry, snyk-broker)."""
