"""Warm what a first visitor is likely to ask for, in the background, once the server is up.

A cold server pays once for: the built-in pictures (/api/features/samples), the zoo's parameter
counts (/api/models), the /features page's template and catalogues, the page's default model
built, traced by torch.fx and run once (oneDNN picks its kernels on the first forward) with its
familiarity probe traced; then for what a first /features visit does not need: the ONNX
importer (a one-conv model) and torch's compiler module (imported by the first meta-device
forward of a run's plan). A daemon thread does these right after start-up, so the first
/features a visitor opens finds them ready; a request that arrives earlier simply does its part
itself (each step is cached where the request would cache it).

The second part imports for seconds, holding the interpreter lock most of that time: run beside
a visitor's first requests it made them wait (on two cores, the first /features answer took
seconds). It therefore starts once no request has been in progress for `QUIET_S` (`Activity`,
fed by `RequestActivityMiddleware`), or after `LONGEST_WAIT_S` whatever happens (a page that
keeps a stream open never looks quiet).
`CNNVIZ_WARMUP=false` turns it off.
"""

from __future__ import annotations

import logging
import threading
import time

from app.settings import Settings

__all__ = [
    "ACTIVITY",
    "DEFAULT_FEATURES",
    "Activity",
    "RequestActivityMiddleware",
    "start_warmup",
    "warm_up",
]

# the /features page's first request (static/js/features_state.js: model, sample)
DEFAULT_FEATURES = ("tinyvgg", "china")
QUIET_S = 1.0  # no request in progress for this long: the second part may start
LONGEST_WAIT_S = 60.0
log = logging.getLogger("cnnviz.warmup")


class Activity:
    """HTTP requests in progress and when the last one ended (thread-safe)."""

    def __init__(self) -> None:
        self._busy, self._last = 0, time.monotonic()
        self._changed = threading.Condition()

    def begin(self) -> None:
        with self._changed:
            self._busy += 1

    def end(self) -> None:
        with self._changed:
            self._busy -= 1
            self._last = time.monotonic()
            self._changed.notify_all()

    def wait_quiet(self, quiet: float, longest: float) -> bool:
        """Return once no request has been in progress for `quiet` seconds (True), or after
        `longest` seconds (False)."""
        deadline = time.monotonic() + longest
        with self._changed:
            while True:
                now = time.monotonic()
                if self._busy == 0 and now - self._last >= quiet:
                    return True
                if now >= deadline:
                    return False
                calm = quiet - (now - self._last) if self._busy == 0 else longest
                self._changed.wait(min(calm, deadline - now))


ACTIVITY = Activity()  # this process's requests (app/main.py adds the middleware)


class RequestActivityMiddleware:
    """Pure ASGI: counts each HTTP request in `activity` from its start to its end."""

    def __init__(self, app, activity: Activity = ACTIVITY) -> None:  # noqa: ANN001
        self.app, self.activity = app, activity

    async def __call__(self, scope, receive, send) -> None:  # noqa: ANN001
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        self.activity.begin()
        try:
            await self.app(scope, receive, send)
        finally:
            self.activity.end()


def warm_up(settings: Settings, activity: Activity | None = None) -> None:
    """Fill the caches a first /features visit needs, then (once `activity` is quiet, if given)
    warm what other pages need first (runs in the warm-up thread)."""
    from app.feature_cache import get_feature_cache
    from app.i18n import LANGUAGES, messages
    from app.routes.pages import templates
    from cnncore.familiarity import familiarity
    from cnncore.features import learned_feature_maps
    from cnncore.images import SAMPLE_IMAGES, sample_image
    from cnncore.inspect import parameter_count
    from cnncore.models import list_models

    for name in SAMPLE_IMAGES:
        sample_image(name)
    for name in list_models():
        parameter_count(name)
    templates.env.get_template("features.html")  # compiled once, with what it includes
    for lang in LANGUAGES:
        messages(lang, "features")
    model, sample = DEFAULT_FEATURES
    built = get_feature_cache().model(model)
    maps = learned_feature_maps(built.loaded, built.layers, sample_image(sample),
                                max_channels=settings.feature_max_channels)  # fmt: skip
    familiarity(built.loaded, maps.network_input)  # traces the model's probe layers once
    if activity is not None:
        activity.wait_quiet(QUIET_S, LONGEST_WAIT_S)
    from cnncore.onnx_import import warm_up_import

    warm_up_import()  # the ONNX checker and meta kernels, before a first model upload
    # A meta-device forward through tanh, sigmoid and other ops torch implements as Python
    # references imports torch._dynamo on first use (torch/_compile.py; seconds on a cold
    # process): run planning (cnncore.run_cost) and input-size checks do such forwards.
    import torch._dynamo  # noqa: F401


def start_warmup(settings: Settings, activity: Activity = ACTIVITY) -> threading.Thread | None:
    if not settings.warmup:
        return None

    def run() -> None:
        try:
            warm_up(settings, activity)
        except Exception:  # noqa: BLE001 - warming is an optimisation: a request will say why
            log.exception("warm-up failed")

    thread = threading.Thread(target=run, name="cnnviz-warmup", daemon=True)
    thread.start()
    return thread
