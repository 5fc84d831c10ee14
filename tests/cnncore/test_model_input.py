"""A zoo model's input (channels, height, width) is resolved in one place, `model_input_shape`:
the summary, the block diagram, the traced receptive fields and the effective field agree on the
defaults, treat None as "the default" and refuse 0 (or any non-positive integer) naming the
field."""

import pytest

from cnncore.effective_rf import model_effective_field
from cnncore.errors import CNNCoreError
from cnncore.inspect import summarize_blocks, summarize_model
from cnncore.models import (
    InputShape,
    UnknownModelError,
    get_model_info,
    list_models,
    model_input_shape,
)
from cnncore.receptive_field import model_field_graph


@pytest.mark.parametrize("name", list_models())
def test_defaults_are_the_registered_ones_everywhere(name):
    default = get_model_info(name).default_input
    assert model_input_shape(name) == default
    assert model_input_shape(name, None, None, None) == default
    assert summarize_model(name).input_shape == default.as_tuple()
    assert model_field_graph(name).input_shape == default.as_tuple()


@pytest.mark.parametrize("name", ["lenet5", "tinyvgg"])
def test_effective_field_takes_the_same_default(name):
    default = get_model_info(name).default_input.as_tuple()
    field = model_effective_field(name, samples=1).field
    assert field.input_shape == default
    assert field.heatmap.shape == default[1:]
    assert model_effective_field(name, None, None, samples=1).field.input_shape == default


def test_given_values_override_each_default_alone():
    assert model_input_shape("resnet18", height=64) == InputShape(3, 64, 224)
    assert model_input_shape("resnet18", width=96) == InputShape(3, 224, 96)
    assert model_input_shape("resnet18", channels=1) == InputShape(1, 224, 224)
    assert summarize_model("resnet18", None, 64, 96).input_shape == (3, 64, 96)
    assert model_field_graph("resnet18", None, 64, 96).input_shape == (3, 64, 96)
    field = model_effective_field("tinyvgg", 20, None, samples=1).field
    assert field.input_shape == (3, 20, 64)


BAD = [0, -1, True, 2.5, "32"]


@pytest.mark.parametrize("value", BAD)
@pytest.mark.parametrize("field", ["channels", "height", "width"])
def test_bad_values_are_refused_naming_the_field(field, value):
    resolvers = [
        lambda: model_input_shape("lenet5", **{field: value}),
        lambda: summarize_model("lenet5", **{field: value}),
        lambda: summarize_blocks("lenet5", **{field: value}),
        lambda: model_field_graph("lenet5", **{field: value}),
    ]
    if field != "channels":  # the effective field keeps the model's channels
        resolvers.append(lambda: model_effective_field("lenet5", **{field: value}, samples=1))
    for resolve in resolvers:
        with pytest.raises(CNNCoreError) as caught:
            resolve()
        assert caught.value.field == field
        assert "positive integer" in str(caught.value)


def test_zero_is_refused_not_read_as_the_default():
    # `height or default` once turned 0 into the default in two of the three places
    for resolve in (model_field_graph, summarize_model):
        with pytest.raises(CNNCoreError, match="height"):
            resolve("lenet5", None, 0)
    with pytest.raises(CNNCoreError, match="width"):
        model_effective_field("lenet5", None, 0, samples=1)


def test_unknown_model():
    with pytest.raises(UnknownModelError):
        model_input_shape("resnet1000")
