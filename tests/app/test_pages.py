"""Pages: served in both languages, under the strict CSP, with no inline script or style."""

import json
import re
from html.parser import HTMLParser

import pytest
from fastapi.testclient import TestClient

from app.i18n import LANGUAGES, catalogue
from app.main import app
from app.routes.pages import PAGES

client = TestClient(app)


class PageParser(HTMLParser):
    """Collects scripts, style attributes, inline event handlers and the embedded catalogue."""

    def __init__(self):
        super().__init__()
        self.scripts: list[dict[str, str | None]] = []
        self.style_attributes: list[str] = []
        self.handlers: list[str] = []
        self.inline_styles = 0
        self.external: list[str] = []
        self.messages: str | None = None
        self._in_messages = False
        self._in_script = False
        self._script_text = ""

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        for name, value in attrs:
            if name == "style":
                self.style_attributes.append(f"<{tag} style={value!r}>")
            if name.startswith("on"):
                self.handlers.append(f"<{tag} {name}>")
            if name in ("src", "href") and value and re.match(r"^(https?:)?//", value):
                self.external.append(value)
        if tag == "style":
            self.inline_styles += 1
        if tag == "script":
            self.scripts.append(attributes)
            self._in_script = True
            self._script_text = ""
            self._in_messages = attributes.get("id") == "messages"

    def handle_data(self, data):
        if self._in_script:
            self._script_text += data

    def handle_endtag(self, tag):
        if tag == "script":
            self.scripts[-1]["text"] = self._script_text
            if self._in_messages:
                self.messages = self._script_text
            self._in_script = self._in_messages = False


def parse(html: str) -> PageParser:
    parser = PageParser()
    parser.feed(html)
    return parser


@pytest.mark.parametrize("lang", LANGUAGES)
@pytest.mark.parametrize("path", sorted(PAGES))
def test_page_renders_in_each_language(path, lang):
    response = client.get(path, params={"lang": lang})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert f'<html lang="{lang}">' in response.text
    assert response.cookies.get("lang") == lang


@pytest.mark.parametrize("path", sorted(PAGES))
def test_csp_header_is_strict(path):
    csp = client.get(path).headers["content-security-policy"]
    directives = dict(part.strip().split(" ", 1) for part in csp.split(";"))
    assert directives["script-src"] == "'self'"
    assert directives["style-src"] == "'self'"
    assert directives["connect-src"] == "'self'"
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp


@pytest.mark.parametrize("lang", LANGUAGES)
@pytest.mark.parametrize("path", sorted(PAGES))
def test_no_inline_script_style_or_outside_resource(path, lang):
    page = parse(client.get(path, params={"lang": lang}).text)
    for script in page.scripts:
        if script.get("type") == "application/json":
            continue  # data, not code: the CSP does not run it
        assert script.get("src", "").startswith("/static/"), f"script without a local src: {script}"
        assert script["text"].strip() == "", f"inline code in {script}"
    assert page.style_attributes == []
    assert page.handlers == []
    assert page.inline_styles == 0
    assert page.external == []


@pytest.mark.parametrize("lang", LANGUAGES)
@pytest.mark.parametrize("path", sorted(PAGES))
def test_embedded_catalogue_is_the_pages_messages(path, lang):
    _template, name = PAGES[path]
    page = parse(client.get(path, params={"lang": lang}).text)
    embedded = json.loads(page.messages)
    expected = {**catalogue("en", "common"), **catalogue(lang, "common")}
    expected.update({**catalogue("en", name), **catalogue(lang, name)})
    assert embedded == expected
    # The catalogue is JSON in HTML: nothing in it may close the script element early.
    assert "</" not in page.messages


@pytest.mark.parametrize("name", ["common", "home", "conv"])
def test_korean_and_english_catalogues_have_the_same_keys(name):
    korean, english = catalogue("ko", name), catalogue("en", name)
    assert korean and english
    assert set(korean) == set(english)
    assert all(value.strip() for value in [*korean.values(), *english.values()])


def test_language_from_accept_language_then_cookie():
    # fresh clients: the shared one carries the cookie earlier tests set
    english = TestClient(app).get("/", headers={"Accept-Language": "en-US,en;q=0.9,ko;q=0.8"})
    assert '<html lang="en">' in english.text
    assert '<html lang="ko">' in TestClient(app).get("/", headers={"Accept-Language": "fr"}).text
    with_cookie = TestClient(app)
    with_cookie.cookies.set("lang", "en")
    assert '<html lang="en">' in with_cookie.get("/conv", headers={"Accept-Language": "ko"}).text


def test_language_links_keep_the_query():
    html = client.get("/conv", params={"lang": "ko", "kernel": "5", "stride": "2"}).text
    links = re.findall(r'href="\?([^"]*)"[^>]*data-lang-link="(\w+)"', html)
    assert len(links) == 2
    for query, code in links:
        query = query.replace("&amp;", "&")
        assert f"lang={code}" in query and "kernel=5" in query and "stride=2" in query


def test_home_links_existing_explorers_and_marks_the_rest_coming():
    html = client.get("/", params={"lang": "en"}).text
    assert 'href="/conv?lang=en"' in html
    for path in ("/pool", "/train", "/features"):
        if path not in PAGES:
            assert f'href="{path}?' not in html
    assert html.count('class="explorer-card is-coming"') == sum(
        path not in PAGES
        for path in (
            "/conv",
            "/pool",
            "/activations",
            "/loss",
            "/features",
            "/architectures",
            "/receptive-field",
            "/train",
        )
    )


@pytest.mark.parametrize("path", sorted(PAGES))
def test_every_message_key_a_page_template_uses_exists(path):
    from app.settings import ROOT

    template, name = PAGES[path]
    for source in {"base.html", template}:
        text = (ROOT / "templates" / source).read_text()
        for key in re.findall(r"""\bt\(\s*["']([\w.]+)["']\s*\)""", text):
            for lang in LANGUAGES:
                assert key in {**catalogue(lang, "common"), **catalogue(lang, name)}, (
                    f"{source}: {key} missing in {lang}"
                )
