// Two-way binding between a form's controls and a page state (state.js): each control whose
// `name` is a state field shows that field, and a user's change sets it. Checkboxes are booleans,
// number inputs numbers, selects and the rest strings (the state's codec coerces and clamps).

function read(control) {
  if (control.type === "checkbox") return control.checked;
  if (control.type === "number" || control.type === "range") {
    return control.value.trim() === "" ? undefined : Number(control.value);
  }
  return control.value;
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
      const changed = value === undefined ? new Set() : state.set({ [control.name]: value });
      write(control, state.get(control.name)); // show the coerced value (clamped, normalised)
      if (changed.size > 0) onUserChange?.(control.name, changed);
    });
  }
  state.subscribe((changed) => sync(changed));
  sync();
  return { sync: () => sync() };
}
