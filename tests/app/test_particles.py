"""Korean particles after numbers follow the number's pronunciation, in Python (app.particles, used
by the lesson texts) and in the browser (static/js/particles.js, used by i18n.t) alike; the
catalogues write particle markers after placeholders, never a fixed particle."""

import json
import re
import shutil
import subprocess

import pytest

from app.i18n import CATALOGUE_DIR, catalogue
from app.lessons import fill
from app.particles import MARKERS, final_sound, particle, with_particles
from app.settings import ROOT

# Sino-Korean readings: 영 일 이 삼 사 오 육 칠 팔 구 십 십일 … 이십
READINGS = [
    *("영", "일", "이", "삼", "사", "오", "육", "칠", "팔", "구", "십"),
    *("십일", "십이", "십삼", "십사", "십오", "십육", "십칠", "십팔", "십구", "이십"),
]
LO = {n: ("로" if READINGS[n][-1] in "이사오구일칠팔" else "으로") for n in range(21)}
CASES = [
    *[(str(n), "(으)로", LO[n]) for n in range(21)],
    # 2로, 1로, 3으로, 6으로, 10으로 as the developers' guide states them
    ("2", "(으)로", "로"), ("1", "(으)로", "로"), ("3", "(으)로", "으로"), ("6", "(으)로", "으로"),
    ("10", "(으)로", "으로"), ("100", "(으)로", "으로"), ("1000", "(으)로", "으로"),
    ("1,000", "을(를)", "을"), ("2000", "이(가)", "이"), ("10000", "은(는)", "은"),
    ("1000000000000", "은(는)", "는"),  # 1조
    ("102", "은(는)", "는"), ("61,706", "을(를)", "을"), ("1,024", "을(를)", "를"),
    ("0.5", "(으)로", "로"), ("0.25", "이(가)", "가"), ("2.0", "(으)로", "으로"),
    ("0.417", "을(를)", "을"), ("3.14", "은(는)", "는"), ("−0.341", "과(와)", "과"),
    ("25%", "(으)로", "로"), ("21.7×", "이(가)", "가"), ("9.54×10⁻⁷", "(으)로", "로"),
    ("[[6, 5], [7, 9]]", "을(를)", "를"), ("(3)", "이(가)", "이"),
    ("ReLU", "을(를)", "를"), ("Adam", "(으)로", "으로"), ("tanh", "(으)로", "로"),
    ("시그모이드", "을(를)", "를"), ("편향", "이(가)", "이"), ("채널", "(으)로", "로"),
    ("ABC123", "이(가)", "이"), ("", "이(가)", "이(가)"), ("🙂", "을(를)", "을(를)"),
]  # fmt: skip


@pytest.mark.parametrize(("value", "marker", "expected"), CASES)
def test_python_picks_the_particle_the_reading_asks_for(value, marker, expected):
    assert particle(value, marker) == expected


def test_zero_to_twenty_read_as_sino_korean_numbers():
    sounds = [final_sound(str(n)) for n in range(21)]
    assert [s == "vowel" for s in sounds] == [r[-1] in "이사오구" for r in READINGS]
    assert [n for n in range(21) if sounds[n] == "rieul"] == [1, 7, 8, 11, 17, 18]


def test_markers_after_placeholders_are_filled_and_agree():
    text = "패딩 {padding}(으)로 적용하고 {bias}을(를) 더합니다. {n}개, {missing}(으)로"
    assert with_particles(text, {"padding": "1", "bias": "3", "n": "6"}) == (
        "패딩 1로 적용하고 3을 더합니다. 6개, {missing}(으)로"
    )
    assert with_particles("{a}(으)로", {"a": "6"}) == "6으로"
    assert fill("{padding}(으)로", {"padding": 2}) == "2로"
    assert fill("{values}을(를)", {"values": [[1, 3], [4, 4]]}) == "[[1, 3], [4, 4]]를"


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_javascript_agrees_with_python_on_every_case():
    module = (ROOT / "static" / "js" / "particles.js").as_uri()
    script = (
        f"import {{ particle, withParticles }} from {json.dumps(module)};"
        "const cases = JSON.parse(process.argv[1]);"
        "const out = cases.map(([v, m]) => particle(v, m));"
        "out.push(withParticles('{a}(으)로 {b}은(는) {c}', {a: '10', b: '2'}));"
        "console.log(JSON.stringify(out));"
    )
    cases = [[value, marker] for value, marker, _ in CASES]
    numbers = [[str(n), m] for n in [*range(21), 100, 1000, 0.5, 2.5, 1.25] for m in MARKERS]
    done = subprocess.run(
        ["node", "--input-type=module", "-e", script, json.dumps(cases + numbers)],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    out = json.loads(done.stdout)
    assert out[: len(CASES)] == [expected for _, _, expected in CASES]
    assert out[len(CASES) : -1] == [particle(v, m) for v, m in numbers]
    assert out[-1] == "10으로 2는 {c}"


def test_catalogues_write_markers_not_fixed_particles_after_placeholders():
    markers = "|".join(re.escape(marker) for marker in MARKERS)
    fixed = re.compile(r"\}(?!" + markers + r")(으로|로|은|는|이|가|을|를|과|와)(?![가-힣])")
    for path in sorted((CATALOGUE_DIR / "ko").glob("*.json")):
        for key, text in catalogue("ko", path.stem).items():
            assert not fixed.search(text), f"{path.name} {key}: {text}"
