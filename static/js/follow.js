// Classroom follow mode, on every page (loaded by base.html).
// Teacher: the header button starts a class session (code + QR + join link in a dialog); from then
// on this tab publishes its page state on every change, at most 10 times a second, one request at
// a time so followers never receive an older state after a newer one. The session lives in
// sessionStorage, so it follows the teacher from page to page within the tab.
// Follower: a page opened with ?follow=CODE (what /join/CODE redirects to) subscribes to the
// session's Server-Sent Events and applies each snapshot: another page → navigate there; the same
// page → set its declarative state (state.js), which moves the view and the player's step.
// A bar says "following"; detach stops applying, re-attach jumps to the latest snapshot.

import { watchStates } from "./state.js";
import { setButtonLabel, t } from "./i18n.js";
import { studentPictures } from "./follow/class_pictures_student.js";
import { studentQuiz } from "./follow/quiz_student.js";
import { teacherQuiz } from "./follow/quiz_teacher.js";
import { button, element } from "./follow/dom.js";

const TEACHER_KEY = "cnnviz.follow.teacher";
const PUBLISH_INTERVAL_MS = 100; // at most 10 publishes per second
const COUNT_POLL_MS = 2000; // follower count refresh while the dialog is open
const SETTLE_MS = 400; // a follower re-checks that a snapshot stuck (pages load data, clamp steps)
const SETTLE_TRIES = 5;
const LOCAL_PARAMS = ["lang", "present", "follow"]; // each viewer's own choices, never mirrored
const states = [];

/** The page as the teacher sees it now: path + state query, the state values, the step. */
function snapshot() {
  const url = new URL(window.location.href);
  const values = {};
  for (const state of states) {
    Object.assign(values, state.values());
    for (const [name, text] of new URLSearchParams(state.query())) url.searchParams.set(name, text);
  }
  for (const name of LOCAL_PARAMS) url.searchParams.delete(name);
  const step = Number.isInteger(values.step) ? values.step : null;
  return { page: url.pathname + url.search, state: values, step };
}

/* ---------------------------------------------------------------- teacher ------------------- */

/** The class session this tab started ({code, teacher_token, …}), or null. */
export function storedSession() {
  try {
    return JSON.parse(window.sessionStorage.getItem(TEACHER_KEY));
  } catch {
    return null;
  }
}

