"""HTTP routes of live rooms: a creator opens or closes their room, sets its goal and mints its
overlay token; anyone reads a room's public snapshot and leaderboards (what its overlay shows
anyway).
"""

from __future__ import annotations

import time

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from server.auth import check_user_id, mint_token
from server.errors import InvalidField
from server.http_request import _int_param, _json_body, _principal, _require_role, _services
from server.leaderboards import check_period
from server.live_store import TOP_GIFTERS

__all__ = ["leaderboard", "overlay_token", "room", "set_goal", "set_live"]

MAX_LEADERBOARD = 100


async def set_live(request: Request) -> Response:
    """Open or close the caller's own live room (the path says which); idempotent.
    ---
    auth: [creator]
    responses: {200: LiveState}
    errors: [forbidden]
    """
    principal = _principal(request)
    _require_role(principal, "creator")
    status = "open" if request.url.path.endswith("/open") else "closed"
    state = await _services(request).lives.set_state(principal.user_id, status)
    return JSONResponse({"room": principal.user_id, "status": state.status, "live_id": state.live_id,
                         "seq": state.seq, "changed": state.changed})


async def set_goal(request: Request) -> Response:
    """Set the current live's diamond goal for the overlay's goal bar (0 clears it); publishes `goal`.
    ---
    auth: [creator]
    body: Goal
    responses: {200: GoalState}
    errors: [invalid_field, bad_request, room_closed, forbidden]
    """
    principal = _principal(request)
    _require_role(principal, "creator")
    diamonds = (await _json_body(request)).get("diamonds")
    if type(diamonds) is not int:
        raise InvalidField("diamonds must be an integer from 0 to 10^12")
    seq = await _services(request).lives.set_goal(principal.user_id, diamonds)
    return JSONResponse({"room": principal.user_id, "goal": diamonds, "seq": seq})


async def overlay_token(request: Request) -> Response:
    """Mint a read-only overlay token for the creator's own room, and the overlay's URL.
    ---
    auth: [creator]
    responses: {201: OverlayToken}
    errors: [forbidden]
    """
    principal = _principal(request)
    _require_role(principal, "creator")
    settings = _services(request).settings
    now = int(time.time())
    token = mint_token(settings.token_secret, principal.user_id, "overlay", now=now, ttl_s=settings.overlay_token_ttl_s)
    return JSONResponse({"token": token, "expires_at": now + settings.overlay_token_ttl_s,
                         "overlay_url": f"/overlay/{principal.user_id}?token={token}"}, status_code=201)


async def room(request: Request) -> Response:
    """A room's public snapshot: what a WebSocket join returns.
    ---
    responses: {200: Snapshot}
    errors: [invalid_field]
    """
    creator = check_user_id(request.path_params["creator_id"])
    return JSONResponse(await _services(request).room_snapshot(creator))


async def leaderboard(request: Request) -> Response:
    """A room's top gifters by coins: of the current live, the ISO week (UTC) or all time.
    ---
    query: {period: string, limit: integer}
    responses: {200: Leaderboard}
    errors: [invalid_field]
    """
    creator = check_user_id(request.path_params["creator_id"])
    period = check_period(request.query_params.get("period", "live"))
    limit = _int_param(request, "limit", TOP_GIFTERS, 1, MAX_LEADERBOARD)
    top = await _services(request).lives.leaderboard(creator, period, limit)
    return JSONResponse({"room": creator, "period": period, "top": top})
