"""Front-end libraries: pinned once (the Makefile, and the Dockerfile in step with it), installed
from npm into the ignored build/npm, served by the app under /static/vendor/ — never committed and
never fetched from another origin by a page."""

import re
import subprocess

from fastapi.testclient import TestClient

from app.main import VENDORED, app
from app.settings import ROOT

client = TestClient(app)


def test_the_makefile_and_the_dockerfile_pin_the_same_packages():
    make = re.search(r"^NPM_PACKAGES\s*:=\s*(.+)$", (ROOT / "Makefile").read_text(), re.M)
    docker = re.search(r"^ARG NPM_PACKAGES=(.+)$", (ROOT / "Dockerfile").read_text(), re.M)
    pinned = make[1].split()
    assert pinned == docker[1].split()
    assert all(re.fullmatch(r"[a-z0-9-]+@\d+\.\d+\.\d+", p) for p in pinned)  # exact versions
    assert sorted(p.split("@")[0] for p in pinned) == sorted(VENDORED)


def test_vendored_files_are_served_and_never_committed():
    tracked = subprocess.run(["git", "ls-files", "build", "static/vendor"], cwd=ROOT,
                             capture_output=True, text=True, check=True).stdout  # fmt: skip
    assert tracked == ""
    assert "build/" in (ROOT / ".gitignore").read_text().split()
    if not (ROOT / "build/npm/node_modules/uplot/dist").is_dir():
        subprocess.run(["make", "-s", "vendor"], cwd=ROOT, check=True, timeout=300)
    script = client.get("/static/vendor/uplot/uPlot.esm.js")
    assert script.status_code == 200 and "javascript" in script.headers["content-type"]
    assert "export" in script.text
    assert client.get("/static/vendor/uplot/uPlot.min.css").status_code == 200
    assert client.get("/static/vendor/uplot/../../../../pyproject.toml").status_code == 404
    assert client.get("/static/vendor/nothing/x.js").status_code == 404


def test_the_train_page_loads_its_chart_library_from_this_server():
    page = client.get("/train?lang=en").text
    assert '<link rel="stylesheet" href="/static/vendor/uplot/uPlot.min.css">' in page
    assert not re.search(r"""(src|href)=["']https?://""", page)
    module = (ROOT / "static/js/train/run_chart.js").read_text()
    assert 'from "../../vendor/uplot/uPlot.esm.js"' in module
