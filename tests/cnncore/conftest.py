"""Fixtures shared by the cnncore tests."""

import pytest
import torch


@pytest.fixture(scope="module")
def one_thread():
    """Torch on one thread for a module of many tiny forward passes: OpenMP threads spinning
    against other processes on a shared 2-core machine make a 1 ms step take 30 ms. One thread
    is also what a training worker uses. The previous count comes back afterwards."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
