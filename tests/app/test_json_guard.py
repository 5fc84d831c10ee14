"""JSON bodies bounded before parsing (app/json_guard.py): the raw-byte scan against the parsed
document, the route classes' byte limits, and the refusals (4xx JSON naming the limit)."""

from __future__ import annotations

import json

from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st

from app.json_guard import JsonShape
from app.main import app, create_app
from app.settings import Settings, get_settings

client = TestClient(app)
SETTINGS = get_settings()
JSON = {"content-type": "application/json"}

documents = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False)
    | st.text(alphabet=st.sampled_from('ab"\\/\n{}[],:é한\u2028'), max_size=12),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=5), inner,
                                                                max_size=5),
    max_leaves=40,
)  # fmt: skip


def expected(value, depth: int = 0) -> tuple[int, int, int]:
    """(depth, values, longest string in bytes as written) of a parsed document, walked."""
    if isinstance(value, str):
        return depth, 0, len(json.dumps(value, ensure_ascii=False).encode()) - 2
    if isinstance(value, list | dict):
        items = list(value.items()) if isinstance(value, dict) else [(None, v) for v in value]
        found = [expected(v, depth + 1) for _k, v in items]
        found += [expected(k, depth + 1) for k, _v in items if k is not None]
        commas = max(len(items) - 1, 0)
        return (max([depth + 1, *(f[0] for f in found)]), 1 + commas + sum(f[1] for f in found),
                max([0, *(f[2] for f in found)]))  # fmt: skip
    return depth, 0, 0


@settings(max_examples=200, deadline=None)
@given(documents, st.lists(st.integers(1, 40), max_size=6))
def test_the_scan_of_the_raw_bytes_agrees_with_the_parsed_document(document, cuts):
    """Fed in arbitrary pieces (a cut may fall inside an escape or a string)."""
    text = json.dumps(document, ensure_ascii=False).encode()
    shape, start = JsonShape(), 0
    for cut in cuts:
        shape.feed(text[start : start + cut])
        start += cut
    shape.feed(text[start:])
    assert (shape.max_depth, shape.values, shape.longest) == expected(document)
    assert shape.depth == 0 and not shape.in_string


def test_a_quote_after_an_even_run_of_backslashes_closes_the_string():
    for pieces in ([b'["a\\\\', b'\\\\", [1]]'], [b'["a\\', b'\\"]']):
        shape = JsonShape()
        for piece in pieces:
            shape.feed(piece)
        document = json.loads(b"".join(pieces))
        assert (shape.max_depth, shape.values, shape.longest) == expected(document)


def refusal(response) -> dict:
    assert response.headers["content-type"] == "application/json"
    (item,) = response.json()["detail"]
    return item


def test_deep_nesting_is_refused_before_parsing_naming_the_limit():
    body = b"[" * 100_000 + b"]" * 100_000
    # /api/receptive-field/effective reads a JSON body itself (it also takes a form)
    for path in (
        "/api/conv/trace",
        "/api/runs",
        "/api/gradcheck",
        "/api/receptive-field/effective",
    ):
        response = client.post(path, content=body, headers=JSON)
        assert response.status_code == 422, (path, response.text)
        assert refusal(response) == {
            "loc": ["body"], "type": "json_too_deep", "ctx": {"limit": SETTINGS.max_json_depth},
            "msg": f"the JSON body nests deeper than {SETTINGS.max_json_depth} levels",
        }  # fmt: skip
    # the deepest a document may be passes the guard (and reaches the schema)
    fits = b"[" * SETTINGS.max_json_depth + b"]" * SETTINGS.max_json_depth
    response = client.post("/api/conv/trace", content=fits, headers=JSON)
    assert response.status_code == 422 and refusal(response)["type"] != "json_too_deep"


def test_a_long_string_in_a_number_grid_route_is_refused():
    body = b'{"label": "' + b"a" * 3_000_000 + b'"}'
    response = client.post("/api/conv/trace", content=body, headers=JSON)
    assert response.status_code == 413
    item = refusal(response)
    assert item["type"] == "json_string_too_long"
    assert item["ctx"] == {"limit": SETTINGS.max_json_string_bytes}


def test_too_many_values_are_refused_and_a_full_size_trace_is_not():
    many = b"[" + b"0," * SETTINGS.max_json_values + b"0]"
    response = client.post("/api/conv/trace", content=many, headers=JSON)
    assert response.status_code == 413
    assert refusal(response)["type"] == "json_too_many_values"
    side, channels = SETTINGS.max_trace_size, SETTINGS.max_trace_channels
    kernel, filters = SETTINGS.max_trace_kernel, SETTINGS.max_trace_filters
    largest = {"input": [[[0.123456789] * side] * side] * channels,
               "kernels": [[[[0.5] * kernel] * kernel] * channels] * filters}  # fmt: skip
    response = client.post("/api/conv/trace", json=largest)
    assert response.status_code != 413, response.text  # the core may refuse it; not the guard
    assert not response.json().get("detail", [{}])[0].get("type", "").startswith("json_")


def test_each_route_class_has_its_byte_limit():
    over = b'{"x": "' + b"a" * SETTINGS.max_json_body_bytes + b'"}'
    item = refusal(client.post("/api/runs", content=over, headers=JSON))
    assert item["type"] == "too_large" and item["ctx"] == {"limit": SETTINGS.max_json_body_bytes}
    # a class session's bodies: their own bound, answered as JSON (not FastAPI's plain text)
    state = b'{"page": "/conv", "state": {"k": "' + b"a" * 40_000 + b'"}}'
    response = client.post("/api/sessions", content=state, headers=JSON)
    assert response.status_code == 413
    limit = 2 * SETTINGS.max_session_state_bytes + 4096
    assert refusal(response) == {"loc": ["body"], "type": "too_large", "ctx": {"limit": limit},
                                 "msg": f"the request body is over the {limit:,} bytes this "
                                        "server accepts"}  # fmt: skip


def test_bodies_that_are_not_json_are_not_scanned():
    """A picture's bytes full of brackets reach the picture route, which reads them itself."""
    made = client.post("/api/sessions", json={"page": "/features", "state": {}}).json()
    headers = {"X-Teacher-Token": made["teacher_token"], "content-type": "image/png"}
    response = client.put(f"/api/sessions/{made['code']}/picture", content=b"[" * 5000,
                          headers=headers)  # fmt: skip
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "picture"]
    client.delete(
        f"/api/sessions/{made['code']}", headers={"X-Teacher-Token": made["teacher_token"]}
    )


def test_the_limits_are_the_apps_settings():
    strict = TestClient(create_app(Settings(max_json_depth=3, max_json_values=10,
                                            max_json_string_bytes=64)))  # fmt: skip
    assert strict.post("/api/runs", content=b"[[[[]]]]", headers=JSON).status_code == 422
    assert strict.post("/api/runs", content=b"[[[]]]", headers=JSON).status_code == 422
    assert refusal(strict.post("/api/runs", content=b"[[[]]]", headers=JSON))["type"] != (
        "json_too_deep"
    )
    ten = strict.post("/api/runs", json=list(range(11)))
    assert ten.status_code == 413 and refusal(ten)["ctx"] == {"limit": 10}
    text = strict.post("/api/runs", json={"model": "x" * 65})
    assert text.status_code == 413 and refusal(text)["type"] == "json_string_too_long"
    # no content type is parsed as JSON by FastAPI, so it is scanned too
    assert strict.post("/api/runs", content=b"[[[[]]]]").status_code == 422
