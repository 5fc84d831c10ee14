"""The start-up warm-up fills what a first /features visit needs (app/warmup.py)."""

import asyncio
import threading
import time

from app.feature_cache import get_feature_cache
from app.settings import Settings
from app.warmup import (
    DEFAULT_FEATURES,
    Activity,
    RequestActivityMiddleware,
    start_warmup,
    warm_up,
)
from cnncore.images import SAMPLE_IMAGES, sample_image


def test_warm_up_builds_the_default_model_and_reads_every_sample(tmp_path):
    get_feature_cache().models.clear()
    sample_image.cache_clear()
    warm_up(Settings(data_dir=tmp_path))
    assert sample_image.cache_info().currsize == len(SAMPLE_IMAGES)
    built = get_feature_cache().models.get(DEFAULT_FEATURES[0])
    assert built is not None and built.loaded.weights.source == "trained"


def test_warm_up_can_be_turned_off(tmp_path):
    assert start_warmup(Settings(data_dir=tmp_path, warmup=False)) is None


def test_quiet_means_no_request_in_progress_for_the_whole_quiet_time():
    activity = Activity()
    activity.begin()
    start = time.monotonic()
    assert activity.wait_quiet(0.05, 0.3) is False  # busy throughout: gives up at the deadline
    assert time.monotonic() - start >= 0.3
    activity.end()
    ended = time.monotonic()
    assert activity.wait_quiet(0.2, 5.0) is True
    assert time.monotonic() - ended >= 0.2  # quiet for the whole quiet time after the end


def test_the_second_part_waits_until_requests_are_over(tmp_path):
    """Importing the ONNX importer and torch's compiler holds the interpreter lock for seconds:
    it waits while a visitor's requests are in progress, after what /features needs is warm."""
    get_feature_cache().models.clear()
    activity = Activity()
    activity.begin()  # a visitor's request in progress
    thread = threading.Thread(target=warm_up, args=(Settings(data_dir=tmp_path), activity))
    thread.start()
    deadline = time.monotonic() + 300
    while get_feature_cache().models.get(DEFAULT_FEATURES[0]) is None:
        assert time.monotonic() < deadline and thread.is_alive()
        time.sleep(0.05)
    assert thread.is_alive()  # waiting for quiet, not importing
    activity.end()
    thread.join(300)
    assert not thread.is_alive()


def test_requests_count_as_activity_from_start_to_end():
    activity = Activity()
    seen = []

    async def inner(scope, receive, send):
        seen.append(activity._busy)

    middleware = RequestActivityMiddleware(inner, activity)
    asyncio.run(middleware({"type": "http"}, None, None))
    asyncio.run(middleware({"type": "lifespan"}, None, None))
    assert seen == [1, 0] and activity._busy == 0
