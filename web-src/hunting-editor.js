// The hunting page's editor (CodeMirror 6: KQL and SQL highlighting, completion of the schema's
// tables and columns, the server's errors underlined) and its charts (Chart.js). Bundled by
// scripts/build-web.sh into src/clampdown/web/static/dist/hunting-editor.js; the page's own
// script (static/hunting.js) uses it through window.clampdownHunt, and keeps the plain text area
// when it is missing.
import { autocompletion, closeBrackets, closeBracketsKeymap, closeCompletion, completionKeymap } from "@codemirror/autocomplete";
import { defaultKeymap, history, historyKeymap } from "@codemirror/commands";
import { sql, StandardSQL } from "@codemirror/lang-sql";
import { bracketMatching, HighlightStyle, syntaxHighlighting } from "@codemirror/language";
import { linter, setDiagnostics } from "@codemirror/lint";
import { Compartment, EditorState, Prec } from "@codemirror/state";
import { drawSelection, EditorView, highlightActiveLine, keymap, lineNumbers, placeholder } from "@codemirror/view";
import { tags as t } from "@lezer/highlight";
import { clearChart, drawChart } from "./charts.js";
import { CHART_KINDS, FUNCTIONS, KEYWORDS, kqlLanguage, OPERATORS } from "./kql.js";

// The server's rule (hunting/query.py detect_language): SQL when it starts like a statement.
const SQL_START = /^\s*(select|with|from|values|insert|update|delete|copy|attach|detach|create|drop|alter|pragma|set|reset|call|install|load|export|import|begin|commit|rollback|checkpoint|vacuum|use|describe|show|summarize|explain|truncate|merge|prepare|execute|deallocate|\()\b/i;
export const detectLanguage = (text) => (SQL_START.test(text) ? "sql" : "kql");

const style = HighlightStyle.define([
  { tag: t.keyword, color: "#7c3aed", fontWeight: "600" },
  { tag: t.typeName, color: "#0f766e", fontWeight: "600" },
  { tag: t.propertyName, color: "#1d4ed8" },
  { tag: t.function(t.variableName), color: "#b45309" },
  { tag: [t.string, t.special(t.string)], color: "#b91c1c" },
  { tag: t.number, color: "#047857" },
  { tag: [t.atom, t.bool, t.null], color: "#9333ea" },
  { tag: t.comment, color: "#6b7280", fontStyle: "italic" },
  { tag: t.operator, color: "#374151" },
]);

const theme = EditorView.theme({
  "&": { border: "1px solid var(--border, #c7ccd4)", borderRadius: "6px", background: "var(--surface, #fff)", fontSize: "13.5px" },
  "&.cm-focused": { outline: "2px solid var(--focus, #2563eb)", outlineOffset: "1px" },
  ".cm-content": { fontFamily: "ui-monospace, SFMono-Regular, Menlo, Consolas, monospace", minHeight: "9.5em" },
  ".cm-scroller": { maxHeight: "24em", overflow: "auto" },
  // The default key glyph is an emoji most servers' fonts lack.
  ".cm-completionIcon-keyword:after": { content: "'k'" },
  ".cm-gutters": { background: "transparent", borderRight: "1px solid var(--border, #e5e7eb)", color: "#9ca3af" },
});

// Strings and comments blanked out, so their words are not read as names.
function code(text) {
  return text.replace(/\/\/[^\n]*|--[^\n]*|'(?:[^'\\\n]|\\.)*'?|"(?:[^"\\\n]|\\.)*"?/g, (m) => " ".repeat(m.length));
}

// The tables the query names (the table being typed first), else every table.
function tablesIn(schema, text) {
  const named = [];
  for (const word of code(text).match(/[A-Za-z_]\w*/g) || []) {
    const table = schema.find((s) => s.name.toLowerCase() === word.toLowerCase());
    if (table && !named.includes(table)) named.push(table);
  }
  return named;
}

