"""Web pages the server hosts: the creator overlay, the viewer demo, and their shared scripts.

Everything a page loads is served from here (no external assets): ``/static/*`` from
``server/static`` (the room client, gift art, the alert queue), ``/overlay/{creator}`` (an OBS
browser source) and ``/demo/`` from ``client_demo/static``. These routes are not part of the
HTTP API and are left out of /openapi.json.

The overlay page checks its ``?token=`` before serving, so a creator setting up OBS sees why a
URL does not work in the source itself instead of a blank transparent page: only an ``overlay``
token naming this creator opens it (a viewer or creator token could spend coins; pasting one
into a streaming tool would leak it).
"""

from __future__ import annotations

import html
import importlib.resources

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from server.auth import check_user_id
from server.errors import Forbidden, GiftcastError

__all__ = ["routes"]

# The token is in the page's URL: never send it on in a Referer. The page talks to this host only.
_HEADERS = {
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "Content-Security-Policy": "default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data:; "
                               "style-src 'self'; script-src 'self'; frame-ancestors 'none'",
}


def _overlay_html() -> str:
    return importlib.resources.files("server").joinpath("static/overlay.html").read_text("utf-8")


def _error_page(error: GiftcastError) -> HTMLResponse:
    """A readable error on a transparent page: what OBS shows when the URL is wrong."""
    body = (f'<!doctype html><meta charset="utf-8"><title>giftcast overlay</title>'
            f'<link rel="stylesheet" href="/static/overlay.css">'
            f'<p class="overlay-error" data-code="{error.code}">giftcast overlay: {html.escape(error.message)}</p>')
    return HTMLResponse(body, status_code=error.status, headers=_HEADERS)


async def overlay(request: Request) -> Response:
    """The creator's overlay. Needs ``?token=`` (an overlay token for this creator)."""
    services = request.state.services
    try:
        creator = check_user_id(request.path_params["creator_id"])
        principal = services.authenticate(request.query_params.get("token"))
        if principal.role != "overlay" or principal.user_id != creator:
            raise Forbidden(f"this page needs an overlay token for {creator} (POST /v1/live/overlay-token)")
    except GiftcastError as error:
        return _error_page(error)
    return HTMLResponse(_overlay_html(), headers=_HEADERS)


routes: list[BaseRoute] = [
    Route("/overlay/{creator_id}", overlay, include_in_schema=False),
    Mount("/static", StaticFiles(packages=[("server", "static")]), name="static"),
    Mount("/demo", StaticFiles(packages=[("client_demo", "static")], html=True), name="demo"),
]
