"""A class builds a dataset together (issue 15 part 5), in both languages: the teacher on /teach
in presenter mode (1920×1080) makes a dataset, starts a class session and opens the dataset to
the class; a student on a 360 px phone joins with the code, sees the classes, is told what is
missing, sends two pictures (chosen files; a phone's file input also offers its camera); the
teacher sees both with the student's name, adds one to the dataset and leaves the other out;
the student sees both outcomes, and the dataset holds the one picture, from the class."""

import io

import numpy as np
import pytest
from PIL import Image
from playwright.sync_api import expect

from app.class_pictures import ClassPictureLimits, InMemoryClassPictures, get_class_pictures
from app.datasets.service import Datasets, get_datasets
from app.i18n import messages
from app.main import app
from app.settings import Settings


@pytest.fixture(scope="module", autouse=True)
def stores(tmp_path_factory):
    datasets = Datasets.from_settings(Settings(data_dir=tmp_path_factory.mktemp("class")))
    queues = InMemoryClassPictures(ClassPictureLimits())
    app.dependency_overrides[get_datasets] = lambda: datasets
    app.dependency_overrides[get_class_pictures] = lambda: queues
    yield datasets
    app.dependency_overrides.pop(get_datasets, None)
    app.dependency_overrides.pop(get_class_pictures, None)
    datasets.close()


def picture(seed: int) -> dict:
    rng = np.random.default_rng(seed)
    buffer = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (90, 120, 3), dtype=np.uint8)).save(buffer, "PNG")
    return {"name": f"photo-{seed}.png", "mimeType": "image/png", "buffer": buffer.getvalue()}


@pytest.mark.parametrize("lang", ["ko", "en"])
def test_students_send_pictures_and_the_teacher_accepts_or_rejects(make_page, screenshot, lang,
                                                                   stores):  # fmt: skip
    text = messages(lang, "common", "teach")
    locale = {"ko": "ko-KR", "en": "en-US"}[lang]
    teacher = make_page("projector", locale=locale)
    teacher.goto(f"/teach?lang={lang}&present=1")
    teacher.wait_for_selector("body[data-ready=true]")
    teacher.fill("#dataset-name", "pets")
    teacher.fill("#class-names", "cats, dogs")
    teacher.click("#create")
    card = teacher.locator("#class-card")
    expect(card).to_be_visible()  # a dataset of this browser's: the class may help
    expect(teacher.locator("#class-note")).to_have_text(text["teach.class.no_session"])
    teacher.click("#follow-start")
    code = teacher.locator(".follow-dialog .follow-code").inner_text()
    teacher.locator(".follow-dialog .follow-close").click()
    teacher.locator("#class-open").click()
    expect(card).to_have_attribute("data-linked", "true")
    expect(card).to_have_attribute("data-waiting", "0")

    phone = make_page("phone", locale=locale)
    phone.goto(f"/join/{code}")
    student = phone.locator(".class-pictures-card")
    expect(student).to_be_visible()
    expect(student.locator("h2")).to_have_text(text["class_pictures.title"])
    expect(student.locator(".class-pictures-class")).to_have_text([" cats", " dogs"])
    camera = student.locator(".class-pictures-camera")
    assert camera.get_attribute("capture") == "environment"  # a phone offers its camera
    # what is missing is said before anything is sent: the name first, then the class
    student.locator(".class-pictures-send").click()
    expect(student.locator('[data-error-for="name"]')).to_have_text(
        text["class_pictures.need_name"])  # fmt: skip
    student.locator("[name=name]").fill("Mina")
    student.locator(".class-pictures-send").click()
    expect(student.locator('[data-error-for="class_id"]')).to_have_text(
        text["class_pictures.need_class"])  # fmt: skip
    # a file the browser cannot decode: said on the image field in the page's words, naming
    # the file, and nothing to send (was the browser's English "The source image could not be
    # decoded." after pressing send)
    student.get_by_label("cats").check()
    student.locator(".class-pictures-file").set_input_files(
        {"name": "broken.png", "mimeType": "image/png", "buffer": b"not a picture"})  # fmt: skip
    unreadable = text["class_pictures.unreadable"].replace("{file}", "broken.png")
    expect(student.locator('[data-error-for="image"]')).to_have_text(unreadable)
    expect(student.locator(".class-pictures-preview")).to_be_hidden()
    student.locator(".class-pictures-send").click()
    expect(student.locator('[data-error-for="image"]')).to_have_text(
        text["class_pictures.need_picture"])  # fmt: skip
    for seed, name in ((1, "dogs"), (2, "cats")):
        student.get_by_label(name).check()
        student.locator(".class-pictures-file").set_input_files(picture(seed))
        expect(student.locator(".class-pictures-preview")).to_be_visible()
        student.locator(".class-pictures-send").click()
        expect(student.locator(".class-pictures-status")).to_have_text(text["class_pictures.sent"])
    mine = student.locator(".class-pictures-mine li")
    expect(mine).to_have_count(2)
    expect(mine.first).to_have_attribute("data-status", "pending")
    screenshot(phone, f"class-pictures-student-sent-{lang}-360")

    waiting = teacher.locator("#class-pending li")
    expect(waiting).to_have_count(2)
    expect(waiting.locator(".class-who")).to_have_text(["Mina", "Mina"])
    expect(waiting.locator(".class-which")).to_have_text(["dogs", "cats"])
    expect(waiting.locator("img").first).to_have_js_property("complete", True)
    screenshot(teacher, f"class-pictures-teacher-waiting-{lang}-1920", full_page=False)
    waiting.first.locator(".class-accept").click()
    expect(teacher.locator("#class-last")).to_have_text(
        text["teach.class.done.accepted"].replace("{name}", "Mina"))  # fmt: skip
    expect(teacher.locator(".teach-layout")).to_have_attribute("data-pictures", "1")
    expect(waiting).to_have_count(1)
    waiting.first.locator(".class-reject").click()
    expect(waiting).to_have_count(0)

    expect(mine.nth(0)).to_have_attribute("data-status", "accepted")
    expect(mine.nth(1)).to_have_attribute("data-status", "rejected")
    outcome = {key: text[f"class_pictures.status.{key}"] for key in ("accepted", "rejected")}
    expect(mine.nth(0)).to_have_text(outcome["accepted"].replace("{name}", "dogs"))
    expect(mine.nth(1)).to_have_text(outcome["rejected"].replace("{name}", "cats"))
    screenshot(phone, f"class-pictures-student-outcomes-{lang}-360")
    screenshot(teacher, f"class-pictures-teacher-done-{lang}-1920", full_page=False)
    assert phone.evaluate("document.documentElement.scrollWidth") <= 360
    dataset_id = card.get_attribute("data-dataset") or teacher.evaluate(
        "new URLSearchParams(location.search).get('dataset')")  # fmt: skip
    images = stores.store.images(dataset_id, None)
    assert [(image.class_id, image.source) for image in images] == [(1, "class")]
