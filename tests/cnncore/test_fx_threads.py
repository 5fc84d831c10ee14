"""Tracing a model must not capture forward passes that other threads run at the same time."""

import threading

import torch
from torch import nn

from cnncore.features import trace_layers


class _RunsAnotherModelMeanwhile(nn.Module):
    """While being traced, runs an unrelated model in another thread and waits for it."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3)
        self.results: list[torch.Tensor] = []
        self.errors: list[BaseException] = []

    def forward(self, x):
        other = nn.Linear(2, 1)
        with torch.no_grad():
            other.weight.fill_(1.0)
            other.bias.fill_(0.5)

        def run() -> None:
            try:
                self.results.append(other(torch.ones(1, 2)))
            except BaseException as exc:  # the failure we guard against surfaces here
                self.errors.append(exc)

        thread = threading.Thread(target=run)
        thread.start()
        thread.join()
        return self.conv(x)


def test_forward_in_another_thread_runs_normally_during_a_trace():
    model = _RunsAnotherModelMeanwhile()
    graph = trace_layers(model)
    assert model.errors == []
    assert len(model.results) == 1
    assert model.results[0].item() == 2.5  # 1·1 + 1·1 + 0.5, computed, not traced
    assert "conv" in graph.layer_names
    x = torch.randn(1, 1, 6, 6)
    torch.testing.assert_close(graph.graph_module(x), model.conv(x))
