"""A run's memory and work estimate (`cnncore.run_cost`): the tensors counted on the meta device
are those a real forward pass saves, the optimiser slots are torch's, the work is the summary's
MACs, and a real training step's peak (measured in a fresh process) stays within the estimate."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from cnncore.datasets.shapes import SHAPE_SIDES, generate_shapes
from cnncore.errors import CNNCoreError
from cnncore.inspect import summarize_model
from cnncore.model_options import build_classifier
from cnncore.optim import OPTIMIZERS, build_optimizer
from cnncore.run_cost import OPTIMIZER_SLOTS, available_memory, estimate_run, model_footprint

ROOT = Path(__file__).resolve().parents[2]


def saved_on_cpu(model: str, channels: int, side: int, batch: int) -> int:
    """Bytes a real forward pass saves for backward (parameters excluded), by storage."""
    torch.manual_seed(0)
    net = build_classifier(model, (channels, side, side), 10).train()
    parameters = {p.untyped_storage().data_ptr() for p in net.parameters()}
    saved: dict[int, int] = {}

    def pack(tensor):
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in parameters:
            saved[storage.data_ptr()] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        net(torch.rand(batch, channels, side, side))
    return sum(saved.values())


@pytest.mark.parametrize(("model", "channels", "side"),
                         [("lenet5", 1, 32), ("tinyvgg", 1, 28), ("resnet18", 3, 32),
                          ("mobilenet_v2", 3, 32), ("mlp", 1, 28)])  # fmt: skip
def test_the_meta_count_is_what_a_real_forward_pass_saves(model, channels, side):
    footprint = model_footprint(model, channels, side, 10)
    for batch in (2, 5):
        expected = footprint.saved_fixed_bytes + footprint.saved_bytes_per_image * batch
        assert saved_on_cpu(model, channels, side, batch) == expected
    summary = summarize_model(model, channels, side, side, 10)
    assert footprint.macs_per_image == summary.total_macs
    assert footprint.parameters == summary.total_params


@pytest.mark.parametrize("name", OPTIMIZERS)
@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_optimizer_slots_are_the_state_torch_keeps(name, momentum):
    net = torch.nn.Linear(7, 3)
    if name == "nesterov" and momentum == 0:
        with pytest.raises(CNNCoreError, match="momentum above 0"):
            build_optimizer(name, net.parameters(), 0.01, momentum=momentum)
        return
    optimizer = build_optimizer(name, net.parameters(), 0.01, momentum=momentum)
    F.mse_loss(net(torch.rand(4, 7)), torch.rand(4, 3)).backward()
    optimizer.step()
    kept = sum(v.numel() for state in optimizer.state.values() for v in state.values()
               if torch.is_tensor(v) and v.numel() > 1)  # fmt: skip
    parameters = sum(p.numel() for p in net.parameters())
    slots = OPTIMIZER_SLOTS[name] + (name == "rmsprop" and momentum > 0)
    if name in ("momentum", "nesterov") and momentum == 0:
        slots = 0  # SGD keeps no buffer without momentum (the form refuses nothing here)
    assert kept == slots * parameters


def test_the_parts_add_up():
    footprint = model_footprint("lenet5", 1, 32, 10)
    cost = estimate_run(footprint, optimizer="adam", momentum=0.9, early_stopping=True,
                        batch_size=64, epochs=3, steps_per_epoch=20, train_images=1000,
                        val_images=250, channels=1, side=32, loaded_bytes=5000)  # fmt: skip
    assert cost.data_bytes == 5000 + 2 * 1250 * 32 * 32 * 4
    assert cost.state_bytes == (footprint.parameters * 4 * (2 + 2 + 1)
                                + 2 * footprint.largest_parameter_bytes)  # fmt: skip
    per_image = (footprint.saved_bytes_per_image + 2 * footprint.largest_output_bytes
                 + footprint.workspace_bytes)  # fmt: skip
    assert cost.step_bytes == footprint.saved_fixed_bytes + 64 * per_image
    assert cost.eval_bytes == 2 * footprint.largest_output_bytes * 250
    assert cost.peak_bytes == cost.data_bytes + cost.state_bytes + max(
        cost.step_bytes, cost.eval_bytes
    )
    assert cost.steps == 60
    assert cost.macs == footprint.macs_per_image * (3 * 64 * 60 + 250 * 3)


def test_resnet18_at_256_pixels_and_batch_1024_needs_tens_of_gigabytes():
    footprint = model_footprint("resnet18", 1, 256, 10)
    assert footprint.saved_bytes_per_image > 25_000_000  # ~28 MB per image for backward
    cost = estimate_run(footprint, optimizer="adam", momentum=0.9, early_stopping=False,
                        batch_size=1024, epochs=1, steps_per_epoch=2, train_images=1438,
                        val_images=359, channels=1, side=256, loaded_bytes=0)  # fmt: skip
    assert cost.step_bytes > 25e9


MEASURE = """
import json, sys, torch
import torch.nn.functional as F
from cnncore.model_options import build_classifier
from cnncore.optim import build_optimizer

