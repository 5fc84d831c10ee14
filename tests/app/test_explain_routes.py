"""/api/explanations: CAMs of a feature result, occlusion jobs with progress and stop, refusals."""

import base64
import io
import time

import numpy as np
import pytest
import refusals
from fastapi.testclient import TestClient
from PIL import Image

from app.deps import settings_dep
from app.explain_jobs import OcclusionJobs, get_occlusion_jobs
from app.feature_cache import FeatureCache, get_feature_cache
from app.main import app
from app.settings import get_settings
from app.unit_store import UnitStore, get_unit_store
from cnncore.explain import explain, occlusion, occlusion_plan
from cnncore.features import prepare_input
from cnncore.images import sample_image

client = TestClient(app)


@pytest.fixture(autouse=True)
def fresh(request):
    settings = get_settings().model_copy(update=getattr(request, "param", {}))
    cache, store, jobs = FeatureCache(settings), UnitStore(settings), OcclusionJobs(settings)
    app.dependency_overrides[get_feature_cache] = lambda: cache
    app.dependency_overrides[get_unit_store] = lambda: store
    app.dependency_overrides[get_occlusion_jobs] = lambda: jobs
    app.dependency_overrides[settings_dep] = lambda: settings
    yield cache
    for dependency in (get_feature_cache, get_unit_store, get_occlusion_jobs, settings_dep):
        app.dependency_overrides.pop(dependency, None)  # only what this fixture set


def result(model="lenet5", sample="digit") -> str:
    response = client.post("/api/features", data={"model": model, "sample": sample})
    assert response.status_code == 200
    return response.json()["id"]


def levels(url: str) -> np.ndarray:
    assert url.startswith("data:image/png;base64,")
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))))


def test_cams_of_a_result_are_the_core_maps(fresh) -> None:
    answer = client.post("/api/explanations", json={"result": result(), "target": 3,
                                                     "integrated_gradients": True})  # fmt: skip
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["layer"] == body["default_layer"] == "features.5" and body["target"] == 3
    assert body["label"] == "3" and set(body["maps"]) == {
        "gradcam", "gradcam_pp", "layercam", "saliency", "integrated_gradients"}  # fmt: skip
    assert [c["name"] for c in body["layers"]][-1] == "features.5"
    found = fresh.model("lenet5")
    picture = prepare_input(found.loaded.weights, sample_image("digit")).tensor
    expected = explain(found.layers, picture, target=3, layer="features.5")
    assert body["score"] == pytest.approx(expected.score, rel=1e-6)
    picture_png = levels(body["maps"]["gradcam"])
    assert picture_png.shape == (32, 32, 3)
    # the brightest pixel of the coloured map is where the core's map is largest
    brightest = np.unravel_index(picture_png.sum(2).argmax(), (32, 32))
    assert expected.maps["gradcam"][brightest] >= 0.95


def test_another_layer_and_the_top_class() -> None:
    body = client.post("/api/explanations", json={"result": result(), "layer": "features.1"})
    assert body.status_code == 200 and body.json()["layer_shape"] == [6, 28, 28]


@pytest.mark.parametrize(
    ("change", "field", "kind"),
    [({"target": 10}, "target", "unknown_class"), ({"layer": "nope"}, "layer", "unknown_layer"),
     ({"layer": "classifier.0"}, "layer", "no_spatial_layer"),
     ({"target": -1}, "target", "greater_than_equal")],
)  # fmt: skip
def test_explanation_refusals_name_their_field(change, field, kind) -> None:
    item = refusals.refusal(client.post("/api/explanations", json={"result": result(), **change}))
    assert item["loc"] == ["body", field] and item["type"] == kind


def test_an_unknown_result_is_a_404() -> None:
    assert client.post("/api/explanations", json={"result": "A" * 22}).status_code == 404


def occlude(result_id: str, **fields):
    return client.post("/api/explanations/occlusion", json={"result": result_id, **fields})


def wait_for(job_id: str, states=("done", "stopped", "failed")) -> dict:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        body = client.get(f"/api/explanations/occlusion/{job_id}").json()
        if body["state"] in states:
            return body
        time.sleep(0.05)
    raise AssertionError("the occlusion did not finish")


