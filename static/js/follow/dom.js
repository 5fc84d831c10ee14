// Small DOM builders shared by the follow bar and the class quiz (no innerHTML: text is set as
// text, attributes one by one).

/** A `tag` element with an optional class and attributes. */
export function element(tag, className, attributes = {}) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
  return node;
}

/** A `type="button"` button showing `text` that calls `onClick`. */
export function button(className, text, onClick) {
  const node = element("button", className, { type: "button" });
  node.textContent = text;
  node.addEventListener("click", onClick);
  return node;
}