def peak_rss():
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmHWM"))

model, channels, side, batch = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
torch.set_num_threads(1)
torch.manual_seed(0)
net = build_classifier(model, (channels, side, side), 10)
optimizer = build_optimizer("adam", net.parameters(), 1e-3)
images, labels = torch.rand(batch, channels, side, side), torch.randint(0, 10, (batch,))
with torch.no_grad():
    net.eval()(images[:2])  # load the kernels before the baseline
net.train()
with open("/proc/self/clear_refs", "w") as clear:
    clear.write("5")  # the peak so far (imports) becomes the current size (Linux proc(5))
before = peak_rss()
loss = F.cross_entropy(net(images), labels)
optimizer.zero_grad()
loss.backward()
optimizer.step()
print(json.dumps(peak_rss() - before))
"""


@pytest.mark.parametrize(("model", "channels", "side", "batch"),
                         [("lenet5", 1, 32, 512), ("resnet18", 1, 64, 32),
                          ("mobilenet_v2", 3, 32, 64)])  # fmt: skip
def test_a_real_training_step_stays_within_the_estimate(model, channels, side, batch):
    """The peak resident memory a fresh process gains over one step (forward, backward, Adam's
    first step: gradients and both moments appear) against the estimate of the same parts.
    Every allocation of 64 kB or more is its own mapping, given back when freed, so the peak
    counts the bytes alive at once, not what an earlier free left in the heap (without it the
    same step measures 0.7 to 1.0 of the estimate, from run to run: docs/PERFORMANCE.md)."""
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536"}
    out = subprocess.run([sys.executable, "-c", MEASURE, model, str(channels), str(side),
                          str(batch)], capture_output=True, text=True, cwd=ROOT, env=env,
                         timeout=120, check=True)  # fmt: skip
    measured = json.loads(out.stdout)
    footprint = model_footprint(model, channels, side, 10)
    cost = estimate_run(footprint, optimizer="adam", momentum=0.9, early_stopping=False,
                        batch_size=batch, epochs=1, steps_per_epoch=1, train_images=batch,
                        val_images=1, channels=channels, side=side, loaded_bytes=0)  # fmt: skip
    estimated = cost.step_bytes + cost.state_bytes - footprint.parameters * 4  # not the weights
    # An upper bound (what is saved for backward, plus the largest workspaces), not far above.
    assert 0.4 * estimated <= measured <= estimated, (measured, estimated)


def test_available_memory_is_a_positive_figure_below_the_machine():
    free = available_memory("cpu")
    total = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    assert 0 < free <= total
    with pytest.raises(CNNCoreError):
        available_memory("meta")


def test_shapes_are_drawn_from_the_smallest_side_that_fits_the_largest_outline():
    low, high = SHAPE_SIDES
    assert 2 * (0.45 * low + 1.0) <= low and 2 * (0.45 * (low - 1) + 1.0) > low - 1
    images, _, _ = generate_shapes(60, low, seed=3)
    assert images.shape == (60, 1, low, low)
    assert bool((images.flatten(1).amax(1) > 0.5).all())  # every outline drawn, none empty
    for side in (low - 1, high + 1):
        with pytest.raises(CNNCoreError, match=f"{low} to {high}"):
            generate_shapes(6, side)
