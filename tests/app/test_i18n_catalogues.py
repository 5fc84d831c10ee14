"""Korean and English everywhere: every catalogue has the same keys in both languages, every key a
template or a browser module asks for exists, and no page shows text that is not translated."""

import json
import re
from html.parser import HTMLParser

import pytest
from fastapi.testclient import TestClient

from app.i18n import CATALOGUE_DIR, LANGUAGES, catalogue
from app.lessons import LESSONS
from app.main import app
from app.routes.pages import PAGES
from app.settings import ROOT

client = TestClient(app)
TEMPLATES = ROOT / "templates"
SCRIPTS = ROOT / "static" / "js"
NAMES = sorted({path.stem for lang in LANGUAGES for path in (CATALOGUE_DIR / lang).glob("*.json")})

# Pages outside PAGES: template → catalogue.
EXTRA_PAGES = {
    "/lessons": ("lessons/index.html", "lessons"),
    f"/lessons/{LESSONS[0].slug}": ("lessons/lesson.html", "lessons"),
    "/join": ("join.html", "join"),
}
ALL_PAGES = {**PAGES, **EXTRA_PAGES}
PLACEHOLDER = re.compile(r"\{(\w+)\}")


def known(*names: str) -> dict[str, set[str]]:
    """lang → keys of `common` plus the named catalogues."""
    return {
        lang: set().union(*(catalogue(lang, n) for n in ("common", *names))) for lang in LANGUAGES
    }


# --- the catalogues themselves -------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_both_languages_have_the_same_keys_and_placeholders(name):
    texts = {
        lang: json.loads((CATALOGUE_DIR / lang / f"{name}.json").read_text("utf-8"))
        for lang in LANGUAGES
    }
    korean, english = texts["ko"], texts["en"]
    assert sorted(set(korean) ^ set(english)) == [], f"{name}: keys in one language only"
    for key, text in english.items():
        assert isinstance(text, str) and text.strip(), f"{name}/en: {key} is empty"
        assert isinstance(korean[key], str) and korean[key].strip(), f"{name}/ko: {key} is empty"
        assert set(PLACEHOLDER.findall(text)) == set(PLACEHOLDER.findall(korean[key])), (
            f"{name}: {key} has other placeholders in Korean"
        )


def test_no_key_is_defined_in_two_catalogues():
    """A page embeds common + its own catalogue: a key in two files would shadow one of them."""
    seen: dict[str, str] = {}
    for name in NAMES:
        for key in catalogue("en", name):
            assert key not in seen, f"{key} is in both {seen[key]} and {name}"
            seen[key] = name


# One Korean term per concept (the guide's 특징 맵, 매개변수, 기울기 …): spellings a reader would
# take for a second term, never used.
KOREAN_TERMS = {
    "완전 연결": ("완전연결", "전결합"),
    "특징 맵": ("특성 맵", "특성맵", "특징맵"),
    "매개변수": ("파라미터",),
    "기울기": ("그래디언트",),
    "에포크": ("에폭",),
    "활성화 함수": ("활성 함수",),
}


@pytest.mark.parametrize("name", NAMES)
def test_korean_uses_one_term_per_concept(name):
    text = json.dumps(catalogue("ko", name), ensure_ascii=False)
    for term, others in KOREAN_TERMS.items():
        for other in others:
            assert other not in text, f"{name}: '{other}' where the catalogues say '{term}'"


# --- keys used by templates ----------------------------------------------------------------------

STATIC_T = re.compile(r"""\bt\(\s*["']([\w.]+)["']\s*\)""")


def template_keys(path) -> set[str]:
    return set(STATIC_T.findall(path.read_text("utf-8")))


@pytest.mark.parametrize("path", sorted(ALL_PAGES))
def test_every_key_a_page_template_uses_exists(path):
    template, name = ALL_PAGES[path]
    keys = known(name)
    used = template_keys(TEMPLATES / template)
    for lang in LANGUAGES:
        assert used - keys[lang] == set(), f"{template} ({lang})"


