// Advanced hunting: write a query in the editor (static/dist/hunting-editor.js: CodeMirror with
// completion and the server's errors underlined; the plain text area when it is missing), run it
// through the API, chart it, pick rows, take one action on their accounts.
"use strict";
(() => {
  const { api, confirmAction, newKey, toast } = window.clampdown;
  const hunt = window.clampdownHunt;
  const $ = (selector) => document.querySelector(selector);
  const form = $("#hunt-form");
  const table = $("#hunt-table");
  const columnSelect = $("#hunt-column");
  const actButton = $("#hunt-act");
  const ACCOUNT_COLUMNS = ["AccountUpn", "TargetAccountUpn", "AccountName", "TargetAccountName", "AccountObjectId"];
  let result = { columns: [], rows: [], column_types: [] };

  // The editor replaces the text area once it is built; Ctrl+Enter runs the query in either.
  const textarea = $("#hunt-query");
  const holder = $("#hunt-editor");
  let editor = null;
  if (hunt && holder) {
    editor = hunt.createEditor({
      parent: holder, doc: textarea.value, schema: JSON.parse(holder.dataset.schema || "[]"),
      label: "Query",
      language: () => form.language.value, onRun: () => form.requestSubmit(),
      check: (query) => api("POST", "/api/v1/hunting/check", { query, language: form.language.value || undefined }),
      onChange: () => { $("#hunt-error").textContent = ""; }, // the last run's error no longer applies
    });
    holder.hidden = false;
    textarea.remove();
    const label = $("#hunt-query-label");
    label.removeAttribute("for");
    label.addEventListener("click", () => editor.focus());
  } else {
    textarea.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) { event.preventDefault(); form.requestSubmit(); }
    });
  }
  const queryText = () => (editor ? editor.getText() : textarea.value);
  const setQueryText = (text) => { if (editor) editor.setText(text); else textarea.value = text; };
  form.language.addEventListener("change", () => editor?.setLanguage(form.language.value));

  const cell = (tag, text) => { const el = document.createElement(tag); el.textContent = text; return el; };

  function accountIndex() { return result.columns.indexOf(columnSelect?.value); }

  function selectedAccounts() {
    const index = accountIndex();
    const picked = [];
    for (const box of table.querySelectorAll("tbody input[type=checkbox]:checked")) {
      const value = result.rows[Number(box.dataset.row)][index];
      if (value !== null && value !== "" && !picked.includes(String(value))) picked.push(String(value));
    }
    return picked;
  }

  function updateSelection() {
    if (!actButton) return;
    const accounts = selectedAccounts();
    $("#hunt-selected").textContent = `${accounts.length} account${accounts.length === 1 ? "" : "s"} selected`;
    actButton.disabled = accounts.length === 0;
    actButton.textContent = accounts.length ? `Take action on ${accounts.length}` : "Take action";
  }

  function render() {
    const index = accountIndex();
    const head = document.createElement("tr");
    const all = document.createElement("input");
    all.type = "checkbox";
    all.setAttribute("aria-label", "Select every row");
    all.addEventListener("change", () => {
      table.querySelectorAll("tbody input[type=checkbox]").forEach((box) => { box.checked = all.checked; });
      updateSelection();
    });
    const first = document.createElement("th");
    first.scope = "col";
    first.append(all);
    head.append(first, ...result.columns.map((name) => Object.assign(cell("th", name), { scope: "col" })));
    table.tHead.replaceChildren(head);
    const body = result.rows.map((row, r) => {
      const tr = document.createElement("tr");
      const box = document.createElement("input");
      box.type = "checkbox";
      box.dataset.row = r;
      box.setAttribute("aria-label", `Select row ${r + 1}${index >= 0 ? ": " + row[index] : ""}`);
      box.addEventListener("change", updateSelection);
      const pick = document.createElement("td");
      pick.append(box);
      tr.append(pick);
      row.forEach((value, c) => {
        const td = document.createElement("td");
        const text = value === null ? "" : typeof value === "object" ? JSON.stringify(value) : String(value);
        if (c === index && text) {
          const open = cell("button", text);
          open.type = "button";
          open.className = "link-button";
          open.dataset.openPanel = `/users/${encodeURIComponent(text)}/panel`;
          open.dataset.panelTitle = text;
          td.append(open);
        } else td.textContent = text;
        tr.append(td);
      });
      return tr;
    });
    if (!body.length) {
      const tr = document.createElement("tr");
      const td = cell("td", "No rows.");
      td.colSpan = result.columns.length + 1;
      tr.append(td);
      body.push(tr);
    }
    table.tBodies[0].replaceChildren(...body);
    updateSelection();
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    $("#hunt-error").textContent = "";
    $("#hunt-meta").textContent = "Running…";
    editor?.clearErrors();
    editor?.closeCompletion();
    try {
      const language = form.language.value || undefined;
      result = await api("POST", "/api/v1/hunting/query", { query: queryText(), language });
      if (columnSelect) {
        const keep = columnSelect.value;
        columnSelect.replaceChildren(...result.columns.map((name) => Object.assign(cell("option", name), { value: name })));
        const preferred = [keep, ...ACCOUNT_COLUMNS].find((name) => result.columns.includes(name));
        if (preferred) columnSelect.value = preferred;
      }
      $("#hunt-results").hidden = false;
      $("#hunt-meta").textContent =
        `${result.rows.length} row${result.rows.length === 1 ? "" : "s"}${result.truncated ? " (more matched: narrow the query)" : ""} in ${result.elapsed_ms} ms, ${result.language.toUpperCase()}`;
      render();
      chartResult();
    } catch (exc) {
      $("#hunt-meta").textContent = "";
      $("#hunt-error").textContent = exc.message;
      const where = exc.detail;
      if (editor && where && Number.isInteger(where.line) && Number.isInteger(where.column)) {
        editor.showError(where.line, where.column, exc.message);
      }
    }
  });

  $("#hunt-saved").addEventListener("change", (event) => {
    if (event.target.value) setQueryText(event.target.value);
  });

  // Charts: a KQL render's chart as the server chose its axes, or one picked here (any result).
  const chartOn = $("#hunt-chart-on");
  const chartKind = $("#hunt-chart-kind");
  const chartX = $("#hunt-chart-x");
  const chartY = $("#hunt-chart-y");
  const chartBox = $("#hunt-chart");
  let asked = null; // the render clause's chart, until the controls change it
  let shownForRender = false; // the toggle was turned on by a render clause, not by a person
  const NUMERIC = /^(TINYINT|SMALLINT|INTEGER|BIGINT|HUGEINT|UTINYINT|USMALLINT|UINTEGER|UBIGINT|UHUGEINT|FLOAT|DOUBLE|DECIMAL|REAL)/i;
  const typeOf = (name) => (result.column_types || [])[result.columns.indexOf(name)] || "";
  const options = (select, names, keep) => {
    select.replaceChildren(...names.map((name) => Object.assign(cell("option", name), { value: name })));
    if (names.includes(keep)) select.value = keep;
  };

  function drawChart() {
    const spec = asked || { kind: chartKind.value, x: chartX.value, y: chartY.value ? [chartY.value] : [], series: [] };
    const show = Boolean(hunt && chartOn.checked && spec.y.length && spec.x);
    chartBox.hidden = !show;
    if (show) hunt.drawChart(chartBox, spec, result);
    else if (hunt) hunt.clearChart(chartBox);
  }

  function chartResult() {
    if (!hunt || !chartOn) return;
    asked = result.chart || null;
    const numeric = result.columns.filter((name) => NUMERIC.test(typeOf(name)));
    const times = result.columns.filter((name) => /^(TIMESTAMP|DATE)/i.test(typeOf(name)));
    options(chartX, result.columns, asked ? asked.x : chartX.value || times[0] || result.columns[0]);
    if (!asked && !result.columns.includes(chartX.value)) chartX.value = times[0] || result.columns[0] || "";
    options(chartY, numeric, asked ? asked.y[0] : chartY.value);
    if (asked) {
      chartKind.value = asked.kind;
      shownForRender = shownForRender || !chartOn.checked;
      chartOn.checked = true;
    } else {
      if (shownForRender) chartOn.checked = false;
      shownForRender = false;
      // A time chart needs a datetime x axis: other results start as columns.
      if (chartKind.value === "timechart" && !times.includes(chartX.value)) chartKind.value = "columnchart";
    }
    chartOn.disabled = numeric.length === 0;
    chartOn.title = numeric.length ? "" : "No numeric column to draw";
    $("#hunt-chart-controls").hidden = false;
    drawChart();
  }

  for (const control of [chartKind, chartX, chartY]) {
    control?.addEventListener("change", () => { asked = null; drawChart(); });
  }
  chartOn?.addEventListener("change", () => { shownForRender = false; drawChart(); });

  $("#hunt-save")?.addEventListener("click", async () => {
    const name = $("#hunt-save-name").value.trim();
    if (!name) { $("#hunt-error").textContent = "Give the query a name to save it under."; return; }
    try {
      const saved = await api("POST", "/api/v1/hunting/queries", { name, query: queryText() });
      const option = Object.assign(cell("option", saved.name), { value: saved.query });
      $("#hunt-saved").append(option);
      toast(`Saved as “${saved.name}”`, "ok");
    } catch (exc) { $("#hunt-error").textContent = exc.message; }
  });

  columnSelect?.addEventListener("change", render);

  actButton?.addEventListener("click", () => {
    const accounts = selectedAccounts();
    const option = $("#hunt-action").selectedOptions[0];
    const d = option.dataset;
    const count = `${accounts.length} account${accounts.length === 1 ? "" : "s"}`;
    confirmAction({
      title: d.title, account: `${count} (${accounts.join(", ")})`, provider: d.provider,
      description: d.description, warning: d.warning, askReason: true,
      confirmLabel: `${d.title}: ${count}`,
      submit: async (reason) => {
        const bulk = await api("POST", "/api/v1/actions/bulk", { type: option.value, targets: accounts, reason, source: "hunting" },
          { "Idempotency-Key": newKey() });
        const link = Object.assign(cell("a", `Batch ${bulk.batch_id.slice(0, 8)}: follow it in the action center`),
          { href: `/actions?tab=history&batch=${encodeURIComponent(bulk.batch_id)}` });
        // With several directories of the kind, each account's directory is found first: an account
        // in none, or in several, is not queued, and says why.
        const refused = (bulk.refused || []).map((r) => cell("p", `Not queued: ${r.target}: ${r.reason}`));
        $("#hunt-meta").replaceChildren(link, ...refused);
        const skipped = refused.length ? `, ${refused.length} not queued` : "";
        return `${bulk.actions.length} actions queued in ${d.provider}${skipped} (batch ${bulk.batch_id.slice(0, 8)})`;
      },
    });
  });
})();
