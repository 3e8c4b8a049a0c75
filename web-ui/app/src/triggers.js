// A code block's triggers: cron schedules and webhook URLs. Shown in a
// collapsed section under the block; loaded when opened.
import { h, clear } from "./dom.js";
import { paths } from "./api.js";

const fmt = (ms) => (ms ? new Date(ms).toLocaleString() : "never");

// "in 5 s", "in 3 min", "in 2 h", or "due now".
export function until(ms, now = Date.now()) {
  const s = Math.round((ms - now) / 1000);
  if (s <= 0) return "due now";
  if (s < 90) return `in ${s} s`;
  if (s < 5400) return `in ${Math.round(s / 60)} min`;
  return `in ${Math.round(s / 3600)} h`;
}

export class Triggers {
  constructor(app, blockId) {
    this.app = app;
    this.blockId = blockId;
    this.body = h("div", { class: "triggers-body" });
    this.el = h("details", { class: "triggers", ontoggle: () => this.el.open && this.load() },
      h("summary", {}, "Schedules and webhooks"), this.body);
  }

  get canEdit() { return this.app.role !== "viewer"; }

  async load() {
    const { ws } = this.app;
    try {
      const [{ schedules }, hooks] = await Promise.all([
        this.app.api.get(paths.schedules(ws)),
        this.canEdit ? this.app.api.get(paths.blockWebhooks(ws, this.blockId)) : { webhooks: null },
      ]);
      this.render(schedules.filter((s) => s.block === this.blockId), hooks.webhooks);
    } catch (e) {
      clear(this.body).append(h("p", { class: "error", role: "alert" }, `Could not load triggers: ${e.message}`));
    }
  }

  render(schedules, webhooks) {
    const id = (x) => `${x}-${this.blockId}`;
    const list = schedules.length
      ? h("ul", { class: "schedules", "aria-label": "Schedules" }, schedules.map((s) => h("li", { "data-schedule": s.id },
        h("code", {}, s.cron), ` (${s.timezone}) — ${s.description}. `,
        s.paused ? h("strong", {}, "Paused. ") : h("span", {}, `Next run: ${fmt(s.next_fire_ms)} `, h("span", { class: "until", "data-next": String(s.next_fire_ms || "") }, s.next_fire_ms ? `(${until(s.next_fire_ms)})` : ""), ". "),
        `Last: ${fmt(s.last_fired_ms)}. `,
        this.canEdit ? h("button", { class: "link", onclick: () => this.edit(s.id, { paused: !s.paused }), "aria-label": `${s.paused ? "Resume" : "Pause"} the schedule ${s.cron}` }, s.paused ? "Resume" : "Pause") : "",
        " ",
        this.canEdit ? h("button", { class: "link danger", onclick: () => this.remove(paths.schedule(this.app.ws, s.id)), "aria-label": `Delete the schedule ${s.cron}` }, "Delete") : "")))
      : h("p", { class: "muted" }, "No schedules.");
    const parts = [h("h4", {}, "Schedules"), list];
    if (this.canEdit) {
      const cron = h("input", { id: id("cron"), type: "text", required: true, placeholder: "0 9 * * 1-5", "aria-describedby": id("cron-help") });
      const tz = h("input", { id: id("tz"), type: "text", value: Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC" });
      const catchUp = h("input", { id: id("catch-up"), type: "checkbox", checked: true });
      const err = h("p", { class: "error", role: "alert", hidden: true });
      parts.push(h("form", { class: "add-schedule", onsubmit: async (e) => {
        e.preventDefault();
        try {
          await this.app.api.post(paths.blockSchedules(this.app.ws, this.blockId), { cron: cron.value.trim(), timezone: tz.value.trim(), catch_up: catchUp.checked });
          await this.load();
        } catch (e2) {
          err.hidden = false;
          err.textContent = e2.message;
          (e2.body?.field === "timezone" ? tz : cron).setAttribute("aria-invalid", "true");
        }
      } },
      h("label", { for: id("cron") }, "Cron expression"), cron,
      h("p", { id: id("cron-help"), class: "muted" }, "5 fields (minute hour day month weekday), 6 with seconds first, or @hourly, @daily…"),
      h("label", { for: id("tz") }, "Time zone"), tz,
      h("div", { class: "check" }, catchUp, h("label", { for: id("catch-up") }, "If the server was down at a run time, run once when it starts")),
      h("button", { type: "submit" }, "Add schedule"), err));
      parts.push(h("h4", {}, "Webhooks"));
      parts.push(webhooks.length
        ? h("ul", { class: "webhooks", "aria-label": "Webhooks" }, webhooks.map((w) => h("li", {},
          `Webhook ${w.id}, created ${fmt(w.created_ms)}. `,
          h("button", { class: "link danger", onclick: () => this.remove(paths.webhook(this.app.ws, w.id)), "aria-label": `Delete webhook ${w.id}` }, "Delete"))))
        : h("p", { class: "muted" }, "No webhooks."));
      this.urlEl = h("div", { class: "hook-url" });
      parts.push(h("button", { onclick: () => this.createHook() }, "Create webhook URL"), this.urlEl);
    }
    clear(this.body).append(...parts);
    this.tick();
  }

  // While the section is open, "next run" counts down each second.
  tick() {
    clearInterval(this.timer);
    this.timer = setInterval(() => {
      if (!this.el.isConnected || !this.el.open) return clearInterval(this.timer);
      for (const el of this.body.querySelectorAll("[data-next]")) {
        const ms = Number(el.dataset.next);
        if (ms) el.textContent = `(${until(ms)})`;
      }
    }, 1000);
  }

  // A run of the block started by a schedule: its next run moved on.
  refresh() {
    if (this.el.open) this.load();
  }

  async edit(id, change) {
    await this.app.api.call("PATCH", paths.schedule(this.app.ws, id), change);
    await this.load();
  }

  async remove(path) {
    if (!confirm("Delete this trigger?")) return;
    await this.app.api.del(path);
    await this.load();
  }

  async createHook() {
    const r = await this.app.api.post(paths.blockWebhooks(this.app.ws, this.blockId), {});
    await this.load();
    const url = `${location.origin}${r.path}`;
    const input = h("input", { id: `hook-${this.blockId}`, type: "text", readonly: true, value: url });
    clear(this.urlEl).append(
      h("label", { for: input.id }, "Webhook URL (shown only now; keep it secret)"), input,
      h("p", { class: "muted" }, "POST a JSON body to it: the body becomes ctx.input. Add ?wait=true to get the result back."));
    input.select();
  }
}
