"""The control plane's HTTP API: Snyk's REST shapes (JSON:API) and the v1 calls clients use.

Mounting, for the process that serves it (``crbroker-server``)::

    from control_plane.api import create_api_app, setup_api

    app = create_api_app(db, box)            # a standalone aiohttp Application, or
    setup_api(app, db, box)                  # add routes + middleware to an existing one

``db`` is a :class:`control_plane.db.Database` (:func:`control_plane.db.open_database`),
``box`` a :class:`control_plane.encryption.SecretBox` (:func:`control_plane.encryption.load_box`);
:func:`control_plane.bootstrap.open_control_plane` makes both from the settings.
Routes are absolute (``/rest/...``, ``/v1/...``, ``/healthcheck``, ``/metrics``,
``/openapi.json``), so add them to the root application, not as a prefixed sub-app.
``setup_api`` also adds an ``on_startup`` hook that freezes the start-up heap
(``gc.freeze()``: full collections then skip long-lived objects; see docs/benchmarks.md).

Other routes under ``/rest/`` or ``/v1/`` added to the same application go through the same
middleware: the version is checked, a transaction is open and the caller authenticated;
views read them with :func:`session_of` / :func:`principal_of` (:func:`org_id_of` checks the
path's ``org_id`` against the caller's orgs), register work for after the
commit with :func:`on_commit`, and raise
:class:`control_plane.errors.DomainError` subclasses to refuse (rendered as JSON:API errors,
transaction rolled back). Render with :mod:`control_plane.api.jsonapi` and parse query strings
with :class:`control_plane.api.query.Query`, bodies with :class:`control_plane.api.body.Body`.
"""

from control_plane.api.app import (
    CONTEXT,
    ApiContext,
    context,
    create_api_app,
    on_commit,
    org_id_of,
    principal_of,
    session_of,
    setup_api,
)

__all__ = [
    "CONTEXT",
    "ApiContext",
    "context",
    "create_api_app",
    "on_commit",
    "org_id_of",
    "principal_of",
    "session_of",
    "setup_api",
]
