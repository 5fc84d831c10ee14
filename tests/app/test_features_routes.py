"""/api/features: answers, PNG round trips, caching, bad uploads as 4xx naming their field."""

import io
import struct
import zlib

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient
from PIL import Image
from uploads import own_feature_cache

from app.feature_cache import LRUStore
from app.main import app
from app.settings import get_settings
from app.weights_choice import checkpoints
from cnncore.checkpoint import load_checkpoint, save_checkpoint
from cnncore.colormaps import colormap
from cnncore.data import DataConfig, load_dataset
from cnncore.features import (
    filters_rgb,
    learned_feature_maps,
    prepare_input,
    render_picture,
    top_predictions,
)
from cnncore.images import encode_png, sample_image
from cnncore.training import TrainConfig, Trainer

client = TestClient(app)


@pytest.fixture(autouse=True)
def fresh_cache():
    """A new cache for each test (results of another test must not make this one 'cached')."""
    with own_feature_cache(app) as cache:
        yield cache


def post(files=None, **fields):
    return client.post("/api/features", data=fields, files=files)


def decode(response) -> np.ndarray:
    assert response.status_code == 200 and response.headers["content-type"] == "image/png"
    return np.asarray(Image.open(io.BytesIO(response.content)).convert("RGB"))


def test_sample_through_tinyvgg_gives_every_layer_as_png():
    response = post(model="tinyvgg", sample="circle", colormap="gray", normalise="per_channel")
    assert response.status_code == 200
    body = response.json()
    assert body["model"] == "tinyvgg" and body["cached"] is False
    assert body["input"] == {
        "source": "sample",
        "sample": "circle",
        "format": "PNG",
        "mode": "RGB",
        "width": 224,
        "height": 224,
        "orientation": 1,
        "shape": body["input"]["shape"],
    }
    names = [layer["name"] for layer in body["layers"]]
    assert names[:3] == ["block1.conv1", "block1.relu1", "block1.conv2"]
    assert [s["step"] for s in body["preprocessing"]] == ["original", "resize", "crop", "normalise"]
    first = body["layers"][0]
    atlas = decode(client.get(first["url"]))
    rows, cols = first["grid"]
    height, width = first["tile"]
    assert atlas.shape == (rows * (height + 1) - 1, cols * (width + 1) - 1, 3)
    assert first["channels_shown"] == first["channels"] == first["shape"][0] == 10
    # per-channel normalisation in gray: every map spans black to white exactly
    tile = atlas[:height, :width, 0]
    assert tile.min() == 0 and tile.max() == 255
    assert decode(client.get(body["filters_url"])).shape[2] == 3
    for step in body["preprocessing"]:
        assert decode(client.get(step["url"])).ndim == 3


def test_colormap_of_a_url_can_change_without_a_new_forward_pass():
    body = post(model="lenet5", sample="digit", colormap="viridis").json()
    url = body["layers"][0]["url"]
    viridis, gray = decode(client.get(url)), decode(client.get(url + "?colormap=gray"))
    lut = colormap("viridis")
    levels = gray[..., 0]
    tile_h, tile_w = body["layers"][0]["tile"]
    np.testing.assert_array_equal(viridis[:tile_h, :tile_w], lut[levels[:tile_h, :tile_w]])
    assert client.get(url + "?colormap=jet").status_code == 422


def test_levels_made_after_the_answer_are_the_ones_made_before(fresh_cache):
    """The answer carries ranges and shapes; the levels come from held floats once it is sent.
    Every number and picture is what making the levels at once gives."""
    body = post(model="tinyvgg", sample="china", colormap="gray").json()
    assert fresh_cache.wait_settled(60) and fresh_cache.deferred.held == 0
    model = fresh_cache.model("tinyvgg")
    eager = learned_feature_maps(model.loaded, model.layers, sample_image("china"))
    assert [layer["name"] for layer in body["layers"]] == [m.name for m in eager.layers]
    for layer, made in zip(body["layers"], eager.layers, strict=True):
        assert layer["ranges"] == [list(r) for r in made.ranges]
        assert layer["tile"] == list(made.levels.shape[1:])
        drawn = encode_png(render_picture(eager, made.name, "gray"))
        assert client.get(layer["url"]).content == drawn


