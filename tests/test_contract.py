"""The contract check: the fakes' answers held to authentik-client's models, the OAuth/OIDC specs and Reflector's views."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from scripts.contract import authentik_contract, check_traffic
from scripts.world import state as real_world
from scripts.world.fakes import AppContext, Exchange, Request, Response, authentik

STEP = "docs/page.md:12"
TOKEN = "contract-test-token"


def answer(world_dir: Path, target: str, method: str = "GET", body: bytes = b"", content_type: str = "application/json") -> Exchange:
    """One request answered by the real fake Authentik, in-process, on a fresh world."""
    with real_world.locked_state(world_dir) as state:
        tokens = state.setdefault("authentik", {}).setdefault("api_tokens", [])
        if TOKEN not in tokens:
            tokens.append(TOKEN)
    headers = {"authorization": f"Bearer {TOKEN}"} | ({"content-type": content_type} if body else {})
    request = Request(method, target, "authentik.example.com", headers, body)
    ctx = AppContext(world_dir=world_dir, world=real_world, container={"project": "authentik", "service": "server"})
    return Exchange("authentik", request, authentik.handle(request, ctx))


def edited(exchange: Exchange, change: Any) -> dict[str, Any]:
    """The exchange as the front records it, with its response body changed by `change` (a broken fake)."""
    body = json.loads(exchange.response.body)
    change(body)
    response = Response(exchange.response.status, json.dumps(body).encode(), exchange.response.headers, exchange.response.honoured)
    return Exchange(exchange.app, exchange.request, response).as_json()


@pytest.fixture
def flows(tmp_path: Path) -> Exchange:
    return answer(tmp_path, "/api/v3/flows/instances/?slug=default-provider-invalidation-flow")


def test_the_fakes_real_answer_passes(flows: Exchange) -> None:
    """The check is not a tripwire on everything: the fake's own answer matches PaginatedFlowList."""
    assert (flows.response.status, check_traffic([flows.as_json()], STEP)) == (200, [])


def test_a_response_missing_a_field_fails_naming_operation_field_and_step(flows: Exchange) -> None:
    """A fake that drops a required field (the flow's slug) is caught, and the message says where to look."""
    found = check_traffic([edited(flows, lambda b: b["results"][0].pop("slug"))], STEP)
    assert found == [
        "contract: FlowsApi.flows_instances_list (GET /api/v3/flows/instances/): response.results.0.slug: "
        f"Field required (200 answers PaginatedFlowList) (traffic of {STEP})"
    ]


def test_a_response_field_of_the_wrong_type_fails(flows: Exchange) -> None:
    """pagination.count as a string, a flow's pk that is no UUID: both are wrong types for the client's model."""

    def break_types(body: dict[str, Any]) -> None:
        body["pagination"]["count"] = "1"
        body["results"][0]["pk"] = 7

    fields = [m.split(": ")[2] for m in check_traffic([edited(flows, break_types)], STEP)]
    assert fields[0].startswith("response.pagination.count")  # pydantic adds the union member it tried (.int, .float)
    assert "response.results.0.pk" in fields


def test_a_field_the_real_api_never_sends_fails(flows: Exchange) -> None:
    """A shape from another endpoint (scope_name on a flow) would let a page's jq pass here and fail on Authentik."""
    found = check_traffic([edited(flows, lambda b: b["results"][0].update(scope_name="openid"))], STEP)
    assert ["response.results.0.scope_name" in m and "not a field of PaginatedFlowList" in m for m in found] == [True]


def test_a_filter_the_operation_does_not_declare_fails(tmp_path: Path) -> None:
    """The fake reports which parameters it filtered by; each must be a declared parameter of the operation."""
    listed = answer(tmp_path, "/api/v3/propertymappings/all/?name=x")
    record = listed.as_json() | {"honoured": ["name", "scope_name"]}
    assert [m.split(": ")[1:3] for m in check_traffic([record], STEP)] == [
        ["PropertymappingsApi.propertymappings_all_list (GET /api/v3/propertymappings/all/)", "query.scope_name"]
    ]


def test_an_accepted_body_that_the_request_model_rejects_fails(tmp_path: Path) -> None:
    """If the fake took a provider without redirect_uris (as it did), OAuth2ProviderRequest says Authentik would not."""
    flow = json.loads(answer(tmp_path, "/api/v3/flows/instances/").response.body)["results"][0]["pk"]
    body = json.dumps({"name": "X", "authorization_flow": flow, "invalidation_flow": flow, "redirect_uris": []}).encode()
    created = answer(tmp_path, "/api/v3/providers/oauth2/", "POST", body)
    assert (created.response.status, check_traffic([created.as_json()], STEP)) == (201, [])
    record = created.as_json() | {"request_body": json.dumps({"name": "Y", "authorization_flow": flow, "invalidation_flow": flow})}
    assert [m.split(": ")[2] for m in check_traffic([record], STEP)] == ["request.redirect_uris"]


