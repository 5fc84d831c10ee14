"""ImageNet class names: 1 000 per language in torchvision's order, none empty or repeated."""

import tomllib
from pathlib import Path

import pytest

from cnncore.errors import CNNCoreError
from cnncore.imagenet import NUM_CLASSES, class_names

# indices every ImageNet model agrees on (torchvision's _IMAGENET_CATEGORIES, Keras' class index)
KNOWN = {
    0: ("tench", "텐치(잉어과 민물고기)"),
    1: ("goldfish", "금붕어"),
    2: ("great white shark", "백상아리"),
    207: ("golden retriever", "골든 리트리버"),
    281: ("tabby", "태비 고양이(줄무늬 고양이)"),
    409: ("analog clock", "아날로그 시계"),
    417: ("balloon", "풍선"),
    948: ("Granny Smith", "그래니 스미스(초록 사과)"),
    999: ("toilet tissue", "두루마리 휴지"),
}


@pytest.mark.parametrize("lang", ["en", "ko"])
def test_a_thousand_distinct_non_empty_names(lang):
    names = class_names(lang)
    assert len(names) == NUM_CLASSES == 1000
    assert len(set(names)) == 1000
    assert all(name and name == name.strip() for name in names)


@pytest.mark.parametrize(("index", "names"), sorted(KNOWN.items()))
def test_known_indices(index, names):
    assert (class_names("en")[index], class_names("ko")[index]) == names


def test_korean_names_are_korean():
    hangul = [any("가" <= ch <= "힣" for ch in name) for name in class_names("ko")]
    # every name carries Hangul; only an initialism inside it (CD, ATM, RV …) may be Latin
    assert all(hangul)


def test_classes_sharing_a_word_are_told_apart_in_korean():
    en, ko = class_names("en"), class_names("ko")
    pairs = [(134, 517), (638, 639), (264, 474), (836, 837), (620, 681)]
    for a, b in pairs:
        assert ko[a] != ko[b], (en[a], en[b])
    assert (en[134], en[517]) == ("crane bird", "crane")
    assert "새" in ko[134] and "기중기" in ko[517]


def test_unknown_language_is_refused():
    with pytest.raises(CNNCoreError) as caught:
        class_names("fr")
    assert caught.value.field == "lang"


def test_the_table_ships_as_package_data():
    pyproject = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())
    shipped = pyproject["tool"]["setuptools"]["package-data"]["cnncore"]
    assert "imagenet_classes.tsv" in shipped
