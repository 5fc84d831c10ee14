"""Warm what a first visitor is likely to ask for, in the background, once the server is up.

A cold server pays once for: the built-in pictures (/api/features/samples), the zoo's parameter
counts (/api/models), the feature-map page's default model built, traced by torch.fx and run
once (oneDNN picks its kernels on the first forward), then what a first /features visit does
not need: the ONNX importer (a one-conv model) and torch's compiler module (imported by the
first meta-device forward of a run's plan). A daemon thread does these right after start-up,
so the first /features a visitor opens finds them ready; a request that arrives earlier simply
does its part itself (each step is cached where the request would cache it).
`CNNVIZ_WARMUP=false` turns it off.
"""

from __future__ import annotations

import logging
import threading

from app.settings import Settings

__all__ = ["DEFAULT_FEATURES", "start_warmup", "warm_up"]

# the /features page's first request (static/js/features_state.js: model, sample)
DEFAULT_FEATURES = ("tinyvgg", "china")
log = logging.getLogger("cnnviz.warmup")


def warm_up(settings: Settings) -> None:
    """Fill the caches a first /features visit needs (runs in the warm-up thread)."""
    from app.feature_cache import get_feature_cache
    from cnncore.features import learned_feature_maps
    from cnncore.images import SAMPLE_IMAGES, sample_image
    from cnncore.inspect import parameter_count
    from cnncore.models import list_models
    from cnncore.onnx_import import warm_up_import

    for name in SAMPLE_IMAGES:
        sample_image(name)
    for name in list_models():
        parameter_count(name)
    model, sample = DEFAULT_FEATURES
    built = get_feature_cache().model(model)
    learned_feature_maps(built.loaded, built.layers, sample_image(sample),
                         max_channels=settings.feature_max_channels)  # fmt: skip
    warm_up_import()  # the ONNX checker and meta kernels, before a first model upload
    # A meta-device forward through tanh, sigmoid and other ops torch implements as Python
    # references imports torch._dynamo on first use (torch/_compile.py; seconds on a cold
    # process): run planning (cnncore.run_cost) and input-size checks do such forwards.
    import torch._dynamo  # noqa: F401


def start_warmup(settings: Settings) -> threading.Thread | None:
    if not settings.warmup:
        return None

    def run() -> None:
        try:
            warm_up(settings)
        except Exception:  # noqa: BLE001 - warming is an optimisation: a request will say why
            log.exception("warm-up failed")

    thread = threading.Thread(target=run, name="cnnviz-warmup", daemon=True)
    thread.start()
    return thread
