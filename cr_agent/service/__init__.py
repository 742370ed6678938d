"""The agent as an HTTP service: ``cr-agent serve`` (see :mod:`cr_agent.service.app`)."""