def test_shared_templates_use_common_keys_only():
    keys = known()
    for template in ("base.html", "explorers.html", "controls.html", "lessons/list.html"):
        used = template_keys(TEMPLATES / template) - {
            "lessons.question_count",
            "lessons.done",
            "lessons.visited",
        }
        for lang in LANGUAGES:
            assert used - keys[lang] == set(), f"{template} ({lang})"
    lesson_list = template_keys(TEMPLATES / "lessons" / "list.html")
    assert lesson_list <= known("lessons")["en"] and lesson_list <= known("lessons")["ko"]


def test_keys_built_from_tables_exist():
    """`t("explorer." ~ key)`, `t("home.desc." ~ key)`, `t("lesson." ~ lesson.key)` ..."""
    explorers = re.findall(r'\("(/[\w-]+)", "(\w+)"\)', (TEMPLATES / "explorers.html").read_text())
    assert explorers
    for lang in LANGUAGES:
        common, home = catalogue(lang, "common"), catalogue(lang, "home")
        for _path, key in explorers:
            assert f"explorer.{key}" in common and f"home.desc.{key}" in home, (lang, key)
        for lesson in LESSONS:
            assert f"lesson.{lesson.key}" in common and f"home.lesson.{lesson.key}" in home
        for code in LANGUAGES:
            assert f"lang.{code}" in common


# --- keys used by browser modules ----------------------------------------------------------------

IMPORT = re.compile(r"""(?:from|import)\s+["']\./([\w-]+\.js)["']""")
MODULE_SRC = re.compile(r"""<script type="module" src="/static/js/([\w-]+\.js)">""")
QUOTED_KEY = re.compile(r"""["']([a-z_]+(?:\.[a-z0-9_]+)+)["']""")


def t_call_keys(source: str) -> set[str]:
    """Literal keys inside t(...) calls, ternaries included; data-i18n attributes too."""
    source = re.sub(r"/\*.*?\*/|//[^\n]*", "", source, flags=re.S)  # not the comments' examples
    keys = set()
    for match in re.finditer(r"\bt\(", source):
        depth, end = 1, match.end()
        while end < len(source) and depth:
            depth += {"(": 1, ")": -1}.get(source[end], 0)
            end += 1
        argument = source[match.end() : end - 1].split("{", 1)[0]  # key part, not the params
        keys |= set(QUOTED_KEY.findall(argument))
    keys |= set(re.findall(r'data-i18n="([\w.]+)"', source))
    for pairs in re.findall(r'data-i18n-attr="([^"]+)"', source):
        keys |= {pair.split(":")[1] for pair in pairs.split()}
    return keys


def reachable(entry: str) -> set[str]:
    seen, todo = set(), [entry]
    while todo:
        module = todo.pop()
        if module in seen or not (SCRIPTS / module).is_file():
            continue
        seen.add(module)
        todo.extend(IMPORT.findall((SCRIPTS / module).read_text("utf-8")))
    return seen


def page_modules(template: str) -> set[str]:
    sources = [(TEMPLATES / template).read_text("utf-8"), (TEMPLATES / "base.html").read_text()]
    entries = {m for source in sources for m in MODULE_SRC.findall(source)}
    return set().union(*(reachable(entry) for entry in entries))


def test_every_module_a_page_loads_exists():
    for template, _name in ALL_PAGES.values():
        entries = MODULE_SRC.findall((TEMPLATES / template).read_text("utf-8"))
        for entry in entries:
            assert (SCRIPTS / entry).is_file(), f"{template} loads a missing {entry}"


def test_every_key_a_module_uses_exists_where_it_runs():
    """A module's keys must be in `common` or in the catalogue of a page that loads it; the
    modules every page loads (theme, follow and their imports) in `common` itself."""
    loaders: dict[str, set[str]] = {}
    for template, name in ALL_PAGES.values():
        for module in page_modules(template):
            loaders.setdefault(module, set()).add(name)
    everywhere = set().union(
        *(reachable(m) for m in MODULE_SRC.findall((TEMPLATES / "base.html").read_text("utf-8")))
    )
    assert {"theme.js", "follow.js", "i18n.js"} <= everywhere
    problems = []
    for module, names in sorted(loaders.items()):
        used = t_call_keys((SCRIPTS / module).read_text("utf-8"))
        allowed = known() if module in everywhere else known(*names)
        for lang in LANGUAGES:
            problems += [f"{module}: {key} ({lang})" for key in sorted(used - allowed[lang])]
    assert problems == []


