"""/openapi.json: generated from the routes' docstrings, valid OpenAPI 3.1, complete."""

import pytest
from openapi_spec_validator import validate
from starlette.routing import Route

from server.hooks_api import routes as hook_routes
from server.http_api import routes
from server.openapi import openapi_document


@pytest.fixture
async def document(live_server):
    async with live_server.http() as http:
        response = await http.get("/openapi.json")
    assert response.status_code == 200
    return response.json()


async def test_document_is_valid_openapi_3_1(document):
    assert document["openapi"] == "3.1.0"
    validate(document)


async def test_every_api_route_and_method_is_documented(document):
    expected = {(route.path, method.lower()) for route in routes + hook_routes if isinstance(route, Route)
                for method in route.methods or () if method != "HEAD"}
    documented = {(path, method) for path, operations in document["paths"].items() for method in operations}
    assert expected - documented == set()
    assert all(op["summary"] for ops in document["paths"].values() for op in ops.values())


async def test_pages_are_not_part_of_the_api(document):
    assert not any(path.startswith(("/overlay", "/demo", "/static", "/openapi")) for path in document["paths"])


async def test_authenticated_routes_declare_token_errors_and_roles(document):
    wallet = document["paths"]["/v1/me/wallet"]["get"]
    assert wallet["security"] == [{"bearer": []}] and "token_expired" in wallet["responses"]["401"]["description"]
    assert "Roles: viewer, creator, admin." in wallet["description"]
    assert document["paths"]["/v1/catalog/gifts"]["get"]["security"] == []


def test_an_unknown_error_code_in_a_docstring_is_refused():
    async def handler(request):
        """Broken.
        ---
        errors: [no_such_code]
        """

    with pytest.raises(ValueError, match="no_such_code"):
        openapi_document([Route("/x", handler)])
