"""The OpenAPI 3.1 document of the HTTP API, generated from the routes and served at /openapi.json.

Each route's handler documents itself in its docstring: the first line is the summary, the text
up to ``---`` the description, and after ``---`` a small YAML block (Starlette's convention):

    auth: [viewer, creator]        roles whose bearer token is accepted; `signature`: the
                                   payment webhook's Giftcast-Signature; absent: public
    query: {region: string}       query parameters and their JSON types
    body: OrderRequest            JSON request body (a schema below)
    responses: {201: Order}       success status -> schema (default {200: <none>})
    errors: [unknown_bundle]      error codes (server/errors.py) the route answers with

Path parameters come from the path. Token errors (401) for authenticated routes and
`unavailable` (503) for all are added here. Response shapes are `SCHEMAS` (server/openapi_schemas.py); docs/http.md
explains each route in prose.
"""

from __future__ import annotations

import importlib.metadata
import inspect
import re
from typing import Any

import yaml
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.schemas import SchemaGenerator

from server.errors import error_for_code
from server.openapi_schemas import SCHEMAS, ref

__all__ = ["openapi_document", "routes", "SCHEMAS"]

TOKEN_ERRORS = ("token_missing", "token_invalid", "token_expired")


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"content": {"application/json": {"schema": schema}}}


def _operation(method: str, path: str, func: Any) -> dict[str, Any]:
    doc = inspect.getdoc(func) or ""
    prose, _, block = doc.partition("\n---\n")
    spec = yaml.safe_load(block) or {}
    summary, _, description = prose.partition("\n")
    op: dict[str, Any] = {"operationId": f"{method}_{re.sub(r'[^A-Za-z0-9]+', '_', path).strip('_')}",
                          "summary": summary.strip()}
    if description.strip():
        op["description"] = description.strip()
    params = [{"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
              for name in re.findall(r"{(\w+)(?::\w+)?}", path)]
    params += [{"name": name, "in": "query", "required": False, "schema": {"type": kind}}
               for name, kind in (spec.get("query") or {}).items()]
    if params:
        op["parameters"] = params
    auth = spec.get("auth")
    errors = list(spec.get("errors") or [])
    if auth == "signature":
        op["security"] = [{"webhookSignature": []}]
    elif auth:
        op["security"] = [{"bearer": []}]
        op["description"] = (op.get("description", "") + f"\n\nRoles: {', '.join(auth)}.").strip()
        errors += TOKEN_ERRORS
    else:
        op["security"] = []
    if "body" in spec:
        op["requestBody"] = {"required": True, **_json(ref(spec["body"]))}
    responses: dict[str, Any] = {}
    for status, schema in (spec.get("responses") or {200: None}).items():
        responses[str(status)] = {"description": schema or "OK", **(_json(ref(schema)) if schema else {})}
    by_status: dict[int, list[str]] = {}
    for code in [*errors, "unavailable"]:
        error = error_for_code(code)
        if error.code != code:
            raise ValueError(f"{func.__name__} documents an unknown error code {code!r}")
        by_status.setdefault(error.status, []).append(code)
    for status, codes in sorted(by_status.items()):
        responses.setdefault(str(status), {"description": "error: " + ", ".join(f"`{c}`" for c in codes),
                                           **_json(ref("Error"))})
    op["responses"] = responses
    return op


def openapi_document(api_routes: list[BaseRoute]) -> dict[str, Any]:
    """The OpenAPI 3.1 document for `api_routes` (routes with include_in_schema)."""
    paths: dict[str, dict[str, Any]] = {}
    for endpoint in SchemaGenerator({}).get_endpoints(api_routes):
        paths.setdefault(endpoint.path, {})[endpoint.http_method] = _operation(endpoint.http_method, endpoint.path, endpoint.func)
    return {
        "openapi": "3.1.0",
        "info": {"title": "giftcast HTTP API", "version": importlib.metadata.version("giftcast"),
                 "description": "Coins, gifts, orders and live rooms. WebSocket protocol: docs/protocol.md."},
        "paths": paths,
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "gc1 token",
                           "description": "`Authorization: Bearer <token>`, or `?token=<token>`"},
                "webhookSignature": {"type": "apiKey", "in": "header", "name": "Giftcast-Signature",
                                     "description": "`t=<unix seconds>,v1=<hex HMAC-SHA256 of \"<t>.<body>\">`"},
            },
        },
    }


def routes(api_routes: list[BaseRoute]) -> list[BaseRoute]:
    """The /openapi.json route for `api_routes`; the document is built once, at the first call."""
    document: dict[str, Any] = {}

    async def openapi_json(request: Request) -> Response:
        if not document:
            document.update(openapi_document(api_routes))
        return JSONResponse(document)

    return [Route("/openapi.json", openapi_json, include_in_schema=False)]
