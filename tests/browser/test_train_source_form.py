"""/train's form says what a run from a transfer source trains: picking the bundled colour
backbone (TinyVGG 32 channels wide with batch norm, options recorded in its file) ticks and
disables batch norm and shows the width, with a hint that the starting weights decide them;
back to "from scratch" the student's own choices return. Also when /teach's Train link opens
/train with the backbone. Korean and English, 1366 and 360 px, no sideways scroll."""

import pytest
from conftest import own_datasets, save_screenshot
from drivers import no_sideways_scroll
from playwright.sync_api import expect

from app.i18n import catalogue
from cnncore.weights import WEIGHTS_DIR, read_metadata

COLOUR = "bundled:tinyvgg_colour"
# the student's own architecture: none of it what the colour backbone trains
OWN = "preset=custom&model=lenet5&activation=sigmoid&dropout=0.2"


@pytest.fixture(scope="module", autouse=True)
def datasets(tmp_path_factory):
    with own_datasets(tmp_path_factory.mktemp("source-form")) as made:
        yield made


def colour_hint(lang: str) -> str:
    """The hint under batch norm, with the width the bundled file records (32)."""
    text = catalogue(lang, "train")
    width = read_metadata(WEIGHTS_DIR / "tinyvgg_colour.safetensors").options["width"]
    assert width == 32
    channels = text["train.from.width"].replace("{width}", str(width))
    return f"{text['train.from.decides']} · {channels}"


def check_decided(page, lang: str) -> None:
    expect(page.locator("#c-bn")).to_be_checked()
    expect(page.locator("#c-bn")).to_be_disabled()
    expect(page.locator("#arch-from-hint")).to_have_text(colour_hint(lang))
    expect(page.locator("#c-model")).to_have_value("tinyvgg")
    expect(page.locator("#c-activation")).to_have_value("default")
    expect(page.locator("#c-dropout")).to_have_value("0")


@pytest.mark.parametrize("viewport", ["laptop", "phone"])
@pytest.mark.parametrize("lang", ["ko", "en"])
def test_the_colour_backbone_decides_batch_norm_and_width(make_page, lang, viewport):
    page = make_page(viewport)
    page.goto(f"/train?lang={lang}&{OWN}")
    page.wait_for_selector("body[data-ready=true]")
    hint = page.locator("#arch-from-hint")
    expect(hint).to_be_hidden()
    page.select_option("#c-from", COLOUR)
    check_decided(page, lang)
    hint.scroll_into_view_if_needed()
    no_sideways_scroll(page)
    save_screenshot(page, f"train-source-form-{lang}-{viewport}", full_page=False)
    page.select_option("#c-from", "")  # from scratch: the student's own choices again
    expect(hint).to_be_hidden()
    expect(page.locator("#c-bn")).not_to_be_checked()
    expect(page.locator("#c-bn")).to_be_enabled()
    expect(page.locator("#c-model")).to_have_value("lenet5")
    expect(page.locator("#c-activation")).to_have_value("sigmoid")
    expect(page.locator("#c-dropout")).to_have_value("0.2")
    # a student who ticked batch norm: LeNet-5's bundled weights have none, then it is back
    page.check("#c-bn")
    page.select_option("#c-from", "bundled:lenet5")
    expect(page.locator("#c-bn")).not_to_be_checked()
    expect(page.locator("#c-bn")).to_be_disabled()
    expect(hint).to_have_text(catalogue(lang, "train")["train.from.decides"])  # no width
    page.select_option("#c-from", "")
    expect(page.locator("#c-bn")).to_be_checked()
    page.wait_for_function("() => new URL(location.href).searchParams.get('bn') === '1'")
    no_sideways_scroll(page)


@pytest.mark.parametrize("lang", ["ko", "en"])
def test_teachs_train_link_shows_the_backbones_batch_norm_and_width(make_page, lang):
    page = make_page("laptop")
    page.goto(f"/teach?lang={lang}")
    page.click("#create")
    page.wait_for_function("() => new URL(location.href).searchParams.get('dataset')")
    page.click("#train-link")
    page.wait_for_url("**/train?**")
    page.wait_for_selector("body[data-ready=true]")
    expect(page.locator("#c-from")).to_have_value(COLOUR)
    check_decided(page, lang)
    no_sideways_scroll(page)
    page.select_option("#c-from", "")  # the link chose TinyVGG, without batch norm
    expect(page.locator("#c-bn")).not_to_be_checked()
    expect(page.locator("#c-model")).to_have_value("tinyvgg")
