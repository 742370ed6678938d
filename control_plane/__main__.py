"""``python -m control_plane``: the same as ``crbroker-server``."""

from control_plane.server import entrypoint

entrypoint()
