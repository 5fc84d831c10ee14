"""The memory an ERF on a conv stack keeps for its gradient, counted before anything runs: an
upper bound of what torch actually keeps (measured with autograd's saved-tensor hooks) and not
far above it; a request over the limit is refused before a stack is built or an input drawn."""

import pytest
import torch

import cnncore.effective_rf as effective_rf
from cnncore.effective_rf import StackConfig, depth_sweep, stack_effective_field
from cnncore.effective_rf_cost import FLOAT_BYTES, check_values
from cnncore.errors import CNNCoreError


def kept_bytes(compute) -> int:
    """Bytes of every distinct storage autograd saves for the backward pass of `compute`."""
    storages: dict[int, int] = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        storages[storage.data_ptr()] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        compute()
    return sum(storages.values())


CONFIGS = [StackConfig(depth, kernel, 1, "constant", activation, "random")
           for depth, kernel, activation in ((5, 1, "none"), (4, 3, "relu"), (6, 1, "tanh"),
                                            (3, 5, "sigmoid"))]  # fmt: skip


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: f"{c.depth}x{c.kernel}-{c.activation}")
def test_the_count_bounds_what_torch_keeps(config):
    size, samples, depth = 16, 3, config.depth
    inputs = depth * samples  # the sweep: one group of samples per depth
    grad = inputs * 4 * size * size * FLOAT_BYTES  # the inputs' gradient, beside what is saved
    swept = kept_bytes(lambda: depth_sweep(config, size, samples=samples)) + grad
    counted = config.backward_values(size, size, depth * (depth + 1) // 2 * samples, inputs)
    assert swept <= counted * FLOAT_BYTES <= 2 * swept
    grad = samples * 4 * size * size * FLOAT_BYTES
    single = kept_bytes(lambda: stack_effective_field(config, size, size, samples=samples)) + grad
    counted = config.backward_values(size, size, depth * samples, samples)
    assert single <= counted * FLOAT_BYTES <= 2 * single


def test_a_request_over_the_limit_is_refused_before_anything_is_built(monkeypatch):
    def built(*_args, **_kwargs):
        raise AssertionError("a stack was built for a refused request")

    monkeypatch.setattr(effective_rf, "conv_stack", built)
    # the sweep the multiply-add cap let through: 35·10⁹ multiply-adds, 1.9·10¹⁰ values kept
    worst = StackConfig(32, 1, 1, "constant", "relu", "uniform")
    assert worst.macs(256, 256) // 32 * 528 * 64 < 40_000_000_000
    with pytest.raises(CNNCoreError) as refused:
        depth_sweep(worst, 256, samples=64, max_macs=40_000_000_000, max_values=64_000_000)
    values = worst.backward_values(256, 256, 528 * 64, 32 * 64)
    assert values == 4 * 65536 * (2 * 528 * 64 + 2 * 32 * 64)
    assert (refused.value.code, refused.value.field) == ("memory_too_large", "samples")
    assert refused.value.ctx == {"megabytes": -(-values * 4 // 1_000_000), "limit": 256}
    with pytest.raises(CNNCoreError) as refused:
        stack_effective_field(StackConfig(8, 1), 256, 256, samples=64, max_values=10_000_000)
    assert refused.value.code == "memory_too_large"


def test_at_the_limit_is_allowed():
    config = StackConfig(2, 3)
    values = config.backward_values(8, 8, 2 * 1, 1)
    check_values(values, values)
    with pytest.raises(CNNCoreError):
        check_values(values + 1, values)
    assert stack_effective_field(config, 8, 8, samples=1, max_values=values).heatmap.shape == (8, 8)
