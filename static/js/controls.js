// Two-way binding between a form's controls and a page state (state.js): each control whose
// `name` is a state field shows that field, and a user's change sets it. Checkboxes are booleans,
// number inputs numbers, selects and the rest strings (the state's codec coerces and clamps).
// A number typed outside its control's min/max is refused with the limit shown in the control's
// error slot (the catalogue's error.type.less_than_equal / greater_than_equal), not clamped; so is
// an emptied field (error.type.missing) and a fraction in a whole-number field (int_from_float).

import { t } from "./i18n.js";

function read(control) {
  if (control.type === "checkbox") return control.checked;
  if (control.type === "number" || control.type === "range") {
    return control.value.trim() === "" ? undefined : Number(control.value);
  }
  return control.value;
}

/** What is wrong with `value` on a number control ({key, params}), or null: left empty (or not a
 * number the browser can read), a fraction where the control steps by whole numbers, a limit. */
function brokenLimit(control, value) {
  if (control.type !== "number") return null;
  if (value === undefined) {
    return { key: control.validity.badInput ? "error.type.float_parsing" : "error.type.missing" };
  }
  if (!Number.isFinite(value)) return null;
  const step = Number(control.step);
  if (Number.isInteger(step) && step >= 1 && !Number.isInteger(value)) {
    return { key: "error.type.int_from_float" };
  }
  const [min, max] = [control.min, control.max].map((text) => (text === "" ? NaN : Number(text)));
  if (value > max) return { key: "error.type.less_than_equal", params: { le: control.max } };
  if (value < min) return { key: "error.type.greater_than_equal", params: { ge: control.min } };
  return null;
}

function showRefusal(form, control, refusal) {
  const slot = form.querySelector(`[data-error-for="${CSS.escape(control.name)}"]`);
  if (refusal) control.setAttribute("aria-invalid", "true");
  else control.removeAttribute("aria-invalid");
  if (!slot) return;
  slot.textContent = refusal ? t(refusal.key, refusal.params) : "";
  slot.hidden = !refusal;
}

function write(control, value) {
  if (control.type === "checkbox") control.checked = Boolean(value);
  else control.value = String(value);
}

/**
 * Bind `form` to `state`. onUserChange(name, changedNames) runs after a user's change was applied
 * (pages use it for follow-up changes, e.g. dropping edits that no longer fit).
 * Returns { sync() } to re-show the state in every control.
 */
export function bindControls(form, state, { onUserChange } = {}) {
  const controls = [...form.elements].filter((control) => control.name && state.has(control.name));

  function sync(names) {
    for (const control of controls) {
      if (!names || names.has(control.name)) write(control, state.get(control.name));
    }
  }

  for (const control of controls) {
    control.addEventListener("change", () => {
      const value = read(control);
      const refusal = brokenLimit(control, value);
      showRefusal(form, control, refusal);
      if (refusal) {
        write(control, state.get(control.name)); // the state keeps its value: nothing is clamped
        return;
      }
      const changed = value === undefined ? new Set() : state.set({ [control.name]: value });
      write(control, state.get(control.name)); // show the coerced value (clamped, normalised)
      if (changed.size > 0) onUserChange?.(control.name, changed);
    });
  }
  state.subscribe((changed) => sync(changed));
  sync();
  return { sync: () => sync() };
}