def test_same_request_is_served_from_the_cache(fresh_cache):
    first = post(model="lenet5", sample="digit").json()
    again = post(model="lenet5", sample="digit").json()
    assert again["cached"] is True and again["id"] == first["id"]
    other = post(model="lenet5", sample="digit", colormap="magma").json()
    assert other["cached"] is True and other["id"] != first["id"]
    per_layer = post(model="lenet5", sample="digit", normalise="per_layer").json()
    assert per_layer["cached"] is False
    assert len({tuple(r) for r in per_layer["layers"][0]["ranges"]}) == 1


def test_uploaded_png_with_exif_rotation_is_read_upright():
    exif = Image.Exif()
    exif[0x0112] = 6
    buffer = io.BytesIO()
    Image.fromarray(np.zeros((30, 50, 3), np.uint8) + 120).save(buffer, "PNG", exif=exif)
    response = post(files={"image": ("photo.png", buffer.getvalue(), "image/png")}, model="tinyvgg")
    assert response.status_code == 200
    assert response.json()["input"] | {"shape": None} == {
        "source": "upload",
        "sample": None,
        "format": "PNG",
        "mode": "RGB",
        "width": 30,
        "height": 50,
        "orientation": 6,
        "shape": None,
    }


def test_trained_models_give_predictions_that_sum_to_at_most_one():
    body = post(model="lenet5", sample="digit").json()
    assert body["weights"] == {
        "source": "trained",
        "file": "lenet5.safetensors",
        "dataset": "mnist5k",
        "metric": "accuracy",
        "score": body["weights"]["score"],
        "epochs": 12,
        "run": None,
        "installed": None,
    }
    assert body["weights"]["score"] > 0.9
    probs = [p["prob"] for p in body["predictions"]]
    assert probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1 + 1e-6
    assert body["predictions"][0]["label"] == "7"  # the sample is a real MNIST 7
    c5 = next(layer for layer in body["layers"] if layer["name"] == "features.6")
    assert c5["units"] and c5["channels"] == c5["channels_shown"] == 120
    assert c5["grid"] == [1, 1] and c5["tile"] == [11, 11]


def test_untrained_large_model_has_no_predictions_and_caps_channels():
    body = post(model="alexnet", sample="gradient").json()
    assert body["weights"]["source"] == "initialisation" and body["predictions"] is None
    conv2 = next(layer for layer in body["layers"] if layer["name"] == "features.3")
    assert conv2["channels"] == 192 and conv2["channels_shown"] == 64
    assert len(conv2["ranges"]) == 64 and conv2["grid"] == [8, 8]


def test_handcrafted_mode_applies_the_presets_to_each_colour_channel():
    body = post(model="lenet5", sample="checkerboard", mode="handcrafted").json()
    assert body["mode"] == "handcrafted" and body["weights"] is None
    assert body["predictions"] is None
    assert [layer["name"] for layer in body["layers"]][:3] == [
        "identity",
        "vertical_edge",
        "horizontal_edge",
    ]
    assert all(layer["shape"] == [3, 224, 224] for layer in body["layers"])
    vertical = decode(client.get(body["layers"][1]["url"] + "?colormap=gray"))[:224, :224, 0]
    # a vertical edge filter lights the checkerboard's vertical borders (x = 32, 64 ...) only
    assert vertical[100, 31] in (0, 255) and vertical[100, 31] != vertical[100, 16]


def header_only_png(width: int, height: int) -> bytes:
    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body))
            + kind
            + body
            + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")


GOOD_PNG = encode_png(np.zeros((16, 16, 3), np.uint8))


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "empty"),
        (b"hello, this is text", "not a readable image"),
        (GOOD_PNG[: len(GOOD_PNG) // 2], ""),
        (header_only_png(20000, 20000), "pixels"),
        (header_only_png(8000, 8000), "pixels"),
    ],
)
def test_bad_uploads_are_422_naming_image(content, message):
    response = post(files={"image": ("x.png", content, "image/png")}, model="lenet5")
    assert response.status_code == 422
    (error,) = response.json()["detail"]
    assert error["loc"] == ["body", "image"] and message in error["msg"]


def test_an_oversized_upload_is_refused_before_parsing():
    limit = get_settings().max_upload_bytes
    big = b"\x89PNG" + bytes(limit + 100_000)
    response = post(files={"image": ("big.png", big, "image/png")}, model="lenet5")
    assert response.status_code == 413
    assert response.json()["detail"][0]["loc"] == ["body", "image"]


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"model": "lenet6", "sample": "digit"}, "model"),
        ({"model": "LeNet/../5", "sample": "digit"}, "model"),
        ({"model": "lenet5", "sample": "lena"}, "sample"),
        ({"model": "lenet5", "sample": "digit", "colormap": "jet"}, "colormap"),
        ({"model": "lenet5", "sample": "digit", "mode": "magic"}, "mode"),
        ({"model": "lenet5"}, "image"),
        ({"sample": "digit"}, "model"),
    ],
)
def test_bad_fields_are_422_naming_the_field(fields, field):
    response = post(**fields)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", field]


