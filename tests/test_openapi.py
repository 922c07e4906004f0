"""/openapi.json: generated from the routes' docstrings, valid OpenAPI 3.1, complete."""

import jsonschema
import pytest
from openapi_spec_validator import validate
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012
from starlette.routing import Route

from server.app import ROUTES
from server.openapi import openapi_document
from tests.test_security import BODIES, MATRIX, PAGES, PRINCIPALS, make_world, request_as


@pytest.fixture
async def document(live_server):
    async with live_server.http() as http:
        response = await http.get("/openapi.json")
    assert response.status_code == 200
    return response.json()


@pytest.fixture
async def world(live_server, redis):
    return await make_world(live_server, redis)


async def test_document_is_valid_openapi_3_1(document):
    assert document["openapi"] == "3.1.0"
    validate(document)


async def test_every_api_route_and_method_is_documented(document):
    expected = {(route.path, method.lower()) for route in ROUTES if isinstance(route, Route)
                for method in route.methods or () if method != "HEAD"}
    documented = {(path, method) for path, operations in document["paths"].items() for method in operations}
    assert expected - documented == set()
    assert all(op["summary"] for ops in document["paths"].values() for op in ops.values())


async def test_every_success_response_matches_its_documented_schema(live_server, world, document):
    registry = Registry().with_resource("urn:giftcast", Resource.from_contents(
        {"components": document["components"]}, default_specification=DRAFT202012))
    mismatches, checked = [], 0
    async with live_server.http() as http:
        for (method, path), expected in MATRIX.items():
            operation = document["paths"].get(path, {}).get(method.lower())
            for principal, status in expected.items():
                if operation is None or status >= 300 or principal == "nobody" or path in PAGES:
                    continue
                response = await request_as(http, method, path.format(**world), live_server.token(*PRINCIPALS[principal]),
                                            page=False, json=BODIES.get(path))
                if not response.headers["content-type"].startswith("application/json"):
                    continue  # /metrics is Prometheus text
                documented = operation["responses"].get(str(response.status_code), {}).get("content")
                if documented is None:
                    mismatches.append(f"{method} {path}: status {response.status_code} is not documented")
                    continue
                schema = documented["application/json"]["schema"]["$ref"].replace("#/", "urn:giftcast#/")
                validator = jsonschema.Draft202012Validator({"$ref": schema}, registry=registry)
                mismatches += [f"{method} {path}: {error.message}" for error in validator.iter_errors(response.json())]
                checked += 1
                break  # one principal per route: the shape does not depend on who asks
    assert mismatches == []
    assert checked >= 35


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
