"""Every page, keyboard and screen-reader first: each control is reachable with Tab and shows
where the focus is, each control has an accessible name, reduced motion stops animation, a
360 px phone never scrolls sideways, and presenter mode (P) enlarges the type and hides the
chrome; F is full screen; space and → play and step where the page has a step player."""

import pytest

from app.routes.pages import PAGES

ALL_PAGES = sorted(PAGES) + ["/lessons", "/lessons/convolution", "/join"]
NO_READY_MARK = {"/features", "/join"}  # pages whose module sets no body[data-ready]

# Interactive elements a keyboard user must reach, as the page shows them now.
CANDIDATES = """() => {
  const selector = 'a[href], button, input:not([type=hidden]), select, textarea, summary, iframe,'
    + ' [tabindex]:not([tabindex="-1"])';
  const shown = (el) => {
    if (el.closest('[hidden], [inert]') || el.getClientRects().length === 0) return false;
    const closed = el.closest('details:not([open])');
    if (closed && el.tagName !== 'SUMMARY') return false;
    if (el.tagName === 'SUMMARY' && el.parentElement.closest('details:not([open])')) return false;
    const style = getComputedStyle(el);
    return style.visibility !== 'hidden' && style.display !== 'none';
  };
  return [...document.querySelectorAll(selector)]
    .filter((el) => shown(el) && !el.disabled && el.tabIndex >= 0)
    .map((el, i) => { el.dataset.a11y = String(i); return el.dataset.a11y; });
}"""

ACCESSIBLE_NAME = """(el) => {
  const text = (node) => (node ? node.textContent.replace(/\\s+/g, ' ').trim() : '');
  if ((el.getAttribute('aria-label') || '').trim()) return el.getAttribute('aria-label').trim();
  const by = el.getAttribute('aria-labelledby');
  if (by) return by.split(/\\s+/).map((id) => text(document.getElementById(id))).join(' ').trim();
  if (el.labels && el.labels.length) return [...el.labels].map(text).join(' ').trim();
  if (el.tagName === 'IFRAME') return (el.title || '').trim();
  if (['A', 'BUTTON', 'SUMMARY'].includes(el.tagName)) {
    return text(el) || (el.title || '').trim() || (el.querySelector('img[alt]')?.alt || '').trim();
  }
  if (el.tagName === 'INPUT' && ['submit', 'button'].includes(el.type)) return el.value;
  return (el.title || '').trim();
}"""

FOCUS_SHOWN = """() => {
  const el = document.activeElement;
  if (!el || el === document.body) return null;
  if (el.tagName === 'IFRAME') return {id: el.dataset.a11y || null, visible: true, frame: true};
  const style = getComputedStyle(el);
  const outline = style.outlineStyle !== 'none' && parseFloat(style.outlineWidth) > 0;
  const ring = style.boxShadow && style.boxShadow !== 'none';
  // an outline drawn outside the box must show at least three of its sides: a scrolling or
  // clipping ancestor cut a grid's ring in .grid-fit down to its right edge
  const drawn = parseFloat(style.outlineOffset) + parseFloat(style.outlineWidth);
  const reach = outline ? Math.max(0, drawn) : 0;
  const box = el.getBoundingClientRect();
  const cut = new Set();
  for (let up = el.parentElement; up && up !== document.documentElement; up = up.parentElement) {
    const over = getComputedStyle(up);
    const r = up.getBoundingClientRect();
    const left = r.left + up.clientLeft, top = r.top + up.clientTop;
    if (over.overflowX !== 'visible') {
      if (box.left - reach < left - 1) cut.add('left');
      if (box.right + reach > left + up.clientWidth + 1) cut.add('right');
    }
    if (over.overflowY !== 'visible') {
      if (box.top - reach < top - 1) cut.add('top');
      if (box.bottom + reach > top + up.clientHeight + 1) cut.add('bottom');
    }
  }
  const clipped = cut.size >= 2;
  return {id: el.dataset.a11y || null, visible: (outline || ring) && !clipped, frame: false,
          what: el.outerHTML.slice(0, 120)};
}"""


def settle(page, path: str, query: str = "lang=en"):
    page.goto(f"{path}?{query}")
    if path in NO_READY_MARK:
        page.wait_for_load_state("networkidle")
    else:
        page.wait_for_selector("body[data-ready=true]")
    if page.locator("#explorer-frame").count():
        page.wait_for_function("""() => document.getElementById('explorer-frame')
          .contentDocument?.body?.dataset.ready === 'true'""")
    page.wait_for_function(SETTLED)


# Settled: the fonts are in and no finite animation or transition is still running.
SETTLED = """() => document.fonts.status === 'loaded' && document.getAnimations().every(
  (a) => a.playState !== 'running' || a.effect?.getComputedTiming().endTime === Infinity)"""


def unnamed_controls(page) -> list[str]:
    names = page.eval_on_selector_all(
        "button, input:not([type=hidden]), select, textarea, a[href], summary, iframe",
        "nodes => nodes.filter(n => n.getClientRects().length)"
        f".map(n => [n.outerHTML.slice(0, 100), ({ACCESSIBLE_NAME})(n)])",
    )
    return [html for html, name in names if not name]