function teacher(headerButton) {
  let session = storedSession();
  let timer = null;
  let inFlight = false;
  let dirty = false;
  let lastSent = -Infinity;
  let dialog = null;
  let countTimer = null;
  const quiz = teacherQuiz(() => session);

  function label() {
    if (session) setButtonLabel(headerButton, "follow.live", { code: session.code });
    else setButtonLabel(headerButton, "follow.start");
    headerButton.setAttribute("aria-haspopup", "dialog");
    headerButton.classList.toggle("is-live", Boolean(session));
  }

  function forget() {
    session = null;
    window.sessionStorage.removeItem(TEACHER_KEY);
    window.clearTimeout(timer);
    timer = null;
    label();
    quiz.ended();
  }

  function schedule() {
    if (!session) return;
    dirty = true;
    if (timer !== null || inFlight) return;
    const wait = Math.max(0, lastSent + PUBLISH_INTERVAL_MS - performance.now());
    timer = window.setTimeout(publish, wait);
  }

  async function publish() {
    timer = null;
    if (!session || !dirty) return;
    dirty = false;
    inFlight = true;
    lastSent = performance.now();
    try {
      const response = await fetch(`/api/sessions/${session.code}/state`, {
        method: "POST",
        headers: { "Content-Type": "application/json", "X-Teacher-Token": session.teacher_token },
        body: JSON.stringify(snapshot()),
      });
      if (response.status === 404 || response.status === 403) forget(); // ended or expired
    } catch {
      dirty = true; // network hiccup: the next change (or this retry) sends the latest state
    } finally {
      inFlight = false;
      if (dirty) schedule();
    }
  }

  async function start() {
    const { page, state } = snapshot();
    const response = await fetch("/api/sessions", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ page, state }),
    });
    const body = await response.json().catch(() => ({}));
    if (!response.ok) throw new Error(typeof body.detail === "string" ? body.detail : response.statusText);
    session = body;
    window.sessionStorage.setItem(TEACHER_KEY, JSON.stringify(session));
    label();
    quiz.started();
    window.dispatchEvent(new CustomEvent("cnnviz:picture-wanted")); // a picture already chosen
  }

  async function end() {
    const ending = session;
    forget();
    closeDialog();
    if (!ending) return;
    await fetch(`/api/sessions/${ending.code}`, {
      method: "DELETE",
      headers: { "X-Teacher-Token": ending.teacher_token },
    }).catch(() => {});
  }

  async function refreshCount() {
    if (!session || !dialog) return;
    try {
      const response = await fetch(`/api/sessions/${session.code}`);
      if (response.status === 404) {
        forget();
        closeDialog();
        return;
      }
      const { followers } = await response.json();
      dialog.querySelector(".follow-count").textContent = t("follow.followers", { count: followers });
    } catch {
      /* the next poll tries again */
    }
  }

  function buildDialog() {
    const node = element("dialog", "follow-dialog", { "aria-labelledby": "follow-dialog-title" });
    const title = element("h2", "", { id: "follow-dialog-title" });
    title.textContent = t("follow.dialog_title");
    const codeLabel = element("p", "follow-code-label");
    codeLabel.textContent = t("follow.code");
    const link = element("a", "follow-url", { target: "_blank", rel: "noopener" });
    const actions = element("div", "follow-actions");
    actions.append(button("secondary follow-end", t("follow.end"), end),
                   button("follow-close", t("follow.close"), closeDialog));
    node.append(title, codeLabel, element("p", "follow-code"),
                element("div", "follow-qr", { role: "img" }), link,
                element("p", "follow-warning", { role: "note" }),
                element("p", "follow-count", { "aria-live": "polite" }),
                element("p", "form-error follow-error", { role: "alert" }), actions);
    node.addEventListener("close", () => window.clearInterval(countTimer));
    document.body.append(node);
    return node;
  }

  /** The dialog with the session's code, QR and link, or with why no session could start. */
  function openDialog(failure = null) {
    dialog ??= buildDialog();
    for (const node of dialog.querySelectorAll(":scope > :not(h2, .follow-error, .follow-actions)")) {
      node.hidden = Boolean(failure);
    }
    dialog.querySelector(".follow-end").hidden = Boolean(failure);
    const error = dialog.querySelector(".follow-error");
    error.hidden = !failure;
    error.textContent = failure ? t("follow.error", { message: failure.message }) : "";
    if (failure) {
      if (!dialog.open) dialog.showModal();
      return;
    }
    dialog.querySelector(".follow-code").textContent = session.code;
    const link = dialog.querySelector(".follow-url");
    link.href = session.join_url;
    link.textContent = session.join_url;
    // Served on 127.0.0.1 only: the phones cannot open the link; say so, with the command.
    const warning = dialog.querySelector(".follow-warning");
    const unreachable = session.reachable === false;
    warning.textContent = unreachable ? t("follow.loopback", { commands: session.lan_commands.join("  ·  ") }) : "";
    warning.hidden = !unreachable;
    const qr = dialog.querySelector(".follow-qr");
    qr.setAttribute("aria-label", t("follow.qr", { url: session.join_url }));
    // The SVG comes from our own server (paths only); parsed as XML, never as HTML.
    const svg = new DOMParser().parseFromString(session.qr_svg, "image/svg+xml").documentElement;
    qr.replaceChildren(document.importNode(svg, true));
    dialog.querySelector(".follow-count").textContent = t("follow.followers", { count: 0 });
    if (!dialog.open) dialog.showModal();
    refreshCount();
    window.clearInterval(countTimer);
    countTimer = window.setInterval(refreshCount, COUNT_POLL_MS);
  }

  function closeDialog() {
    window.clearInterval(countTimer);
    if (dialog?.open) dialog.close();
  }

  headerButton.addEventListener("click", async () => {
    if (!session) {
      headerButton.disabled = true;
      try {
        await start();
      } catch (error) {
        openDialog(error);
        return;
      } finally {
        headerButton.disabled = false;
      }
    }
    openDialog();
  });

  watchStates((state) => {
    states.push(state);
    state.subscribe(schedule);
    schedule();
  });
  // The teacher's own picture (/features) goes to the class's session slot, made small first.
  window.addEventListener("cnnviz:picture", (event) => {
    if (session) sharePicture(session, event.detail.file).catch(() => {});
  });
  label();
  if (session) quiz.started();
  // Arriving on a new page is itself news for the followers; by DOMContentLoaded every page
  // module has run, so states created at start-up are in the first snapshot.
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", schedule);
  else schedule();
}

const PICTURE_SIDE = 640; // the longest side a shared picture keeps (the models see ≤ 224 px)

/** Send `file` to the session's picture slot, scaled down to PICTURE_SIDE as a JPEG. */
async function sharePicture(session, file) {
  const bitmap = await createImageBitmap(file);
  const scale = Math.min(1, PICTURE_SIDE / Math.max(bitmap.width, bitmap.height));
  const canvas = document.createElement("canvas");
  canvas.width = Math.max(1, Math.round(bitmap.width * scale));
  canvas.height = Math.max(1, Math.round(bitmap.height * scale));
  canvas.getContext("2d").drawImage(bitmap, 0, 0, canvas.width, canvas.height);
  bitmap.close();
  const blob = await new Promise((resolve) => canvas.toBlob(resolve, "image/jpeg", 0.88));
  await fetch(`/api/sessions/${session.code}/picture`, {
    method: "PUT",
    headers: { "Content-Type": "image/jpeg", "X-Teacher-Token": session.teacher_token },
    body: blob,
  });
}

/* ---------------------------------------------------------------- follower ------------------ */

