import pytest
import torch

from cnncore.device import resolve_device
from cnncore.errors import CNNCoreError


def test_auto_picks_cuda_only_when_present():
    expected = "cuda:0" if torch.cuda.is_available() else "cpu"
    assert str(resolve_device("auto")) == expected


def test_cpu_is_taken_as_given():
    assert resolve_device("cpu") == torch.device("cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_a_gpu_is_a_clear_error():
    with pytest.raises(CNNCoreError, match="no CUDA GPU"):
        resolve_device("cuda")


def test_unknown_device_names_the_field():
    with pytest.raises(CNNCoreError) as info:
        resolve_device("tpu:7")
    assert info.value.field == "device"
