"""The web surface of the service: pages, merged feeds over HTTP, health and metrics.

``create_app(storage, settings=...)`` builds the Starlette application; ``serve(app, host, port,
stop_event)`` runs it inside the service's event loop; ``Metrics`` collects poll counters.
"""

from __future__ import annotations

from aggregator.web.app import create_app
from aggregator.web.metrics import Metrics
from aggregator.web.server import bind_socket, serve

__all__ = ["Metrics", "bind_socket", "create_app", "serve"]
