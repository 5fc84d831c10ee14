"""Every route that takes a picture refuses an extreme one with a 4xx naming `image`, before the
allocation it would cost, and decodes it holding one of the forward-pass slots.

The red team's pictures: a 1×6000 grey PNG (86 bytes) cost 4.7 GB and 12 s on /features; 1×10⁶
and 1×4·10⁷ ended in 500s (MemoryError, OverflowError inside Pillow).
"""

import io
import threading

import pytest
from fastapi.testclient import TestClient
from PIL import Image
from uploads import own_feature_cache

import app.routes.features as features_routes
import app.routes.receptive_field as field_routes
from app.deps import settings_dep
from app.main import app
from app.settings import get_settings
from cnncore.images import resized_size

client = TestClient(app)

# (path, text fields): every route that decodes an upload (app/uploads.py `chosen_picture`)
PICTURE_ROUTES = {
    "features learned": ("/api/features", {"model": "tinyvgg"}),
    "features handcrafted": ("/api/features", {"model": "tinyvgg", "mode": "handcrafted"}),
    "erf on a picture": ("/api/receptive-field/effective", {"model": "lenet5"}),
}
STRIPS = [(1, 6000), (6000, 1), (1, 10**6), (4 * 10**7, 1)]  # (width, height)


@pytest.fixture(autouse=True)
def fresh_cache():
    with own_feature_cache(app) as cache:
        yield cache


def strip_png(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("L", (width, height), 128).save(buffer, "PNG", optimize=True)
    return buffer.getvalue()


def post(route: str, data: bytes):
    path, fields = PICTURE_ROUTES[route]
    return client.post(path, data=fields, files={"image": ("strip.png", data, "image/png")})


@pytest.mark.parametrize("route", list(PICTURE_ROUTES))
@pytest.mark.parametrize(("width", "height"), STRIPS)
def test_an_extreme_strip_is_a_422_naming_the_image(route, width, height):
    response = post(route, strip_png(width, height))
    assert response.status_code == 422, response.text
    limit = get_settings().max_image_aspect_ratio
    assert response.json()["detail"] == [
        {
            "loc": ["body", "image"],
            "msg": f"the image is {width}×{height}: its longer side may be at most {limit:g} "
            "times its shorter side",
            "type": "image_aspect_ratio",
            "ctx": {"width": width, "height": height, "limit": limit},
        }
    ]


@pytest.fixture
def loose_aspect_ratio():
    """Settings whose aspect-ratio limit lets every strip through to the resize check."""
    settings = get_settings().model_copy(update={"max_image_aspect_ratio": 1e9})
    app.dependency_overrides[settings_dep] = lambda: settings
    yield settings
    app.dependency_overrides.pop(settings_dep, None)


@pytest.mark.parametrize("route", list(PICTURE_ROUTES))
@pytest.mark.parametrize("width", [6000, 10**6])
def test_past_a_loose_ratio_the_resize_is_refused_before_it_is_made(
    route, width, loose_aspect_ratio, fresh_cache
):
    response = post(route, strip_png(width, 1))
    assert response.status_code == 422, response.text
    [item] = response.json()["detail"]
    if PICTURE_ROUTES[route][1].get("mode") == "handcrafted":
        size, ratio = (224, 224), 1.0  # cnncore.features.HANDCRAFTED_SIZE, no resize ratio
    else:
        weights = fresh_cache.model(PICTURE_ROUTES[route][1]["model"]).loaded.weights
        size, ratio = weights.input_shape[1:], weights.resize_ratio
    height, resized_width = resized_size((1, width), size, ratio)
    assert item["loc"] == ["body", "image"] and item["type"] == "image_resized_too_large"
    assert item["ctx"] == {
        "width": resized_width,
        "height": height,
        "pixels": resized_width * height,
        "limit": loose_aspect_ratio.max_resized_pixels,
    }


class WatchedSlots:
    """A stand-in for `forward_slots` that knows whether it is held, and by how many."""

    def __init__(self):
        self.held = 0
        self.lock = threading.Lock()

    def __enter__(self):
        with self.lock:
            self.held += 1

    def __exit__(self, *exc):
        with self.lock:
            self.held -= 1


@pytest.mark.parametrize("route", list(PICTURE_ROUTES))
def test_pictures_are_decoded_holding_a_forward_slot(route, fresh_cache, monkeypatch):
    slots = WatchedSlots()
    fresh_cache.forward_slots = slots
    seen = []
    module = features_routes if PICTURE_ROUTES[route][0] == "/api/features" else field_routes
    decode = module.chosen_picture

    def watched(*args):
        seen.append(slots.held)
        return decode(*args)

    monkeypatch.setattr(module, "chosen_picture", watched)
    square = io.BytesIO()
    Image.new("RGB", (40, 40), (10, 200, 30)).save(square, "PNG")
    response = post(route, square.getvalue())
    assert response.status_code == 200, response.text
    assert seen == [1] and slots.held == 0
