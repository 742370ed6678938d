"""The control plane: a self-hosted upstream in Snyk's REST shape.

Layers (one folder per domain, as in warehouse): ``models.py`` holds the SQLAlchemy tables,
``<domain>/services.py`` what each domain can do (no HTTP), ``api/`` the thin aiohttp views and
the JSON:API rendering and pagination they share. Alembic migrations live in ``migrations/``
and run at start-up (:func:`control_plane.db.open_database`).
"""
