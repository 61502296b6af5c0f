"""The client's calls and shapes against the server's own OpenAPI document (`app.openapi()`).

Every path and method the client calls must exist with the statuses it treats as answers and the
query parameters it sends; every endpoint of the API (the dashboard's page data aside) must have
a client call; and every request and answer shape with a schema on the server must match the
client's TypedDict field for field: the same names, the same required ones, enums equal to the
client's Literals, null allowed on both sides or neither, nested shapes alike. Answers the server
declares as a bare object are checked against real answers in test_client_round_trips.py.
"""

from __future__ import annotations

import inspect
import types
import typing
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

import pytest
from typing_extensions import is_typeddict

from overdrive.api import create_app
from overdrive.config import Settings
from overdrive.wiring import build_services
from overdrive_client import endpoints as ep
from overdrive_client import types as t
from tests.real_servers import app_env

# The request body of each call that sends one, by the client's TypedDict.
REQUEST_BODIES: dict[Any, type] = {
    ep.rank: t.RankRequest, ep.send_signal: t.Signal, ep.send_signals: t.SignalBatch, ep.put_item: t.Item,
    ep.put_items: t.ItemBatch, ep.create_experiment: t.ExperimentDefinition, ep.update_experiment: t.ExperimentChanges,
}
SAMPLE_ARGS = {"body": {"user_id": "u"}, "signal": {}, "signals": [], "item": {}, "items": [], "definition": {},
               "changes": {}, "item_id": "i", "user_id": "u", "job_id": "j", "experiment_id": "e"}


