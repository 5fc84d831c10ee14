"""Every error item carries a stable `type` and a small `ctx` the pages translate (app/errors.py),
the bounds in `ctx` are the schema's own, and nothing the client sent comes back."""

import json
import math

import pytest
from fastapi.exceptions import RequestValidationError
from fastapi.testclient import TestClient
from uploads import declared_upload

from app.errors import core_error_response, safe_context, validation_error_response
from app.limits import heavy_work
from app.main import app
from app.schemas.gradcheck import GradCheckIn
from app.schemas.sessions import SessionCreate
from app.settings import get_settings
from app.uploads import FORM_OVERHEAD
from cnncore.errors import CNNCoreError
from cnncore.gradcheck import NETWORKS

client = TestClient(app)
SETTINGS = get_settings()
GRADCHECK = GradCheckIn.model_json_schema()["properties"]


def refused(path: str, body, status: int = 422) -> list[dict]:
    """POST `body` (JSON text when a str, else as JSON) and return the detail items."""
    if isinstance(body, str):
        response = client.post(path, content=body, headers={"content-type": "application/json"})
    else:
        response = client.post(path, json=body)
    assert response.status_code == status, response.text
    detail = response.json()["detail"]
    for item in detail:
        assert set(item) <= {"loc", "msg", "type", "ctx"}, item  # no `input` echoed
        assert isinstance(item["type"], str) and item["type"]
    return detail


def only(detail: list[dict], field: str) -> dict:
    (item,) = [item for item in detail if item["loc"][-1] == field]
    return item


# --- typical bad inputs -----------------------------------------------------------------------


def test_over_the_maximum_names_the_schema_bound():
    item = only(refused("/api/gradcheck", {"epsilon": 0.0123456789}), "epsilon")
    assert item["type"] == "less_than_equal"
    assert item["ctx"] == {"le": GRADCHECK["epsilon"]["maximum"]}


def test_under_the_minimum_names_the_schema_bound():
    item = only(refused("/api/gradcheck", {"samples": 0}), "samples")
    assert item["type"] == "greater_than_equal"
    assert item["ctx"] == {"ge": GRADCHECK["samples"]["minimum"]}


def test_missing_field_has_a_type_and_no_ctx():
    item = only(refused("/api/pool/trace", {"kind": "max"}), "input")
    assert item["type"] == "missing" and "ctx" not in item


@pytest.mark.parametrize(
    ("value", "kind"), [("abc-7391", "int_parsing"), (2.5, "int_from_float"), ([3], "int_type")]
)
def test_wrong_type_is_named_without_the_value(value, kind):
    response = client.post("/api/gradcheck", json={"seed": value})
    item = only(response.json()["detail"], "seed")
    assert item["type"] == kind and "ctx" not in item
    assert json.dumps(value) not in response.text and "7391" not in response.text


