"""Receptive-field routes: values equal the core's (themselves checked against autograd and the
Distill table), heatmaps decode to the core's map, and every bad input is a 4xx naming its field."""

import base64
import io
import math

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient
from PIL import Image

from app.main import app
from app.routes.receptive_field import checkpoints
from cnncore.checkpoint import load_checkpoint
from cnncore.effective_rf import StackConfig, stack_effective_field
from cnncore.effective_rf_picture import initialised_model, picture_effective_field
from cnncore.images import decode_image, encode_png, sample_image
from cnncore.models import build_model
from cnncore.receptive_field import receptive_fields, unit_receptive_field
from cnncore.weights import load_model

client = TestClient(app)


def field_of(response) -> str:
    assert response.status_code == 422, response.text
    return response.json()["detail"][0]["loc"]


def decode_png(url: str) -> np.ndarray:
    prefix = "data:image/png;base64,"
    assert url.startswith(prefix)
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(url[len(prefix) :]))))


def test_unit_box_matches_the_core():
    r = client.get(
        "/api/models/resnet18/receptive-field",
        params={"layer": "layer2.0.conv1", "y": 0, "x": 27, "height": 224},
    )
    assert r.status_code == 200
    body = r.json()
    unit = unit_receptive_field(
        build_model("resnet18", device="meta"), (3, 224, 224), "layer2.0.conv1", 0, 27
    )
    assert body["layer"] == "layer2.0.conv1" and body["unit"] == {"y": 0, "x": 27}
    # layer1 ends at 11 + 4·(2·4) = 43; a 3×3 conv at jump 4 adds 8 and strides by 2
    assert body["size"] == {"height": 51, "width": 51}
    assert body["jump"] == {"height": 8, "width": 8}
    assert body["box"] == {
        "y0": unit.box.y0,
        "y1": unit.box.y1,
        "x0": unit.box.x0,
        "x1": unit.box.x1,
    }
    # start 0 (every layer pads (k−1)/2): unit 27 is centred on 27·8 = 216, ± 25
    assert body["box"] == {"y0": -25, "y1": 25, "x0": 191, "x1": 241}
    assert body["clipped_box"] == {"y0": 0, "y1": 25, "x0": 191, "x1": 223}
    assert body["padding_cells"] == 51 * 51 - 26 * 33 == unit.padding_cells
    assert body["unreached_cells"] == 0 and body["aligned"] and not body["is_global"]
    assert body["input"] == {"channels": 3, "height": 224, "width": 224}


def test_default_unit_is_the_centre_of_the_deepest_map():
    body = client.get("/api/models/lenet5/receptive-field").json()
    assert body["layer"] == "features.5" and body["unit"] == {"y": 2, "x": 2}
    assert body["box"] == body["clipped_box"] == {"y0": 8, "y1": 23, "x0": 8, "x1": 23}


def test_layer_listing_carries_the_default_unit():
    """The fields answer's default unit is exactly the unit GET …/receptive-field answers."""
    for name, params in (("lenet5", {}), ("alexnet", {"height": 96, "width": 160})):
        fields = client.get(f"/api/models/{name}/receptive-fields", params=params).json()
        unit = client.get(f"/api/models/{name}/receptive-field", params=params).json()
        assert fields["default_unit"] == unit
    # alexnet's adaptive pooling makes 6×6 whatever the input: its centre
    assert fields["default_unit"]["layer"] == "avgpool"
    assert fields["default_unit"]["unit"] == {"y": 3, "x": 3}
    mlp = client.get("/api/models/mlp/receptive-fields").json()
    assert mlp["default_unit"] is None and mlp["layers"]


def test_layer_listing_reproduces_distill_for_vgg16():
    r = client.get("/api/models/vgg16/receptive-fields")
    assert r.status_code == 200
    layers = {row["name"]: row for row in r.json()["layers"]}
    pool5 = layers["features.30"]
    assert (
        pool5["size"]["height"],
        pool5["jump"]["height"],
        pool5["effective_padding"]["height"],
    ) == (212, 32, 90)
    core = receptive_fields(build_model("vgg16", device="meta"), (3, 224, 224))
    assert list(layers) == list(core)
    assert all(layers[n]["start"]["width"] == core[n].width.start for n in core)
    assert layers["flatten"]["output_size"] is None and layers["flatten"]["is_global"]


def test_non_square_inputs_keep_their_axes():
    body = client.get(
        "/api/models/alexnet/receptive-field",
        params={"height": 96, "width": 160, "layer": "features.2"},
    ).json()
    assert body["output_size"] == {"height": 11, "width": 19}
    assert body["unit"] == {"y": 5, "x": 9}


