"""Projects: one image tag of a target (``{repository}:{tag}``)."""
