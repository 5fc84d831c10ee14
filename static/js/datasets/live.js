// Live prediction on /teach: after training, frames from the webcam or the drawing pad go to
// POST /api/predict (a training run's newest checkpoint) and every class's probability is drawn
// as a bar. One frame is in flight at a time: frames that come meanwhile are dropped (never
// queued), so what is shown is at most one round trip old however slow the server is. An
// unchanged drawing is not sent again. Each shown answer sets the performance mark
// "cnnviz:live" (detail: its round trip in ms), which the benchmark reads.

import { clearErrors, getJSON, requestJSON, showErrors } from "../api.js";
import { formatNumber, formatPercent } from "../format.js";
import { language, t } from "../i18n.js";
import { modelCatalogue } from "../model_catalogue.js";
import { startCamera } from "./camera.js";
import { DrawingPad } from "./pad.js";

const ACTIVE = new Set(["queued", "running", "paused"]); // still training: its newest checkpoint
const SIDE = 64; // the frame sent: small (a few kB), the server resizes to the network's input

/** Runs trained on dataset `id` that have a checkpoint, newest first. */
async function runsOf(id) {
  const runs = await getJSON("/api/runs?limit=100");
  return runs.filter((run) => run.config?.data?.dataset === id && run.checkpoint)
    .sort((a, b) => b.created_at - a.created_at);
}

let titles = null; // model name → its title (the zoo's and the uploaded ones), asked once

/** Model titles by name ("lenet5" → "LeNet-5"); none when the catalogue cannot be had. */
function modelTitles() {
  titles ??= modelCatalogue()
    .then((models) => new Map(models.map((model) => [model.name, model.title])))
    .catch(() => new Map());
  return titles;
}

/**
 * What a run is called in the list: its label, else its model, dataset and start time in the
 * page's language — never its hex id (that is the option's tooltip and the line below).
 */
function runName(run, datasetName, modelTitle) {
  const model = modelTitle.get(run.model) ?? run.model;
  if (run.label) return t("teach.live.run_named", { label: run.label, model });
  const time = new Date(run.created_at * 1000)
    .toLocaleString(language(), { dateStyle: "medium", timeStyle: "short" });
  return t("teach.live.run_unnamed", { model, dataset: datasetName, time });
}

/** The centre square of `source` (a video or a canvas) drawn into `canvas`. */
function drawFrame(source, canvas) {
  const [width, height] = source instanceof HTMLVideoElement
    ? [source.videoWidth, source.videoHeight] : [source.width, source.height];
  const crop = Math.min(width, height);
  const context = canvas.getContext("2d", { willReadFrequently: true });
  context.drawImage(source, (width - crop) / 2, (height - crop) / 2, crop, crop, 0, 0, SIDE, SIDE);
  return context;
}

/** The same pixels as last time? (a drawing that did not change need not be sent again) */
function samePixels(a, b) {
  if (!a || a.length !== b.length) return false;
  for (let i = 0; i < a.length; i += 1) if (a[i] !== b[i]) return false;
  return true;
}

/**
 * The card shows its own source beside the bars: a video of the camera (the stream the add
 * card's camera already has, or a new one) or a drawing pad of its own (pad.js).
 * @param {{card, note, run, runId, refresh, toggle, bars, rate, video: HTMLVideoElement,
 *   pad: HTMLCanvasElement, padClear: HTMLButtonElement, camera: HTMLVideoElement}} nodes
 *   `camera`: the add card's video, whose stream is shared when it runs
 */
