"""The pieces every explorer schema shares (app/schemas/common.py)."""

import gc

import pytest
import torch

from app.schemas.common import at_most, gc_paused, name_non_finite, rectangular
from app.schemas.conv import conv_trace_body
from app.schemas.pool import pool_trace_body
from cnncore.errors import CNNCoreError
from cnncore.pooling import trace_pool2d
from cnncore.trace import trace_conv2d


def test_gc_paused_pauses_the_collector_and_restores_it_even_after_an_error():
    assert gc.isenabled()
    with pytest.raises(RuntimeError), gc_paused():
        assert not gc.isenabled()
        with gc_paused():  # nested: the inner exit leaves it paused for the outer
            pass
        assert not gc.isenabled()
        raise RuntimeError
    assert gc.isenabled()


def test_gc_paused_leaves_a_collector_that_was_off_off():
    gc.disable()
    try:
        with gc_paused():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_trace_bodies_are_built_with_the_collector_paused(monkeypatch):
    seen = []
    real_tolist = torch.Tensor.tolist

    def probe(tensor):
        seen.append(gc.isenabled())
        return real_tolist(tensor)

    x = torch.rand(1, 4, 4, dtype=torch.float64)
    convolved = trace_conv2d(x, torch.ones(1, 1, 2, 2, dtype=torch.float64))
    pooled = trace_pool2d(x, "max", 2)
    monkeypatch.setattr(torch.Tensor, "tolist", probe)
    conv_trace_body(convolved)
    pool_trace_body(pooled, None)
    assert seen and not any(seen)
    assert gc.isenabled()


def test_rectangular_names_the_ragged_axis():
    assert rectangular([[[1.0, 2.0]], [[3.0, 4.0]]], "input", "CHW") == [[[1.0, 2.0]], [[3.0, 4.0]]]
    with pytest.raises(ValueError, match=r"the W axis \[C 1\] has lengths \[1, 2\]"):
        rectangular([[[1.0], [2.0]], [[3.0, 4.0], [5.0]]], "input", "CHW")
    with pytest.raises(ValueError, match=r"the H axis has lengths \[1, 2\]"):
        rectangular([[[1.0]], [[1.0], [2.0]]], "input", "CHW")


def test_at_most_names_its_field():
    at_most("depth", 50, 50, "depth")
    with pytest.raises(CNNCoreError, match="at most 50, got 51") as info:
        at_most("depth", 51, 50, "depth")
    assert info.value.field == "depth"


def test_non_finite_numbers_become_text_at_any_depth():
    body = {"a": [1.0, float("nan"), [float("inf")]], "b": {"c": float("-inf")}, "d": 2}
    assert name_non_finite(body) == {
        "a": [1.0, "nan (not a finite number)", ["inf (not a finite number)"]],
        "b": {"c": "-inf (not a finite number)"},
        "d": 2,
    }
    assert name_non_finite(float("nan")) == "nan (not a finite number)"
