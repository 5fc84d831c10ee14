"""Float activations of feature results, kept so a unit's computation needs no forward pass.

`/api/features` keeps its levels as uint8 pictures; beside them, the same forward pass hands
float copies of every layer to an `ActivationCollector` (up to `unit_store_bytes`), stored here
by result id with a weak reference to the model that made them. A unit of a result whose floats
were not kept (evicted, the same picture answered from the cache, or a model too large for the
budget) is captured again once, from the input the network was given (kept with the maps, not
the decoded picture): all layers when they fit, else the asked layer and its inputs only. The
model is held weakly so this store never keeps a model the feature cache evicted; such a
result's units are then a 404 (send the picture again).
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

from app.feature_cache import LRUStore
from app.settings import Settings, get_settings
from cnncore.unit import ActivationCollector, Activations, capture_activations, layer_sources

if TYPE_CHECKING:
    from app.feature_cache import FeatureCache, FeatureModel, StoredResult


@dataclass(frozen=True)
class UnitSource:
    model: weakref.ref
    activations: Activations | None


class UnitStore:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.sources: LRUStore[str, UnitSource] = LRUStore(
            max(settings.feature_store_entries, 1),
            settings.unit_store_bytes,
            lambda s: s.activations.nbytes if s.activations is not None else 0,
        )

    def collector(self) -> ActivationCollector:
        """What a feature request's forward pass hands its float outputs to."""
        return ActivationCollector(self.settings.unit_store_bytes)

    def remember(self, result_id: str, model: FeatureModel, kept: Activations | None) -> None:
        """Note the model of a result and, when complete, its float activations."""
        activations = kept if kept is not None and kept.complete else None
        self.sources.put(result_id, UnitSource(weakref.ref(model), activations))
        self._forget_floats_beyond(self.settings.unit_store_entries)

    def _forget_floats_beyond(self, entries: int) -> None:
        """Keep floats for the newest `entries` results only (their models stay noted)."""
        held = [(key, s) for key, s, _ in self.sources.entries() if s.activations is not None]
        for key, source in held[: max(len(held) - entries, 0)]:
            self.sources.put(key, UnitSource(source.model, None))

    def model_of(self, features: FeatureCache, result_id: str) -> tuple[FeatureModel, StoredResult]:
        """The model and stored result of a feature result id; KeyError when either is gone."""
        source = self.sources.get(result_id)
        stored = features.results.get(result_id)
        model = source.model() if source is not None else None
        if model is None or stored is None:
            raise KeyError(result_id)
        return model, stored

    def layers_and_activations(self, features: FeatureCache, result_id: str, layer: str):
        """(model, activations covering `layer`) of a result of `features`; KeyError when the
        result or its model is gone."""
        model, stored = self.model_of(features, result_id)
        source = self.sources.get(result_id)
        kept = source.activations if source is not None else None
        if kept is not None and kept.covers(layer):
            return model, kept
        sources, output = layer_sources(model.layers)
        if layer not in sources:  # `unit_computation` refuses it, naming the field
            return model, Activations({}, sources, output, complete=False)
        picture = stored.maps.network_input
        if picture is None:  # maps made without one (a result from before it was kept)
            raise KeyError(result_id)
        parameter = next(model.loaded.model.parameters(), None)
        if parameter is not None:
            picture = picture.to(parameter.device)
        with features.forward_slots:
            kept = capture_activations(
                model.layers, picture, max_bytes=self.settings.unit_store_bytes,
                wanted=(layer, *sources[layer]),
            )  # fmt: skip
        if kept.complete:
            self.remember(result_id, model, kept)
        return model, kept


@lru_cache
def get_unit_store() -> UnitStore:
    return UnitStore(get_settings())
