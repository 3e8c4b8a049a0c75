// The workspace admin page (admins): access tokens (minted with a role,
// shown once, revoked), secrets (set with the hosts they may be sent to,
// values write-only, deleted) and, for a server admin, new workspaces.
// Every failure is said in words beside the form that caused it.
import { h, clear } from "./dom.js";
import { paths } from "./api.js";

const ROLES = ["viewer", "editor", "admin"];
const when = (ms) => new Date(ms).toLocaleString();

// A form's error line, cleared by the next try.
function errorLine() {
  const p = h("p", { class: "error", role: "alert", hidden: true });
  return {
    el: p,
    say(msg) { p.hidden = false; p.textContent = msg; },
    clear() { p.hidden = true; p.textContent = ""; },
  };
}

// A secret value shown once, with how to keep it.
function shownOnce(label, value) {
  const id = `once-${Math.random().toString(36).slice(2)}`;
  const input = h("input", { id, type: "text", readonly: true, value, class: "once" });
  setTimeout(() => input.select(), 0);
  return h("div", { class: "shown-once", role: "status" },
    h("label", { for: id }, label), input,
    h("p", { class: "muted" }, "Copy it now: it is shown only once and cannot be read again."));
}

async function tokensSection(app) {
  const base = `${paths.ws(app.ws)}/tokens`;
  const sec = h("section", { class: "admin-section", "aria-labelledby": "tokens-h" }, h("h2", { id: "tokens-h" }, "Access tokens"));
  const list = h("tbody");
  const err = errorLine();
  const fresh = h("div");
  const load = async () => {
    const { tokens } = await app.api.get(base);
    clear(list).append(...tokens.map((t) => h("tr", {},
      h("td", {}, t.label || h("span", { class: "muted" }, "(no label)")),
      h("td", {}, t.role),
      h("td", {}, when(t.created_ms)),
      h("td", {}, t.id === app.me.token
        ? h("span", { class: "muted" }, "this session's token")
        : h("button", { class: "danger", "aria-label": `Revoke the token ${t.label || t.id}`, onclick: async () => {
          if (!confirm(`Revoke the token "${t.label || t.id}"? Anyone using it is signed out at once.`)) return;
          err.clear();
          try {
            await app.api.del(`${base}/${encodeURIComponent(t.id)}`);
            await load();
          } catch (e) {
            err.say(`Not revoked: ${e.message}`);
          }
        } }, "Revoke")))));
    if (!tokens.length) list.append(h("tr", {}, h("td", { colspan: "4", class: "muted" }, "No tokens.")));
  };
  const label = h("input", { id: "token-label", type: "text", placeholder: "for example: CI, ana's laptop" });
  const role = h("select", { id: "token-role" }, ROLES.map((r) => h("option", { value: r, selected: r === "editor" ? true : undefined }, r)));
  const form = h("form", { class: "admin-form", onsubmit: async (e) => {
    e.preventDefault();
    err.clear();
    clear(fresh);
    try {
      const t = await app.api.post(base, { role: role.value, label: label.value.trim() });
      fresh.append(shownOnce(`New ${t.role} token${t.label ? ` “${t.label}”` : ""}`, t.token));
      label.value = "";
      await load();
    } catch (ex) {
      err.say(`No token made: ${ex.message}`);
    }
  } },
    h("label", { for: "token-label" }, "Label"), label,
    h("label", { for: "token-role" }, "Role"), role,
    h("button", { type: "submit", class: "primary" }, "Create token"));
  sec.append(
    h("p", { class: "muted" }, "Viewers read and follow runs; editors also edit and run blocks; admins also grant, keep secrets and set the quota."),
    h("table", {}, h("thead", {}, h("tr", {}, ["Label", "Role", "Created", ""].map((c) => h("th", { scope: "col" }, c)))), list),
    form, err.el, fresh);
  await load();
  return sec;
}

