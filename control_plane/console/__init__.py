"""The web console: server-rendered pages (Jinja2, htmx) over the control plane's services.

Handlers parse the request, call one domain function (the ones the REST API calls), and
render; no SQL here. :func:`control_plane.console.app.setup_console` mounts it at
``/console``.
"""
