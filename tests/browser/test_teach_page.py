"""/teach in both languages: a dataset made on the page, pictures from Chromium's fake camera,
from the drawing pad (synthetic mouse strokes) and from a file, counted per class; a picture
moved and deleted; the camera's refusal explained on an insecure page. Screenshots at
1366×768, presenter 1920×1080 and a 360 px phone."""

import io

import pytest
from conftest import guarded_pages, own_datasets, save_screenshot, steady_box
from PIL import Image
from playwright.sync_api import expect

from app.i18n import messages


@pytest.fixture(scope="module", autouse=True)
def datasets(tmp_path_factory):
    with own_datasets(tmp_path_factory.mktemp("teach")) as made:
        yield made


@pytest.fixture
def pages(camera_browser, live_server):
    with guarded_pages(camera_browser, live_server) as make:
        yield make


def picture_count(page) -> int:
    return int(page.locator(".teach-layout").get_attribute("data-pictures") or 0)


# the pad holds a stroke: some pixel is not black
PAD_DRAWN = """() => {
  const pad = document.getElementById('pad');
  const data = pad.getContext('2d').getImageData(0, 0, pad.width, pad.height).data;
  return data.some((value, i) => i % 4 !== 3 && value > 0);
}"""


def wait_count(page, n: int) -> None:
    expect(page.locator(".teach-layout")).to_have_attribute("data-pictures", str(n))


def png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (50, 40), (200, 30, 30)).save(buffer, "PNG")
    return buffer.getvalue()


@pytest.mark.parametrize("lang", ["ko", "en"])
def test_teach_builds_a_dataset_from_camera_pad_and_files(pages, lang, datasets):
    page = pages()
    page.set_viewport_size({"width": 1366, "height": 768})
    page.goto(f"/teach?lang={lang}")
    page.click("#create")
    expect(page.locator("#dataset-summary")).to_contain_text("0")
    # the page writes its URL throttled: wait for the dataset id to be in it
    page.wait_for_function("() => new URL(location.href).searchParams.get('dataset')")
    dataset_id = page.evaluate("new URL(location.href).searchParams.get('dataset')")
    record = datasets.store.get(dataset_id)
    names = ["머그컵", "책", "공"] if lang == "ko" else ["mug", "book", "ball"]
    assert [c.name for c in record.classes] == names

    # the fake camera: one picture, then a burst of ten into the second class
    page.click("#camera-start")
    expect(page.locator("#camera-capture")).to_be_enabled()
    page.click("#camera-capture")
    wait_count(page, 1)
    page.select_option("#class-choice", "1")
    page.click("#camera-burst")
    page.wait_for_function(
        "() => Number(document.querySelector('.teach-layout').dataset.pictures) > 1"
    )
    after_burst = picture_count(page)
    stored = datasets.store.images(dataset_id)
    assert {i.source for i in stored} == {"camera"} and len(stored) == after_burst
    assert sum(1 for i in stored if i.class_id == 1) == after_burst - 1

    # a drawing: a synthetic stroke across the pad, into the third class
    page.select_option("#class-choice", "2")
    # the pad's place is read once the page stands still: the thumbnails have loaded and the class
    # card above (shown by its two-second poll once the URL names the dataset) has its text
    page.wait_for_function("() => [...document.querySelectorAll('#classes img')]"
                           ".every((image) => image.complete)")  # fmt: skip
    expect(page.locator("#class-note")).not_to_be_empty()
    box = steady_box(page, "#pad")
    page.mouse.move(box["x"] + 30, box["y"] + 30)
    page.mouse.down()
    for step in range(1, 20):
        page.mouse.move(box["x"] + 30 + step * 7, box["y"] + 30 + step * 6)
    page.mouse.up()
    page.wait_for_function(PAD_DRAWN)
    page.click("#pad-add")
    wait_count(page, after_burst + 1)
    drawing = next(i for i in datasets.store.images(dataset_id) if i.source == "drawing")
    assert drawing.class_id == 2
    pixels = Image.open(datasets.files.picture(dataset_id, drawing.digest)).convert("L")
    assert pixels.getextrema() == (0, 255)  # a white stroke on black

    # a file, then the same file again: a duplicate, not added
    page.set_input_files("#files", files=[{"name": "red.png", "mimeType": "image/png",
                                           "buffer": png()}])  # fmt: skip
    wait_count(page, after_burst + 2)
    page.set_input_files("#files", files=[{"name": "red2.png", "mimeType": "image/png",
                                           "buffer": png()}])  # fmt: skip
    expect(page.locator("#add-result")).to_contain_text("1")
    assert picture_count(page) == after_burst + 2

    # move the drawing to the first class, then delete it
    row = page.locator(f'li[data-digest="{drawing.digest}"]')
    row.locator("select").select_option("0")
    page.wait_for_function(f"""() => {{
        const rows = document.querySelectorAll('.class-row');
        return rows[0].querySelector('li[data-digest="{drawing.digest}"]') !== null;
    }}""")  # fmt: skip
    assert datasets.store.images(dataset_id, 0)[-1].digest == drawing.digest
    save_screenshot(page, f"teach-{lang}-1366")
    page.locator(f'li[data-digest="{drawing.digest}"] button').click()
    wait_count(page, after_burst + 1)
    assert all(i.digest != drawing.digest for i in datasets.store.images(dataset_id))

    # the same URL read again (reload) shows the same dataset, at presenter and phone sizes
    url = page.url
    for viewport, name in (("projector", "1920"), ("phone", "360")):
        other = pages(viewport)
        other.goto(url)
        expect(other.locator("#dataset-summary")).to_contain_text(str(after_burst + 1))
        wait_count(other, after_burst + 1)
        other.wait_for_function("() => [...document.images].every((i) => i.complete)")
        assert other.locator(".thumbs img").count() == after_burst + 1
        expect(other.locator("#add-card")).to_be_hidden()  # another browser: no owner token
        save_screenshot(other, f"teach-{lang}-{name}")
        if viewport == "phone":
            width = other.evaluate("document.documentElement.scrollWidth")
            assert width <= 360, f"the phone page scrolls sideways ({width} px)"


