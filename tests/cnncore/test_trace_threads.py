"""torch.fx keeps the patcher of the trace in progress in one global (CURRENT_PATCHER): two
traces at once in two request threads undo each other's patches and one fails ("CURRENT_PATCHER
is None in finally block", which reached a student as a 422 on /api/models/googlenet/summary
while a lesson's receptive-field frame traced VGG-16). `symbolic_trace` takes them in turn."""

import threading

from cnncore.features import symbolic_trace
from cnncore.models import build_model

MODELS = ("googlenet", "vgg16", "resnet18", "mobilenet_v2")


def node_targets(graph_module) -> list[tuple[str, str]]:
    return [(node.op, str(node.target)) for node in graph_module.graph.nodes]


def test_traces_in_several_threads_at_once_all_succeed_and_equal_a_lone_trace():
    models = {name: build_model(name, device="meta").eval() for name in MODELS}
    alone = {name: node_targets(symbolic_trace(model)) for name, model in models.items()}
    rounds = 3
    start = threading.Barrier(len(MODELS) * rounds)
    results: dict[tuple[str, int], object] = {}

    def trace(name: str, index: int) -> None:
        start.wait()
        try:
            results[name, index] = node_targets(symbolic_trace(models[name]))
        except Exception as exc:  # noqa: BLE001 — the test reports what went wrong
            results[name, index] = exc

    jobs = [(name, index) for name in MODELS for index in range(rounds)]
    threads = [threading.Thread(target=trace, args=job) for job in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert len(results) == len(threads)
    for (name, _index), result in results.items():
        assert result == alone[name], f"{name}: {result!r}"[:300]


def test_writing_a_pytorch_file_beside_traces_and_forward_passes_in_other_threads():
    """The exported file's one-level traces take the same turn, and record only their own
    thread's module calls: a forward pass meanwhile in another thread is neither recorded nor
    broken."""
    import torch

    from cnncore.export.pycode import PyFileFacts, python_file

    resnet = build_model("resnet18", num_classes=4).eval()
    facts = PyFileFacts("t", "w.safetensors", (3, 32, 32), tuple("abcd"), (0.0,) * 3, (1.0,) * 3,
                        "0" * 64)  # fmt: skip
    alone = python_file(resnet, facts)
    googlenet = build_model("googlenet", device="meta").eval()
    picture = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        expected = resnet(picture)
    start = threading.Barrier(6)
    results: dict[tuple[str, int], object] = {}

    def work(kind: str, index: int) -> None:
        start.wait()
        try:
            for _ in range(3):
                if kind == "file":
                    results[kind, index] = python_file(resnet, facts)
                elif kind == "trace":
                    results[kind, index] = node_targets(symbolic_trace(googlenet))
                else:
                    with torch.no_grad():
                        results[kind, index] = resnet(picture)
        except Exception as exc:  # noqa: BLE001 — the test reports what went wrong
            results[kind, index] = exc

    jobs = [(kind, index) for kind in ("file", "trace", "forward") for index in range(2)]
    threads = [threading.Thread(target=work, args=job) for job in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert len(results) == len(jobs)
    for (kind, _index), result in results.items():
        assert not isinstance(result, Exception), f"{kind}: {result!r}"[:300]
        if kind == "file":
            assert result == alone
        elif kind == "forward":
            assert torch.equal(result, expected)
