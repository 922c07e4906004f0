"""HTTP middleware: a request id per request, one access log line, and request metrics.

The id is the client's ``X-Request-ID`` when it is a short plain token (``[A-Za-z0-9._-]{1,64}``:
nothing that could forge a log line), else a fresh one; the response carries it back. The access
line and the metrics name the route *template* (``/v1/orders/{order_id}``), never the query
string (a browser may carry its token there) and never an unbounded set of paths.
"""

from __future__ import annotations

import logging
import re
import secrets
import time
from typing import Any

from server.logs import request_id

__all__ = ["ObservedHTTP"]

log = logging.getLogger("giftcast.http")
_CLIENT_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")


class ObservedHTTP:
    """Pure ASGI middleware (no per-request objects beyond a closure)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = dict(scope["headers"]).get(b"x-request-id", b"").decode("latin-1")
        rid = given if _CLIENT_ID.fullmatch(given) else secrets.token_hex(8)
        reset = request_id.set(rid)
        status = 500  # an exception escaping the app is a 500 to the client
        start = time.perf_counter()

        async def send_with_id(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), (b"x-request-id", rid.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - start
            route = getattr(scope.get("route"), "path", "unmatched")
            services = scope.get("state", {}).get("services")
            if services is not None:
                services.metrics.http_requests.labels(route, str(status)).inc()
                services.metrics.http_seconds.labels(route).observe(elapsed)
            client = scope.get("client") or ("-",)
            log.info("%s %s %d", scope["method"], route, status, extra={
                "method": scope["method"], "route": route, "status": status,
                "ms": round(elapsed * 1000, 2), "client": client[0]})
            request_id.reset(reset)
