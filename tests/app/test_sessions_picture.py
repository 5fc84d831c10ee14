"""The teacher's own picture shared in a class session: one slot, teacher-token protected,
bounded in bytes, read as a picture from its own bytes; snapshots name its version."""

# ruff: noqa: F811  (pytest fixtures imported from test_sessions_routes, used as arguments)
import io
import json

import numpy as np
from PIL import Image
from test_sessions_routes import base_url, client, server, sse_events, start  # noqa: F401

from app.settings import get_settings


def picture(kind: str = "PNG", size: tuple[int, int] = (64, 48), noise: bool = False) -> bytes:
    rng = np.random.default_rng(5)
    pixels = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8) if noise else \
        np.full((size[1], size[0], 3), (200, 30, 90), dtype=np.uint8)  # fmt: skip
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format=kind)
    return out.getvalue()


def put(client, code, token, data: bytes):
    return client.put(
        f"/api/sessions/{code}/picture",
        content=data,
        headers={"X-Teacher-Token": token, "Content-Type": "image/png"},
    )


def test_the_teacher_shares_a_picture_and_followers_are_told(client):
    code, token = start(client)
    assert client.get(f"/api/sessions/{code}/picture").status_code == 404  # none yet
    with client.stream("GET", f"/api/sessions/{code}/events") as stream:
        events = sse_events(stream.iter_lines())
        assert "picture" not in json.loads(next(events)["data"])
        sent = picture("JPEG")
        shared = put(client, code, token, sent)  # the declared type is not trusted: JPEG
        assert shared.status_code == 200, shared.text
        assert json.loads(next(events)["data"])["picture"] == 1
        assert put(client, code, token, picture("WEBP")).status_code == 200
        assert json.loads(next(events)["data"])["picture"] == 2
    fetched = client.get(f"/api/sessions/{code}/picture")
    assert fetched.status_code == 200 and fetched.headers["content-type"] == "image/webp"
    assert fetched.content == picture("WEBP")
    # a later publish still names the picture (every snapshot is whole)
    client.post(
        f"/api/sessions/{code}/state",
        headers={"X-Teacher-Token": token},
        json={"page": "/features", "state": {"sample": ""}},
    )
    assert client.get(f"/api/sessions/{code}").status_code == 200


def test_pictures_are_bounded_checked_and_the_teachers_alone(client):
    code, token = start(client)
    limit = get_settings().session_picture_bytes
    large = picture(size=(250, 250), noise=True)  # ~190 kB of noise: within the limit
    assert 100_000 < len(large) <= limit
    assert put(client, code, token, large).status_code == 200
    assert put(client, code, "wrong", picture()).status_code == 403
    too_big = put(client, code, token, picture(size=(400, 400), noise=True))
    assert too_big.status_code == 413
    for data in (b"not a picture at all", picture("GIF"), picture("BMP")):
        refused = put(client, code, token, data)
        assert refused.status_code == 422, refused.text
        assert refused.json()["detail"][0]["loc"] == ["body", "picture"]
    assert client.get(f"/api/sessions/{code}/picture").content == large  # unchanged
