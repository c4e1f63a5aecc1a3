"""The one error model: every error answer has the documented shape, request validation
errors always encode, and the OpenAPI schema declares what the routes answer."""

from types import SimpleNamespace

import pytest

from api.main import create_app
from tests import factories as f

ERROR_STATUSES = {"400", "401", "403", "404", "409", "413", "422"}
CSV, XLSX = "text/csv", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def _error(response, status: int) -> SimpleNamespace:
    """The answer's body, checked against the documented error model: a text ``detail`` and
    a list of ``errors`` that each name a ``field`` and a ``message``."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) <= {"detail", "errors"} and isinstance(body["detail"], str), body
    errors = []
    for item in body.get("errors", []):
        assert isinstance(item["field"], str) and isinstance(item["message"], str), item
        errors.append(SimpleNamespace(**item, extra=item))
    return SimpleNamespace(detail=body["detail"], errors=errors)


def _raw_json(client, method: str, path: str, text: str):
    return client.request(method, path, content=text, headers={"Content-Type": "application/json"})


@pytest.mark.parametrize("value", ["NaN", "Infinity", "-Infinity"])
def test_nan_in_a_body_is_a_422_naming_the_field(client, session, clock, value):
    pd = f.partidistrikt(session)
    kommun = f.kommun(session, pd=pd)
    f.district(session, kommun, "23800000", 0, f.forening(session, kommun))
    prefs = _raw_json(client, "PUT", "/me/preferences", f'{{"nightly_email": {value}}}')
    assert [e.field for e in _error(prefs, 422).errors] == ["nightly_email"]

    occurred = (clock.now).isoformat()
    contact = _raw_json(
        client,
        "POST",
        "/contacts",
        '{"client_uuid": "0b5b3c1e-6a53-4a43-9a57-0b1c2d3e4f50", "kind": "door", '
        f'"outcome": "conversation", "occurred_at": "{occurred}", '
        f'"location": {{"lon": {value}, "lat": 63.1}}}}',
    )
    assert "location.lon" in {e.field for e in _error(contact, 422).errors}

    batch = _raw_json(client, "POST", "/contacts/batch", f'{{"records": [{{"count": {value}}}]}}')
    assert batch.status_code == 200 and batch.json()["results"][0]["status"] == "invalid"
    assert _error(_raw_json(client, "POST", "/contacts/batch", f'{{"records": {value}}}'), 422)

    campaign = _raw_json(
        client,
        "POST",
        "/campaigns",
        f'{{"name": "Val", "partidistrikt_id": {pd.id}, "starts_on": "2026-03-01", '
        f'"ends_on": "2026-09-13", "pace_final_weight": {value}}}',
    )
    body = _error(campaign, 422)
    assert [e.field for e in body.errors] == ["pace_final_weight"]
    assert body.detail.startswith("pace_final_weight: ")


def test_validation_errors_name_each_field_without_echoing_the_input(client):
    r = client.post("/partidistrikt", json={"code": "2", "name": "X" * 500, "colour": "red"})
    body = _error(r, 422)
    assert {e.field for e in body.errors} >= {"code", "colour"}
    assert body.detail.startswith(f"{body.errors[0].field}: ") and "more)" in body.detail
    assert all("input" not in e.extra and "ctx" not in e.extra for e in body.errors)
    assert "X" * 500 not in r.text


def test_a_model_validators_message_is_the_services_text(client, session):
    pd = f.partidistrikt(session)
    r = client.post(
        "/campaigns",
        json={
            "name": "Val",
            "partidistrikt_id": pd.id,
            "starts_on": "2026-09-13",
            "ends_on": "2026-03-01",
        },
    )
    body = _error(r, 422)
    assert body.detail == "body: ends_on must be after starts_on"


def test_service_errors_and_framework_errors_have_the_same_shape(client):
    assert _error(client.get("/foreningar/424242"), 404).detail
    assert _error(client.get("/no/such/route"), 404).detail == "Not Found"


def test_not_signed_in_is_401_in_the_same_shape(anon_client):
    unauth = anon_client.get("/me")
    assert _error(unauth, 401).detail.startswith("authorization:")
    assert unauth.headers["WWW-Authenticate"] == "Bearer"


def test_service_error_details_keep_the_documented_shape(client, session):
    f.kommun(session)
    r = f.upload_districts(client, [f.feature("23800001"), f.feature("23210001")])
    body = _error(r, 422)
    assert {e.field: e.values for e in body.errors} == {
        "features": ["23210001"],
        "kommuner": ["2321"],
    }


def test_request_bodies_take_only_real_booleans(client):
    for value in (0, 1, "true", "yes", None):
        r = client.put("/me/preferences", json={"nightly_email": value})
        assert [e.field for e in _error(r, 422).errors] == ["nightly_email"], value
    ok = client.put("/me/preferences", json={"nightly_email": True})
    assert ok.status_code == 200 and ok.json()["nightly_email"] is True


@pytest.mark.parametrize("raw", ["99999999999", "-99999999999", str(10**30)])
def test_ids_beyond_any_row_are_not_found(client, raw):
    for path in (
        f"/foreningar/{raw}",
        f"/campaigns/{raw}",
        f"/campaigns/{raw}/export",
        f"/users/{raw}",
        f"/contacts/{raw}",
        f"/campaigns/{raw}/progress/kommun/1",
    ):
        _error(client.get(path), 404)


def test_a_method_a_path_lacks_is_405_with_every_allowed_method(client):
    for path, allowed in (
        ("/campaigns", {"GET", "POST"}),
        ("/foreningar/1", {"GET", "PATCH"}),
        ("/contacts/1/withdraw", {"POST"}),
    ):
        r = client.options(path)
        _error(r, 405)
        assert set(r.headers["Allow"].split(", ")) == allowed, path
    assert set(client.delete("/campaigns").headers["Allow"].split(", ")) == {"GET", "POST"}


def test_a_concrete_path_is_not_taken_for_a_template(client):
    """/contacts/batch also fits /contacts/{contact_id}, but its methods are its own."""
    for method, path, allowed in (
        ("PATCH", "/contacts/batch", "POST"),
        ("GET", "/contacts/batch", "POST"),
        ("OPTIONS", "/districts/assignments", "POST"),
        ("GET", "/districts/import", "POST"),
    ):
        r = client.request(method, path)
        _error(r, 405)
        assert r.headers["Allow"] == allowed, (method, path)
    assert client.get("/districts/coverage").status_code == 200


def test_every_operation_documents_its_error_answers():
    spec = create_app().openapi()
    schemas = spec["components"]["schemas"]
    assert "HTTPValidationError" not in schemas and "ValidationError" not in schemas
    assert set(schemas["ErrorBody"]["properties"]) == {"detail", "errors"}
    assert schemas["ErrorBody"]["properties"]["detail"]["type"] == "string"
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            responses = operation["responses"]
            assert set(responses) >= ERROR_STATUSES, (method, path)
            for status in ERROR_STATUSES:
                schema = responses[status]["content"]["application/json"]["schema"]
                refs = [schema.get("$ref")] + [s.get("$ref") for s in schema.get("anyOf", [])]
                assert "#/components/schemas/ErrorBody" in refs, (method, path, status)


def test_the_export_is_documented_as_csv_and_xlsx():
    spec = create_app().openapi()
    ok = spec["paths"]["/campaigns/{campaign_id}/export"]["get"]["responses"]["200"]
    assert set(ok["content"]) == {CSV, XLSX}


def test_a_body_that_is_not_json_names_the_body(client):
    r = _raw_json(client, "PUT", "/me/preferences", '{"nightly_email": tru')
    body = _error(r, 422)
    assert [e.field for e in body.errors] == ["body"]
    assert body.detail.startswith("body: JSON decode error")


def test_an_error_repeating_unencodable_text_still_renders():
    from fastapi.testclient import TestClient

    from api.errors import Conflict

    app = create_app()

    @app.get("/echo")
    def echo() -> None:
        raise Conflict("name: '\ud800' exists", details=[{"field": "name", "message": "\ud800"}])

    r = TestClient(app).get("/echo")
    body = _error(r, 409)
    assert body.detail == "name: '\ud800' exists" and body.errors[0].message == "\ud800"