export function createLive(nodes) {
  const canvas = Object.assign(document.createElement("canvas"), { width: SIDE, height: SIDE });
  let datasetId = "";
  let datasetName = "";
  let runs = [];
  let running = false;
  let inFlight = false;
  let lastPixels = null;
  let shown = 0; // answers drawn since start
  let times = []; // round trips of the last second, for the readout

  const pad = new DrawingPad(nodes.pad);
  const source = () => nodes.card.querySelector("input[name=live-source]:checked").value;

  function showSource() {
    const drawing = source() === "pad";
    nodes.video.hidden = drawing;
    nodes.pad.hidden = !drawing;
    nodes.padClear.hidden = !drawing;
  }

  function renderBars(answer) {
    const top = answer.probs.indexOf(Math.max(...answer.probs));
    if (nodes.bars.children.length !== answer.labels.length) {
      nodes.bars.replaceChildren(...answer.labels.map((label) => {
        const item = document.createElement("li");
        item.className = "live-bar";
        const name = Object.assign(document.createElement("span"), { className: "live-bar-label", textContent: label });
        const track = Object.assign(document.createElement("span"), { className: "live-bar-track" });
        track.setAttribute("role", "meter");
        track.setAttribute("aria-valuemin", "0");
        track.setAttribute("aria-valuemax", "100");
        track.setAttribute("aria-label", label);
        track.append(Object.assign(document.createElement("span"), { className: "live-bar-fill" }));
        item.append(name, track, Object.assign(document.createElement("span"), { className: "live-bar-value" }));
        return item;
      }));
    }
    answer.probs.forEach((prob, i) => {
      const item = nodes.bars.children[i];
      const percent = (prob ?? 0) * 100; // null: NaN logits (a model whose values overflowed)
      item.dataset.prob = String(prob);
      item.classList.toggle("is-top", i === top);
      item.querySelector(".live-bar-fill").style.width = `${percent}%`;
      item.querySelector(".live-bar-track").setAttribute("aria-valuenow", formatNumber(percent, 1));
      item.querySelector(".live-bar-value").textContent = formatPercent(prob, 1);
    });
    nodes.bars.dataset.frames = String(shown);
  }

  function showRate(took) {
    const now = performance.now();
    times = [...times.filter(([at]) => now - at < 1000), [now, took]];
    const sorted = times.map(([, ms]) => ms).sort((a, b) => a - b);
    nodes.rate.textContent = t("teach.live.rate", {
      rate: times.length, ms: formatNumber(sorted[Math.floor(sorted.length / 2)], 0),
    });
  }

  async function send(blob, run, started) {
    const query = new URLSearchParams({ model: run.model, run: run.id });
    try {
      const answer = await requestJSON("POST", `/api/predict?${query}`, blob);
      if (!running) return;
      shown += 1;
      renderBars(answer);
      const took = performance.now() - started;
      performance.mark("cnnviz:live", { detail: took });
      showRate(took);
    } catch (error) {
      stop();
      showErrors(nodes.card, error);
    }
  }

  /** Send the source's picture now unless a frame is still in flight (then this one is
   * dropped: the answer in flight comes first, and the next frame is taken when it does). */
  function pump() {
    if (!running || inFlight) return;
    const run = runs.find((item) => item.id === nodes.run.value);
    const from = source() === "camera" ? nodes.video : nodes.pad;
    if (!run || (from === nodes.video && from.readyState < 2)) return;
    const started = performance.now(); // a frame's time: taken → its bars drawn
    const context = drawFrame(from, canvas);
    if (from === nodes.pad) {
      const pixels = context.getImageData(0, 0, SIDE, SIDE).data;
      if (samePixels(lastPixels, pixels)) return;
      lastPixels = pixels;
    }
    inFlight = true;
    canvas.toBlob((blob) => send(blob, run, started).finally(() => {
      inFlight = false;
      pump(); // the next frame at once, not at the next animation frame
    }), "image/png");
  }

  /** Every animation frame: a frame is sent when none is in flight (the pad: when it changed). */
  function tick() {
    if (!running) return;
    requestAnimationFrame(tick);
    pump();
  }

  async function start() {
    clearErrors(nodes.card);
    if (source() === "camera" && !nodes.video.srcObject) {
      try {
        if (nodes.camera.srcObject) {
          nodes.video.srcObject = nodes.camera.srcObject; // the add card's camera, already on
          await nodes.video.play();
        } else {
          await startCamera(nodes.video); // on until the page closes, like the add card's
        }
      } catch (error) {
        nodes.note.textContent = t(error.message, { host: location.host, port: location.port || "80" });
        return;
      }
    }
    running = true;
    lastPixels = null;
    nodes.toggle.textContent = t("teach.live.stop");
    nodes.toggle.setAttribute("aria-pressed", "true");
    requestAnimationFrame(tick);
  }

  function stop() {
    running = false;
    nodes.toggle.textContent = t("teach.live.start");
    nodes.toggle.setAttribute("aria-pressed", "false");
  }

  async function listRuns() {
    if (!datasetId) return;
    try {
      runs = await runsOf(datasetId);
    } catch (error) {
      showErrors(nodes.card, error);
      return;
    }
    const modelTitle = await modelTitles();
    const chosen = nodes.run.value;
    nodes.run.replaceChildren(...runs.map((run) => {
      const option = new Option(t(
        ACTIVE.has(run.status) ? "teach.live.run_option_active" : "teach.live.run_option",
        { name: runName(run, datasetName, modelTitle), version: run.config.data.dataset_version ?? "?" },
      ), run.id);
      option.title = run.id;
      return option;
    }));
    if (runs.some((run) => run.id === chosen)) nodes.run.value = chosen;
    showRunId();
    nodes.toggle.disabled = runs.length === 0;
    nodes.note.textContent = t(runs.length ? "teach.live.ready" : "teach.live.no_runs");
    nodes.card.dataset.runs = String(runs.length);
  }

  /** The chosen run's id, as secondary text (and the list's tooltip). */
  function showRunId() {
    const id = nodes.run.value;
    nodes.run.title = id;
    nodes.runId.textContent = id ? t("teach.live.run_id", { id }) : "";
  }

  nodes.padClear.addEventListener("click", () => pad.clear());
  showSource();
  nodes.toggle.addEventListener("click", () => (running ? stop() : start()));
  nodes.refresh.addEventListener("click", listRuns);
  nodes.run.addEventListener("change", () => {
    lastPixels = null;
    showRunId();
  });
  for (const radio of nodes.card.querySelectorAll("input[name=live-source]")) {
    radio.addEventListener("change", () => {
      lastPixels = null;
      showSource();
      if (running && source() === "camera" && !nodes.video.srcObject) {
        stop();
        start();
      }
    });
  }
  // back from /train in another tab: the new run is listed
  document.addEventListener("visibilitychange", () => document.visibilityState === "visible" && listRuns());

  return {
    /** Show the card for dataset `dataset` (hidden when this browser cannot add to it). */
    show(dataset, mine) {
      nodes.card.hidden = !mine;
      datasetName = dataset.name;
      if (dataset.id !== datasetId) {
        stop();
        datasetId = dataset.id;
        nodes.bars.replaceChildren();
      }
      return listRuns();
    },
  };
}
