"""Choosing a trained run in the browser, on the real path: a run trained by a real worker
(POST /api/runs) in the module's own folder, chosen on /features and on /receptive-field; what
the pages show comes from that run's final checkpoint, read back here from the file itself."""

import base64
import io
import time

import httpx
import numpy as np
import pytest
import torch
from PIL import Image

from app.runs.manager import RunLimits
from cnncore.checkpoint import load_checkpoint
from cnncore.effective_rf_picture import picture_effective_field
from cnncore.features import prepare_input, top_predictions
from cnncore.images import sample_image

RUN = {"label": "my digits", "model": "lenet5", "data": {"name": "digits", "limit": 300},
       "epochs": 1, "batch_size": 32, "max_steps_per_epoch": 3}  # fmt: skip
READY = "() => document.getElementById('results').getAttribute('aria-busy') === 'false'"


@pytest.fixture(scope="module")
def trained(tmp_path_factory, runs_in, live_server, browser):
    folder = tmp_path_factory.mktemp("trained-pictures")
    with runs_in(folder, RunLimits(max_concurrent=1)) as runs:
        created = httpx.post(f"{live_server}/api/runs", json=RUN, timeout=60)
        assert created.status_code == 201, created.text
        run_id = created.json()["id"]
        deadline = time.monotonic() + 180
        while not runs.get(run_id).finished:
            assert time.monotonic() < deadline, "the run did not finish"
            time.sleep(0.1)
        assert runs.get(run_id).status == "completed"
        yield run_id, load_checkpoint(runs.checkpoint_for_run(run_id)).loaded_model()


def test_features_shows_what_the_chosen_run_sees(page, trained):
    run_id, loaded = trained
    page.goto(f"/features?lang=en&model=lenet5&sample=digit&weights=run&run={run_id}")
    page.wait_for_selector(".layer-card", timeout=90_000)
    page.wait_for_function(READY, timeout=90_000)
    # the run is offered in the picker, chosen, and named by the weights note
    assert page.locator(f'#c-run option[value="{run_id}"]').count() == 1
    assert page.input_value("#c-run") == run_id
    assert "my digits" in page.locator(f'#c-run option[value="{run_id}"]').text_content()
    prepared = prepare_input(loaded.weights, sample_image("digit"))
    with torch.no_grad():
        logits = loaded.model(prepared.tensor)[0]
    expected = top_predictions(logits, list(loaded.weights.labels), 5)
    shown = page.locator(".prediction-label").all_text_contents()
    assert shown == [p.label for p in expected]


def test_the_receptive_field_page_uses_the_chosen_run(page, trained):
    run_id, loaded = trained
    with page.expect_response("**/api/receptive-field/effective", timeout=90_000) as answer:
        page.goto(f"/receptive-field?lang=en&model=lenet5&sample=digit&run={run_id}")
    body = answer.value.json()
    assert answer.value.status == 200
    assert body["weights"] == "trained" and body["weights_file"] == "final.safetensors"
    page.wait_for_function(READY, timeout=90_000)
    assert run_id in page.text_content("#weights-note")
    unit = body["unit"]
    field = picture_effective_field(loaded, sample_image("digit"), body["layer"], unit["y"],
                                    unit["x"])  # fmt: skip
    raw = base64.b64decode(body["heatmap"].removeprefix("data:image/png;base64,"))
    levels = np.asarray(Image.open(io.BytesIO(raw))).astype(int)
    assert np.abs(levels - np.rint(field.field.heatmap.numpy() * 255)).max() <= 1