@pytest.mark.parametrize(
    ("path", "params", "loc"),
    [
        ("/api/models/resnet18/receptive-field", {"layer": "layer9"}, ["query", "layer"]),
        ("/api/models/resnet18/receptive-field", {"layer": "conv1", "y": 112}, ["query", "y"]),
        ("/api/models/resnet18/receptive-field", {"layer": "conv1", "x": 500}, ["query", "x"]),
        ("/api/models/resnet18/receptive-field", {"y": -1}, ["query", "y"]),
        ("/api/models/resnet18/receptive-field", {"height": 100_000}, ["query", "height"]),
        ("/api/models/resnet18/receptive-field", {"height": 600}, ["query", "height"]),
        ("/api/models/alexnet/receptive-field", {"width": 40}, ["query", "width"]),
        ("/api/models/mlp/receptive-field", {}, ["query", "layer"]),
        ("/api/models/resnet18/receptive-fields", {"channels": 9}, ["query", "channels"]),
    ],
)
def test_bad_unit_queries_name_their_field(path, params, loc):
    assert field_of(client.get(path, params=params)) == loc


def test_unknown_model_is_404():
    for path in ("/api/models/nope/receptive-field", "/api/models/nope/receptive-fields"):
        r = client.get(path)
        assert r.status_code == 404 and "nope" in r.json()["detail"]


def test_a_stack_without_a_size_is_64_by_64():
    r = client.post("/api/receptive-field/effective", json={"stack": {"depth": 2}, "samples": 1})
    assert r.status_code == 200
    assert r.json()["input"] == {"channels": 4, "height": 64, "width": 64}
    assert decode_png(r.json()["heatmap"]).shape == (64, 64)


def test_effective_field_of_a_uniform_stack():
    r = client.post(
        "/api/receptive-field/effective",
        json={"stack": {"depth": 6}, "samples": 2, "height": 40, "width": 36},
    )
    assert r.status_code == 200
    body = r.json()
    assert body["network"] == "stack" and body["weights"] == "uniform"
    assert body["layer"] == "5" and body["unit"] == {"y": 20, "x": 18}
    assert body["fit"]["sigma"]["height"] == pytest.approx(2.0)  # √(2·6/3)
    assert body["theoretical"]["size"] == {"height": 13, "width": 13}
    core = stack_effective_field(StackConfig(6), 40, 36, samples=2)
    levels = decode_png(body["heatmap"])
    assert levels.shape == (40, 36)
    expected = np.rint(core.heatmap.numpy() * 255)
    assert np.abs(levels.astype(int) - expected).max() <= 1
    assert math.fsum(body["rows"]) == pytest.approx(1) and len(body["columns"]) == 36
    assert body["pixels_95"] == core.pixels_95 and body["share_95"] == pytest.approx(core.share_95)


def test_mass_shares_are_the_cores_and_numpys():
    """The rows and columns the API sends are the core fit's marginals (computed once there, on
    the gradient mass before it is scaled to a float32 heatmap), equal to a direct numpy
    computation on the core's heatmap up to that float32 rounding; the fit is their moments."""
    request = {"stack": {"depth": 4}, "samples": 2, "height": 30, "width": 44}
    body = client.post("/api/receptive-field/effective", json=request).json()
    core = stack_effective_field(StackConfig(4), 30, 44, samples=2)
    assert body["rows"] == list(core.fit.rows) and body["columns"] == list(core.fit.columns)
    mass = core.heatmap.numpy().astype(np.float64)
    shares = mass / mass.sum()
    np.testing.assert_allclose(body["rows"], shares.sum(axis=1), rtol=1e-6, atol=1e-300)
    np.testing.assert_allclose(body["columns"], shares.sum(axis=0), rtol=1e-6, atol=1e-300)
    assert math.fsum(body["rows"]) == pytest.approx(1, abs=1e-12)
    centre_y = (np.array(body["rows"]) * np.arange(30)).sum()
    assert body["fit"]["centre"]["height"] == pytest.approx(centre_y, rel=1e-12)
    assert body["fit"]["centre"] == {"height": core.fit.centre_y, "width": core.fit.centre_x}