@pytest.mark.parametrize("bad", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_number_is_finite_number_not_a_bound(bad):
    # pydantic compares NaN with the bound and would say "less than or equal to 0.01"
    body = '{"epsilon": ' + bad + "}"
    item = only(refused("/api/gradcheck", body), "epsilon")
    assert item == {
        "loc": ["body", "epsilon"],
        "msg": "Input should be a finite number",
        "type": "finite_number",
    }


def test_non_finite_number_in_a_text_field_is_not_echoed():
    response = client.post(
        "/api/sessions", content='{"page": NaN, "state": {}}',
        headers={"content-type": "application/json"},
    )  # fmt: skip
    assert response.status_code == 422
    assert only(response.json()["detail"], "page")["type"] == "string_type"
    assert "nan" not in response.text.lower()


def test_unknown_literal_lists_the_allowed_values_not_the_input():
    response = client.post("/api/gradcheck", json={"model": "resnet-secret-42"})
    item = only(response.json()["detail"], "model")
    assert item["type"] == "literal_error"
    assert item["ctx"] == {"expected": list(NETWORKS)}
    assert "secret" not in response.text


def test_too_long_text_gives_the_limit_not_the_text():
    limit = SessionCreate.model_json_schema()["properties"]["page"]["maxLength"]
    response = client.post("/api/sessions", json={"page": "q" * (limit + 1), "state": {}})
    item = only(response.json()["detail"], "page")
    assert item["type"] == "string_too_long" and item["ctx"] == {"max_length": limit}
    assert "qqqq" not in response.text


def test_too_long_list_gives_the_limit():
    response = client.post("/api/conv/shape", json={"channels": [[[0.5] * 64] * 64], "height": 5,
                                                    "width": 5, "kernel_size": 3})  # fmt: skip
    item = only(response.json()["detail"], "channels")
    assert item["type"] and "0.5" not in json.dumps(item)
    assert len(response.content) < 2000


def test_unknown_field_is_extra_forbidden():
    item = only(refused("/api/gradcheck", {"epsilom": 1e-6}), "epsilom")
    assert item["type"] == "extra_forbidden" and "ctx" not in item


def test_form_fields_of_an_upload_carry_type_and_ctx():
    response = client.post("/api/features", data={"model": "m" * 41, "sample": "china"})
    item = only(response.json()["detail"], "model")
    assert item["type"] == "string_too_long" and item["ctx"] == {"max_length": 40}
    assert "mmmm" not in response.text


# --- core refusals --------------------------------------------------------------------------------


def test_core_refusal_without_a_code_is_a_value_error_without_ctx():
    body = json.loads(core_error_response(CNNCoreError("no such thing", "kernel_size")).body)
    assert body["detail"] == [{"loc": ["body", "kernel_size"], "msg": "no such thing",
                               "type": "value_error"}]  # fmt: skip


def test_core_refusal_carries_its_code_and_numbers():
    # a 5×5 kernel on a 3×3 input: the core's arithmetic refuses it and names the field
    detail = refused("/api/conv/shape", {"channels": 1, "height": 3, "width": 3, "kernel_size": 5})
    assert [item["type"] for item in detail] == ["conv_output_empty"]
    assert detail[0]["ctx"]["output"] == (3 - 5) // 1 + 1  # more in tests/app/test_core_error_codes


def test_unknown_model_has_its_own_code():
    response = client.post("/api/features", data={"model": "nope", "sample": "china"})
    assert response.status_code == 422
    assert only(response.json()["detail"], "model")["type"] == "unknown_model"


def test_core_error_code_and_ctx_are_used_and_filtered():
    class KernelTooLarge(CNNCoreError):
        code = "kernel_too_large"

    error = KernelTooLarge("kernel 9 is larger than the padded input 5", "kernel_size")
    error.ctx = {"le": 5, "error": "9 > 5", "input": [1, 2, 3], "ge": math.nan}
    body = json.loads(core_error_response(error).body)
    assert body["detail"] == [{"loc": ["body", "kernel_size"], "type": "kernel_too_large",
                               "msg": "kernel 9 is larger than the padded input 5",
                               "ctx": {"le": 5}}]  # fmt: skip


# --- what goes into ctx -----------------------------------------------------------------------


def test_safe_context_keeps_bounds_and_allowed_values_only():
    assert safe_context({"le": 3, "error": ValueError("x"), "input": "secret"}) == {"le": 3}
    assert safe_context({"expected": "'max', 'avg' or 'l2'"}) == {"expected": ["max", "avg", "l2"]}
    assert safe_context({"expected": "1, 3 or 5"}) == {"expected": ["1", "3", "5"]}
    assert safe_context({"expected": "'or' or 'and'"}) == {"expected": ["or", "and"]}
    assert safe_context({"ge": math.inf, "lt": math.nan, "gt": 0.5}) == {"gt": 0.5}
    assert safe_context({"expected": "'" + "x" * 100 + "'"}) == {}
    assert safe_context({"expected": [f"'v{i}'" for i in range(100)]}) == {}
    assert safe_context(None) == {} and safe_context("le") == {}


def test_validation_response_never_writes_the_input():
    exc = RequestValidationError(
        [{"loc": ("body", "x"), "msg": "bad", "type": "value_error", "input": "secret-input",
          "ctx": {"error": ValueError("secret-input is bad")}}]
    )  # fmt: skip
    body = json.loads(validation_error_response(exc).body)
    assert body == {"detail": [{"loc": ["body", "x"], "msg": "bad", "type": "value_error"}]}


# --- other statuses -----------------------------------------------------------------------------


def test_body_over_the_limit_is_too_large_with_the_limit():
    body = b"[" + b"0," * (SETTINGS.max_body_bytes // 2) + b"0]"
    (item,) = refused("/api/conv/trace", body.decode(), status=413)
    assert item["type"] == "too_large" and item["ctx"] == {"limit": SETTINGS.max_body_bytes}


def test_upload_over_its_limit_is_too_large_with_the_upload_limit():
    response = declared_upload(client, SETTINGS.max_upload_bytes + FORM_OVERHEAD + 1)
    assert response.status_code == 413
    (item,) = response.json()["detail"]
    assert item["loc"] == ["body", "image"]
    assert item["type"] == "too_large" and item["ctx"] == {"limit": SETTINGS.max_upload_bytes}


def test_busy_client_gets_too_many_requests_with_the_wait():
    limit = heavy_work("features")
    limit.active["testclient"] = SETTINGS.client_heavy_requests
    try:
        response = client.post("/api/features", json={})
    finally:
        del limit.active["testclient"]
    assert response.status_code == 429
    (item,) = response.json()["detail"]
    assert item["type"] == "too_many_requests"
    assert item["ctx"] == {"retry_after": SETTINGS.retry_after_seconds}
    assert response.headers["retry-after"] == str(SETTINGS.retry_after_seconds)


@pytest.mark.parametrize(
    "path",
    ["/api/models/nope/summary", "/api/sessions/ZZZZZZ", "/api/runs/0123456789ab",
     "/api/no-such-route", "/api/features/samples/nope.png"],
)  # fmt: skip
def test_not_found_keeps_its_text_and_gains_a_type(path):
    response = client.get(path)
    assert response.status_code == 404, response.text
    body = response.json()
    assert isinstance(body["detail"], str) and body["detail"]
    assert body["type"] == "not_found"


def test_method_not_allowed_keeps_its_allow_header():
    response = client.delete("/api/conv/shape")
    assert response.status_code == 405
    assert response.json()["type"] == "method_not_allowed"
    assert "POST" in response.headers["allow"]
