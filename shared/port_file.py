"""Tell whoever started a service which port it got: ``PORT_FILE``.

Every service accepts port 0 (the kernel picks a free port) and, once it listens, logs a
"... listening" line with ``host`` and ``port`` (the bound one). Logs can be filtered by
``LOG_LEVEL``, so a starter that needs the number sets ``PORT_FILE``: after every listener is
bound the service writes a JSON object there, ``{"<port variable>": <bound port>, ...}``
(e.g. ``{"PORT": 41237}``; ``crbroker-server`` also ``"CONTROL_PLANE_PORT"``). The keys are the
environment variables that set those ports, so restarting with them updated lands on the same
ports. The file appears whole (written beside and renamed) and only after binding, so its
presence means "listening".
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any


def bound_port(addresses: Iterable[Any], configured: int) -> int:
    """The port of the first TCP address in ``addresses`` (aiohttp's ``runner.addresses``)."""
    return next((int(addr[1]) for addr in addresses if isinstance(addr, tuple)), configured)


def write_port_file(path: str | os.PathLike[str] | None, ports: Mapping[str, int]) -> None:
    """Write ``ports`` as JSON to ``path`` atomically (nothing when ``path`` is None)."""
    if path is None:
        return
    target = Path(path)
    partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
    partial.write_text(json.dumps(dict(ports)))
    os.replace(partial, target)


def listen_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (0: a free port), bound before the app exists.

    For a process whose listeners must know each other's ports before they are built (the
    relay and the control plane of ``crbroker-server``). ``host`` resolves to its first
    address; ``OSError`` when it cannot bind.
    """
    family, kind, proto, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(1024)
    except OSError:
        sock.close()
        raise
    sock.setblocking(False)
    return sock
