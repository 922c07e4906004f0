"""Pages the server hosts (server/pages.py): the overlay's token gate, static files, the demo."""

import pytest


@pytest.mark.parametrize("token_of,status,code", [
    (lambda s: None, 401, "token_missing"),
    (lambda s: s.token("alice", "overlay", ttl_s=-1), 401, "token_expired"),
    (lambda s: s.token("alice", "viewer"), 403, "forbidden"),
    (lambda s: s.token("alice", "creator"), 403, "forbidden"),
    (lambda s: s.token("ann", "overlay"), 403, "forbidden"),
])
async def test_overlay_page_needs_an_overlay_token_for_its_creator(live_server, token_of, status, code):
    token = token_of(live_server)
    async with live_server.http() as http:
        response = await http.get("/overlay/alice", params={"token": token} if token else None)
    assert response.status_code == status
    assert f'data-code="{code}"' in response.text  # a readable message in the OBS source itself


async def test_overlay_page_is_served_with_its_token_kept_out_of_referers(live_server):
    async with live_server.http() as http:
        response = await http.get("/overlay/alice", params={"token": live_server.token("alice", "overlay")})
    assert response.status_code == 200 and '<script type="module" src="/static/overlay.js">' in response.text
    assert response.headers["referrer-policy"] == "no-referrer"
    assert "script-src 'self'" in response.headers["content-security-policy"]


async def test_overlay_page_refuses_a_malformed_creator_id(live_server):
    async with live_server.http() as http:
        response = await http.get("/overlay/no%20spaces", params={"token": live_server.token("alice", "overlay")})
    assert response.status_code == 400 and 'data-code="invalid_field"' in response.text


@pytest.mark.parametrize("path,media_type", [
    ("/static/room.js", "text/javascript"),
    ("/static/alerts.css", "text/css"),
    ("/demo/", "text/html"),
    ("/demo/demo.js", "text/javascript"),
])
async def test_page_assets_are_served_by_the_server(live_server, path, media_type):
    async with live_server.http() as http:
        response = await http.get(path)
    assert response.status_code == 200 and response.headers["content-type"].startswith(media_type)


async def test_demo_without_slash_redirects_to_the_page(live_server):
    async with live_server.http() as http:
        response = await http.get("/demo", follow_redirects=True)
    assert response.status_code == 200 and "giftcast viewer demo" in response.text
