"""Switching lessons quickly (a teacher holding → and ←): the receptive-field lesson's explorer
starts heavy requests (VGG-16's effective field, the depth sweep) that each switch leaves behind.
They must not use up the client's heavy slots: after ten switches the last lesson's explorer
draws its effective field with no 429, no console error and no error shown."""

from __future__ import annotations

from test_lessons_page import FRAME_READY

ERF_DRAWN = """() => {
  const doc = document.getElementById('explorer-frame')?.contentDocument;
  return Boolean(doc && doc.getElementById('results')?.dataset.erf);
}"""
SHOWN_ERRORS = """() => {
  const doc = document.getElementById('explorer-frame').contentDocument;
  return [...doc.querySelectorAll('[data-error-for]')].filter((s) => !s.hidden && s.textContent)
    .map((s) => s.textContent);
}"""


def test_ten_quick_switches_leave_no_slot_taken(page):
    refused = []
    page.on("response", lambda r: refused.append(r.url) if r.status == 429 else None)
    page.goto("/lessons/receptive-field?lang=en")
    for key in ["ArrowRight", "ArrowLeft"] * 5:  # receptive-field ⇄ training, back at the start
        page.wait_for_selector("body[data-ready=true]")
        # the explorer has sent its heavy requests before the lesson is left
        page.wait_for_function("""() => {
          const doc = document.getElementById('explorer-frame')?.contentDocument;
          return !doc || doc.getElementById('results')?.getAttribute('aria-busy') === 'true'
            || doc.body?.dataset.ready === 'true';
        }""")
        page.keyboard.press(key)
        page.wait_for_url("**/lessons/training*" if key == "ArrowRight" else "**/receptive-field*")
    page.wait_for_selector("body[data-ready=true]")
    page.wait_for_function(FRAME_READY, timeout=60_000)
    page.wait_for_function(ERF_DRAWN, timeout=120_000)
    assert page.evaluate(SHOWN_ERRORS) == []
    assert refused == []