function follower(code, headerButton) {
  let latest = null;
  let attached = true;
  let applying = false;
  let settleTimer = null;

  if (headerButton) headerButton.hidden = true; // a follower does not start sessions from a mirrored page
  const bar = element("div", "follow-bar", { role: "status" });
  const status = element("span", "follow-status");
  const toggle = button("follow-toggle", t("follow.detach"), () => (attached ? detach() : attach()));
  bar.append(status, toggle);
  (document.querySelector(".site-header") ?? document.body.firstElementChild)?.after(bar);
  const quiz = studentQuiz(code, bar);
  const pictures = studentPictures(code, bar); // a dataset the class builds together, if any
  document.documentElement.dataset.follow = code;
  // What the page scrolls into view (an opened layer, a unit) stops below the bar, not under it
  // (follow.css: scroll-padding-top); on a phone the bar takes two lines.
  new ResizeObserver(() => {
    document.documentElement.style.setProperty("--follow-bar-height", `${bar.offsetHeight}px`);
  }).observe(bar);
  // The teacher's own picture: its URL on the root element (a page module may load after the
  // event), and an event for a page already listening (/features takes it as its picture).
  function sharedPicture(version) {
    const url = `/api/sessions/${encodeURIComponent(code)}/picture?v=${version}`;
    if (document.documentElement.dataset.followPicture === url) return;
    document.documentElement.dataset.followPicture = url;
    window.dispatchEvent(new CustomEvent("cnnviz:session-picture"));
  }

  function show(key) {
    status.textContent = t(key, { code });
    bar.dataset.state = key.split(".")[1];
    toggle.hidden = key === "follow.ended";
    toggle.textContent = t(attached ? "follow.detach" : "follow.attach");
    toggle.setAttribute("aria-pressed", String(!attached));
  }

  function applyTo(state, values) {
    const own = state.values();
    const patch = {};
    for (const [name, value] of Object.entries(values)) if (name in own) patch[name] = value;
    applying = true;
    try {
      state.set(patch);
    } finally {
      applying = false;
    }
  }

  /** Fields of `values` this state holds with another value. */
  function differs(state, values) {
    const own = state.values();
    return Object.entries(values).some(
      ([name, value]) => name in own && JSON.stringify(own[name]) !== JSON.stringify(value),
    );
  }

  function apply(event) {
    const target = new URL(event.page, window.location.origin);
    if (target.origin !== window.location.origin) return;
    if (target.pathname !== window.location.pathname) {
      target.searchParams.set("follow", code);
      window.location.assign(target.pathname + target.search);
      return;
    }
    for (const state of states) applyTo(state, event.state);
    settle(event, SETTLE_TRIES);
  }

  // A page may not take a snapshot whole at once: a step beyond the old trace is clamped until
  // the new trace has loaded. Re-apply the same snapshot a few times until it sticks.
  function settle(event, tries) {
    window.clearTimeout(settleTimer);
    settleTimer = window.setTimeout(() => {
      if (!attached || event !== latest) return;
      if (tries === 0 || !states.some((state) => differs(state, event.state))) {
        bar.dataset.settledId = String(event.event_id); // done with this snapshot (tests wait on it)
        return;
      }
      for (const state of states) applyTo(state, event.state);
      settle(event, tries - 1);
    }, SETTLE_MS);
  }

  function detach() {
    attached = false;
    show("follow.detached");
  }

  function attach() {
    attached = true;
    show("follow.following");
    if (latest) apply(latest);
  }

  // Touching a control of the page means the student wants to explore: stop following.
  const main = document.getElementById("main");
  for (const type of ["input", "change"]) {
    main?.addEventListener(type, (event) => {
      if (event.isTrusted && attached && !applying) detach();
    });
  }

  watchStates((state) => {
    states.push(state);
    // After the page has wired its own listeners (it subscribes right after creating the state).
    window.setTimeout(() => {
      if (!attached || !latest) return;
      applyTo(state, latest.state);
      settle(latest, SETTLE_TRIES);
    }, 0);
  });

  const source = new EventSource(`/api/sessions/${encodeURIComponent(code)}/events`);
  source.addEventListener("open", () => show(attached ? "follow.following" : "follow.detached"));
  source.addEventListener("state", (message) => {
    latest = JSON.parse(message.data);
    bar.dataset.eventId = String(latest.event_id);
    quiz.show(latest.quiz ?? null); // a question reaches a student who explores on their own too
    if (latest.picture) sharedPicture(latest.picture);
    if (attached) apply(latest);
  });
  source.addEventListener("end", () => {
    source.close();
    ended();
  });
  source.addEventListener("error", () => {
    if (source.readyState === EventSource.CLOSED) ended(); // e.g. 404: the session is gone
    else show("follow.reconnecting"); // the browser retries, sending Last-Event-ID
  });

  function ended() {
    pictures.stop();
    attached = false;
    show("follow.ended");
    const url = new URL(window.location.href);
    url.searchParams.delete("follow");
    window.history.replaceState(window.history.state, "", url);
  }

  show("follow.connecting");
}

const followCode = new URLSearchParams(window.location.search).get("follow");
const startButton = document.getElementById("follow-start");
// An explorer framed in a lesson (?embed=1) stays out: the lesson page around it is what the
// teacher publishes and the followers follow.
const embedded = document.documentElement.classList.contains("embed");
if (embedded) startButton?.remove();
else if (followCode) follower(followCode, startButton);
else if (startButton) teacher(startButton);