function columnOptions(schema, text) {
  const named = tablesIn(schema, text);
  const seen = new Set();
  const options = [];
  for (const table of named.length ? named : schema) {
    for (const c of table.columns) {
      if (seen.has(c.name)) continue;
      seen.add(c.name);
      options.push({ label: c.name, type: "property", detail: `${c.type.toLowerCase()} · ${table.name}`, info: c.description, boost: named.length ? 10 : 0 });
    }
  }
  return options;
}

const tableOptions = (schema) => schema.map((s) => ({ label: s.name, type: "class", detail: "table", info: s.description, boost: 5 }));

function kqlCompletion(schema) {
  return (context) => {
    const word = context.matchBefore(/[\w-]*/);
    if (!word || (word.from === word.to && !context.explicit)) return null;
    const doc = context.state.doc.toString();
    const before = code(doc.slice(0, word.from));
    const statement = before.slice(before.lastIndexOf(";") + 1);
    const previous = (statement.match(/([\w|]+)\s*$/) || [])[1] || "";
    let options;
    if (!statement.includes("|") && !/\S/.test(statement.replace(/^\s*let\b.*$/m, ""))) {
      options = [...tableOptions(schema), { label: "let", type: "keyword" }];
    } else if (/\|\s*$/.test(statement)) {
      options = OPERATORS.map((o) => ({ label: o, type: "keyword" }));
    } else if (previous === "render") {
      options = CHART_KINDS.map((k) => ({ label: k, type: "enum", detail: "chart" }));
    } else {
      options = [
        ...columnOptions(schema, doc),
        ...FUNCTIONS.map((f) => ({ label: f, type: "function", apply: `${f}(` })),
        ...KEYWORDS.map((k) => ({ label: k, type: "keyword" })),
        ...tableOptions(schema).map((o) => ({ ...o, boost: -1 })),
      ];
    }
    return { from: word.from, options, validFor: /^[\w-]*$/ };
  };
}

// lang-sql completes keywords, tables and `Table.column`; this adds the bare columns of the
// tables the query reads, which is what a hunt types most.
function sqlColumnCompletion(schema) {
  return (context) => {
    const word = context.matchBefore(/\w*/);
    if (!word || (word.from === word.to && !context.explicit)) return null;
    const before = context.state.doc.sliceString(Math.max(0, word.from - 1), word.from);
    if (before === ".") return null;
    const previous = (code(context.state.doc.sliceString(0, word.from)).match(/(\w+)\s*$/) || [])[1] || "";
    if (/^(from|join)$/i.test(previous)) return null;
    return { from: word.from, options: columnOptions(schema, context.state.doc.toString()), validFor: /^\w*$/ };
  };
}

