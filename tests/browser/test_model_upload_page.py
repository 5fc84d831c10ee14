"""/features: upload an ONNX model on the page, see it chosen under "Your models" with its own
layers and labelled predictions (in English and Korean), and a refused file named in the page."""

import io
import warnings

import pytest
import torch
from playwright.sync_api import expect

from app.i18n import messages
from cnncore.models import build_model
from cnncore.seeding import seeded


def tinyvgg_onnx() -> bytes:
    with seeded(5):
        model = build_model("tinyvgg").eval()
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.zeros(1, 3, 64, 64),), buffer, dynamo=False,
                          input_names=["input"])  # fmt: skip
    return buffer.getvalue()


def wait_answered(page):
    page.wait_for_selector(".layer-card", timeout=90_000)
    page.wait_for_function(
        "() => document.getElementById('results').getAttribute('aria-busy') === 'false'"
    )


def upload(page, data: bytes, name: str, labels: str | None = None):
    page.click("#model-upload summary")
    page.set_input_files("#u-file", {"name": "model.onnx", "mimeType": "application/octet-stream",
                                     "buffer": data})  # fmt: skip
    page.fill("#u-name", name)
    if labels is not None:
        page.set_input_files("#u-labels", {"name": "labels.txt", "mimeType": "text/plain",
                                           "buffer": labels.encode()})  # fmt: skip
    page.click("#model-upload-form button[type=submit]")


def test_upload_a_model_and_see_its_maps(page, make_page, screenshot):
    page.goto("/features?lang=en&model=tinyvgg&sample=flower")
    wait_answered(page)
    labels = "".join(f"flower kind {i}\n" for i in range(10))
    upload(page, tinyvgg_onnx(), "Homework CNN", labels)
    page.wait_for_function("() => document.getElementById('c-model').value.startsWith('onnx_')")
    page.wait_for_function(
        "() => new URL(location.href).searchParams.get('model')?.startsWith('onnx_')"
    )
    wait_answered(page)
    page.wait_for_function(
        "() => document.querySelector('#weights-note').textContent.includes('Homework CNN')"
    )
    group = page.locator("#c-model optgroup")
    assert group.get_attribute("label") == "Your models"
    assert group.locator("option").all_text_contents() == ["Homework CNN"]
    names = page.locator(".layer-name").all_text_contents()
    assert names[0] == "1. block1.conv1"
    assert page.locator(".prediction-label").first.text_content().startswith("flower kind ")
    assert "is ready (input 3×64×64)" in page.text_content("#model-upload-status")
    screenshot(page, "features-uploaded-model-en")

    # the same name on the architectures page (its summary: the exported tinyvgg's 6 weighted
    # layers and their parameters) and on the receptive-field page
    name = page.locator("#c-model").input_value()
    architectures = make_page("desktop")
    architectures.goto(f"/architectures?lang=en&model={name}")
    architectures.wait_for_selector("body[data-ready=true]")
    assert architectures.locator("#a-model optgroup").get_attribute("label") == "Your models"
    assert architectures.locator("#a-model").input_value() == name
    with seeded(5):
        params = sum(p.numel() for p in build_model("tinyvgg").parameters())
    assert architectures.text_content("#total-params").replace(",", "") == str(params)
    screenshot(architectures, "architectures-uploaded-model")
    field = make_page("desktop")
    field.goto(f"/receptive-field?lang=en&model={name}&layer=block2.conv2")
    field.wait_for_selector("body[data-ready=true]", timeout=90_000)
    assert field.locator("#c-model").input_value() == name

    korean = make_page("phone", locale="ko-KR")
    korean.goto(page.url.replace("lang=en", "lang=ko"))
    wait_answered(korean)
    assert korean.locator("#c-model optgroup").get_attribute("label") == "내 모델"
    korean.click("#model-upload summary")
    screenshot(korean, "features-uploaded-model-ko-phone")


def test_a_refused_file_is_named_in_the_form(page):
    page.goto("/features?lang=en&model=tinyvgg&sample=flower")
    wait_answered(page)
    upload(page, b"not an onnx file at all", "broken")
    slot = page.locator('#model-upload-form [data-error-for="file"]')
    slot.wait_for(state="visible")
    assert "not an ONNX model file" in slot.text_content()
    page.guard.expect_errors("422", 1)  # the refusal, logged by the browser


def test_upload_a_state_dict_for_a_zoo_architecture(page):
    from safetensors.torch import save

    with seeded(6):
        state = build_model("tinyvgg", num_classes=3).state_dict()
    page.goto("/features?lang=en&model=tinyvgg&sample=flower")
    wait_answered(page)
    page.click("#model-upload summary")
    page.select_option("#u-architecture", "tinyvgg")
    chosen = page.locator("#u-architecture option:checked").text_content()
    assert chosen == "Weights (state dict) for TinyVGG (CNN Explainer)"
    page.set_input_files("#u-file", {"name": "homework.safetensors",
                                     "mimeType": "application/octet-stream",
                                     "buffer": save(dict(state))})  # fmt: skip
    page.fill("#u-name", "Three classes")
    page.click("#model-upload-form button[type=submit]")
    page.wait_for_function("() => document.getElementById('c-model').value.startsWith('weights_')")
    wait_answered(page)
    # the live server is the session's: the first test's upload is listed too
    assert page.locator("#c-model optgroup option").all_text_contents()[-1] == "Three classes"


@pytest.mark.parametrize("lang", ["ko", "en"])
def test_a_model_uploaded_without_labels_says_the_names_are_missing(make_page, lang):
    """No labels file: the page says the class names are missing and how to give them (it said
    "these weights are not trained to recognise classes", untrue of a trained upload)."""
    text = messages(lang, "features")
    page = make_page("laptop", locale={"ko": "ko-KR", "en": "en-US"}[lang])
    page.goto(f"/features?lang={lang}&model=tinyvgg&sample=flower")
    wait_answered(page)
    upload(page, tinyvgg_onnx(), f"no labels {lang}")
    page.wait_for_function("() => document.getElementById('c-model').value.startsWith('onnx_')")
    wait_answered(page)
    note = page.locator("#prediction-note")
    expect(note).to_have_text(text["features.predictions.no_labels"])
    assert page.locator(".prediction-label").count() == 0
    # the explanation names the class by its number, and says why
    page.click("#explain-toggle")
    expect(page.locator("#explain-status")).to_contain_text(text["explain.unnamed"], timeout=60_000)


@pytest.mark.parametrize("lang", ["ko", "en"])
def test_the_file_field_names_what_the_chosen_kind_takes(make_page, lang):
    """A state dict's kind: the file field asks for a weights file, and a missing one is said
    on that field (it kept asking for an "ONNX file", at the top of the form)."""
    text = messages(lang, "features")
    page = make_page("phone", locale={"ko": "ko-KR", "en": "en-US"}[lang])
    page.goto(f"/features?lang={lang}&model=tinyvgg&sample=flower")
    wait_answered(page)
    page.click("#model-upload summary")
    label = page.locator('label[for="u-file"]')
    expect(label).to_have_text(text["features.upload_model.file"])
    page.select_option("#u-architecture", "tinyvgg")
    expect(label).to_have_text(text["features.upload_model.file_weights"])
    page.click("#model-upload-form button[type=submit]")
    expect(page.locator('#model-upload-form [data-error-for="file"]')).to_have_text(
        text["features.upload_model.no_weights_file"])  # fmt: skip
    page.select_option("#u-architecture", "")
    expect(label).to_have_text(text["features.upload_model.file"])
