"""/train's "Start from" offers the classifiers this browser uploaded (it holds their owner
tokens), in Korean and English; choosing one starts a run from it (the token sent with the run,
the pictures given the model's channels), trained to its end by a real worker (in Korean), on a
laptop."""

import re
import time

import httpx
import pytest
import torch
from safetensors.torch import load_file

from app.runs.manager import RunLimits
from cnncore.models import build_model
from cnncore.seeding import seeded
from tests.app.uploads import onnx_export

GROUPS = {"ko": "내가 올린 모델", "en": "Your uploaded models"}
OPTIONS = {"ko": "my lenet ({shape}, 올린 모델)", "en": "my lenet ({shape}, uploaded)"}


@pytest.fixture(scope="module")
def uploaded(live_server):
    """A grey LeNet-5 (1×32×32, 10 classes) uploaded as ONNX, and one without a token here."""
    with seeded(1):
        network = build_model("lenet5")
    made = []
    for title in ("my lenet", "someone else's"):
        data = onnx_export(network, (1, 32, 32))
        files = {"file": ("lenet.onnx", data, "application/octet-stream")}
        answer = httpx.post(f"{live_server}/api/uploaded-models", data={"name": title},
                            files=files, timeout=60)  # fmt: skip
        assert answer.status_code == 201, answer.text
        made.append(answer.json())
    yield made
    for created in made:
        httpx.delete(f"{live_server}/api/uploaded-models/{created['model']['id']}",
                     headers={"X-Model-Token": created["owner_token"]}, timeout=60)  # fmt: skip


@pytest.fixture(scope="module")
def runs(tmp_path_factory, runs_in):
    with runs_in(tmp_path_factory.mktemp("uploaded-source"), RunLimits(max_concurrent=1)) as made:
        yield made


def own(page, created) -> None:
    """This browser holds the model's owner token, as after uploading it on /features."""
    key, token = f"cnnviz.model-token.{created['model']['id']}", created["owner_token"]
    page.add_init_script(f"localStorage.setItem({key!r}, {token!r})")


def finished(live_server: str, run_id: str) -> dict:
    """The run's record once it names its final checkpoint (polled: the page's own request
    can see it a moment before this client does)."""
    deadline = time.monotonic() + 60
    while True:
        run = httpx.get(f"{live_server}/api/runs/{run_id}", timeout=30).json()
        if run["checkpoint"] == "final.safetensors" or time.monotonic() > deadline:
            return run
        time.sleep(0.2)


@pytest.mark.parametrize("language", ["ko", "en"])
def test_start_from_an_uploaded_model(make_page, uploaded, runs, live_server, screenshot, language):
    mine, theirs = uploaded
    name = mine["model"]["model"]
    page = make_page("laptop")
    own(page, mine)
    page.goto(f"/train?lang={language}&preset=custom&data=digits&limit=200&epochs=1&batch=32"
              f"&steps=3&fb=1&from=uploaded:{name}")  # fmt: skip
    page.wait_for_selector("body[data-ready=true]", timeout=60_000)
    select = page.locator("#c-from")
    group = select.locator(f"optgroup[label='{GROUPS[language]}'] option")
    assert group.all_text_contents() == [OPTIONS[language].format(shape="1×32×32")]
    assert select.locator(f"option[value='uploaded:{theirs['model']['model']}']").count() == 0
    assert select.input_value() == f"uploaded:{name}"  # chosen from the URL
    select.select_option(f"uploaded:{name}")
    select.scroll_into_view_if_needed()
    screenshot(page, f"train-uploaded-source-{language}-laptop", full_page=False)
    if language == "en":  # one language trains to the end (a worker's run costs seconds)
        phone = make_page("phone")
        own(phone, mine)
        phone.goto(f"/train?lang=en&from=uploaded:{name}")
        phone.wait_for_selector("body[data-ready=true]", timeout=60_000)
        chosen = phone.locator("#c-from")
        assert chosen.input_value() == f"uploaded:{name}"
        chosen.scroll_into_view_if_needed()
        box = chosen.bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 360
        screenshot(phone, "train-uploaded-source-en-phone", full_page=False)
        return
    page.locator("#start").click()
    page.wait_for_url(re.compile(r"[?&]run=[0-9a-f]{12}"), timeout=30_000)
    run_id = re.search(r"[?&]run=([0-9a-f]{12})", page.url)[1]
    page.wait_for_function(
        f"() => fetch('/api/runs/{run_id}').then((r) => r.json())"
        ".then((run) => run.status === 'completed')", timeout=180_000, polling=500,
    )  # fmt: skip
    run = finished(live_server, run_id)
    assert run["model"] == name and run["config"]["data"]["channels"] == 1
    init = run["config"]["init_from"]
    assert (init["weights"], init["model"], init["freeze_backbone"]) == ("uploaded", name, True)
    row = page.locator(f"tr[data-run='{run_id}']")
    row.wait_for(timeout=30_000)
    assert name in row.text_content()
    page.locator("#run").scroll_into_view_if_needed()
    screenshot(page, f"train-uploaded-source-{language}-laptop-trained", full_page=False)
    # what the worker trained: the upload's backbone, bit for bit (frozen)
    weights = load_file(runs.checkpoint_dir(run_id) / run["checkpoint"])
    with seeded(1):
        network = build_model("lenet5")
    for key, value in network.state_dict().items():
        if not key.startswith("classifier.2"):
            assert torch.equal(weights[key], value), key
