"""cr_agent."""
