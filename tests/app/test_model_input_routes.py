"""The routes that build a zoo model agree on its input: omitted values take the registered
defaults in the summary, the receptive fields and the effective field alike, and 0 or a negative
size is a 422 naming the field in each (`cnncore.models.model_input_shape` behind all three)."""

import pytest
from fastapi.testclient import TestClient

from app.main import app
from cnncore.models import get_model_info, model_input_shape

client = TestClient(app)


def as_dict(shape) -> dict[str, int]:
    return {"channels": shape.channels, "height": shape.height, "width": shape.width}


def summary(name: str, **params):
    return client.get(f"/api/models/{name}/summary", params=params)


def fields(name: str, **params):
    return client.get(f"/api/models/{name}/receptive-fields", params=params)


def effective(name: str, **body):
    return client.post("/api/receptive-field/effective", json={"model": name, "samples": 1, **body})


@pytest.mark.parametrize("name", ["lenet5", "tinyvgg", "resnet18"])
def test_every_route_takes_the_registered_default(name):
    default = as_dict(get_model_info(name).default_input)
    assert summary(name).json()["input"] == default
    assert fields(name).json()["input"] == default
    if name != "resnet18":  # its ERF at 224×224 is more work than this test needs
        assert effective(name).json()["input"] == default


def test_one_given_value_keeps_the_other_defaults():
    expected = as_dict(model_input_shape("tinyvgg", height=40))
    assert summary("tinyvgg", height=40).json()["input"] == expected
    assert fields("tinyvgg", height=40).json()["input"] == expected
    assert effective("tinyvgg", height=40).json()["input"] == expected
    assert expected == {"channels": 3, "height": 40, "width": 64}


@pytest.mark.parametrize("value", [0, -4])
@pytest.mark.parametrize("field", ["height", "width"])
def test_non_positive_sizes_are_422_naming_the_field(field, value):
    for response, where in [
        (summary("lenet5", **{field: value}), "query"),
        (fields("lenet5", **{field: value}), "query"),
        (client.get("/api/models/lenet5/receptive-field", params={field: value}), "query"),
        (effective("lenet5", **{field: value}), "body"),
    ]:
        assert response.status_code == 422, response.text
        assert response.json()["detail"][0]["loc"] == [where, field]


@pytest.mark.parametrize("route", [summary, fields])
def test_zero_channels_is_422_naming_the_field(route):
    response = route("lenet5", channels=0)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["query", "channels"]
