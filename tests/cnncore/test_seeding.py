"""Seeded work gives the same numbers while other threads draw from torch's global generator
(a browser test once saw the sigmoid bars of /activations computed with the ReLU request's
draws mixed in)."""

from concurrent.futures import ThreadPoolExecutor

import torch

from cnncore.effective_rf import StackConfig, conv_stack
from cnncore.gradcheck import check_small_network
from cnncore.models import get_model
from cnncore.seeding import seeded
from cnncore.vanishing import vanishing_gradients


def _norms(activation: str) -> list[float]:
    return [layer.grad_norm for layer in vanishing_gradients(activation, 6, width=16).layers]


def _draw_unseeded() -> None:
    for _ in range(3):
        get_model("lenet5")
        conv_stack(StackConfig(depth=3, weights="random"))


def test_seeded_sections_ignore_other_threads_draws():
    alone = {name: _norms(name) for name in ("sigmoid", "relu")}
    with ThreadPoolExecutor(6) as pool:
        noise = [pool.submit(_draw_unseeded) for _ in range(2)]
        runs = [(name, pool.submit(_norms, name)) for name in ("sigmoid", "relu") * 4]
        assert all(future.result() is None for future in noise)
        for name, future in runs:
            assert future.result() == alone[name]


def test_seeded_leaves_the_global_generator_as_it_was():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    with seeded(7):
        inside = torch.rand(3)
    assert torch.equal(torch.rand(3), expected)
    with seeded(7):
        assert torch.equal(torch.rand(3), inside)


def test_gradient_check_is_reproducible_under_concurrent_draws():
    def check() -> list[float]:
        result = check_small_network("tanh", seed=3, max_coordinates=8)
        return [value for tensor in result.tensors for value in tensor.analytic]

    alone = check()
    with ThreadPoolExecutor(4) as pool:
        noise = pool.submit(_draw_unseeded)
        results = [pool.submit(check) for _ in range(3)]
        noise.result()
        assert all(future.result() == alone for future in results)
