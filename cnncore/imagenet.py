"""The ImageNet-1k class names, in English and Korean, in torchvision's index order.

The 1 000 classes of the ILSVRC-2012 challenge (Russakovsky et al., "ImageNet Large Scale Visual
Recognition Challenge", IJCV 2015), numbered as torchvision's published weights number their
logits: 0 tench … 999 toilet tissue. The English names are those of torchvision's weight metadata
(`torchvision/models/_meta.py`, `_IMAGENET_CATEGORIES`), which already tells apart the classes that
share a WordNet lemma (134 "crane bird" vs 517 "crane", 638 "maillot" vs 639 "maillot tank
suit"). The Korean names are written for Korean students: the word a student knows where one
exists (금붕어, 백상아리), a short gloss in brackets where the name alone would not say what it
is (텐치(잉어과 민물고기)), and breed names as Korean writes them (골든 리트리버).

The names live once, as data: `imagenet_classes.tsv` next to this module (index, en, ko).
"""

import csv
from functools import cache
from importlib.resources import files
from typing import Literal

from cnncore.errors import CNNCoreError

__all__ = ["NUM_CLASSES", "class_names"]

NUM_CLASSES = 1000

Language = Literal["en", "ko"]


@cache
def _table() -> dict[str, tuple[str, ...]]:
    text = files(__package__).joinpath("imagenet_classes.tsv").read_text(encoding="utf-8")
    rows = list(csv.DictReader(text.splitlines(), delimiter="\t", quoting=csv.QUOTE_NONE))
    # the file is the order: a row out of place would silently shift every label after it
    if [int(row["index"]) for row in rows] != list(range(NUM_CLASSES)):
        raise RuntimeError("imagenet_classes.tsv must list the indices 0 … 999 in order")
    return {lang: tuple(row[lang] for row in rows) for lang in ("en", "ko")}


def class_names(lang: Language = "en") -> tuple[str, ...]:
    """The 1 000 ImageNet class names in `lang` ("en" or "ko"), index i naming logit i."""
    table = _table()
    if lang not in table:
        raise CNNCoreError(
            f"no ImageNet class names in {lang!r}; there are 'en' and 'ko'", field="lang"
        )
    return table[lang]