@pytest.mark.parametrize("lang", ["ko", "en"])
def test_an_insecure_page_says_why_there_is_no_camera(pages, lang):
    page = pages()
    page.add_init_script("Object.defineProperty(window, 'isSecureContext', {value: false})")
    page.goto(f"/teach?lang={lang}")
    note = page.locator("#camera-note")
    expect(note).to_contain_text("https")
    expect(note).to_contain_text("localhost")
    host = page.evaluate("location.host")
    expect(note).to_contain_text(host)


@pytest.mark.parametrize("lang", ["ko", "en"])
def test_the_train_link_opens_train_with_this_dataset_and_a_trained_start(pages, lang):
    """'Train' under the pictures opens /train with the dataset picked and the transfer recipe
    of docs/PERFORMANCE.md (it opened /train on MNIST, the hint asking for 'dataset "user" with
    this dataset's id', which no control of /train reads)."""
    page = pages("laptop")
    page.goto(f"/teach?lang={lang}")
    page.click("#create")
    page.wait_for_function("() => new URL(location.href).searchParams.get('dataset')")
    dataset_id = page.evaluate("new URL(location.href).searchParams.get('dataset')")
    hint = page.locator("#browse-card .hint").inner_text()
    assert '"user"' not in hint and "id" not in hint.split()
    page.click("#train-link")
    page.wait_for_url("**/train?**")
    expect(page.locator('#c-from option[value="bundled:tinyvgg_colour"]')).to_have_count(1)
    expect(page.locator("#c-data")).to_have_value(f"user:{dataset_id}")
    expect(page.locator("#c-model")).to_have_value("tinyvgg")
    expect(page.locator("#c-from")).to_have_value("bundled:tinyvgg_colour")  # the colour backbone
    expect(page.locator("#c-from option:checked")).to_contain_text(
        "컬러 백본" if lang == "ko" else "colour backbone"
    )
    expect(page.locator("#c-epochs")).to_have_value("30")
    expect(page.locator("#c-shift")).to_have_value("2")
    assert page.evaluate("new URL(location.href).searchParams.get('lang')") == lang
    save_screenshot(page, f"teach-train-link-{lang}-1366")


