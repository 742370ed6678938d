"""Registry sync (product document 001): import policies, dry runs and scheduled runs.

- :mod:`.policy`: the policy JSON (pydantic), validated with JSON pointers in its errors;
- :mod:`.evaluation`: pure evaluation of a policy against a registry state (no I/O);
- :mod:`.listing`: reading repositories and tags through the agent (broker or direct);
- :mod:`.services`: policies, dry runs and runs as domain functions (the API, the console
  and the scheduler call these);
- :mod:`.scheduler`: claims due and pending runs, once across control-plane processes.

Semantics and examples: ``docs/sync.md``.
"""
