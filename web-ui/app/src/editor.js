// CodeMirror 6 for one code block: JavaScript/TypeScript highlighting, line
// numbers, bracket matching, undo history (all from basicSetup), Ctrl/Cmd-
// Enter to run, and error markers at the failing line.
import { basicSetup } from "codemirror";
import { EditorView, keymap } from "@codemirror/view";
import { EditorState, Compartment, Prec } from "@codemirror/state";
import { javascript } from "@codemirror/lang-javascript";
import { setDiagnostics, lintGutter } from "@codemirror/lint";
import HOST_API from "./hostapi.gen.json";

// What the "quire" module offers: doc, db, kv, secrets (build.mjs reads
// their signatures from the module itself).
const GRANT_OF = { doc: "doc:read / doc:write", db: "db:read:<collection> / db:write:<collection>", kv: "kv:read / kv:write", secrets: "secret:<NAME>" };
function hostCompletions(context) {
  const m = context.matchBefore(/\b(doc|db|kv|secrets)\.\w*$/);
  if (!m) return null;
  const ns = m.text.slice(0, m.text.indexOf("."));
  return {
    from: m.from + ns.length + 1,
    options: HOST_API[ns].map((f) => ({
      label: f.name,
      type: "function",
      detail: `(${f.args}) → Promise`,
      info: `${ns}.${f.name}(${f.args}): the host call ${f.op}; needs ${GRANT_OF[ns]}.`,
      apply: `${f.name}(`,
    })),
    validFor: /^\w*$/,
  };
}

export function createEditor(parent, { doc, lang, readOnly, onRun, onRunNext, onChange, label }) {
  const language = new Compartment();
  const editable = new Compartment();
  const view = new EditorView({
    parent,
    state: EditorState.create({
      doc,
      extensions: [
        Prec.highest(keymap.of([
          { key: "Mod-Enter", run: () => { onRun(); return true; } },
          { key: "Shift-Enter", run: () => { (onRunNext || onRun)(); return true; } },
        ])),
        basicSetup,
        lintGutter(),
        EditorState.languageData.of(() => [{ autocomplete: hostCompletions }]),
        language.of(javascript({ typescript: lang === "ts" })),
        editable.of([EditorState.readOnly.of(!!readOnly), EditorView.editable.of(!readOnly)]),
        EditorView.contentAttributes.of({ "aria-label": label }),
        EditorView.updateListener.of((u) => {
          if (u.docChanged) {
            // Old error markers no longer point at the right code.
            onChange(u.state.doc.toString());
          }
        }),
      ],
    }),
  });
  return {
    view,
    text: () => view.state.doc.toString(),
    setText(text) {
      view.dispatch({ changes: { from: 0, to: view.state.doc.length, insert: text } });
    },
    setLang(l) {
      view.dispatch({ effects: language.reconfigure(javascript({ typescript: l === "ts" })) });
    },
    // Mark `line` (1-based) with `message`; null clears.
    markError(line, column, message) {
      if (!line) {
        view.dispatch(setDiagnostics(view.state, []));
        return;
      }
      const n = Math.min(Math.max(1, line), view.state.doc.lines);
      const l = view.state.doc.line(n);
      const from = Math.min(l.from + Math.max(0, (column || 1) - 1), l.to);
      view.dispatch(setDiagnostics(view.state, [{ from, to: l.to > from ? l.to : from, severity: "error", message }]));
    },
    // Put the cursor at `line`:`column` (1-based), in view, focused.
    reveal(line, column) {
      const n = Math.min(Math.max(1, line), view.state.doc.lines);
      const l = view.state.doc.line(n);
      const at = Math.min(l.from + Math.max(0, (column || 1) - 1), l.to);
      view.dispatch({ selection: { anchor: at }, scrollIntoView: true });
      view.focus();
    },
    focus: () => view.focus(),
  };
}
