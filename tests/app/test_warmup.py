"""The start-up warm-up fills what a first /features visit needs (app/warmup.py)."""

from app.feature_cache import get_feature_cache
from app.settings import Settings
from app.warmup import DEFAULT_FEATURES, start_warmup, warm_up
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
