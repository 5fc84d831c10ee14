"""POST /api/features/live: /api/features's answer plus the pictures a drawing's update shows,
inline — the very PNG bytes the URLs serve, whose levels give torch's activations back; only for
small learned models, bounded in bytes, and counted against the live quota, not the heavy one."""

import base64
import io

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient
from PIL import Image
from uploads import own_feature_cache

from app.limits import live_work
from app.main import app
from app.quotas import reset_quotas
from app.settings import get_settings
from cnncore.features import prepare_input
from cnncore.images import decode_image
from cnncore.pretrained import load_pretrained

client = TestClient(app)


@pytest.fixture(autouse=True)
def fresh():
    reset_quotas()
    with own_feature_cache(app) as cache:
        yield cache
    reset_quotas()


def drawing(seed: int = 0) -> bytes:
    """A white stroke-like scribble on black, as the pad sends it."""
    rng = np.random.default_rng(seed)
    rgb = np.zeros((140, 140, 3), dtype=np.uint8)
    for y, x in rng.integers(10, 120, (12, 2)):
        rgb[y : y + 14, x : x + 14] = 255
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, "PNG")
    return buffer.getvalue()


def live(data: bytes, params=None, **fields):
    files = {"image": ("drawing.png", data, "image/png")}
    return client.post("/api/features/live", params=params, data=fields, files=files)


def png_of(data_url: str) -> bytes:
    head, _, payload = data_url.partition(",")
    assert head == "data:image/png;base64"
    return base64.b64decode(payload)


def pixels(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))


def test_inline_pictures_are_the_bytes_the_urls_serve_and_give_torchs_activations():
    data = drawing(1)
    opened = {"layer": "features.3", "channel": 5}
    body = live(data, opened, model="lenet5", colormap="magma").json()
    normal = client.post("/api/features", data={"model": "lenet5", "colormap": "magma"},
                         files={"image": ("drawing.png", data, "image/png")}).json()  # fmt: skip
    # the same answer as the normal route's (the same result: same maps, same URLs)
    assert normal["cached"] is True and normal["id"] == body["id"]
    assert {k: v for k, v in body.items() if k not in ("inline", "cached")} == {
        k: v for k, v in normal.items() if k != "cached"
    }
    inline = body["inline"]
    assert inline["layer"] == "features.3" and inline["channel"] == 5
    layers = {layer["name"]: layer for layer in body["layers"]}
    assert list(inline["thumbs"]) == list(layers)
    for name, thumb in inline["thumbs"].items():
        served = client.get(layers[name]["url"], params={"colormap": "magma", "max_side": 160})
        assert png_of(thumb) == served.content
    url = layers["features.3"]["url"]
    assert png_of(inline["atlas"]) == client.get(url, params={"max_side": 768}).content
    assert png_of(inline["channel_colour"]) == client.get(url, params={"channel": 5}).content
    grey = png_of(inline["channel_grey"])
    assert grey == client.get(url, params={"channel": 5, "colormap": "gray"}).content
    shown = [*inline["thumbs"].values(), inline["atlas"], inline["channel_colour"], grey]
    sizes = [len(png_of(u) if isinstance(u, str) else u) for u in shown]
    assert inline["nbytes"] == sum(sizes)

    # the grey channel's levels and its range give torch's activation back (to half a level)
    loaded = load_pretrained("lenet5", directory=get_settings().weights_dir)
    image = decode_image(data, max_bytes=10**7, max_pixels=10**8)
    seen = {}
    module = dict(loaded.model.named_modules())["features.3"]
    handle = module.register_forward_hook(lambda _m, _i, out: seen.setdefault("out", out))
    with torch.no_grad():
        loaded.model(prepare_input(loaded.weights, image).tensor)
    handle.remove()
    expected = seen["out"][0, 5].double().numpy()
    low, high = layers["features.3"]["ranges"][5]
    values = low + pixels(grey)[..., 0] / 255 * (high - low)
    assert values.shape == expected.shape
    np.testing.assert_allclose(values, expected, atol=(high - low) / 255 / 2 + 1e-5)


def test_an_unknown_layer_or_channel_out_of_range_opens_what_the_page_opens():
    body = live(drawing(2), {"layer": "nothing", "channel": 4000}, model="lenet5").json()
    first = body["layers"][0]
    assert body["inline"]["layer"] == first["name"] and body["inline"]["channel"] == 0


def test_over_the_byte_bound_the_answer_carries_urls_only(monkeypatch):
    monkeypatch.setattr(get_settings(), "feature_live_inline_bytes", 200)
    body = live(drawing(3), model="lenet5").json()
    assert body["inline"] is None and body["layers"][0]["url"].startswith("/api/features/")


@pytest.mark.parametrize(("fields", "field"), [
    ({"model": "vgg16"}, "model"),  # 224 × 224: not a small model
    ({"model": "lenet5", "mode": "handcrafted"}, "model"),
    ({"model": "nosuchmodel"}, "model"),
])  # fmt: skip
def test_big_or_handcrafted_or_unknown_models_are_refused_naming_the_model(fields, field):
    response = live(drawing(4), **fields)
    assert response.status_code in (404, 422)
    assert response.json()["detail"][0]["loc"][-1] == field


def test_updates_count_against_the_live_quota_not_the_heavy_one(monkeypatch):
    settings = get_settings()
    monkeypatch.setattr(settings, "client_heavy_per_minute", 1)
    monkeypatch.setattr(settings, "client_live_per_minute", 4)
    answers = [live(drawing(seed), model="lenet5").status_code for seed in range(5)]
    assert answers == [200, 200, 200, 200, 429]  # bounded: the live quota per client
    limiter = live_work()
    reset_quotas()
    limiter.active["testclient"] = settings.client_live_requests
    try:
        busy = live(drawing(), model="lenet5")
    finally:
        del limiter.active["testclient"]
    assert busy.status_code == 429 and "live" in busy.json()["detail"][0]["msg"]


def test_a_drawing_update_never_waits_for_the_heavy_requests_slots(fresh):
    """Every one of /api/features' forward slots is held (VGG-16 maps being computed, say):
    the drawing's update still answers, on the live threads (one torch thread each)."""
    from concurrent.futures import ThreadPoolExecutor

    held = 0
    while fresh.forward_slots.acquire(blocking=False):
        held += 1
    assert held == get_settings().feature_concurrency
    with ThreadPoolExecutor(1) as pool:
        try:
            update = pool.submit(live, drawing(5), model="lenet5")
            # a deadlock guard, not a timing: before the fix it waited until the slots were free
            answer = update.result(timeout=120)
        finally:
            for _ in range(held):
                fresh.forward_slots.release()
    assert answer.status_code == 200, answer.text
    assert answer.json()["inline"] is not None
