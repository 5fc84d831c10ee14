"""A classifier's class names in each page language ("en", "ko"), where cnncore knows them.

One source per dataset: ImageNet-1k's in `cnncore.imagenet` (imagenet_classes.tsv), the generated
shapes' in `cnncore.datasets.shapes`, the desk objects' in `cnncore.datasets.desk_objects`,
Fashion-MNIST's and CIFAR-10's in `cnncore.datasets.standard`. Digits read the same in both
languages and a user's own classes are named by the user, so those have none.
"""

from cnncore.datasets.desk_objects import DESK_CLASSES, DESK_CLASSES_KO
from cnncore.datasets.shapes import SHAPE_CLASSES, SHAPE_CLASSES_KO
from cnncore.datasets.standard import STANDARD_DATASETS
from cnncore.imagenet import class_names

__all__ = ["LANGUAGES", "localised_names"]

LANGUAGES = ("en", "ko")
# English name → Korean name, over every generated and published set with named classes
_KOREAN = {
    **dict(zip(SHAPE_CLASSES, SHAPE_CLASSES_KO, strict=True)),
    **dict(zip(DESK_CLASSES, DESK_CLASSES_KO, strict=True)),
    **{
        name: korean
        for key in ("fashion_mnist", "cifar10")
        for name, korean in zip(
            STANDARD_DATASETS[key].class_names, STANDARD_DATASETS[key].class_names_ko, strict=True
        )
    },
}


def localised_names(
    labels: tuple[str, ...] | None, *, imagenet: bool = False
) -> dict[str, tuple[str, ...]] | None:
    """Each language's name for each output (index i naming logit i), or None when unknown.

    `imagenet`: the weights follow ImageNet-1k's class list. Otherwise `labels` are the
    classifier's own names; a classifier of (any subset of) the shapes, the desk objects,
    Fashion-MNIST's or CIFAR-10's classes gets their Korean names.
    """
    if imagenet:
        return {lang: class_names(lang) for lang in LANGUAGES}
    if labels and all(label in _KOREAN for label in labels):
        return {"en": tuple(labels), "ko": tuple(_KOREAN[label] for label in labels)}
    return None
