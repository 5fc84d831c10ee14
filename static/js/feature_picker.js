// Where the picture comes from: a built-in sample (a select) or the user's own file, given by
// the file button, by dropping it on the drop zone, or by pasting it anywhere on the page.

import { t } from "./i18n.js";

const ACCEPTED = /^image\/(jpeg|png|webp|bmp|gif)$/;

/**
 * @param {{select: HTMLSelectElement, zone: HTMLElement, input: HTMLInputElement,
 *          name: HTMLElement}} nodes
 * @param {{onFile(file: File): void}} handlers
 */
export function createPicker(nodes, { onFile }) {
  let file = null;

  function take(candidate) {
    if (!candidate) return;
    if (!ACCEPTED.test(candidate.type)) {
      nodes.name.textContent = t("picture.upload.unsupported", { name: candidate.name });
      nodes.name.hidden = false;
      return;
    }
    file = candidate;
    nodes.name.textContent = t("picture.upload.using", { name: candidate.name || "—" });
    nodes.name.hidden = false;
    onFile(candidate);
  }

  nodes.input.addEventListener("change", () => take(nodes.input.files[0]));
  for (const type of ["dragenter", "dragover"]) {
    nodes.zone.addEventListener(type, (event) => {
      event.preventDefault();
      nodes.zone.classList.add("is-over");
    });
  }
  for (const type of ["dragleave", "drop"]) {
    nodes.zone.addEventListener(type, () => nodes.zone.classList.remove("is-over"));
  }
  nodes.zone.addEventListener("drop", (event) => {
    event.preventDefault();
    take(event.dataTransfer?.files?.[0]);
  });
  document.addEventListener("paste", (event) => {
    const pasted = [...(event.clipboardData?.files ?? [])].find((f) => f.type.startsWith("image/"));
    if (pasted) {
      event.preventDefault();
      take(pasted);
    }
  });

  return {
    /** The uploaded file, or null while a sample is used. */
    get file() {
      return file;
    },
    /** Fill the sample select: the samples, then "your picture" while a file is loaded. */
    setSamples(samples, current) {
      const options = samples.map((sample) => new Option(t(`picture.sample.${sample.name}`), sample.name));
      if (file) options.push(new Option(t("picture.sample.upload"), ""));
      nodes.select.replaceChildren(...options);
      nodes.select.value = current;
    },
    /** Use `candidate` as if the user had given it (a class session's shared picture). */
    useFile(candidate) {
      take(candidate);
    },
    /** Use `candidate` quietly: no onFile (a drawing, sent again with every stroke). */
    holdFile(candidate) {
      file = candidate;
      nodes.name.hidden = true;
    },
    /** Back to samples: forget the file. */
    clearFile() {
      file = null;
      nodes.input.value = "";
      nodes.name.hidden = true;
    },
  };
}
