"""Pooling traces against torch: F.max_pool2d (values, indices), F.avg_pool2d, F.lp_pool2d,
F.adaptive_avg_pool2d, and autograd for the gradient routing."""

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from cnncore.errors import CNNCoreError
from cnncore.pooling import pool_backward, trace_pool2d


@st.composite
def pool_configs(draw):
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    config = {
        "channels": draw(st.integers(1, 3)),
        "height": draw(st.integers(1, 9)),
        "width": draw(st.integers(1, 9)),
        "kernel_size": (kh, kw),
        "stride": draw(st.one_of(st.none(), st.tuples(st.integers(1, 4), st.integers(1, 4)))),
        "padding": (draw(st.integers(0, kh // 2)), draw(st.integers(0, kw // 2))),
        "ceil_mode": draw(st.booleans()),
        "count_include_pad": draw(st.booleans()),
        "ties": draw(st.booleans()),  # small integers: many equal values in one window
        "seed": draw(st.integers(0, 2**16)),
    }
    height_span = config["height"] + 2 * config["padding"][0]
    width_span = config["width"] + 2 * config["padding"][1]
    assume(config["ceil_mode"] or (kh <= height_span and kw <= width_span))
    return config


def _input(config) -> torch.Tensor:
    generator = torch.Generator().manual_seed(config["seed"])
    shape = (config["channels"], config["height"], config["width"])
    if config["ties"]:
        return torch.randint(-2, 3, shape, generator=generator).to(torch.float64)
    return torch.randn(shape, generator=generator, dtype=torch.float64)


def _trace(x, kind, config):
    try:
        return trace_pool2d(x, kind, config["kernel_size"], config["stride"], config["padding"],
                            ceil_mode=config["ceil_mode"],
                            count_include_pad=config["count_include_pad"])
    except CNNCoreError:
        # Only the configurations torch refuses too (a window longer than the padded input).
        with pytest.raises(RuntimeError):
            F.max_pool2d(x[None], config["kernel_size"], config["stride"], config["padding"],
                         ceil_mode=config["ceil_mode"])
        assume(False)


def _torch_args(config):
    stride = config["stride"] or config["kernel_size"]
    return config["kernel_size"], stride, config["padding"]


def _autograd(function, x, grad_output):
    leaf = x.clone().requires_grad_(True)
    out = function(leaf[None])[0]
    (grad,) = torch.autograd.grad(out, leaf, grad_output)
    return out.detach(), grad


@settings(max_examples=100, deadline=None)
@given(pool_configs())
def test_max_pool_matches_torch_values_indices_and_gradients(config):
    x = _input(config)
    trace = _trace(x, "max", config)
    kernel, stride, padding = _torch_args(config)
    out, indices = F.max_pool2d(x[None], kernel, stride, padding, ceil_mode=config["ceil_mode"],
                                return_indices=True)
    torch.testing.assert_close(trace.output, out[0], rtol=0, atol=0)
    # torch's index is row·W + col of the first maximum: the tie rule must match exactly
    flat_chosen = trace.chosen[..., 0] * config["width"] + trace.chosen[..., 1]
    assert torch.equal(flat_chosen, indices[0])
    grad_output = torch.randn(trace.output.shape, dtype=torch.float64)
    _, expected = _autograd(
        lambda t: F.max_pool2d(t, kernel, stride, padding, ceil_mode=config["ceil_mode"]),
        x, grad_output,
    )
    torch.testing.assert_close(pool_backward(trace, grad_output).grad_input, expected)


@settings(max_examples=100, deadline=None)
@given(pool_configs())
def test_avg_pool_matches_torch_including_ceil_mode_divisor(config):
    x = _input(config)
    trace = _trace(x, "avg", config)
    kernel, stride, padding = _torch_args(config)

    def torch_avg(t):
        return F.avg_pool2d(t, kernel, stride, padding, ceil_mode=config["ceil_mode"],
                            count_include_pad=config["count_include_pad"])

    grad_output = torch.randn(trace.output.shape, dtype=torch.float64)
    expected_out, expected_grad = _autograd(torch_avg, x, grad_output)
    torch.testing.assert_close(trace.output, expected_out)
    torch.testing.assert_close(pool_backward(trace, grad_output).grad_input, expected_grad)


def _torch_l2(t, kernel, stride, padding, ceil_mode):
    """√(Σ x²) per window with zero padding: a sum pool (divisor 1) of the squares."""
    sums = F.avg_pool2d(t.square(), kernel, stride, padding, ceil_mode=ceil_mode,
                        count_include_pad=True, divisor_override=1)
    return sums.sqrt()


@settings(max_examples=100, deadline=None)
@given(pool_configs())
def test_l2_pool_is_the_window_norm_with_autograd_gradients(config):
    config = {**config, "ties": False}  # no all-zero windows, where √ has no derivative
    x = _input(config)
    trace = _trace(x, "l2", config)
    kernel, stride, padding = _torch_args(config)
    grad_output = torch.randn(trace.output.shape, dtype=torch.float64)
    expected_out, expected_grad = _autograd(
        lambda t: _torch_l2(t, kernel, stride, padding, config["ceil_mode"]), x, grad_output
    )
    torch.testing.assert_close(trace.output, expected_out)
    torch.testing.assert_close(pool_backward(trace, grad_output).grad_input, expected_grad)


def test_l2_without_padding_equals_lp_pool2d():
    x = torch.randn(3, 8, 9, dtype=torch.float64)
    for kernel, stride in [(2, None), (3, 1), ((2, 3), (1, 2))]:
        trace = trace_pool2d(x, "l2", kernel, stride)
        expected = F.lp_pool2d(x[None], 2, kernel, stride)[0]
        torch.testing.assert_close(trace.output, expected)


def test_l2_with_padding_equals_zero_pad_then_lp_pool2d():
    x = torch.randn(2, 7, 6, requires_grad=True, dtype=torch.float64)
    trace = trace_pool2d(x.detach(), "l2", 3, 2, (1, 1))
    expected = F.lp_pool2d(F.pad(x[None], (1, 1, 1, 1)), 2, 3, 2)[0]
    torch.testing.assert_close(trace.output, expected.detach())
    grad_output = torch.randn(expected.shape, dtype=torch.float64)
    (expected_grad,) = torch.autograd.grad(expected, x, grad_output)
    torch.testing.assert_close(pool_backward(trace, grad_output).grad_input, expected_grad)


def test_l2_ceil_overhang_keeps_the_norm_where_lp_pool2d_rescales():
    # 5×5 input, 2×2 windows, stride 2, ceil mode: the last row/column of windows holds 2 or 1
    # real cells. torch's lp_pool2d multiplies their mean of squares by k² = 4, not by n.
    x = torch.arange(1.0, 26.0, dtype=torch.float64).reshape(1, 5, 5)
    trace = trace_pool2d(x, "l2", 2, 2, ceil_mode=True)
    assert trace.output[0, 2, 2].item() == 25.0  # the lone corner cell: ‖[25]‖ = 25
    torch_lp = F.lp_pool2d(x[None], 2, 2, 2, ceil_mode=True)[0]
    counts = torch.tensor([[4.0, 4, 2], [4, 4, 2], [2, 2, 1]], dtype=torch.float64)
    torch.testing.assert_close(torch_lp, trace.output * (4 / counts).sqrt())


def test_l2_all_zero_window_routes_no_gradient_like_lp_pool2d():
    x = torch.zeros(1, 4, 4, dtype=torch.float64)
    x[0, 0, 0] = 3.0
    leaf = x.clone().requires_grad_(True)
    F.lp_pool2d(leaf[None], 2, 2).sum().backward()
    trace = trace_pool2d(x, "l2", 2)
    grad = pool_backward(trace, torch.ones(1, 2, 2, dtype=torch.float64)).grad_input
    torch.testing.assert_close(grad, leaf.grad)
    assert grad[0, 0, 0].item() == 1.0 and grad.abs().sum().item() == 1.0


def test_global_average_pool_matches_adaptive_avg_pool():
    x = torch.randn(4, 5, 7, dtype=torch.float64)
    trace = trace_pool2d(x, "global_avg", kernel_size=3, stride=1, padding=1)  # size args ignored
    grad_output = torch.randn(4, 1, 1, dtype=torch.float64)
    expected_out, expected_grad = _autograd(lambda t: F.adaptive_avg_pool2d(t, 1), x, grad_output)
    torch.testing.assert_close(trace.output, expected_out)
    torch.testing.assert_close(pool_backward(trace, grad_output).grad_input, expected_grad)
    assert trace.kernel_size == (5, 7) and trace.output.shape == (4, 1, 1)
    (step, *_) = trace.steps()
    assert step.rows == list(range(5)) and step.cols == list(range(7)) and step.divisor == 35


@pytest.mark.parametrize("kind", ["max", "avg", "l2"])
def test_steps_write_out_each_window(kind):
    x = torch.randn(2, 5, 6, dtype=torch.float64)
    trace = trace_pool2d(x, kind, 3, 2, 1, ceil_mode=True, count_include_pad=False)
    steps = trace.steps()
    assert len(steps) == trace.output.numel()
    assert [(s.channel, s.y, s.x) for s in steps] == [
        (c, y, xx) for c in range(2) for y in range(3) for xx in range(4)
    ]
    for step in steps:
        assert step.rows == [2 * step.y - 1 + i for i in range(3)]
        assert step.cols == [2 * step.x - 1 + i for i in range(3)]
        cells = [
            (r, c, v, p)
            for row_v, row_p, r in zip(step.values, step.padded, step.rows, strict=True)
            for v, p, c in zip(row_v, row_p, step.cols, strict=True)
        ]
        for r, c, v, p in cells:
            assert p == (not (0 <= r < 5 and 0 <= c < 6))
            if not p:
                assert v == x[step.channel, r, c].item()
            else:
                assert v == (None if kind == "max" else 0.0)
        real = [v for _, _, v, p in cells if not p]
        if kind == "max":
            assert step.value == max(real)
            assert x[step.channel, step.chosen[0], step.chosen[1]].item() == step.value
            assert step.weights is None
        else:
            total = sum(w * v for wr, vr in zip(step.weights, step.values, strict=True)
                        for w, v in zip(wr, vr, strict=True))
            assert math.isclose(total, step.value, rel_tol=1e-12, abs_tol=1e-12)
        if kind == "avg":  # count_include_pad=False: the divisor is the number of real cells
            assert step.divisor == len(real)
            assert math.isclose(step.value, sum(real) / len(real), rel_tol=1e-12)


def test_max_tie_keeps_the_first_in_row_major_order():
    x = torch.tensor([[[1.0, 3, 3], [3, 0, 3], [1, 1, 1]]], dtype=torch.float64)
    trace = trace_pool2d(x, "max", 2, 1)
    assert trace.chosen[0].tolist() == [[[0, 1], [0, 1]], [[1, 0], [1, 2]]]


def test_backward_routes_per_cell():
    x = torch.tensor([[[1.0, 2], [4, 3]]], dtype=torch.float64)
    grad = torch.tensor([[[10.0]]], dtype=torch.float64)
    max_routes = pool_backward(trace_pool2d(x, "max", 2), grad)
    assert max_routes.amounts[0, 0, 0].tolist() == [[0.0, 0.0], [10.0, 0.0]]
    avg_routes = pool_backward(trace_pool2d(x, "avg", 2), grad)
    assert avg_routes.amounts[0, 0, 0].tolist() == [[2.5, 2.5], [2.5, 2.5]]
    l2_routes = pool_backward(trace_pool2d(x, "l2", 2), grad)
    torch.testing.assert_close(l2_routes.amounts[0, 0, 0], 10 * x[0] / x.norm())


def test_formula_shows_the_substituted_sizes():
    trace = trace_pool2d(torch.zeros(1, 5, 6), "max", 3, 2, 1, ceil_mode=True)
    assert trace.formula["height"] == "H_out = ⌈(5 + 2·1 − 3) / 2⌉ + 1 = 3"
    assert trace.formula["width"] == "W_out = ⌈(6 + 2·1 − 3) / 2⌉ + 1 = 4"
    floor = trace_pool2d(torch.zeros(1, 5, 6), "avg", 2)
    assert floor.formula["height"] == "H_out = ⌊(5 + 2·0 − 2) / 2⌋ + 1 = 2"
    # ceil mode drops a last window that would start in the right padding: 4 → 3 here
    dropped = trace_pool2d(torch.zeros(1, 5, 5), "max", 2, 2, 1, ceil_mode=True)
    assert dropped.output.shape == F.max_pool2d(torch.zeros(1, 1, 5, 5), 2, 2, 1,
                                                ceil_mode=True).shape[1:] == (1, 3, 3)
    assert dropped.formula["height"] == "H_out = ⌈(5 + 2·1 − 2) / 2⌉ + 1 − 1 = 3"


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"values": [[[1.0]]], "kind": "median"}, "kind"),
        ({"values": [[1.0, 2.0]]}, "input"),
        ({"values": [[[1.0, 2.0], [3.0]]]}, "input"),
        ({"values": [[[float("nan"), 1.0], [1.0, 1.0]]]}, "input"),
        ({"values": [[[1.0, 2.0], [3.0, 4.0]]], "kernel_size": 3}, "kernel_size"),
        ({"values": [[[1.0] * 4] * 4], "kernel_size": 2, "padding": 2}, "padding"),
        ({"values": [[[1.0] * 4] * 4], "kernel_size": 2, "padding": "same"}, "padding"),
        ({"values": [[[1.0] * 4] * 4], "kernel_size": 0}, "kernel_size"),
        ({"values": [[[1.0] * 4] * 4], "stride": -1}, "stride"),
    ],
)
def test_impossible_configurations_name_their_field(kwargs, field):
    with pytest.raises(CNNCoreError) as info:
        trace_pool2d(**kwargs)
    assert info.value.field == field


def test_backward_refuses_a_gradient_of_the_wrong_shape():
    trace = trace_pool2d(torch.zeros(1, 4, 4), "max", 2)
    with pytest.raises(CNNCoreError) as info:
        pool_backward(trace, torch.zeros(1, 3, 2))
    assert info.value.field == "grad_output"
    with pytest.raises(CNNCoreError):
        pool_backward(trace, [[[float("inf"), 0.0], [0.0, 0.0]]])


def test_cell_budget_is_checked_before_tracing():
    x = torch.zeros(2, 8, 8)
    assert trace_pool2d(x, "max", 2, max_cells=2 * 4 * 4 * 4).output.shape == (2, 4, 4)
    with pytest.raises(CNNCoreError) as info:
        trace_pool2d(x, "max", 2, max_cells=2 * 4 * 4 * 4 - 1)
    assert info.value.field == "input"