def provider_pk(world_dir: Path) -> str:
    """A provider made through the fake's API, as the setup script makes one."""
    flow = json.loads(answer(world_dir, "/api/v3/flows/instances/").response.body)["results"][0]["pk"]
    body = {
        "name": "Reflector",
        "authorization_flow": flow,
        "invalidation_flow": flow,
        "redirect_uris": [{"matching_mode": "strict", "url": "https://app.example.com/cb"}],
    }
    return str(json.loads(answer(world_dir, "/api/v3/providers/oauth2/", "POST", json.dumps(body).encode()).response.body)["pk"])


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        # The fake once took this one, and then failed every sign-in with a 500: the model alone lets it through.
        ({"client_secret": None}, "request.client_secret", "This field may not be null."),
        ({"redirect_uris": [{"matching_mode": "strict", "url": None}]}, "request.redirect_uris.0.url", "Input should be a valid string"),
    ],
)
def test_a_null_that_authentik_refuses_must_get_its_400_naming_the_field(tmp_path: Path, body: dict[str, Any], field: str, message: str) -> None:
    """authentik-client's models make every optional field Optional[...] = None, so they accept a null that Authentik's
    serializer refuses ("This field may not be null."): the check knows which fields the schema lets be null."""
    pk = provider_pk(tmp_path)
    patched = answer(tmp_path, f"/api/v3/providers/oauth2/{pk}/", "PATCH", json.dumps(body).encode())
    assert (patched.response.status, check_traffic([patched.as_json()], STEP)) == (400, [])
    accepted = Response(200, answer(tmp_path, f"/api/v3/providers/oauth2/{pk}/").response.body, patched.response.headers)
    found = check_traffic([Exchange("authentik", patched.request, accepted).as_json()], STEP)
    assert [m.split(": ")[2] for m in found] == [field]
    assert message in found[0]


def test_a_null_the_schema_allows_is_accepted(tmp_path: Path) -> None:
    """signing_key is nullable (a provider without a key signs with HS256): PATCHing it to null is a real request."""
    pk = provider_pk(tmp_path)
    patched = answer(tmp_path, f"/api/v3/providers/oauth2/{pk}/", "PATCH", json.dumps({"signing_key": None}).encode())
    assert (patched.response.status, check_traffic([patched.as_json()], STEP)) == (200, [])


def test_a_refused_body_must_get_authentiks_status_and_error_shape(tmp_path: Path) -> None:
    """When the request model rejects a body, Authentik answers 400 with DRF's field errors: a 500, or a 400 about
    another field, is a fake that does not fail as Authentik does."""
    pk = provider_pk(tmp_path)
    refused = answer(tmp_path, f"/api/v3/providers/oauth2/{pk}/", "PATCH", json.dumps({"client_id": ""}).encode())
    assert (refused.response.status, json.loads(refused.response.body), check_traffic([refused.as_json()], STEP)) == (
        400,
        {"client_id": ["This field may not be blank."]},
        [],
    )
    crashed = Response(500, b"Internal Server Error", (("Content-Type", "text/plain"),))
    other = Response(400, json.dumps({"name": ["This field may not be blank."]}).encode(), refused.response.headers)
    found = [check_traffic([Exchange("authentik", refused.request, r).as_json()], STEP) for r in (crashed, other)]
    assert [[m.split(": ")[2] for m in f] for f in found] == [["status"], ["response.client_id"]]


def test_the_contract_is_derived_from_the_client_not_a_table() -> None:
    """Operations come from authentik-client's own serializers: the scope list declares scope_name, the all list doesn't."""
    contract = authentik_contract()
    every = contract.operation("GET", "/api/v3/propertymappings/all/")
    scope = contract.operation("GET", "/api/v3/propertymappings/provider/scope/")
    detail = contract.operation("PATCH", "/api/v3/providers/oauth2/3/")
    assert every is not None
    assert scope is not None
    assert detail is not None
    assert ("scope_name" in every.query, "scope_name" in scope.query) == (False, True)
    assert (detail.name, detail.body, detail.responses["200"]) == ("ProvidersApi.providers_oauth2_partial_update", "PatchedOAuth2ProviderRequest", "OAuth2Provider")
    assert len(contract.operations) > 1000


def test_token_endpoint_answers_are_held_to_rfc_6749(tmp_path: Path) -> None:
    """A token response without token_type, or an error without no-store, breaks RFC 6749 §5.1/§5.2."""
    request = Request("POST", "/application/o/token/", "authentik.example.com", {}, b"grant_type=x")
    bad = Response(200, json.dumps({"access_token": "a.b.c"}).encode(), (("Content-Type", "application/json"), ("Cache-Control", "no-store")))
    unstored = Response(400, json.dumps({"error": "invalid_grant"}).encode(), (("Content-Type", "application/json"),))
    found = check_traffic([Exchange("authentik", request, r).as_json() for r in (bad, unstored)], STEP)
    assert [m.split(": ")[2] for m in found] == ["response.token_type", "response.id_token", "response.Cache-Control"]


def test_reflector_answers_are_held_to_its_views_models() -> None:
    """An API key listed without created_at, or a 422 that is not FastAPI's error list, is caught."""
    listed = Exchange(
        "reflector-api",
        Request("GET", "/v1/user/api-keys", "api.example.com"),
        Response(200, b'[{"id":"k","user_id":"u","name":null}]', (("Content-Type", "application/json"),)),
    )
    invalid = Exchange(
        "reflector-api",
        Request("POST", "/v1/user/api-keys", "api.example.com"),
        Response(422, b'{"detail":"bad body"}', (("Content-Type", "application/json"),)),
    )
    found = check_traffic([listed.as_json(), invalid.as_json()], STEP)
    assert [m.split(": ")[1:3] for m in found] == [["GET /v1/user/api-keys", "response.0.created_at"], ["POST /v1/user/api-keys", "response.detail"]]