def test_pictures_are_found_only_by_stored_id_and_name():
    body = post(model="lenet5", sample="digit").json()
    base = f"/api/features/{body['id']}"
    assert client.get(f"{base}/features.0.png").status_code == 200
    assert client.get(f"{base}/nonexistent.png").status_code == 404
    assert client.get(f"{base}/..%2F..%2Fapp%2Fmain.py.png").status_code == 404
    assert client.get("/api/features/AAAAAAAAAAAAAAAAAAAAAA/features.0.png").status_code == 404
    assert client.get("/api/features/short/features.0.png").status_code == 422


def test_samples_and_colormaps_are_listed():
    samples = client.get("/api/features/samples").json()
    assert [s["name"] for s in samples][:2] == ["china", "flower"]
    china = decode(client.get(samples[0]["url"]))
    np.testing.assert_array_equal(china, sample_image("china").rgb)
    assert client.get("/api/features/samples/lena.png").status_code == 404
    maps = client.get("/api/features/colormaps").json()
    assert set(maps) == {"viridis", "magma", "gray"} and maps["viridis"][0] == "#440154"


def test_lru_store_is_bounded_in_entries_and_bytes():
    store = LRUStore(max_entries=3, max_bytes=10, size_of=len)
    for key in "abc":
        store.put(key, "xx")
    store.get("a")  # a is now the most recent: b goes first
    store.put("d", "xx")
    assert store.get("b") is None and store.get("a") == "xx" and len(store) == 3
    store.put("e", "x" * 9)
    assert len(store) == 1 and store.nbytes == 9 and store.get("e")
    store.put("f", "y" * 50)  # alone over the bound: kept, it was just asked for
    assert len(store) == 1 and store.get("f")


def test_thumbnail_is_an_area_average_of_the_full_atlas():
    body = post(model="alexnet", sample="circle", colormap="gray").json()
    url = body["layers"][0]["url"]  # 64 maps of 55×55 in 8×8 tiles: 447×447
    full = decode(client.get(url))
    thumb = decode(client.get(url + "?max_side=64"))
    assert full.shape == (447, 447, 3) and thumb.shape == (64, 64, 3)
    expected = np.asarray(Image.fromarray(full).resize((64, 64), Image.Resampling.BOX))
    np.testing.assert_array_equal(thumb, expected)
    assert client.get(url + "?max_side=8").status_code == 422


def test_one_channel_at_full_size_is_its_tile_of_the_atlas():
    body = post(model="tinyvgg", sample="china", colormap="gray").json()
    layer = body["layers"][0]  # 10 maps of 62×62, 3 rows × 4 columns
    atlas = decode(client.get(layer["url"]))
    tile = decode(client.get(layer["url"] + "?channel=6"))
    assert tile.shape == (62, 62, 3)
    np.testing.assert_array_equal(tile, atlas[63 : 63 + 62, 2 * 63 : 2 * 63 + 62])
    assert client.get(layer["url"] + "?channel=10").status_code == 404
    assert client.get(body["filters_url"] + "?channel=0").status_code == 404
    assert client.get(layer["url"] + "?channel=-1").status_code == 422


# --- a training run's checkpoint ("see what your trained network sees") ------------------------
RUN = "0123456789ab"


@pytest.fixture(scope="module")
def run_files(tmp_path_factory):
    """Two checkpoints of one tiny LeNet-5 run on scikit-learn digits: after one step and after
    a few more (as the run manager keeps an epoch file, then the final one)."""
    folder = tmp_path_factory.mktemp("checkpoints")
    data = load_dataset(DataConfig(name="digits", limit=120, seed=0))
    trainer = Trainer(
        TrainConfig(model="lenet5", epochs=2, batch_size=32, max_steps_per_epoch=2), data=data
    )
    events = trainer.run()
    paths = []
    for event in events:
        if event["kind"] == "epoch":
            paths.append(save_checkpoint(trainer, folder / f"epoch-{len(paths) + 1}.safetensors"))
    assert len(paths) == 2
    return paths


