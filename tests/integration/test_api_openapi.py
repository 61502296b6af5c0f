"""The OpenAPI document declares what the service answers (schemathesis checks it at large in
test_openapi_schemathesis.py; these are the findings it made, pinned)."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

OPEN = {"/health/live", "/health/ready"}


def _operations(spec: dict[str, Any]):
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            yield path, method, operation


def test_every_operation_declares_its_error_answers_with_one_body(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    assert "HTTPValidationError" not in spec["components"]["schemas"]  # FastAPI's 422 body is not ours
    for path, method, operation in _operations(spec):
        responses = operation["responses"]
        expected = {"408", "431"}
        if path not in OPEN:
            expected |= {"401", "403", "429", "503"}
        if "requestBody" in operation:
            expected |= {"400", "413", "422"}
        if method in ("post", "patch", "delete"):
            expected.add("415")
        if any(p["in"] == "path" for p in operation.get("parameters", [])):
            expected.add("404")
        assert expected <= set(responses), (method, path, sorted(expected - set(responses)))
        for code, response in responses.items():
            if int(code) >= 400 and path != "/health/ready":
                schema = response["content"]["application/json"]["schema"]
                assert schema == {"$ref": "#/components/schemas/ErrorOut"}, (method, path, code)
        for code in ("429", "503"):
            if code in responses and path != "/health/ready":
                assert responses[code]["headers"]["Retry-After"]["required"], (method, path, code)
    ops = spec["paths"]
    assert "409" in ops["/models/train"]["post"]["responses"]
    assert "409" in ops["/experiments"]["post"]["responses"]
    assert "409" in ops["/experiments/{experiment_id}"]["patch"]["responses"]
    assert set(ops["/users/{user_id}/export"]["get"]["responses"]["200"]["content"]) == {
        "application/json", "application/x-ndjson"}
    assert "securitySchemes" not in spec["components"]  # authentication off: no credential asked for


def test_an_error_body_is_what_the_document_says(client: TestClient) -> None:
    body = client.post("/signals/process", json={"user_id": "u"}).json()
    assert set(body) == {"error", "message", "errors"}
    assert set(body["errors"][0]) == {"field", "message", "type"}


def test_405_allows_every_method_the_path_serves(client: TestClient) -> None:
    # Starlette named only the first matching route's methods: OPTIONS /experiments said POST.
    refused = client.request("OPTIONS", "/experiments")
    assert refused.status_code == 405
    assert {m.strip() for m in refused.headers["allow"].split(",")} >= {"GET", "POST"}
    refused = client.put("/experiments/e1", json={})
    assert {m.strip() for m in refused.headers["allow"].split(",")} >= {"GET", "PATCH", "DELETE"}


def test_an_integral_number_is_an_integer_and_context_is_strict(client: TestClient) -> None:
    assert client.post("/rank/for-you/enhanced", json={"user_id": "u", "limit": 5.0}).status_code == 200
    for limit in (5.5, True, "5"):
        assert client.post("/rank/for-you/enhanced", json={"user_id": "u", "limit": limit}).status_code == 422
    # device_info and location were lax: "app": 0 was taken as false.
    refused = client.post("/rank/for-you/enhanced", json={"user_id": "u", "context": {"device_info": {"app": 0}}})
    assert refused.status_code == 422 and refused.json()["errors"][0]["field"] == "context.device_info.app"


def test_strategies_are_the_servers(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    prop = spec["components"]["schemas"]["RankRequest"]["properties"]["strategy"]
    (named,) = [v for v in prop["anyOf"] if v.get("type") == "string"]
    assert set(named["enum"]) == set(client.get("/rank/strategies").json()["strategies"])


def test_bounds_are_json_schema(client: TestClient) -> None:
    # `Annotated[WireInt | None, Field(ge=...)]` once came out as {"ge": -840, "le": 840}: bounds
    # no JSON Schema reader sees (schemathesis sent utc_offset_minutes -1177026 as valid).
    spec = client.get("/openapi.json").json()
    found = []

    def walk(node: Any, where: str) -> None:
        if isinstance(node, dict):
            if node.get("type") in ("integer", "number", "string", "array"):
                found.extend(f"{where}/{k}" for k in ("ge", "le", "gt", "lt", "min_length", "max_length") if k in node)
            for key, value in node.items():
                walk(value, f"{where}/{key}")
        elif isinstance(node, list):
            for n, value in enumerate(node):
                walk(value, f"{where}[{n}]")

    walk(spec, "")
    assert found == []
    offset = spec["components"]["schemas"]["ContextIn"]["properties"]["utc_offset_minutes"]["anyOf"][0]
    assert (offset["minimum"], offset["maximum"]) == (-840, 840)
