// The teacher's side of a class building a dataset together, on /teach (app/class_pictures.py):
// with a class session running (the header's button) and a dataset of this browser's open, the
// teacher opens the dataset to the class; students following send pictures from their phones;
// each waits here as a thumbnail with the student's name and class until the teacher adds it to
// the dataset (a new version; one it holds already is said so) or leaves it out. The card looks
// again every two seconds (the session, the dataset in the URL, what waits).

import { ApiError, clearErrors, requestJSON, showErrors } from "../api.js";
import { storedSession } from "../follow.js";
import { t } from "../i18n.js";
import { getDataset, headers, owns } from "./dataset_api.js";

const POLL_MS = 2000;
const $ = (id) => document.getElementById(id);
const card = $("class-card");
let dataset = null; // {id, name, classes} of the dataset in the URL
let linked = false;

const sessionUrl = (session, path) => `/api/sessions/${encodeURIComponent(session.code)}${path}`;
const teacher = (session) => ({ "X-Teacher-Token": session.teacher_token });

function element(tag, props = {}, children = []) {
  const node = Object.assign(document.createElement(tag), props);
  node.append(...children);
  return node;
}

async function decide(session, picture, verdict) {
  clearErrors(card);
  try {
    const path = sessionUrl(session, `/pictures/${picture.id}/${verdict}`);
    const extra = verdict === "accept" ? headers(dataset.id) : {};
    const answer = await requestJSON("POST", path, undefined, { headers: { ...teacher(session), ...extra } });
    const status = answer.picture.status;
    $("class-last").textContent = t(`teach.class.done.${status}`, { name: picture.name });
    if (status !== "rejected") window.dispatchEvent(new CustomEvent("cnnviz:dataset-changed"));
  } catch (error) {
    showErrors(card, error);
  }
  await refresh();
}

function pendingItem(session, picture) {
  const className = dataset.classes.find((c) => c.id === picture.class_id)?.name ?? "?";
  const image = element("img", { src: picture.url, alt: t("teach.class.picture", { name: picture.name, class: className }) });
  const accept = element("button", { type: "button", className: "class-accept", textContent: t("teach.class.accept") });
  const reject = element("button", { type: "button", className: "secondary class-reject", textContent: t("teach.class.reject") });
  accept.addEventListener("click", () => decide(session, picture, "accept"));
  reject.addEventListener("click", () => decide(session, picture, "reject"));
  const item = element("li", {}, [
    image,
    element("span", { className: "class-who", textContent: picture.name }),
    element("span", { className: "class-which", textContent: className }),
    element("div", { className: "class-buttons" }, [accept, reject]),
  ]);
  item.dataset.picture = picture.id;
  return item;
}

async function refresh() {
  const session = storedSession();
  const wanted = new URLSearchParams(window.location.search).get("dataset");
  card.hidden = !wanted || !owns(wanted);
  if (card.hidden) return;
  try {
    if (dataset?.id !== wanted) dataset = await getDataset(wanted);
    if (!session) {
      $("class-note").textContent = t("teach.class.no_session");
      $("class-open").hidden = $("class-close").hidden = true;
      $("class-pending").replaceChildren();
      return;
    }
    const link = await requestJSON("GET", sessionUrl(session, "/dataset"));
    linked = link.dataset === dataset.id;
    $("class-open").hidden = linked;
    $("class-close").hidden = !linked;
    card.dataset.linked = String(linked);
    if (!linked) {
      $("class-note").textContent = t("teach.class.closed", { code: session.code, name: dataset.name });
      $("class-pending").replaceChildren();
      return;
    }
    const waiting = await requestJSON("GET", sessionUrl(session, "/pictures/pending"), undefined, { headers: teacher(session) });
    $("class-note").textContent = t("teach.class.open_note", { code: session.code, name: dataset.name, n: waiting.length });
    card.dataset.waiting = String(waiting.length);
    $("class-pending").replaceChildren(...waiting.map((picture) => pendingItem(session, picture)));
  } catch (error) {
    if (error instanceof ApiError && error.status === 404) return; // the session ended: the header says so
    showErrors(card, error);
  }
}

async function setLink(open) {
  const session = storedSession();
  if (!session || !dataset) return;
  clearErrors(card);
  try {
    if (open) {
      await requestJSON("PUT", sessionUrl(session, "/dataset"), { dataset: dataset.id },
                        { headers: { ...teacher(session), ...headers(dataset.id) } });
    } else {
      await requestJSON("DELETE", sessionUrl(session, "/dataset"), undefined, { headers: teacher(session) });
    }
  } catch (error) {
    showErrors(card, error);
  }
  await refresh();
}

$("class-open").addEventListener("click", () => setLink(true));
$("class-close").addEventListener("click", () => setLink(false));
refresh();
window.setInterval(refresh, POLL_MS);
