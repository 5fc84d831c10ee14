"""Transfer learning: the source's weights arrive unchanged, the head is new, frozen layers get
no gradient and do not move under any optimiser, and bad requests name their field."""

import pytest
import torch
from torch import nn

from cnncore.checkpoint import load_checkpoint, save_checkpoint
from cnncore.data import DataConfig, load_dataset
from cnncore.errors import CNNCoreError
from cnncore.model_options import build_classifier
from cnncore.training import TrainConfig, Trainer
from cnncore.transfer import (
    checkpoint_layers,
    freeze_layers,
    output_layer,
    plan_transfer,
    transfer_data,
    transfer_model,
)

# one thread for this module's many tiny steps, and the previous count back after it
pytestmark = pytest.mark.usefixtures("one_thread")  # tests/cnncore/conftest.py


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """A LeNet-5 trained two steps on 8×8 digits (grown to 32×32), saved as a checkpoint."""
    config = TrainConfig(model="lenet5", data=DataConfig(name="digits", limit=200), epochs=1,
                         batch_size=32, max_steps_per_epoch=2, dropout=0.3)  # fmt: skip
    trainer = Trainer(config)
    for _ in trainer.run():
        pass
    return save_checkpoint(trainer, tmp_path_factory.mktemp("source") / "final.safetensors")


def test_the_module_runs_on_one_thread(source):
    assert torch.get_num_threads() == 1  # set by `one_thread`, which also restores it


@pytest.mark.parametrize(("model", "head"), [
    ("lenet5", "classifier.2"), ("mlp", "classifier"), ("tinyvgg", "classifier"),
])  # fmt: skip
def test_the_head_is_the_last_linear_layer(model, head):
    net = build_classifier(model, (1, 32, 32) if model != "tinyvgg" else (3, 64, 64), 10)
    assert output_layer(net) == head
    assert isinstance(net.get_submodule(head), nn.Linear)


def test_freezing_matches_on_dotted_boundaries():
    net = nn.Sequential(*[nn.Linear(2, 2) for _ in range(11)])
    frozen = freeze_layers(net, ["1"])
    assert frozen == ["1.weight", "1.bias"]  # not 10.weight: a prefix stops at a dot
    assert [n for n, p in net.named_parameters() if not p.requires_grad] == frozen
    with pytest.raises(CNNCoreError) as refused:
        freeze_layers(net, ["features"])
    assert refused.value.field == "init_from.freeze"


def test_transfer_keeps_every_weight_but_the_head_and_frozen_layers_never_move(source):
    checkpoint = load_checkpoint(source)
    original = {k: v.clone() for k, v in checkpoint.model.state_dict().items()}
    model = transfer_model(checkpoint, 3, freeze=["features.0", "features.3"],
                           replace_head=True, seed=0)  # fmt: skip
    head = output_layer(model)
    assert head == "classifier.2.1"  # dropout 0.3 wrapped the head: Sequential(Dropout, Linear)
    state = model.state_dict()
    assert state[f"{head}.weight"].shape == (3, 84)
    for name, value in original.items():
        if not name.startswith(head + "."):
            assert torch.equal(state[name], value), name
    x = torch.randn(8, 1, 32, 32)
    loss = nn.functional.cross_entropy(model(x), torch.randint(0, 3, (8,)))
    loss.backward()
    grads = {n: p.grad for n, p in model.named_parameters()}
    assert all(grads[n] is None for n in grads if n.startswith(("features.0.", "features.3.")))
    assert all(grads[n] is not None for n in grads if n.startswith(("features.6.", "classifier.")))
    # weight decay included: a parameter without a gradient is left alone by the optimiser
    optimiser = torch.optim.AdamW(model.parameters(), lr=0.1, weight_decay=0.5)
    optimiser.step()
    after = model.state_dict()
    assert torch.equal(after["features.0.weight"], original["features.0.weight"])
    assert not torch.equal(after["features.6.weight"], original["features.6.weight"])


def test_the_new_head_is_seeded_and_keeping_the_head_needs_the_same_classes(source):
    heads = [transfer_model(load_checkpoint(source), 4, freeze=[], replace_head=True, seed=7)
             .state_dict()["classifier.2.1.weight"] for _ in range(2)]  # fmt: skip
    assert torch.equal(*heads)
    kept = transfer_model(load_checkpoint(source), 10, freeze=[], replace_head=False)
    assert kept.state_dict()["classifier.2.1.weight"].shape == (10, 84)
    with pytest.raises(CNNCoreError) as refused:
        transfer_model(load_checkpoint(source), 4, freeze=[], replace_head=False)
    assert refused.value.field == "init_from.replace_head"


def test_the_plan_takes_the_source_architecture_and_checks_the_layers(source):
    asked = TrainConfig(model="mlp", activation="sigmoid", batch_norm=True, dropout=0.0,
                        data=DataConfig(name="digits", classes=[5, 6, 7]))  # fmt: skip
    plan = plan_transfer(source, asked, ["features"], replace_head=True)
    assert (plan.config.model, plan.config.activation, plan.config.batch_norm,
            plan.config.dropout) == ("lenet5", None, False, 0.3)  # fmt: skip
    assert plan.config.data.classes == [5, 6, 7]  # the task is the request's
    assert plan.input_shape == (1, 32, 32) and plan.source_classes == 10
    assert plan.head == "classifier.2.1"
    assert checkpoint_layers(source) == (plan.layers, plan.head)
    # dropout sits before each fully connected layer: Sequential(Dropout, Linear)
    assert plan.layers == ["features.0", "features.3", "features.6", "classifier.0.1",
                           "classifier.2.1"]  # fmt: skip
    for freeze, message in ((["classifier"], "would be frozen"), (["conv1"], "no layer")):
        with pytest.raises(CNNCoreError, match=message) as refused:
            plan_transfer(source, asked, freeze, replace_head=True)
        assert refused.value.field == "init_from.freeze"


def test_the_new_task_is_brought_to_the_source_input(source):
    trained = load_checkpoint(source).trained
    digits = load_dataset(DataConfig(name="digits", limit=100))
    grown = transfer_data(digits, trained.input_shape, "scale")
    assert grown.input_shape == (1, 32, 32)
    assert torch.equal(grown.train_labels, digits.train_labels)
    colour = load_dataset(DataConfig(name="digits", limit=100, channels=3))
    with pytest.raises(CNNCoreError) as refused:
        transfer_data(colour, trained.input_shape, "scale")
    assert refused.value.field == "data.channels"
