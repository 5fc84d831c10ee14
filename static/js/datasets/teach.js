// The teach page: make a dataset of your own pictures — classes, then pictures from the webcam,
// a drawing pad, files (chosen, dropped or pasted) or a zip of class folders — and browse them:
// move a picture to another class, delete it. Wiring only: requests in dataset_api.js, the
// camera in camera.js, the pad in pad.js, live prediction in live.js, the state table in
// teach_state.js.

import { ApiError, clearErrors, showErrors } from "../api.js";
import { t } from "../i18n.js";
import { createState } from "../state.js";
import { captureFrame, startCamera, whyNoCamera } from "./camera.js";
import {
  addArchive,
  addPictures,
  createDataset,
  deletePicture,
  getDataset,
  listPictures,
  movePicture,
  owns,
} from "./dataset_api.js";
import { createLive } from "./live.js";
import { createMyDatasets } from "./my_datasets.js";
import { DrawingPad } from "./pad.js";
import { TEACH_STATE } from "./teach_state.js";

const state = createState(TEACH_STATE);
const root = document.querySelector(".teach-layout");
const $ = (id) => document.getElementById(id);
let dataset = null;
let pictureCount = 0;

function fail(error) {
  showErrors(root, error);
}

function element(tag, props = {}, children = []) {
  const node = Object.assign(document.createElement(tag), props);
  node.append(...children);
  return node;
}

function summary() {
  $("dataset-summary").textContent = t("teach.dataset.summary", {
    name: dataset.name, images: dataset.images, classes: dataset.classes.length, version: dataset.version,
  });
}

function fillClassChoice() {
  const choice = $("class-choice");
  choice.replaceChildren(...dataset.classes.map((c) => element("option", { value: String(c.id), textContent: `${c.name} (${c.images})` })));
  const wanted = dataset.classes.some((c) => c.id === state.get("class")) ? state.get("class") : dataset.classes[0]?.id ?? 0;
  choice.value = String(wanted);
  state.set({ class: wanted });
}

function thumb(picture) {
  const mine = owns(dataset.id);
  const image = element("img", { src: picture.url, alt: t("teach.browse.picture", { source: t(`teach.source.${picture.source}`) }) });
  const item = element("li", {}, [image]);
  item.dataset.digest = picture.digest;
  if (!mine) return item;
  const move = element("select", { ariaLabel: t("teach.browse.move") }, dataset.classes.map((c) => element("option", { value: String(c.id), textContent: c.name })));
  move.value = String(picture.class_id);
  move.addEventListener("change", () => change(() => movePicture(dataset.id, picture.digest, Number(move.value))));
  const remove = element("button", { type: "button", textContent: t("teach.browse.delete") });
  remove.addEventListener("click", () => change(() => deletePicture(dataset.id, picture.digest)));
  item.append(move, remove);
  return item;
}

async function showPictures() {
  const pictures = await listPictures(dataset.id);
  pictureCount = pictures.length;
  $("classes").replaceChildren(...dataset.classes.map((c) => element("section", { className: "class-row" }, [
    element("h3", { textContent: `${c.name} · ${t("teach.browse.count", { n: c.images })}` }),
    element("ul", { className: "thumbs" }, pictures.filter((p) => p.class_id === c.id).map(thumb)),
  ])));
  root.dataset.pictures = String(pictureCount);
}

// Train it: /train's form filled with this dataset and the transfer recipe measured on such
// pictures (docs/PERFORMANCE.md, "A wider colour backbone"; benchmarks/teach_transfer.py runs
// the same recipe): the bundled colour backbone (TinyVGG 32 channels wide with batch norm,
// pretrained on generated colour things, 32×32), Adam 3e-3, cosine schedule, batch 16,
// horizontal flips, shifts of 2 pixels, 30 epochs.
const TRAIN_RECIPE = {
  preset: "custom", model: "tinyvgg", from: "bundled:tinyvgg_colour", lr: "0.003", schedule: "cosine",
  batch: "16", epochs: "30", flip: "1", shift: "2",
};

function trainLink() {
  const link = $("train-link");
  const query = new URLSearchParams(new URL(link.href).search);
  for (const [name, value] of Object.entries({ ...TRAIN_RECIPE, data: `user:${dataset.id}` })) query.set(name, value);
  link.href = `/train?${query}`;
}

// this browser's datasets: open one, delete one (the dataset on screen: back to a new one)
const myDatasets = createMyDatasets({ box: $("mine"), list: $("mine-list"), make: $("mine-new"), errors: $("mine") }, () => {
  window.location.assign(`/teach?${new URLSearchParams({ lang: document.documentElement.lang })}`);
});

async function show(found) {
  dataset = found;
  state.set({ dataset: dataset.id });
  trainLink();
  myDatasets.show(dataset.id);
  summary();
  fillClassChoice();
  $("add-card").hidden = !owns(dataset.id);
  $("browse-card").hidden = false;
  $("create-form").hidden = true;
  await showPictures();
  await live.show(dataset, owns(dataset.id));
}

async function change(request) {
  clearErrors(root);
  try {
    const answer = await request();
    await show(answer.dataset ?? answer);
    if (answer.added) {
      $("add-result").textContent = t("teach.add.result", { added: answer.added.length, duplicates: answer.duplicates.length });
    }
  } catch (error) {
    fail(error);
  }
}

