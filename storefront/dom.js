// Building DOM nodes from data without innerHTML: catalog and fragment text is data, never markup.

/**
 * h("a", {href: "#/", class: "x", dataset: {testid: "y"}, style: {"--hue": 120}}, "text", childNode)
 * Attributes named on* are refused: behaviour is attached with addEventListener by the caller.
 */
export function h(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on")) throw new Error(`attach ${name} with addEventListener`);
    if (name === "dataset") Object.assign(node.dataset, value);
    // Through the CSSOM: the edge's Content-Security-Policy refuses inline style attributes.
    else if (name === "style") for (const [property, v] of Object.entries(value)) node.style.setProperty(property, v);
    else if (name === "class") node.className = value;
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  append(node, children);
  return node;
}

function append(node, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** Replace every child of `node`. */
export function fill(node, ...children) {
  node.replaceChildren();
  append(node, children);
  return node;
}
