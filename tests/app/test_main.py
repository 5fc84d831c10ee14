"""App assembly: the `torch_threads` setting sizes torch's thread pool once, at start-up."""

from concurrent.futures import ThreadPoolExecutor

import pytest
import torch
from pydantic import ValidationError

from app.main import create_app
from app.settings import Settings


def test_torch_threads_setting_sets_the_servers_thread_pool():
    before = torch.get_num_threads()
    wanted = 2 if before == 1 else 1  # a count that differs from the default, on any machine
    try:
        create_app(Settings(torch_threads=wanted))
        assert torch.get_num_threads() == wanted
        # a request runs in a worker thread started later: it starts from the same count
        with ThreadPoolExecutor(1) as pool:
            assert pool.submit(torch.get_num_threads).result() == wanted
        torch.set_num_threads(before)
        create_app(Settings(torch_threads=0))  # 0: torch's own default is left alone
        assert torch.get_num_threads() == before
    finally:
        torch.set_num_threads(before)


def test_torch_threads_may_not_be_negative():
    with pytest.raises(ValidationError):
        Settings(torch_threads=-1)
