"""How many datasets are kept, and where: per browser (its owner token), per client address (a
class behind one school NAT address is many browsers), and everyone's together, in number and
in bytes of pictures; every refusal a 422 naming its field and limit, made before anything is
written."""

import io
from types import SimpleNamespace

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from test_datasets_routes import upload

from app.datasets.service import Datasets, get_datasets
from app.deps import settings_dep
from app.main import app
from app.runs.manager import get_run_manager
from app.runs.store import SQLiteRunStore
from app.settings import Settings

lab = TestClient(app)  # every request from one address: a school lab behind one NAT address


def serve(settings: Settings):
    made = Datasets.from_settings(settings)
    runs = SQLiteRunStore(settings.sqlite_path)
    app.dependency_overrides[get_datasets] = lambda: made
    app.dependency_overrides[settings_dep] = lambda: settings
    app.dependency_overrides[get_run_manager] = lambda: SimpleNamespace(store=runs)
    return made, runs


@pytest.fixture
def settings(request, tmp_path):
    """The default settings (a test's own with `@pytest.mark.parametrize(indirect=True)`)."""
    changes = getattr(request, "param", {})
    settings = Settings(data_dir=tmp_path, **changes)
    made, runs = serve(settings)
    yield settings
    for dependency in (get_datasets, settings_dep, get_run_manager):
        app.dependency_overrides.pop(dependency, None)
    made.close()
    runs.close()


def create(token: str | None = None, name: str = "toys"):
    headers = {"X-Dataset-Token": token} if token else {}
    return lab.post("/api/datasets", json={"name": name, "classes": ["cup"]}, headers=headers)


def refusal(response, status: int = 422) -> dict:
    assert response.status_code == status, response.text
    (item,) = response.json()["detail"]
    return item


def test_a_class_of_30_behind_one_address_each_makes_datasets(settings):
    """Thirty browsers (thirty tokens) on one address: each makes its first dataset and then
    its second with its own token, which the server keeps (one browser, one token)."""
    assert settings.owner_max_datasets == 10 and settings.client_max_datasets >= 30 * 10
    tokens = []
    for student in range(30):
        made = create(name=f"s{student}")
        assert made.status_code == 201, (student, made.text)
        tokens.append(made.json()["owner_token"])
    assert len(set(tokens)) == 30
    for token in tokens:
        again = create(token)
        assert again.status_code == 201, again.text
        assert again.json()["owner_token"] == token
        dataset_id = again.json()["id"]
        renamed = lab.patch(f"/api/datasets/{dataset_id}", json={"name": "mine"},
                            headers={"X-Dataset-Token": token})  # fmt: skip
        assert renamed.status_code == 200


def test_one_browser_stops_at_its_own_limit(settings):
    first = create().json()["owner_token"]
    for _ in range(settings.owner_max_datasets - 1):
        assert create(first).status_code == 201
    item = refusal(create(first))
    assert item["type"] == "dataset_owner_quota" and item["loc"] == ["body", "name"]
    assert item["ctx"] == {"limit": 10}
    # another browser on the same address is not held back by it
    assert create().status_code == 201
    # a token that owns no dataset is not taken: a new one is given (a client cannot pick one)
    other = create("not-a-token-of-any-dataset")
    assert other.status_code == 201 and other.json()["owner_token"] != "not-a-token-of-any-dataset"


@pytest.mark.parametrize("settings", [{"client_max_datasets": 3}], indirect=True)
def test_the_address_has_a_cap_of_its_own(settings):
    """A client that throws its tokens away is still stopped by its address's count."""
    for _ in range(3):
        assert create().status_code == 201
    item = refusal(create())
    assert item["type"] == "dataset_client_quota" and item["ctx"] == {"limit": 3}


@pytest.mark.parametrize("settings", [{"datasets_max_count": 4}], indirect=True)
def test_the_server_keeps_at_most_its_count_of_datasets(settings):
    for _ in range(4):
        assert create().status_code == 201
    item = refusal(create())
    assert item["type"] == "datasets_server_full" and item["loc"] == ["body", "name"]
    assert item["ctx"] == {"limit": 4}


def noise_png(seed: int) -> bytes:
    """16 × 16 random colours: about 800 bytes of PNG (no compression to speak of)."""
    pixels = np.random.default_rng(seed).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "PNG")
    return buffer.getvalue()


@pytest.mark.parametrize("settings", [{"datasets_max_bytes": 2000}], indirect=True)
def test_the_bytes_of_every_dataset_together_are_refused_before_writing(settings):
    """Two browsers' datasets share `datasets_max_bytes`: the upload that would pass it is
    refused before a file is written or a row added."""
    pictures = [(f"{i}.png", noise_png(i)) for i in range(3)]
    a, b = create().json(), create().json()
    headers_a = {"X-Dataset-Token": a["owner_token"]}
    headers_b = {"X-Dataset-Token": b["owner_token"]}
    first = upload(a["id"], headers_a, pictures[:2])
    assert first.status_code == 201, first.text
    held = first.json()["dataset"]["bytes"]
    over = upload(b["id"], headers_b, pictures[2:])
    item = refusal(over)
    assert item["type"] == "datasets_server_bytes" and item["loc"][-1] == "files"
    adding = item["ctx"]["total"] - held
    assert item["ctx"] == {"limit": 2000, "count": held, "total": held + adding}
    assert held + adding > 2000 >= held > 0
    assert lab.get(f"/api/datasets/{b['id']}").json()["images"] == 0
    folder = settings.user_datasets_dir / b["id"]
    assert not folder.exists() or not any(folder.iterdir())
    # deleting the other browser's dataset frees its bytes: the same upload now fits, and adds
    # the bytes the refusal counted
    assert lab.delete(f"/api/datasets/{a['id']}", headers=headers_a).status_code == 204
    fits = upload(b["id"], headers_b, pictures[2:])
    assert fits.status_code == 201, fits.text
    assert fits.json()["dataset"]["bytes"] == adding