# --- nothing shown untranslated ------------------------------------------------------------------

# What reads the same in both languages: proper names (models, methods, colour maps, people),
# symbols and formulas, numbers, and code (layer names).
NAMES_AND_SYMBOLS = [
    r"cnnviz",
    r"English",
    r"한국어",
    r"valid( \(0\))?",
    r"same",
    r"\d+ \(RGB\)",
    r"(Leaky )?ReLU",
    r"tanh",
    r"GELU",
    r"ELU( α)?",
    r"SiLU( \(Swish\))?",
    r"LeNet-5",
    r"AlexNet",
    r"VGG-16",
    r"ResNet-\d+",
    r"MobileNet.*",
    r"GoogLeNet",
    r"TinyVGG",
    r"Grad-CAM(\+\+)?",
    r"LayerCAM",
    r"SGD",
    r"Adam(W)?",
    r"RMSProp",
    r"(Glorot|Xavier|He|Kaiming)( \((Glorot|Xavier|He|Kaiming)\))?( \d{4})?",
    r"viridis|magma|gray|features",  # colour maps; a layer name as an example
    r"f′?\(x\)( \(autograd\))?",
    r"[a-z](_[a-z])?",
    r"∂L/∂z",
    r"[^A-Za-z가-힣]*",
    r".*[=×·⌊].*",
    r"[a-z_]+(\.[a-z0-9_]+)+",
]
SAME_IN_BOTH = re.compile("^(" + "|".join(NAMES_AND_SYMBOLS) + ")$")


class VisibleText(HTMLParser):
    """Text nodes and the attributes people read (aria-label, title, alt, placeholder)."""

    def __init__(self):
        super().__init__()
        self.texts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag, attrs):
        if tag in ("script", "style", "code"):
            self._skip += 1
        for name, value in attrs:
            if name in ("aria-label", "title", "alt", "placeholder") and value:
                self.texts.append(value.strip())

    def handle_endtag(self, tag):
        if tag in ("script", "style", "code"):
            self._skip -= 1

    def handle_data(self, data):
        if not self._skip and data.strip():
            self.texts.append(" ".join(data.split()))


def visible(path: str, lang: str) -> list[str]:
    parser = VisibleText()
    parser.feed(client.get(path, params={"lang": lang}).text)
    return parser.texts


@pytest.mark.parametrize("path", sorted(ALL_PAGES))
def test_no_page_shows_text_in_one_language_only(path):
    """Text identical in the Korean and the English page, with words in it, was not translated."""
    korean = set(visible(path, "ko"))
    untranslated = sorted(
        text for text in set(visible(path, "en")) & korean if not SAME_IN_BOTH.match(text)
    )
    assert untranslated == []
    assert not any(
        re.search(r"[가-힣]", text) for text in visible(path, "en") if text != "한국어"
    ), "Korean text on the English page"


# --- API error messages (app/errors.py → static/js/api.js) --------------------------------------


def test_error_types_are_translated_with_parameters_the_server_sends():
    """`error.type.<type>` is filled from the item's ctx: each placeholder must be a ctx key the
    server may send, and the types our own code emits must all have a text."""
    from app.errors import CONTEXT_KEYS, STATUS_TYPES

    for lang in LANGUAGES:
        common = catalogue(lang, "common")
        types = {key.removeprefix("error.type."): text for key, text in common.items()
                 if key.startswith("error.type.")}  # fmt: skip
        assert {"greater_than_equal", "less_than_equal", "missing", "int_parsing",
                "finite_number", "string_too_long", "too_long", "literal_error", "enum",
                "unknown_model", STATUS_TYPES[413], STATUS_TYPES[429]} <= set(types)  # fmt: skip
        for kind, text in types.items():
            assert set(PLACEHOLDER.findall(text)) <= CONTEXT_KEYS, (lang, kind)
        # the general message of a status stands in when ctx is short: nothing to fill in it
        for status in (404, 413, 429):
            assert PLACEHOLDER.findall(common[f"error.status.{status}"]) == [], (lang, status)
