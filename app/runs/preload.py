"""Imported once by the forkserver every worker is forked from (`Settings.run_start_method`):
torch, the worker code and the bundled datasets, decoded, so each run starts at once instead
of importing and parsing them again (seconds each on a busy machine)."""

import torch

# One thread here, before any tensor work: an OpenMP thread pool does not survive fork(), so
# the forkserver must never start one. Each worker then sets its own thread count.
torch.set_num_threads(1)

import app.runs.worker  # noqa: E402, F401
from cnncore.data import DataConfig, load_images  # noqa: E402
from cnncore.training import TrainConfig  # noqa: E402

for _name in ("digits", "mnist5k"):
    load_images(DataConfig(name=_name))  # fills cnncore.data's cache, inherited by each fork

# The first optimiser ever built imports torch._dynamo (torch.optim's decorators): seconds.
TrainConfig().check()
