"""broker_client."""
