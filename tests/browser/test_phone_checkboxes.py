"""On a 360 px phone a checkbox keeps its label beside it: the phone layout's two equal columns
are for a label and its field, and put a checkbox's label half the screen away from its box."""

import pytest

PAGES = {
    "/conv": ["transposed", "bias"],
    "/pool": ["ceil", "include_pad", "backward"],
    "/activations": ["batch_norm"],
    "/architectures": ["blocks"],
    "/receptive-field": ["erf"],
}


@pytest.mark.parametrize("path", PAGES)
def test_checkbox_labels_sit_beside_their_boxes_on_a_phone(make_page, screenshot, path):
    page = make_page("phone")
    page.goto(f"{path}?lang=ko")
    for name in PAGES[path]:
        box = page.locator(f'.control-check input[name="{name}"]')
        box.wait_for(state="visible")
        # both boxes read in one go: the page may still move while its charts arrive
        box_at, label_at = box.evaluate(
            """(box) => [box, box.labels[0]].map((e) => {
                 const r = e.getBoundingClientRect();
                 return {x: r.x, y: r.y, width: r.width, height: r.height};
               })"""
        )
        gap = label_at["x"] - (box_at["x"] + box_at["width"])
        assert 0 <= gap <= 12, f"{name}: its label starts {gap:.0f} px after the box"
        assert label_at["y"] < box_at["y"] + box_at["height"]  # on the box's line
    screenshot(page, f"phone-checkboxes{path.replace('/', '-')}")
