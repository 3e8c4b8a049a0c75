import MarkdownIt from "markdown-it";
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

// CommonMark (and GFM tables and strikethrough) for text cells and
// `text/markdown` output, by markdown-it. Sanitized by construction: raw
// HTML in the source is escaped, never parsed (`html: false`), and
// markdown-it refuses `javascript:`, `vbscript:`, `file:` and non-image
// `data:` link targets; links open in a new tab without an opener.
const md = new MarkdownIt({ html: false, linkify: true, typographer: false });
const defaultLinkOpen = md.renderer.rules.link_open
  || ((tokens, idx, options, env, self) => self.renderToken(tokens, idx, options));
md.renderer.rules.link_open = (tokens, idx, options, env, self) => {
  tokens[idx].attrSet("target", "_blank");
  tokens[idx].attrSet("rel", "noopener noreferrer nofollow");
  return defaultLinkOpen(tokens, idx, options, env, self);
};

// The document's title is the page's only h1: text headings go one down.
for (const rule of ["heading_open", "heading_close"]) {
  md.renderer.rules[rule] = (tokens, idx, options, env, self) => {
    const level = Math.min(6, Number(tokens[idx].tag.slice(1)) + 1);
    tokens[idx].tag = `h${level}`;
    return self.renderToken(tokens, idx, options);
  };
}

export function renderText(text) {
  const out = h("div", { class: "prose" });
  out.innerHTML = md.render(String(text));
  return out;
}
