"""A page path that does not exist answers an HTML 404 page in the reader's language (?lang,
the lang cookie, Accept-Language, as every page chooses it); API and static paths keep their
JSON 404."""

import pytest
from fastapi.testclient import TestClient

from app.i18n import catalogue
from app.main import app

client = TestClient(app)


@pytest.mark.parametrize(
    ("path", "headers", "lang"),
    [
        ("/no-such-page?lang=ko", {"Accept-Language": "en"}, "ko"),
        ("/no-such-page?lang=en", {"Accept-Language": "ko"}, "en"),
        ("/conv/extra", {"Cookie": "lang=en"}, "en"),
        ("/no-such-page", {"Accept-Language": "en-US,en;q=0.9,ko;q=0.5"}, "en"),
        ("/no-such-page", {"Accept-Language": "ko-KR,ko;q=0.9"}, "ko"),
    ],
)
def test_a_missing_page_is_an_html_page_in_the_readers_language(path, headers, lang):
    response = TestClient(app).get(path, headers=headers)  # no cookie from an earlier test
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("text/html")
    texts = catalogue(lang, "common")
    assert f'<html lang="{lang}">' in response.text
    assert f'<h1 id="not-found-heading">{texts["notfound.title"]}</h1>' in response.text
    shown = path.split("?")[0]
    assert texts["notfound.text"].replace("{path}", shown) in response.text
    assert f'href="/?lang={lang}"' in response.text


def test_the_path_is_escaped_not_run():
    response = client.get("/<script>alert(1)</script>?lang=en")
    assert response.status_code == 404
    assert "<script>alert(1)</script>" not in response.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in response.text


DATA_PATHS = ["/api/no-such-route", "/api/models/nope/summary", "/static/nope.js"]


@pytest.mark.parametrize("path", DATA_PATHS)
def test_data_paths_keep_their_json_404(path):
    response = client.get(path, headers={"Accept": "text/html"})
    assert response.status_code == 404
    assert response.json()["type"] == "not_found"