def test_effective_field_of_a_zoo_model_is_seeded():
    request = {"model": "lenet5", "samples": 3, "seed": 4, "layer": "features.3", "y": 1, "x": 8}
    first = client.post("/api/receptive-field/effective", json=request).json()
    again = client.post("/api/receptive-field/effective", json=request).json()
    other = client.post("/api/receptive-field/effective", json={**request, "seed": 5}).json()
    assert first["heatmap"] == again["heatmap"] != other["heatmap"]
    assert first["weights"] == "initialisation" and first["layer"] == "features.3"
    box = first["theoretical"]["clipped_box"]
    levels = decode_png(first["heatmap"])
    outside = np.ones_like(levels, dtype=bool)
    outside[box["y0"] : box["y1"] + 1, box["x0"] : box["x1"] + 1] = False
    assert levels[outside].max() == 0 and levels.max() == 255
    trained = client.post(
        "/api/receptive-field/effective",
        json={"model": "lenet5", "samples": 2, "weights": "trained"},
    ).json()
    assert trained["weights"] == "trained"


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({"samples": 2}, ["body", "model"]),
        ({"model": "lenet5", "stack": {"depth": 2}}, ["body", "model"]),
        ({"model": "nope"}, ["body", "model"]),
        ({"model": "lenet5", "layer": "features.99"}, ["body", "layer"]),
        ({"model": "lenet5", "layer": "features.5", "y": 5}, ["body", "y"]),
        ({"model": "lenet5", "samples": 65}, ["body", "samples"]),
        ({"model": "lenet5", "samples": 0}, ["body", "samples"]),
        ({"model": "resnet18", "height": 257}, ["body", "height"]),
        ({"model": "resnet50", "height": 256, "width": 256, "samples": 64}, ["body", "samples"]),
        ({"model": "lenet5", "width": 40, "weights": "trained"}, ["body", "height"]),
        ({"model": "lenet5", "weights": "imagenet"}, ["body", "weights"]),
        ({"stack": {"depth": 33}}, ["body", "depth"]),
        ({"stack": {"depth": 3, "kernel": 4}}, ["body", "kernel"]),
        ({"stack": {"depth": 3, "kernel": 13}}, ["body", "kernel"]),
        ({"stack": {"depth": 3, "dilation": 17}}, ["body", "dilation"]),
        ({"stack": {"depth": 9, "growth": "doubling"}, "height": 64}, ["body", "depth"]),
        ({"stack": {"depth": 3, "activation": "swish"}}, ["body", "stack", "activation"]),
        ({"stack": {"depth": 3}, "layer": "0"}, ["body", "layer"]),
        ({"stack": {"depth": 3}, "x": 64}, ["body", "x"]),
    ],
)
def test_bad_effective_requests_name_their_field(body, loc):
    assert field_of(client.post("/api/receptive-field/effective", json=body)) == loc


def test_depth_sweep_grows_like_square_root():
    r = client.post(
        "/api/receptive-field/sweep", json={"stack": {"depth": 12}, "size": 48, "samples": 1}
    )
    assert r.status_code == 200
    body = r.json()
    assert [p["depth"] for p in body["points"]] == list(range(1, 13))
    assert [p["theoretical_size"] for p in body["points"]] == [2 * n + 1 for n in range(1, 13)]
    sigma = [p["fit"]["sigma"]["width"] for p in body["points"]]
    assert sigma[11] / sigma[2] == pytest.approx(2, rel=1e-5)
    assert body["erf_exponent"] == pytest.approx(0.5, abs=1e-3)
    assert not any(p["clipped"] for p in body["points"])


def test_depth_sweep_with_one_layer_has_no_exponent():
    body = client.post(
        "/api/receptive-field/sweep", json={"stack": {"depth": 1}, "size": 16, "samples": 1}
    ).json()
    assert body["erf_exponent"] is None and len(body["points"]) == 1


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({"size": 300}, ["body", "size"]),
        ({"samples": 100}, ["body", "samples"]),
        ({"stack": {"depth": 40}}, ["body", "depth"]),
        ({"stack": {"depth": 8, "growth": "doubling"}, "size": 64}, ["body", "depth"]),
    ],
)
def test_bad_sweeps_name_their_field(body, loc):
    assert field_of(client.post("/api/receptive-field/sweep", json=body)) == loc


