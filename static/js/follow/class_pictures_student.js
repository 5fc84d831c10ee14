// A student's side of a class building a dataset together (app/class_pictures.py): once the
// teacher opens a dataset to the class, a card under the follow bar names it and its classes;
// the student types their name (kept for the tab), takes a photo with the phone's camera
// (capture=environment) or picks a picture, picks its class and sends it. The picture waits for
// the teacher, who takes it into the dataset or not; the card lists the student's pictures with
// what became of each. The card looks for the teacher's dataset and the outcomes every few
// seconds (the session's events carry the page, not this).

import { ApiError, clearErrors, requestJSON, showErrors } from "../api.js";
import { t } from "../i18n.js";
import { element } from "./dom.js";
import { studentId } from "./quiz_student.js";

const NAME_KEY = "cnnviz.class.name";
const CHECK_MS = 3000;
const SIDE = 640; // the longest side a photo keeps on its way (the dataset keeps 128 px)

/** The refusal of a file the browser cannot decode as a picture, on the image field, in the
 * reader's words (the browser's own message is English whatever the page's language). */
function unreadable(file) {
  const message = t("class_pictures.unreadable", { file: file.name || "?" });
  return new ApiError(0, message, { image: message });
}

/** `file` scaled down to SIDE as a JPEG (a phone photo is megabytes; the server shrinks it). */
async function shrunk(file) {
  let bitmap;
  try {
    bitmap = await createImageBitmap(file);
  } catch {
    throw unreadable(file);
  }
  const scale = Math.min(1, SIDE / Math.max(bitmap.width, bitmap.height));
  const canvas = element("canvas");
  canvas.width = Math.max(1, Math.round(bitmap.width * scale));
  canvas.height = Math.max(1, Math.round(bitmap.height * scale));
  canvas.getContext("2d").drawImage(bitmap, 0, 0, canvas.width, canvas.height);
  bitmap.close();
  return new Promise((resolve) => canvas.toBlob(resolve, "image/jpeg", 0.9));
}

function labelled(key, control) {
  const label = element("label", "class-pictures-field");
  label.append(document.createTextNode(t(key)), control);
  return label;
}

