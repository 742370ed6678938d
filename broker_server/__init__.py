"""broker_server: the upstream side of the broker, wire-compatible with snyk-broker's server.

``broker-server`` serves, on ``PORT`` (default 7341):

* ``/primus/<token>/``: engine.io v4 (and v3) over long-polling, the websocket upgrade, or a
  direct websocket; Primus heartbeats; ``identify`` both ways.
* ``ALL /broker/<token>/<path>``: relayed to the newest ready client of the token, answered by
  ``POST /response-data/<token>/<streamingID>`` (streamed) or by ack (``x-broker-ws-response``).
* client callbacks (``request`` events) checked against the server's accept rules and sent to
  the rule's origin (``${UPSTREAM_URL}``) with ``X-Broker-Token``.
* ``/connection-status/<token>``, ``/connections-status``, ``/healthcheck``, ``/metrics``.

Settings (environment): ``BROKER_TOKENS`` / ``BROKER_TOKEN_FILE`` (admitted tokens), ``ACCEPT``,
``UPSTREAM_URL``, ``SOCKET_PING_INTERVAL``, ``SOCKET_PING_TIMEOUT``, ``PRIMUS_TIMEOUT``,
``SOCKET_MAX_RESPONSE_LENGTH``, ``BROKER_SERVER_MAX_BODY``, ``MINIMAL_SUPPORTED_BROKER_VERSION``,
``MINIMAL_RECOMMENDED_BROKER_VERSION``, ``CACHE_EXPIRY``, ``RECONNECT_GRACE_MS``,
``BROKER_WEBSERVER_REQUEST_TIMEOUT``, ``BROKER_SERVER_HOST``, ``LOG_LEVEL``, ``DEBUG``
(see :mod:`broker_server.settings`).
"""
