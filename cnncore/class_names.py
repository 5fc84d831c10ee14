"""A classifier's class names in each page language ("en", "ko"), where cnncore knows them.

One source per dataset: ImageNet-1k's in `cnncore.imagenet` (imagenet_classes.tsv), the generated
shapes' in `cnncore.datasets.shapes`. Digits read the same in both languages and a user's own
classes are named by the user, so those have none.
"""

from cnncore.datasets.shapes import SHAPE_CLASSES, SHAPE_CLASSES_KO
from cnncore.imagenet import class_names

__all__ = ["LANGUAGES", "localised_names"]

LANGUAGES = ("en", "ko")
_SHAPES_KO = dict(zip(SHAPE_CLASSES, SHAPE_CLASSES_KO, strict=True))


def localised_names(
    labels: tuple[str, ...] | None, *, imagenet: bool = False
) -> dict[str, tuple[str, ...]] | None:
    """Each language's name for each output (index i naming logit i), or None when unknown.

    `imagenet`: the weights follow ImageNet-1k's class list. Otherwise `labels` are the
    classifier's own names; a classifier of (any subset of) the shapes gets their Korean names.
    """
    if imagenet:
        return {lang: class_names(lang) for lang in LANGUAGES}
    if labels and all(label in _SHAPES_KO for label in labels):
        return {"en": tuple(labels), "ko": tuple(_SHAPES_KO[label] for label in labels)}
    return None
