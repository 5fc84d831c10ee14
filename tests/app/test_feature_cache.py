"""The feature store: one byte budget for results and their PNGs, evicted together."""

import gc
import weakref
from functools import lru_cache

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.feature_cache import FeatureCache
from app.settings import Settings
from cnncore.features import learned_feature_maps, picture_names, render_picture
from cnncore.images import DecodedImage, encode_png

MODEL = "lenet5"


def picture(seed: int) -> DecodedImage:
    rgb = np.random.default_rng(seed).integers(0, 256, (40, 40, 3), dtype=np.uint8)
    return DecodedImage(rgb, "PNG", "RGB", 1)


@lru_cache
def pictures_and_maps() -> tuple:
    """Maps of three pictures through LeNet-5, computed once: each put below reuses one."""
    model = FeatureCache(Settings()).model(MODEL)
    return tuple((image, learned_feature_maps(model.loaded, model.layers, image))
                 for image in map(picture, range(3)))  # fmt: skip


@pytest.fixture
def computed() -> tuple:
    return pictures_and_maps()


def size_of(image: DecodedImage, maps) -> int:
    """A result is charged for its maps (previews included), not for the decoded picture."""
    return maps.nbytes


def store(cache: FeatureCache, computed, n: int):
    """A new result (its own options, so never one already stored)."""
    image, maps = computed[n % len(computed)]
    stored, cached = cache.result(image, (MODEL, n), "viridis", None, lambda: maps)
    assert cached is False
    return stored


def accounted(cache: FeatureCache) -> int:
    """The store's bytes recomputed from what it holds: maps and every kept PNG."""
    total = 0
    for _key, stored, counted in cache.results.entries():
        assert not hasattr(stored, "image")  # the decoded picture is not kept
        own = stored.maps.nbytes + sum(map(len, stored.pngs.values()))
        assert counted == own  # each entry is charged for exactly what it holds
        total += own
    assert total == cache.results.nbytes
    return total


def test_evicting_a_result_frees_its_pngs_with_it(computed):
    one = size_of(*computed[0])
    cache = FeatureCache(Settings(feature_store_bytes=int(2.5 * one), feature_store_entries=64))
    first = store(cache, computed, 0)
    names = picture_names(first.maps)
    pngs = [cache.png(first.id, name, None) for name in names]
    assert first.pngs and accounted(cache) == one + sum(map(len, first.pngs.values()))
    assert cache.png(first.id, names[0], None) is pngs[0]  # served from the store
    alive, first_id = weakref.ref(first), first.id
    del first, pngs
    store(cache, computed, 1)
    store(cache, computed, 2)  # over the budget: the oldest result goes, PNGs and all
    gc.collect()
    assert alive() is None  # nothing keeps the evicted result (or its PNGs) in memory
    assert len(cache.results) == 2 and accounted(cache) == 2 * one
    with pytest.raises(KeyError):
        cache.png(first_id, names[0], None)


def test_a_png_that_does_not_fit_is_served_but_not_kept(computed):
    image, maps = computed[0]
    one = size_of(image, maps)
    cache = FeatureCache(Settings(feature_store_bytes=one + 10))
    stored = store(cache, computed, 0)
    name = picture_names(maps)[-1]
    png = cache.png(stored.id, name, "gray")
    assert png.startswith(b"\x89PNG") and len(png) > 10
    assert stored.pngs == {} and accounted(cache) == one
    # A result alone over the budget stays (its URLs were just handed out); nothing else does.
    small = FeatureCache(Settings(feature_store_bytes=one // 2))
    kept = store(small, computed, 0)
    small.png(kept.id, name, None)
    assert len(small.results) == 1 and kept.pngs == {} and accounted(small) == one


@settings(max_examples=60, deadline=None)
@given(
    budget=st.floats(1.0, 4.0),
    actions=st.lists(
        st.tuples(
            st.booleans(),
            st.integers(0, 10_000),
            st.sampled_from([None, "gray", "magma"]),
            st.sampled_from([None, 64]),
        ),  # fmt: skip
        min_size=1,
        max_size=40,
    ),
)
def test_accounted_bytes_never_exceed_the_budget(budget, actions):
    computed = pictures_and_maps()
    cap = int(budget * size_of(*computed[0]))
    cache = FeatureCache(Settings(feature_store_bytes=cap, feature_store_entries=5))
    ids: list[str] = []
    for n, (new, pick, colormap, max_side) in enumerate(actions):
        if new or not ids:
            ids.append(store(cache, computed, n).id)
            used = ids[-1]
        else:
            result_id = ids[pick % len(ids)]
            found = cache.results.get(result_id)
            try:
                cache.png(result_id, picture_names(computed[0][1])[pick % 4], colormap, max_side)
                used = result_id
            except KeyError:
                assert found is None  # only an evicted result is unknown
        assert accounted(cache) <= cap
        assert len(cache.results) <= 5
        assert cache.results.get(used) is not None  # the result last used is never evicted


def test_deferred_levels_give_the_same_pngs_whoever_makes_them_first():
    """The POST answers before the levels exist: a picture asked for first makes its own layer's
    levels, the background settling makes the rest; every PNG is the one eager levels give."""
    cache = FeatureCache(Settings())
    model = cache.model("tinyvgg")
    image = picture(7)
    eager = learned_feature_maps(model.loaded, model.layers, image)
    maps = learned_feature_maps(model.loaded, model.layers, image, deferred=cache.deferred)
    assert all(layer.deferred for layer in maps.layers) and cache.deferred.held > 0
    stored, _cached = cache.result(image, (MODEL, "deferred"), "viridis", None, lambda: maps)
    assert accounted(cache) == eager.nbytes  # charged for the levels before they are made
    first, later = maps.layers[2], maps.layers[3]
    held = cache.deferred.held
    png = cache.png(stored.id, first.name, "magma", None, 1)
    assert not first.deferred and later.deferred and cache.deferred.held < held
    cache.settle_soon(stored.maps)
    assert cache.wait_settled(60)
    assert cache.deferred.held == 0 and not any(layer.deferred for layer in maps.layers)
    assert png == encode_png(render_picture(eager, first.name, "magma", 1))
    for name in picture_names(eager):
        drawn = encode_png(render_picture(eager, name, "viridis"))
        assert cache.png(stored.id, name, None) == drawn
