"""broker_server."""