@pytest.fixture
def newest(run_files):
    """The `checkpoints` dependency pointing run RUN at a chosen file (the first by default)."""
    current = {"path": run_files[0]}

    def checkpoint_of(run_id):
        if run_id != RUN:
            raise LookupError(f"no training run has the id {run_id!r}")
        return current["path"]

    app.dependency_overrides[checkpoints] = lambda: checkpoint_of
    yield current
    app.dependency_overrides.pop(checkpoints, None)


def test_a_run_checkpoint_gives_its_own_maps_filters_and_predictions(newest):
    bundled = post(model="lenet5", sample="digit").json()
    body = post(model="lenet5", sample="digit", run=RUN).json()
    path = newest["path"]
    loaded = load_checkpoint(path).loaded_model()
    assert body["weights"]["run"] == RUN and body["weights"]["file"] == path.name
    assert body["weights"]["dataset"] == "digits" and body["id"] != bundled["id"]
    # the filters are the checkpoint's kernels, not the bundled model's
    filters = decode(client.get(body["filters_url"]))
    assert np.array_equal(filters, filters_rgb(loaded.model))
    assert not np.array_equal(filters, decode(client.get(bundled["filters_url"])))
    # predictions: the checkpoint network run by hand on the same prepared tensor
    prepared = prepare_input(loaded.weights, sample_image("digit"))
    with torch.no_grad():
        logits = loaded.model(prepared.tensor)[0]
    expected = top_predictions(logits, list(loaded.weights.labels), 5)
    assert [p["label"] for p in body["predictions"]] == [p.label for p in expected]
    assert [p["prob"] for p in body["predictions"]] == pytest.approx(
        [p.prob for p in expected], abs=1e-6
    )
    assert body["input"]["shape"] == list(loaded.weights.input_shape)


def test_a_newer_checkpoint_of_the_run_gives_new_maps(newest, run_files):
    first = post(model="lenet5", sample="digit", run=RUN).json()
    assert post(model="lenet5", sample="digit", run=RUN).json()["cached"] is True
    newest["path"] = run_files[1]
    second = post(model="lenet5", sample="digit", run=RUN).json()
    assert second["cached"] is False and second["weights"]["file"] == run_files[1].name
    newer = load_checkpoint(run_files[1]).loaded_model()
    assert np.array_equal(decode(client.get(second["filters_url"])), filters_rgb(newer.model))
    assert first["predictions"] != second["predictions"]


@pytest.mark.parametrize(
    ("fields", "status"),
    [
        ({"model": "lenet5", "run": "fedcba987654"}, 422),  # no such run
        ({"model": "tinyvgg", "run": RUN}, 422),  # the run trained lenet5
        ({"model": "lenet5", "run": RUN, "mode": "handcrafted"}, 422),
        ({"model": "lenet5", "run": "../../etc/passwd"}, 422),  # never reaches a path
    ],
)
def test_bad_runs_are_refused_naming_run(newest, fields, status):
    response = post(sample="digit", **fields)
    assert response.status_code == status, response.text
    assert response.json()["detail"][0]["loc"] == ["body", "run"]


def test_a_run_without_a_readable_checkpoint_names_run(tmp_path):
    app.dependency_overrides[checkpoints] = lambda: lambda run_id: tmp_path / "gone.safetensors"
    try:
        response = post(model="lenet5", sample="digit", run=RUN)
    finally:
        app.dependency_overrides.pop(checkpoints, None)
    assert response.status_code == 422 and response.json()["detail"][0]["loc"] == ["body", "run"]


def test_tinyvgg_predictions_carry_the_shapes_korean_names_index_for_index():
    """The bundled TinyVGG (shapes) names its classes in both page languages, like ImageNet."""
    from cnncore.datasets.shapes import SHAPE_CLASSES

    korean = ["원", "사각형", "삼각형", "십자", "별", "고리"]  # circle, square, triangle, …
    body = post(model="tinyvgg", sample="flower").json()
    predictions = body["predictions"]
    assert len(predictions) == 5  # the top five of six
    for prediction in predictions:
        index = SHAPE_CLASSES.index(prediction["label"])
        assert prediction["index"] == index
        assert prediction["names"] == {"en": SHAPE_CLASSES[index], "ko": korean[index]}
    # digits read the same in both languages: LeNet-5 (MNIST) predictions carry no names
    digits = post(model="lenet5", sample="digit").json()["predictions"]
    assert digits and all(p["names"] is None for p in digits)