def tab_walk(page) -> tuple[list[str], list[str]]:
    """Press Tab through the page: (controls never reached, controls focused invisibly)."""
    wanted = set(page.evaluate(CANDIDATES))
    reached, hidden_focus = set(), []
    page.locator("body").focus()
    # Tab walks a framed explorer too before it comes back to the page: allow for it.
    for _ in range(len(wanted) + (400 if page.locator("iframe").count() else 20)):
        page.keyboard.press("Tab")
        state = page.evaluate(FOCUS_SHOWN)
        if state is None or state["id"] is None:
            continue
        if not state["visible"]:
            hidden_focus.append(state["what"])
        reached.add(state["id"])
        if reached >= wanted:
            break
    missing = page.evaluate(
        "ids => ids.map(id => document.querySelector(`[data-a11y='${id}']`)"
        ".outerHTML.slice(0, 100))",
        sorted(wanted - reached),
    )
    return missing, hidden_focus


@pytest.mark.parametrize("path", ALL_PAGES)
def test_tab_reaches_every_control_with_a_visible_focus_and_every_control_is_named(page, path):
    settle(page, path)
    assert unnamed_controls(page) == [], f"controls without an accessible name on {path}"
    missing, hidden_focus = tab_walk(page)
    assert missing == [], f"not reachable with Tab on {path}"
    assert hidden_focus == [], f"focus not visible on {path}"


def test_the_checks_catch_a_bad_control(page):
    """A nameless button without a focus ring, and a control Tab skips: all three reported."""
    settle(page, "/lessons")
    page.evaluate("""() => {
      const bad = document.createElement('button');
      bad.className = 'bad';
      bad.addEventListener('focus', () => { bad.style.outline = 'none'; });
      const skipped = document.createElement('input');
      skipped.setAttribute('aria-label', 'skipped');
      skipped.addEventListener('focus', () => skipped.blur());
      document.querySelector('main').append(bad, skipped);
    }""")
    assert any('class="bad"' in html for html in unnamed_controls(page))
    missing, hidden_focus = tab_walk(page)
    assert any('class="bad"' in html for html in hidden_focus)
    assert any("skipped" in html for html in missing)


@pytest.mark.parametrize("path", ALL_PAGES)
def test_phone_width_and_reduced_motion(make_page, path):
    phone = make_page("phone", reduced_motion="reduce")
    settle(phone, path)
    width = phone.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    assert width[0] <= width[1], f"{path} scrolls sideways at 360 px: {width}"
    assert phone.evaluate("matchMedia('(prefers-reduced-motion: reduce)').matches")
    running = phone.evaluate(
        "document.getAnimations().filter(a => a.playState === 'running').length"
    )
    assert running == 0
    durations = phone.eval_on_selector_all(
        "button, a, .cell",
        "nodes => [...new Set(nodes.map(n => getComputedStyle(n).transitionDuration))]",
    )
    assert set(durations) <= {"0s"}


@pytest.mark.parametrize("path", ALL_PAGES)
def test_presenter_mode_enlarges_type_and_keys_p_and_f_are_wired(make_page, path):
    page = make_page("projector")
    page.add_init_script("""
      window.fullscreenCalls = 0;
      Element.prototype.requestFullscreen = function () {
        window.fullscreenCalls += 1;
        return Promise.resolve();
      };
    """)
    settle(page, path)
    size = "parseFloat(getComputedStyle(document.querySelector('main')).fontSize)"
    before = page.evaluate(size)
    page.locator("h1").first.click()  # the page, not a control, has the keys
    page.keyboard.press("p")
    page.wait_for_function("document.documentElement.classList.contains('presenter')")
    assert page.evaluate(size) >= 1.3 * before
    assert not page.locator(".site-nav").is_visible()
    if path == "/join":  # a student joining a class gets no teacher buttons (key P still works)
        assert page.locator("#presenter-toggle").count() == 0
    else:
        assert page.get_attribute("#presenter-toggle", "aria-pressed") == "true"
    assert "present=1" in page.url
    page.keyboard.press("f")
    page.wait_for_function("window.fullscreenCalls === 1")
    # explorers with a step player on show (/features keeps its unit player in the closed
    # unit panel until a unit is opened)
    if page.locator(".player-position").count() == 1 and page.is_visible(".player-position"):
        position = page.inner_text(".player-position")
        page.keyboard.press("ArrowRight")
        page.wait_for_function(
            f"document.querySelector('.player-position').textContent !== {position!r}"
        )
        page.keyboard.press(" ")
        page.wait_for_selector(".player.is-playing")
        page.keyboard.press(" ")
        page.wait_for_selector(".player:not(.is-playing)")
    page.keyboard.press("p")
    page.wait_for_function("!document.documentElement.classList.contains('presenter')")
    assert page.evaluate(size) == before
    assert page.locator(".site-nav").is_visible()