@pytest.fixture(scope="module")
def spec(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp: Path = tmp_path_factory.mktemp("openapi")
    return create_app(build_services(Settings.load(app_env(tmp)))).openapi()


def _calls() -> list[tuple[Any, ep.Call[Any]]]:
    out = []
    for fn in ep.ALL:
        params = inspect.signature(fn).parameters
        out.append((fn, fn(**{n: SAMPLE_ARGS[n] for n, p in params.items() if p.default is inspect.Parameter.empty})))
    return out


def _operation(spec: dict[str, Any], call: ep.Call[Any]) -> dict[str, Any]:
    assert call.route in spec["paths"], f"{call.method} {call.route}: no such path on the server"
    operations = spec["paths"][call.route]
    assert call.method.lower() in operations, f"{call.method} {call.route}: the server has only {sorted(operations)}"
    return operations[call.method.lower()]


def test_every_call_exists_with_its_method_statuses_and_query(spec: dict[str, Any]) -> None:
    for fn, call in _calls():
        operation = _operation(spec, call)
        answered = {int(code) for code in operation["responses"] if code.isdigit()}
        # /health/ready answers 503 without declaring it; every other status the client accepts is declared.
        assert call.ok - {503} <= answered, f"{fn.__name__}: accepts {sorted(call.ok)}, server declares {sorted(answered)}"
        declared = {p["name"] for p in operation.get("parameters", []) if p["in"] == "query"}
        assert set(call.params or {}) <= declared, f"{fn.__name__}: query {sorted(call.params or {})} vs {sorted(declared)}"
        path_params = {p["name"] for p in operation.get("parameters", []) if p["in"] == "path"}
        assert set(call.path_params) == path_params, fn.__name__
        assert (call.body is not None) == ("requestBody" in operation), f"{fn.__name__}: body sent vs declared differ"


def test_every_endpoint_of_the_api_has_a_client_call(spec: dict[str, Any]) -> None:
    called = {(call.method, call.route) for _, call in _calls()}
    served = {(m.upper(), path) for path, ops in spec["paths"].items() for m in ops
              if not path.startswith("/dashboard/")}  # the dashboard's own page data, not an API
    assert served - called == set(), f"endpoints without a client call: {sorted(served - called)}"


def test_request_shapes_match_the_server_schemas(spec: dict[str, Any]) -> None:
    with_body = {fn for fn, call in _calls() if call.body is not None}
    assert with_body == set(REQUEST_BODIES), "every call that sends a body needs its shape in REQUEST_BODIES"
    for fn, call in _calls():
        if fn not in REQUEST_BODIES:
            continue
        schema = _operation(spec, call)["requestBody"]["content"]["application/json"]["schema"]
        _same_shape(spec, REQUEST_BODIES[fn], schema, where=fn.__name__, request=True)


def test_answer_shapes_match_where_the_server_declares_them(spec: dict[str, Any]) -> None:
    compared = []
    for fn, call in _calls():
        answer = typing.get_type_hints(fn)["return"]
        (shape,) = get_args(answer)
        for code in call.ok:
            declared = _operation(spec, call)["responses"].get(str(code), {})
            schema = declared.get("content", {}).get("application/json", {}).get("schema", {})
            if "$ref" in schema:
                _same_shape(spec, shape, schema, where=f"{fn.__name__} {code}", request=False)
                compared.append(fn.__name__)
    # The answers with a declared model: a ranking, a signal acknowledgement, a stored item.
    assert {"rank", "send_signal", "send_signals", "put_item", "get_item"} <= set(compared), compared


def test_signal_types_are_the_servers(spec: dict[str, Any]) -> None:
    server = spec["components"]["schemas"]["SignalIn"]["properties"]["signal_type"]["enum"]
    assert set(get_args(t.SignalType)) == set(server)


# ------------------------------------------------------------------------------ comparison

def _resolve(spec: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def _variants(schema: dict[str, Any]) -> list[dict[str, Any]]:
    return schema.get("anyOf") or schema.get("oneOf") or [schema]


def _strip(annotation: Any) -> Any:
    """The annotation without Required/NotRequired and Annotated wrappers."""
    while get_origin(annotation) in (typing.Annotated, typing.Required, typing.NotRequired,
                                     getattr(__import__("typing_extensions"), "Required"),
                                     getattr(__import__("typing_extensions"), "NotRequired")):
        annotation = get_args(annotation)[0]
    return annotation


def _members(annotation: Any) -> list[Any]:
    annotation = _strip(annotation)
    if get_origin(annotation) in (Union, types.UnionType):
        return [m for a in get_args(annotation) for m in _members(a)]
    return [annotation]


def _same_shape(spec: dict[str, Any], shape: type, schema: dict[str, Any], *, where: str, request: bool) -> None:
    assert is_typeddict(shape), f"{where}: {shape} is not a TypedDict"
    schema = _resolve(spec, schema)
    server_fields = set(schema.get("properties", {}))
    server_required = set(schema.get("required", []))
    client_fields = set(typing.get_type_hints(shape))
    assert client_fields == server_fields, (f"{where}: {shape.__name__} has {sorted(client_fields - server_fields)} "
                                            f"the server lacks, lacks {sorted(server_fields - client_fields)}")
    if request:
        assert set(shape.__required_keys__) == server_required, f"{where}: {shape.__name__} required keys differ"
    else:
        assert server_required <= set(shape.__required_keys__), f"{where}: {shape.__name__} must require {server_required}"
    hints = typing.get_type_hints(shape, include_extras=True)
    for name, prop in schema["properties"].items():
        _same_field(spec, hints[name], prop, where=f"{where}.{name}", request=request)


def _same_field(spec: dict[str, Any], annotation: Any, prop: dict[str, Any], *, where: str, request: bool) -> None:
    members = _members(annotation)
    variants = [_resolve(spec, v) | ({"$ref": v["$ref"]} if "$ref" in v else {}) for v in _variants(prop)]
    client_null = type(None) in members
    server_null = any(v.get("type") == "null" for v in variants)
    # Null must be accepted on both sides or neither (an answer may declare null it never sends).
    assert client_null == server_null or (not request and server_null), f"{where}: null allowed differs"
    literal = [m for m in members if get_origin(m) is Literal]
    enums = [v["enum"] for v in variants if "enum" in v]
    if literal and enums:
        assert set(get_args(literal[0])) == set(enums[0]), f"{where}: enum {enums[0]} vs {get_args(literal[0])}"
    for member in members:
        inner = member
        if get_origin(member) is list:
            (inner,) = get_args(member)
            nested = [v["items"] for v in variants if v.get("type") == "array" and "items" in v]
        else:
            nested = [v for v in variants if "$ref" in v or v.get("properties")]
        if is_typeddict(inner):
            assert nested, f"{where}: {inner.__name__} where the server has {prop}"
            _same_shape(spec, inner, nested[0], where=where, request=request)