// Line and column (1-based) into a range over the word there (at least one character).
function rangeAt(doc, line, column) {
  const l = doc.line(Math.min(Math.max(1, line), doc.lines));
  let from = Math.min(l.from + Math.max(0, column - 1), l.to);
  let to = from;
  while (to < l.to && /[\w'"]/.test(doc.sliceString(to, to + 1))) to++;
  if (to === from) {
    if (from < doc.length) to = from + 1;
    else if (from > 0) from -= 1;
  }
  return { from, to };
}

// The console's Content-Security-Policy allows no <style> element (style-src 'self'): in a shadow
// root, CodeMirror's styles go into a constructed style sheet instead, which the policy allows.
function shadowMount(host) {
  const shadow = host.shadowRoot || host.attachShadow({ mode: "open" });
  const mount = document.createElement("div");
  shadow.replaceChildren(mount);
  return { shadow, mount };
}

// The server's check as you pause typing (`check(text)` answers {valid, message, line, column}):
// a mistake is underlined before the query runs. The last run's error (`ranWith()`: the text it
// ran and its diagnostic) stays while the text is the one that ran.
function serverLinter(check, ranWith) {
  return linter(async (view) => {
    const doc = view.state.doc;
    const ran = ranWith();
    const kept = ran && ran.doc === doc ? [ran.diagnostic] : [];
    if (!check || !doc.toString().trim()) return kept;
    let found = null;
    try { found = await check(doc.toString()); } catch { return kept; }
    if (!found || found.valid || !Number.isInteger(found.line) || !Number.isInteger(found.column)) return kept;
    const { from, to } = rangeAt(doc, found.line, found.column);
    if (kept.some((d) => d.from === from && d.to === to)) return kept; // the same mistake, once
    return [...kept, { from, to, severity: "error", message: found.message }];
  }, { delay: 600 });
}

export function createEditor({ parent, doc, schema, label, language, onRun, onChange, check }) {
  const languageSlot = new Compartment();
  const kql = kqlLanguage(schema);
  const kqlSupport = [kql, kql.data.of({ autocomplete: kqlCompletion(schema) })];
  const sqlSchema = Object.fromEntries(schema.map((s) => [s.name, s.columns.map((c) => c.name)]));
  const sqlSupport = sql({ dialect: StandardSQL, schema: sqlSchema, upperCaseKeywords: true });
  const sqlSupportAll = [sqlSupport, sqlSupport.language.data.of({ autocomplete: sqlColumnCompletion(schema) })];
  const pick = (lang) => (lang === "sql" ? sqlSupportAll : kqlSupport);
  let current = language() || detectLanguage(doc);
  let errorShown = false;
  let ran = null; // the last run's error: {doc, diagnostic}
  const { shadow, mount } = shadowMount(parent);
  const view = new EditorView({
    parent: mount,
    root: shadow,
    state: EditorState.create({
      doc,
      extensions: [
        lineNumbers(), history(), drawSelection(), highlightActiveLine(), bracketMatching(), closeBrackets(),
        autocompletion({ activateOnTyping: true, icons: true }),
        Prec.highest(keymap.of([{ key: "Mod-Enter", run: () => { closeCompletion(view); onRun(); return true; } }])),
        keymap.of([...closeBracketsKeymap, ...defaultKeymap, ...historyKeymap, ...completionKeymap]),
        syntaxHighlighting(style), theme, EditorView.lineWrapping,
        placeholder("CloudSignInEvents | where ActionType == \"LogonFailed\""),
        EditorView.contentAttributes.of({ "aria-label": label, "aria-multiline": "true", "data-testid": "hunt-editor" }),
        languageSlot.of(pick(current)),
        serverLinter(check, () => ran),
        EditorView.updateListener.of((update) => {
          if (!update.docChanged) return;
          // A new text: the last run's mistakes no longer point anywhere meaningful.
          if (errorShown) { errorShown = false; setTimeout(() => view.dispatch(setDiagnostics(view.state, [])), 0); }
          onChange?.();
          if (!language()) editor.setLanguage("");
        }),
      ],
    }),
  });
  const editor = {
    view,
    getText: () => view.state.doc.toString(),
    setText(text) {
      view.dispatch({ changes: { from: 0, to: view.state.doc.length, insert: text } });
    },
    // "" detects from the text, as the server does.
    setLanguage(lang) {
      const next = lang || detectLanguage(view.state.doc.toString());
      if (next === current) return;
      current = next;
      setTimeout(() => view.dispatch({ effects: languageSlot.reconfigure(pick(next)) }), 0);
    },
    showError(line, column, message) {
      const { from, to } = rangeAt(view.state.doc, line, column);
      errorShown = true;
      ran = { doc: view.state.doc, diagnostic: { from, to, severity: "error", message } };
      view.dispatch(setDiagnostics(view.state, [ran.diagnostic]));
    },
    closeCompletion: () => closeCompletion(view),
    clearErrors() {
      ran = null;
      if (errorShown) { errorShown = false; view.dispatch(setDiagnostics(view.state, [])); }
    },
    focus: () => view.focus(),
  };
  return editor;
}

export { clearChart, drawChart };
