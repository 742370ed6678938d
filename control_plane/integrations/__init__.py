"""Registry integrations (Snyk's REST integrations resource)."""
