"""Prometheus metrics: one registry per app, rendered by ``GET /metrics`` (text format 0.0.4).

Why prometheus_client and not a hand-rolled registry: it is the reference implementation of the
exposition format (escaping, histogram buckets, ``_created`` samples), pure Python, and has no
dependencies. Each app gets its own `CollectorRegistry` (not the global one), so several servers
in one process (the tests) do not collide.

Instrumentation stays off the per-delivery hot path: fan-out counts once per dispatched event
(`fanout`, adding the number of receivers), never per connection write; a WebSocket request
costs one counter increment; a script call one histogram observation.

    giftcast_gifts_total{outcome}               accepted | replay | <error code>
    giftcast_errors_total{code, via}            every error reply; via = ws | http | handshake
    giftcast_rejected_inputs_total{code}        malformed input: BadRequest codes (ws, http),
                                                message_too_big (1009), invalid_utf8 (1007)
    giftcast_ws_connections                     open WebSocket sessions (gauge)
    giftcast_ws_connections_opened_total        sessions accepted at the handshake
    giftcast_ws_connections_closed_total{code}  by close code; 4008 = slow clients cut
    giftcast_redis_script_seconds{script}       Lua script call latency (histogram)
    giftcast_fanout_events_total                room events dispatched to local members
    giftcast_fanout_deliveries_total            frames queued to members by those dispatches
    giftcast_http_requests_total{route, status} by route template (bounded label values)
    giftcast_http_request_seconds{route}        HTTP latency (histogram)
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from server.errors import BadRequest, error_for_code

__all__ = ["Metrics", "CONTENT_TYPE"]

# The classic text format every Prometheus version reads (generate_latest writes it).
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# Redis scripts take tens of microseconds to a few milliseconds; an outage shows as timeouts.
_REDIS_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0)
_CLOSE_REJECTS = {1009: "message_too_big", 1007: "invalid_utf8", 1008: "frame_flood"}


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.gifts = Counter("giftcast_gifts", "Gift requests by outcome", ["outcome"], registry=r)
        self.errors = Counter("giftcast_errors", "Error replies by code and transport", ["code", "via"], registry=r)
        self.rejected = Counter("giftcast_rejected_inputs", "Malformed inputs refused, by code", ["code"], registry=r)
        self.ws_open = Gauge("giftcast_ws_connections", "Open WebSocket sessions", registry=r)
        self.ws_opened = Counter("giftcast_ws_connections_opened", "WebSocket sessions accepted", registry=r)
        self.ws_closed = Counter("giftcast_ws_connections_closed", "WebSocket sessions closed, by close code",
                                 ["code"], registry=r)
        self.redis_seconds = Histogram("giftcast_redis_script_seconds", "Lua script call latency", ["script"],
                                       buckets=_REDIS_BUCKETS, registry=r)
        self.fanout_events = Counter("giftcast_fanout_events", "Room events dispatched to local members", registry=r)
        self.fanout_deliveries = Counter("giftcast_fanout_deliveries", "Frames queued to room members", registry=r)
        self.http_requests = Counter("giftcast_http_requests", "HTTP requests", ["route", "status"], registry=r)
        self.http_seconds = Histogram("giftcast_http_request_seconds", "HTTP request latency", ["route"], registry=r)

    def render(self) -> bytes:
        return generate_latest(self.registry)

    # -- called by the adapters ----------------------------------------------------------------

    def ws_reply(self, is_gift: bool, reply: dict[str, Any]) -> None:
        """One WebSocket request answered; `is_gift`: it decoded as a gift frame."""
        code = reply.get("code") if reply["t"] == "error" else None
        if is_gift:
            self.gifts.labels("replay" if code is None and reply["receipt"]["replay"] else code or "accepted").inc()
        if code is not None:
            self.error(code, "ws")

    def error(self, code: str, via: str) -> None:
        self.errors.labels(code, via).inc()
        if isinstance(error_for_code(code), BadRequest):
            self.rejected.labels(code).inc()

    def connection_opened(self) -> None:
        self.ws_opened.inc()
        self.ws_open.inc()

    def connection_closed(self, code: int) -> None:
        self.ws_open.dec()
        self.ws_closed.labels(str(code)).inc()
        if code in _CLOSE_REJECTS:
            self.rejected.labels(_CLOSE_REJECTS[code]).inc()

    def fanout(self, receivers: int) -> None:
        self.fanout_events.inc()
        self.fanout_deliveries.inc(receivers)

    def script_timer(self, name: str) -> Any:
        """The `observe(seconds)` of one script's latency histogram."""
        return self.redis_seconds.labels(name).observe