@pytest.mark.parametrize("lang", ["ko", "en"])
def test_refused_files_are_named_in_the_page_language_and_the_drop_zone_takes_keys(pages, lang):
    """A damaged picture among good ones: nothing added, the message names it; a file that is
    not a zip: said in the page's language (it was the server's English); the drop zone, which
    Tab reaches, opens the file chooser on Enter and on Space (it did nothing)."""
    text = messages(lang, "common", "teach")
    page = pages("laptop")
    page.goto(f"/teach?lang={lang}")
    page.click("#create")
    page.wait_for_function("() => new URL(location.href).searchParams.get('dataset')")
    page.set_input_files("#files", files=[
        {"name": "red.png", "mimeType": "image/png", "buffer": png()},
        {"name": "broken.png", "mimeType": "image/png", "buffer": b"\x89PNG\r\n\x1a\nbroken"},
    ])  # fmt: skip
    files_error = page.locator('#add-card [data-error-for="files"]')
    expect(files_error).to_contain_text("broken.png: ")
    assert "red.png" not in files_error.inner_text()
    assert picture_count(page) == 0
    page.set_input_files("#archive", files=[{"name": "set.zip", "mimeType": "application/zip",
                                             "buffer": b"PK\x03\x04 not really"}])  # fmt: skip
    expect(page.locator('[data-error-for="archive"], [data-error-for="*"]').filter(
        has_text=text["error.type.archive_not_zip"])).to_have_count(1)  # fmt: skip
    page.guard.expect_errors("status of 422", 2)
    # the file input is clicked (Chromium opens its chooser once per page until it is answered,
    # and after set_input_files not reliably: the clicks are what the zone does)
    page.evaluate("""() => { window.choosing = 0; document.getElementById('files')
      .addEventListener('click', () => { window.choosing += 1; }); }""")
    for count, key in enumerate(("Enter", " "), start=1):
        page.focus("#drop")
        page.keyboard.press(key)
        page.wait_for_function(f"() => window.choosing === {count}")


@pytest.mark.parametrize("lang", ["ko", "en"])
def test_your_datasets_are_listed_opened_and_deleted(pages, lang, datasets):
    """The datasets this browser made, listed on /teach, each opened by its link and deleted
    after asking (the server keeps 10 per browser and its refusal says "delete one first": no
    page could delete one). The second is made with the first's owner token, so the server
    counts this browser's datasets together (not every computer behind the school's address).
    Deleting the dataset on screen leaves a page for a new one."""
    text = messages(lang, "teach")
    page = pages("laptop")
    page.on("dialog", lambda dialog: dialog.accept())
    made = []
    for name in ("first", "second"):
        page.goto(f"/teach?lang={lang}")
        page.wait_for_selector("body[data-ready=true]")
        page.fill("#dataset-name", f"{name} {lang}")
        page.click("#create")
        page.wait_for_function("() => new URL(location.href).searchParams.get('dataset')")
        made.append(page.evaluate("new URL(location.href).searchParams.get('dataset')"))
    rows = page.locator("#mine-list li")
    expect(rows).to_have_count(2)
    owners = {datasets.store.get(dataset_id).token_digest for dataset_id in made}
    assert len(owners) == 1
    item = text["teach.mine.item"].replace("{images}", "0")
    expect(rows.locator("a")).to_have_text([item.replace("{name}", f"{n} {lang}")
                                            for n in ("first", "second")])  # fmt: skip
    expect(rows.nth(1).locator("a")).to_have_attribute("aria-current", "page")
    # the other one: deleted, the page stays on this one
    rows.nth(0).locator("button").click()
    expect(rows).to_have_count(1)
    assert datasets.store.get(made[0]) is None
    # open by its link, then delete the one on screen: a page to make a new one
    page.goto(f"/teach?lang={lang}")
    page.wait_for_selector("body[data-ready=true]")
    page.locator("#mine-list a").click()
    page.wait_for_url(f"**dataset={made[1]}**")
    page.locator("#mine-list button").click()
    page.wait_for_url(f"**/teach?lang={lang}")
    expect(page.locator("#create-form")).to_be_visible()
    expect(page.locator("#mine")).to_be_hidden()
    assert datasets.store.get(made[1]) is None


@pytest.mark.parametrize("lang", ["ko", "en"])
def test_a_dataset_needs_a_class_name(pages, lang):
    """No class name: said on the classes field, nothing made (a dataset without classes was
    made, and the page offers no way to add one: its class list stayed empty)."""
    text = messages(lang, "teach")
    page = pages("laptop")
    page.goto(f"/teach?lang={lang}")
    page.wait_for_selector("body[data-ready=true]")
    page.fill("#class-names", " , ")
    page.click("#create")
    expect(page.locator('#create-form [data-error-for="classes"]')).to_have_text(
        text["teach.dataset.need_classes"])  # fmt: skip
    expect(page.locator("#create-form")).to_be_visible()
    assert page.evaluate("new URL(location.href).searchParams.get('dataset') || ''") == ""
