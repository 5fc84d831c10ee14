// The model pickers' catalogue: the zoo (/api/models), then the models users uploaded
// (/api/uploaded-models: ONNX files, or state dicts for a zoo architecture) in the zoo's shape,
// family "uploaded", under their own group "Your models". Every page that names a model by its
// `name` (summaries, receptive fields, feature maps) takes an uploaded one the same way.

import { t } from "./i18n.js";
import { getJSON } from "./api.js";

/** An uploaded model's description (/api/uploaded-models) as a catalogue entry. */
function asEntry(model) {
  const [channels, height, width] = model.input_shape;
  return {
    name: model.model, title: model.title, family: "uploaded", params: model.parameters,
    default_input: { channels, height, width }, num_classes: model.num_classes, paper: "",
  };
}

/** The zoo then the uploaded models (none when that list cannot be had). */
export async function modelCatalogue() {
  const [zoo, uploaded] = await Promise.all([
    getJSON("/api/models"), getJSON("/api/uploaded-models").catch(() => []),
  ]);
  return [...zoo, ...uploaded.map(asEntry)];
}

/** Options of `select`: the zoo's, then an optgroup of the uploaded ones. */
export function fillModelOptions(select, models) {
  const options = models.filter((m) => m.family !== "uploaded")
    .map((model) => new Option(model.title, model.name));
  const uploaded = models.filter((m) => m.family === "uploaded");
  if (uploaded.length) {
    const group = document.createElement("optgroup");
    group.label = t("models.yours");
    group.append(...uploaded.map((model) => new Option(model.title, model.name)));
    options.push(group);
  }
  select.replaceChildren(...options);
}
