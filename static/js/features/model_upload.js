// Your own model on /features: an ONNX file, or a state dict for a zoo architecture (and,
// optionally, class names) uploaded through /api/uploaded-models joins the model picker under
// "Your models" (`onnx_<id>`, `weights_<id>`), and is chosen.
// The owner token is answered once; it is kept in this browser (localStorage) for deleting later.

import { t } from "../i18n.js";
import { ApiError, clearErrors, requestJSON, showErrors } from "../api.js";
import { fillModelOptions, modelCatalogue } from "../model_catalogue.js";

const TOKEN_KEY = (id) => `cnnviz.model-token.${id}`;

/** The owner token this browser keeps for an uploaded model (null when it holds none). */
export function modelToken(id) {
  try {
    return localStorage.getItem(TOKEN_KEY(id));
  } catch {
    return null; // storage refused (private mode)
  }
}

/** Fill the model picker (the zoo, then "Your models") and the upload form's architecture
 * choice; the models' names. */
export async function fillModelPicker(select) {
  const models = await modelCatalogue();
  fillModelOptions(select, models);
  const kinds = document.getElementById("u-architecture");
  if (kinds && kinds.options.length === 1) {
    kinds.append(...models.filter((model) => model.family !== "uploaded").map((model) =>
      new Option(t("features.upload_model.kind.state_dict", { model: model.title }), model.name)));
  }
  return models.map((model) => model.name);
}

/** Wire the upload form; `onUploaded(model)` gets the stored model's description. */
export function bindModelUpload(form, status, { onUploaded }) {
  // the file field names what the chosen kind takes: an ONNX model, or a state dict's weights
  const kind = form.elements.architecture;
  const fileLabel = form.querySelector('label[for="u-file"]');
  const showKind = () => {
    const weights = Boolean(kind.value);
    fileLabel.textContent = t(weights ? "features.upload_model.file_weights" : "features.upload_model.file");
    form.elements.file.accept = weights ? ".safetensors,.pt,.pth" : ".onnx";
  };
  kind.addEventListener("change", showKind);
  form.addEventListener("reset", () => setTimeout(showKind));
  showKind();
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors(form);
    const body = new FormData();
    const file = form.elements.file.files[0];
    const labels = form.elements.labels.files[0];
    if (!file) {
      const message = t(kind.value ? "features.upload_model.no_weights_file" : "features.upload_model.no_file");
      showErrors(form, new ApiError(0, message, { file: message }));
      return;
    }
    body.append("file", file);
    body.append("name", form.elements.name.value.trim() || file.name.replace(/\.\w+$/, ""));
    if (labels) body.append("labels", labels);
    const architecture = form.elements.architecture.value;
    if (architecture) body.append("architecture", architecture);
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    status.textContent = t("features.upload_model.busy");
    try {
      const created = await requestJSON("POST", "/api/uploaded-models", body);
      try {
        localStorage.setItem(TOKEN_KEY(created.model.id), created.owner_token);
      } catch {
        // storage refused (private mode): the model stays, only deleting it needs the token
      }
      status.textContent = t("features.upload_model.done", {
        title: created.model.title, shape: created.model.input_shape.join("×"),
      });
      form.reset();
      await onUploaded(created.model);
    } catch (error) {
      status.textContent = "";
      showErrors(form, error, { model: "file" });
    } finally {
      button.disabled = false;
    }
  });
}