def test_a_sweep_that_would_keep_gigabytes_is_refused_naming_samples():
    """Under the multiply-add cap (35·10⁹ of 40·10⁹: 1×1 layers do 4 per value kept) but about
    75 GB of values for the gradient: refused before anything runs; the page's own sweeps
    (static/js/rf_sweep.js) stay far inside `max_erf_values`."""
    from app.settings import Settings

    body = {"stack": {"depth": 32, "kernel": 1, "activation": "relu"}, "size": 256,
            "samples": 64}  # fmt: skip
    response = client.post("/api/receptive-field/sweep", json=body)
    assert field_of(response) == ["body", "samples"]
    item = response.json()["detail"][0]
    assert item["type"] == "memory_too_large"
    assert item["ctx"] == {"megabytes": 75_162, "limit": 256}
    limit = Settings().max_erf_values
    for depth, size, growth in ((16, 64, "constant"), (6, 128, "doubling")):
        page = StackConfig(depth, 3, 1, growth)
        assert page.backward_values(size, size, depth * (depth + 1) // 2 * 8, depth * 8) < limit / 2


def test_heatmap_levels_follow_the_map():
    from app.schemas.receptive_field import png_data_url

    ramp = torch.linspace(0, 1, 12).repeat(3, 1)
    assert decode_png(png_data_url(ramp)).tolist() == np.rint(ramp.numpy() * 255).tolist()


# --- the ERF on a picture (multipart) -------------------------------------------------------


def post_picture(fields: dict, image: bytes | None = None):
    files = {"image": ("picture.png", image, "image/png")} if image is not None else None
    return client.post(
        "/api/receptive-field/effective",
        data={k: str(v) for k, v in fields.items()},
        files=files,
    )


def test_sample_picture_with_trained_weights_matches_the_core():
    fields = {"model": "lenet5", "sample": "digit", "weights": "trained", "layer": "features.3"}
    r = post_picture({**fields, "y": 4, "x": 7})
    assert r.status_code == 200, r.text
    body = r.json()
    core = picture_effective_field(load_model("lenet5"), sample_image("digit"), "features.3", 4, 7)
    assert body["network"] == "lenet5" and body["weights"] == "trained"
    assert body["weights_file"] == "lenet5.safetensors" and body["samples"] == 1
    assert body["unit"] == {"y": 4, "x": 7} and body["input"] == {
        "channels": 1,
        "height": 32,
        "width": 32,
    }
    levels = decode_png(body["heatmap"]).astype(int)
    assert np.abs(levels - np.rint(core.field.heatmap.numpy() * 255)).max() <= 1
    assert np.array_equal(decode_png(body["picture"]), core.picture)
    theoretical = body["theoretical"]
    assert theoretical["box"] == {"y0": 8, "y1": 21, "x0": 14, "x1": 27}
    # the layer map: grey levels of [low, high] give the core's values back
    feature = body["feature_map"]
    values = core.field.feature_map.numpy()
    assert (feature["low"], feature["high"]) == pytest.approx((values.min(), values.max()))
    grey = decode_png(feature["image"]).astype(float)
    back = feature["low"] + grey / 255 * (feature["high"] - feature["low"])
    assert grey.shape == (10, 10)
    assert np.abs(back - values).max() <= (feature["high"] - feature["low"]) / 255


def old_feature_map_image(values: torch.Tensor) -> np.ndarray:
    """The scaling the schema did before it moved into cnncore (`layer_levels`): min-max in
    float32, then round(255 · v) half to even. Kept here as the reference for the bytes sent."""
    low, high = float(values.min()), float(values.max())
    spread = (values - low) / (high - low) if high > low else torch.zeros_like(values)
    return (spread.clamp(0, 1) * 255).round().to(torch.uint8).numpy()


@pytest.mark.parametrize(
    "form",
    [
        {"model": "lenet5", "sample": "digit"},
        {"model": "lenet5", "sample": "digit", "layer": "features.3", "y": 4, "x": 7},
        {"model": "tinyvgg", "sample": "flower", "seed": "3"},
        {"model": "tinyvgg", "sample": "checkerboard", "layer": "block1.relu1"},
    ],
)
def test_feature_map_bytes_are_unchanged_by_the_move_into_cnncore(form):
    body = client.post("/api/receptive-field/effective", data=form).json()
    loaded = initialised_model(form["model"], int(form.get("seed", 0)))
    core = picture_effective_field(
        loaded, sample_image(form["sample"]), form.get("layer"), form.get("y"), form.get("x")
    )
    values = core.field.feature_map
    feature = body["feature_map"]
    assert (feature["low"], feature["high"]) == (float(values.min()), float(values.max()))
    assert np.array_equal(decode_png(feature["image"]), old_feature_map_image(values))
    assert np.array_equal(decode_png(feature["image"]), core.feature_levels.levels[0])


def test_uploaded_picture_with_seeded_initial_weights():
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (50, 70, 3), dtype=np.uint8)
    data = encode_png(pixels)
    r = post_picture({"model": "tinyvgg", "seed": 3}, data)
    assert r.status_code == 200, r.text
    body = r.json()
    image = decode_image(data, max_bytes=10**7, max_pixels=10**7)
    core = picture_effective_field(initialised_model("tinyvgg", 3), image)
    assert body["weights"] == "initialisation" and body["weights_file"] is None
    assert body["layer"] == core.field.layer and body["unit"] == {
        "y": core.field.y,
        "x": core.field.x,
    }
    levels = decode_png(body["heatmap"]).astype(int)
    assert np.abs(levels - np.rint(core.field.heatmap.numpy() * 255)).max() <= 1
    assert decode_png(body["picture"]).shape == (64, 64, 3)
    other = post_picture({"model": "tinyvgg", "seed": 4}, data).json()
    assert other["heatmap"] != body["heatmap"]