const addTo = (pictures, source) => change(() => addPictures(dataset.id, Number($("class-choice").value), pictures, source));

$("create-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  clearErrors(root);
  const classes = $("class-names").value.split(",").map((s) => s.trim()).filter(Boolean);
  if (classes.length === 0) {
    // the page has no other way to add a class later: a dataset without one would be a dead end
    const message = t("teach.dataset.need_classes");
    fail(new ApiError(0, message, { classes: message }));
    return;
  }
  try {
    await show(await createDataset($("dataset-name").value.trim(), classes));
  } catch (error) {
    fail(error);
  }
});

$("class-choice").addEventListener("change", () => state.set({ class: Number($("class-choice").value) }));

// --- the webcam ---------------------------------------------------------------------------------
const video = $("camera");
const note = $("camera-note");
const refused = whyNoCamera();
if (refused) note.textContent = t(refused, { host: window.location.host, port: window.location.port || "80" });
$("camera-start").addEventListener("click", async () => {
  try {
    await startCamera(video);
    note.textContent = t("teach.camera.on");
    $("camera-capture").disabled = false;
    $("camera-burst").disabled = false;
  } catch (error) {
    note.textContent = t(error.message, { host: window.location.host, port: window.location.port || "80" });
  }
});
$("camera-capture").addEventListener("click", async () => addTo([["camera.png", await captureFrame(video)]], "camera"));
$("camera-burst").addEventListener("click", async () => {
  const frames = [];
  for (let i = 0; i < 10; i += 1) {
    frames.push([`camera-${i + 1}.png`, await captureFrame(video)]);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  await addTo(frames, "camera");
});

// --- the drawing pad ------------------------------------------------------------------------------
const pad = new DrawingPad($("pad"));
$("pad-clear").addEventListener("click", () => pad.clear());
$("pad-add").addEventListener("click", async () => {
  if (!pad.drawn) return;
  await addTo([["drawing.png", await pad.toBlob()]], "drawing");
  pad.clear();
});

// --- live prediction from a trained run (live.js) ------------------------------------------------
const live = createLive({
  card: $("live-card"), note: $("live-note"), run: $("live-run"), runId: $("live-run-id"), refresh: $("live-refresh"),
  toggle: $("live-toggle"), bars: $("live-bars"), rate: $("live-rate"), video: $("live-camera"),
  pad: $("live-pad"), padClear: $("live-pad-clear"), camera: video,
});

// --- files: chosen, dropped, pasted; a zip of class folders ----------------------------------------
const named = (files) => [...files].filter((f) => f.type.startsWith("image/")).map((f) => [f.name || "pasted.png", f]);
$("files").addEventListener("change", async (event) => {
  if (event.target.files.length) await addTo(named(event.target.files), "file");
  event.target.value = "";
});
$("archive").addEventListener("change", async (event) => {
  const [file] = event.target.files;
  if (file) await change(() => addArchive(dataset.id, file));
  event.target.value = "";
});
const drop = $("drop");
drop.addEventListener("dragover", (event) => {
  event.preventDefault();
  drop.classList.add("is-over");
});
drop.addEventListener("dragleave", () => drop.classList.remove("is-over"));
// the zone takes focus: from the keyboard, Enter or Space opens the file chooser it stands for
drop.addEventListener("keydown", (event) => {
  if (event.key !== "Enter" && event.key !== " ") return;
  event.preventDefault();
  $("files").click();
});
drop.addEventListener("drop", async (event) => {
  event.preventDefault();
  drop.classList.remove("is-over");
  const pictures = named(event.dataTransfer.files);
  if (pictures.length && dataset) await addTo(pictures, "file");
});
document.addEventListener("paste", async (event) => {
  const pictures = named(event.clipboardData?.files ?? []);
  if (pictures.length && dataset && owns(dataset.id)) await addTo(pictures, "file");
});

// pictures from the class (class_pictures_teacher.js) joined the dataset: show it as it is now
window.addEventListener("cnnviz:dataset-changed", () => dataset && getDataset(dataset.id).then(show, fail));

// The dataset may change elsewhere too: a teacher taking a student's picture into it while this
// page mirrors theirs (follow mode: the state, the dataset's id, stays the same), another window
// on it. While the page is visible it looks at the dataset's version every two seconds and shows
// the dataset again, counts and thumbnails, when the version moved; a dataset gone stops it.
const WATCH_MS = 2000;
let watching = true;
async function watchVersion() {
  if (!watching || !dataset || document.hidden) return;
  const id = dataset.id;
  try {
    const found = await getDataset(id);
    if (dataset?.id === id && found.version !== dataset.version) await show(found);
  } catch (error) {
    if (error.status === 404) watching = false; // deleted: nothing more to follow
  }
}
window.setInterval(watchVersion, WATCH_MS);

// Another dataset or class chosen from outside the page (follow mode mirrors the teacher's state
// onto the page a follower already has open): show it.
state.subscribe((changed, values) => {
  if (changed.has("dataset") && values.dataset && values.dataset !== dataset?.id) {
    getDataset(values.dataset).then(show, fail);
  } else if (changed.has("class") && dataset) {
    $("class-choice").value = String(values.class);
  }
});

const ready = () => (document.body.dataset.ready = "true");
if (state.get("dataset")) {
  getDataset(state.get("dataset")).then(show, fail).finally(ready);
} else {
  myDatasets.show().finally(ready);
}