/** The card of follower page `code`, placed after `anchor`; `stop()` when the session ends. */
export function studentPictures(code, anchor) {
  const base = `/api/sessions/${encodeURIComponent(code)}`;
  let linked = null; // {dataset, name, classes}
  let card = null;
  let chosen = null; // the picture to send (a Blob)
  const previews = new Map(); // picture id → object URL of what this tab sent
  let timer = null;
  let waiting = 0; // this student's pictures the teacher has not decided on yet

  function build() {
    const node = element("section", "class-pictures-card", { "aria-labelledby": "class-pictures-title" });
    const title = element("h2", "", { id: "class-pictures-title" });
    const form = element("form", "class-pictures-form", { novalidate: "" });
    const name = element("input", "", { name: "name", maxlength: "40", autocomplete: "nickname", required: "" });
    name.value = window.sessionStorage.getItem(NAME_KEY) ?? "";
    const classes = element("fieldset", "class-pictures-classes");
    const camera = element("input", "class-pictures-camera", { type: "file", accept: "image/*", capture: "environment" });
    const file = element("input", "class-pictures-file", { type: "file", accept: "image/*" });
    const preview = element("img", "class-pictures-preview", { alt: "" });
    preview.hidden = true;
    const send = element("button", "class-pictures-send", { type: "submit" });
    send.textContent = t("class_pictures.send");
    const pickers = element("div", "class-pictures-pickers");
    pickers.append(labelled("class_pictures.camera", camera), labelled("class_pictures.file", file));
    form.append(
      labelled("class_pictures.name", name), element("p", "form-error", { "data-error-for": "name", role: "alert", hidden: "" }),
      classes, element("p", "form-error", { "data-error-for": "class_id", role: "alert", hidden: "" }),
      pickers, preview, element("p", "form-error", { "data-error-for": "image", role: "alert", hidden: "" }),
      send, element("p", "form-error", { "data-error-for": "*", role: "alert", hidden: "" }),
      element("p", "class-pictures-status", { role: "status" }),
    );
    for (const input of [camera, file]) {
      input.addEventListener("change", async () => {
        clearErrors(form);
        chosen = input.files[0] ?? null;
        preview.hidden = true;
        (input === camera ? file : camera).value = "";
        if (!chosen) return;
        try {
          (await createImageBitmap(chosen)).close(); // said now, not after "send"
        } catch {
          showErrors(form, unreadable(chosen));
          chosen = null;
          input.value = "";
          return;
        }
        preview.src = URL.createObjectURL(chosen);
        preview.hidden = false;
      });
    }
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      submit(form);
    });
    const hint = element("p", "class-pictures-hint");
    const mine = element("ul", "class-pictures-mine", { "aria-label": t("class_pictures.mine") });
    node.append(title, hint, form, mine);
    anchor.after(node);
    return node;
  }

  function showLinked() {
    card ??= build();
    card.dataset.dataset = linked.dataset;
    card.querySelector("h2").textContent = t("class_pictures.title");
    card.querySelector(".class-pictures-hint").textContent = t("class_pictures.hint", { name: linked.name, limit: linked.per_student });
    const fieldset = card.querySelector(".class-pictures-classes");
    const picked = fieldset.querySelector("input:checked")?.value;
    const legend = element("legend");
    legend.textContent = t("class_pictures.class");
    fieldset.replaceChildren(legend, ...linked.classes.map((c) => {
      const radio = element("input", "", { type: "radio", name: "class_id", value: String(c.id) });
      radio.checked = String(c.id) === picked;
      const label = element("label", "class-pictures-class");
      label.append(radio, document.createTextNode(` ${c.name}`));
      return label;
    }));
  }

  async function submit(form) {
    clearErrors(form);
    const say = (key) => (form.querySelector(".class-pictures-status").textContent = key ? t(key) : "");
    const name = form.querySelector("[name=name]").value.trim();
    const picked = form.querySelector("input[name=class_id]:checked");
    const missing = !name ? ["name", "class_pictures.need_name"] : !picked ? ["class_id", "class_pictures.need_class"]
      : !chosen ? ["image", "class_pictures.need_picture"] : null;
    if (missing) {
      showErrors(form, new ApiError(0, t(missing[1]), { [missing[0]]: t(missing[1]) }));
      return say("");
    }
    window.sessionStorage.setItem(NAME_KEY, name);
    const send = form.querySelector(".class-pictures-send");
    send.disabled = true;
    say("class_pictures.sending");
    try {
      const picture = await shrunk(chosen);
      const body = new FormData();
      body.append("image", picture, "photo.jpg");
      body.append("class_id", picked.value);
      body.append("student", studentId());
      body.append("name", name);
      const made = await requestJSON("POST", `${base}/pictures`, body);
      previews.set(made.id, URL.createObjectURL(picture));
      chosen = null;
      for (const input of form.querySelectorAll("input[type=file]")) input.value = "";
      form.querySelector(".class-pictures-preview").hidden = true;
      say("class_pictures.sent");
      await outcomes();
    } catch (error) {
      say("");
      showErrors(form, error);
    } finally {
      send.disabled = false;
    }
  }

  async function outcomes() {
    const mine = await requestJSON("GET", `${base}/pictures?student=${studentId()}`);
    waiting = mine.filter((picture) => picture.status === "pending").length;
    const classes = new Map(linked.classes.map((c) => [c.id, c.name]));
    card.querySelector(".class-pictures-mine").replaceChildren(...mine.map((picture) => {
      const item = element("li", "", { "data-status": picture.status });
      const image = element("img", "", { alt: t("class_pictures.sent_picture", { name: classes.get(picture.class_id) ?? "" }) });
      const src = previews.get(picture.id) ?? picture.url;
      if (src) image.src = src;
      else image.hidden = true;
      const text = element("span");
      text.textContent = t(`class_pictures.status.${picture.status}`, { name: classes.get(picture.class_id) ?? "" });
      item.append(image, text);
      return item;
    }));
  }

  async function check() {
    try {
      const found = await requestJSON("GET", `${base}/dataset`);
      if (!found.dataset) {
        card?.remove();
        card = null;
        linked = null;
        return;
      }
      const changed = JSON.stringify(found) !== JSON.stringify(linked);
      linked = found;
      if (changed) showLinked();
      if (changed || waiting > 0) await outcomes(); // outcomes change only while some wait
    } catch {
      /* the next look tries again */
    }
  }

  check();
  timer = window.setInterval(check, CHECK_MS);
  return {
    stop() {
      window.clearInterval(timer);
    },
  };
}