async function secretsSection(app) {
  const base = `${paths.ws(app.ws)}/secrets`;
  const sec = h("section", { class: "admin-section", "aria-labelledby": "secrets-h" }, h("h2", { id: "secrets-h" }, "Secrets"));
  const list = h("tbody");
  const err = errorLine();
  const load = async () => {
    const { secrets } = await app.api.get(base);
    clear(list).append(...secrets.map((s) => h("tr", {},
      h("td", {}, h("code", {}, s.name)),
      h("td", {}, s.hosts.length ? s.hosts.join(", ") : h("span", { class: "muted" }, "no host: blocks can read it but fetch never sends it")),
      h("td", {}, h("button", { class: "danger", "aria-label": `Delete the secret ${s.name}`, onclick: async () => {
        if (!confirm(`Delete the secret ${s.name}? Blocks granted it can no longer use it.`)) return;
        err.clear();
        try {
          await app.api.del(`${base}/${encodeURIComponent(s.name)}`);
          await load();
        } catch (e) {
          err.say(`Not deleted: ${e.message}`);
        }
      } }, "Delete")))));
    if (!secrets.length) list.append(h("tr", {}, h("td", { colspan: "3", class: "muted" }, "No secrets.")));
  };
  const name = h("input", { id: "secret-name", type: "text", placeholder: "API_KEY", autocomplete: "off" });
  const value = h("input", { id: "secret-value", type: "password", autocomplete: "new-password" });
  const hosts = h("input", { id: "secret-hosts", type: "text", placeholder: "api.example.com", "aria-describedby": "secret-hosts-help" });
  const form = h("form", { class: "admin-form", onsubmit: async (e) => {
    e.preventDefault();
    err.clear();
    const n = name.value.trim();
    if (!n) return err.say("Give the secret a name.");
    try {
      await app.api.put(`${base}/${encodeURIComponent(n)}`, { value: value.value, hosts: hosts.value.split(/[\s,]+/).filter(Boolean) });
      name.value = "";
      value.value = "";
      hosts.value = "";
      await load();
    } catch (ex) {
      err.say(`Not saved: ${ex.message}`);
    }
  } },
    h("label", { for: "secret-name" }, "Name"), name,
    h("label", { for: "secret-value" }, "Value"), value,
    h("label", { for: "secret-hosts" }, "Hosts it may be sent to"), hosts,
    h("p", { id: "secret-hosts-help", class: "muted" }, "Space separated; fetch sends the secret in headers only to these hosts. Setting a name that exists replaces its value."),
    h("button", { type: "submit", class: "primary" }, "Save secret"));
  sec.append(
    h("p", { class: "muted" }, "Values are write-only: nobody can read them back here or over the API."),
    h("table", {}, h("thead", {}, h("tr", {}, ["Name", "Hosts", ""].map((c) => h("th", { scope: "col" }, c)))), list),
    form, err.el);
  await load();
  return sec;
}

function workspacesSection(app) {
  const sec = h("section", { class: "admin-section", "aria-labelledby": "ws-h" }, h("h2", { id: "ws-h" }, "New workspace"));
  const err = errorLine();
  const fresh = h("div");
  const name = h("input", { id: "ws-name", type: "text", placeholder: "team-a" });
  const form = h("form", { class: "admin-form", onsubmit: async (e) => {
    e.preventDefault();
    err.clear();
    clear(fresh);
    try {
      const w = await app.api.post("/workspaces", { name: name.value.trim() });
      fresh.append(shownOnce(`Admin token of “${w.name}”`, w.admin_token),
        h("p", {}, h("a", { href: `#/w/${encodeURIComponent(w.name)}` }, `Open ${w.name}`)));
      name.value = "";
    } catch (ex) {
      err.say(`No workspace made: ${ex.message}`);
    }
  } }, h("label", { for: "ws-name" }, "Name"), name, h("button", { type: "submit", class: "primary" }, "Create workspace"));
  sec.append(h("p", { class: "muted" }, "As server admin you can make workspaces; each comes with its own admin token."), form, err.el, fresh);
  return sec;
}

export async function showAdmin(app, main) {
  document.title = `Admin · ${app.ws} · quire`;
  clear(main).append(h("p", { class: "muted" }, "Loading…"));
  const parts = [await tokensSection(app), await secretsSection(app)];
  if (app.me.server_admin) parts.push(workspacesSection(app));
  clear(main).append(h("h1", {}, `Workspace admin: ${app.ws}`), ...parts);
}