def test_a_training_run_checkpoint_is_used(tmp_path):
    from cnncore.checkpoint import save_checkpoint
    from cnncore.data import DataConfig, load_dataset
    from cnncore.training import TrainConfig, Trainer

    data = load_dataset(DataConfig(name="digits", limit=120, seed=0))
    config = TrainConfig(model="lenet5", epochs=1, batch_size=32, max_steps_per_epoch=1)
    trainer = Trainer(config, data=data)
    list(trainer.run())
    path = save_checkpoint(trainer, tmp_path / "final.safetensors")
    app.dependency_overrides[checkpoints] = lambda: lambda run_id: path
    try:
        r = post_picture({"model": "lenet5", "sample": "digit", "run": "0123456789ab"})
        mismatch = post_picture({"model": "tinyvgg", "sample": "digit", "run": "0123456789ab"})
    finally:
        del app.dependency_overrides[checkpoints]
    assert r.status_code == 200, r.text
    body = r.json()
    loaded = load_checkpoint(path).loaded_model()
    core = picture_effective_field(loaded, sample_image("digit"))
    assert body["weights"] == "trained" and body["weights_file"] == "final.safetensors"
    levels = decode_png(body["heatmap"]).astype(int)
    assert np.abs(levels - np.rint(core.field.heatmap.numpy() * 255)).max() <= 1
    assert field_of(mismatch) == ["body", "run"]


def test_an_unknown_run_names_the_run_field():
    def missing(run_id):
        raise LookupError(f"no training run has the id {run_id!r}")

    app.dependency_overrides[checkpoints] = lambda: missing
    try:
        r = post_picture({"model": "lenet5", "sample": "digit", "run": "0123456789ab"})
    finally:
        del app.dependency_overrides[checkpoints]
    assert field_of(r) == ["body", "run"] and "0123456789ab" in r.json()["detail"][0]["msg"]


@pytest.mark.parametrize(
    ("fields", "image", "loc"),
    [
        ({"model": "lenet5", "sample": "digit"}, b"\x89PNG", ["body", "image"]),
        ({"model": "lenet5"}, None, ["body", "image"]),
        ({"model": "lenet5"}, b"not a picture", ["body", "image"]),
        ({"model": "lenet5", "sample": "moon"}, None, ["body", "sample"]),
        ({"model": "nope", "sample": "digit"}, None, ["body", "model"]),
        ({"sample": "digit"}, None, ["body", "model"]),
        ({"model": "lenet5", "sample": "digit", "layer": "features.42"}, None, ["body", "layer"]),
        (
            {"model": "lenet5", "sample": "digit", "layer": "features.3", "y": 10},
            None,
            ["body", "y"],
        ),
        ({"model": "lenet5", "sample": "digit", "x": "left"}, None, ["body", "x"]),
        ({"model": "lenet5", "sample": "digit", "weights": "imagenet"}, None, ["body", "weights"]),
        ({"model": "lenet5", "sample": "digit", "run": "../../etc"}, None, ["body", "run"]),
    ],
)
def test_bad_picture_requests_name_their_field(fields, image, loc):
    assert field_of(post_picture(fields, image)) == loc


def test_bad_json_bodies_are_422_naming_the_body():
    for raw in (b"", b"{", b"[]"):
        r = client.post(
            "/api/receptive-field/effective",
            content=raw,
            headers={"content-type": "application/json"},
        )
        assert r.status_code == 422 and r.json()["detail"][0]["loc"][0] == "body"


def test_openapi_documents_both_bodies_and_every_reference_resolves():
    spec = client.get("/openapi.json").json()
    content = spec["paths"]["/api/receptive-field/effective"]["post"]["requestBody"]["content"]
    assert set(content) == {"application/json", "multipart/form-data"}
    assert "stack" in content["application/json"]["schema"]["properties"]
    assert {"image", "sample", "run", "weights"} <= set(
        content["multipart/form-data"]["schema"]["properties"]
    )
    refs = set()

    def walk(node):
        if isinstance(node, dict):
            if isinstance(node.get("$ref"), str):
                refs.add(node["$ref"].rsplit("/", 1)[-1])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(spec["paths"])
    assert refs and refs <= set(spec["components"]["schemas"])