def test_occlusion_runs_reports_progress_and_equals_the_core(fresh) -> None:
    started = occlude(result(), patch=8, stride=4, target=3)
    assert started.status_code == 202, started.text
    assert started.json()["total"] == 7 * 7
    body = wait_for(started.json()["id"])
    assert body["state"] == "done" and body["done"] == body["total"] == 49
    found = fresh.model("lenet5")
    picture = prepare_input(found.loaded.weights, sample_image("digit")).tensor
    expected = occlusion(found.layers, picture, 3, occlusion_plan(32, 32, 8, 4))
    assert body["largest_drop"] == pytest.approx(float(expected.max()), rel=1e-5)
    assert levels(body["map"]).shape == (32, 32, 3)


@pytest.mark.parametrize("fresh", [{"occlusion_batch": 1}], indirect=True)
def test_occlusion_stops_when_asked() -> None:
    started = occlude(result("tinyvgg", "circle"), patch=2, stride=1)
    job_id = started.json()["id"]
    stopped = client.delete(f"/api/explanations/occlusion/{job_id}")
    assert stopped.status_code == 200
    body = wait_for(job_id)
    assert body["state"] == "stopped" and body["done"] < body["total"] and body["map"] is None


@pytest.mark.parametrize("fresh", [{"occlusion_max_windows": 100}], indirect=True)
def test_too_much_occlusion_work_is_refused_naming_stride() -> None:
    item = refusals.refusal(occlude(result(), patch=4, stride=2))
    assert item["loc"] == ["body", "stride"] and item["type"] == "occlusion_too_much_work"
    assert item["ctx"] == {"count": 15 * 15, "limit": 100}
    item = refusals.refusal(occlude(result(), patch=40, stride=8))
    assert item["loc"] == ["body", "patch"] and item["type"] == "patch_too_large"


def test_units_and_grad_cam_with_installed_imagenet_weights(tmp_path) -> None:
    """resnet18 with weights installed as ImageNet weights (a seeded network in torchvision's
    layout, written as `cnnviz weights get` writes them): units and explanations follow them."""
    import torch

    from cnncore import pretrained
    from cnncore.features import capture_layers, prepare_input, trace_layers
    from cnncore.pretrained import IMAGENET_RECIPE, InstalledWeights, write_weights
    from cnncore.weights import load_model

    settings = get_settings().model_copy(update={"data_dir": tmp_path})
    torch.manual_seed(11)
    network = load_model("resnet18").model
    state = {k: v + 0.01 * torch.randn_like(v) if v.is_floating_point() else v
             for k, v in network.state_dict().items()}  # fmt: skip
    real = pretrained.PUBLISHED["resnet18"]
    meta = InstalledWeights("resnet18", "imagenet", real.url, real.file_name, "0" * 64,
                            "imagenet-1k", IMAGENET_RECIPE, real.top1, real.top5, {},
                            "2026-12-06T00:00:00+00:00")  # fmt: skip
    write_weights(settings.weights_dir, "resnet18", state, meta)
    cache, store = FeatureCache(settings), UnitStore(settings)
    app.dependency_overrides.update({settings_dep: lambda: settings,
                                     get_feature_cache: lambda: cache,
                                     get_unit_store: lambda: store})  # fmt: skip
    try:
        body = client.post("/api/features", data={"model": "resnet18", "sample": "china"}).json()
        assert body["weights"]["source"] == "imagenet"
        found = cache.model("resnet18")
        picture = prepare_input(found.loaded.weights, sample_image("china")).tensor
        kept, _ = capture_layers(found.layers, picture)
        got = client.get(
            f"/api/features/{body['id']}/unit",
            params={"layer": "layer2.0.add", "channel": 9, "y": 5, "x": 11},
        ).json()
        assert got["total"] == pytest.approx(float(kept["layer2.0.add"][0, 9, 5, 11]), rel=1e-5)
        why = client.post("/api/explanations", json={"result": body["id"], "target": 281}).json()
        assert why["label"] and why["score"] == pytest.approx(float(kept["fc"][0, 281]), rel=1e-5)
        reference = explain(trace_layers(found.loaded.model), picture, target=281,
                            layer="layer4.1.relu2")  # fmt: skip
        assert why["layer"] == "layer4.1.relu2" and why["score"] == pytest.approx(reference.score)
    finally:  # only what this test set
        for dependency in (settings_dep, get_feature_cache, get_unit_store):
            app.dependency_overrides.pop(dependency, None)
