// A tiny element builder: h("div", {class: "x", onclick: f}, child, ...).
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else if (k === "text") el.textContent = v;
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

export function clear(el) {
  while (el.firstChild) el.firstChild.remove();
  return el;
}

// Markdown-lite for text cells: headings, bold, inline code, paragraphs.
// Everything is built as text nodes, never as HTML.
export function renderText(text) {
  const out = h("div", { class: "prose" });
  let para = [];
  const flush = () => {
    if (para.length) {
      const p = h("p");
      inline(p, para.join("\n"));
      out.append(p);
      para = [];
    }
  };
  for (const line of String(text).split("\n")) {
    const m = /^(#{1,3})\s+(.*)$/.exec(line);
    if (m) {
      flush();
      const el = h(`h${m[1].length + 1}`);
      inline(el, m[2]);
      out.append(el);
    } else if (line.trim() === "") {
      flush();
    } else {
      para.push(line);
    }
  }
  flush();
  return out;
}

function inline(el, text) {
  const re = /(\*\*[^*]+\*\*|`[^`]+`)/g;
  let last = 0;
  for (const m of text.matchAll(re)) {
    el.append(text.slice(last, m.index));
    const t = m[0];
    el.append(t.startsWith("**") ? h("strong", {}, t.slice(2, -2)) : h("code", {}, t.slice(1, -1)));
    last = m.index + t.length;
  }
  el.append(text.slice(last));
}
