// Version page: plotly charts from the embedded JSON, a paged row preview, the recipe editor.
// User data only ever reaches the page through textContent / plotly data (never innerHTML).
(function () {
  const charts = JSON.parse(document.getElementById("charts-data").textContent);
  const ui = JSON.parse(document.getElementById("recipe-ui").textContent);
  const layout = (extra) => Object.assign({ margin: { t: 30, r: 10, b: 60, l: 50 } }, extra || {});
  const config = { responsive: true, displaylogo: false };

  function option(select, value, label) {
    const o = document.createElement("option");
    o.value = value; o.textContent = label == null ? value : label;
    select.appendChild(o);
  }

  // --- histograms ----------------------------------------------------------------------------
  const histSelect = document.getElementById("hist-column");
  const withHist = charts.columns.filter((c) => c.histogram || (c.top_values && c.top_values.length));
  withHist.forEach((c) => option(histSelect, c.name, c.name + " (" + c.kind + ")"));
  function drawHist() {
    const c = withHist.find((x) => x.name === histSelect.value);
    if (!c) return;
    let trace;
    if (c.histogram) {
      const e = c.histogram.edges;
      const mids = c.histogram.counts.map((_, i) => (c.kind === "datetime" ? e[i] : (e[i] + e[i + 1]) / 2));
      trace = { type: "bar", x: mids, y: c.histogram.counts, marker: { color: "#4f6bed" } };
    } else {
      trace = { type: "bar", x: c.top_values.map((t) => t.value), y: c.top_values.map((t) => t.count), marker: { color: "#4f6bed" } };
    }
    Plotly.react("chart-hist", [trace], layout({ title: { text: c.name }, bargap: 0.02 }), config);
  }
  histSelect.addEventListener("change", drawHist);
  if (withHist.length) drawHist();

  // --- target ----------------------------------------------------------------------------------
  const t = charts.target;
  if (t && t.classes) {
    Plotly.react("chart-target", [{ type: "bar", x: t.classes.map((c) => c.value), y: t.classes.map((c) => c.count), marker: { color: "#e08a1e" } }], layout({ title: { text: t.column } }), config);
  } else if (t && t.histogram) {
    const e = t.histogram.edges;
    Plotly.react("chart-target", [{ type: "bar", x: t.histogram.counts.map((_, i) => (e[i] + e[i + 1]) / 2), y: t.histogram.counts }], layout({ title: { text: t.column } }), config);
  } else {
    mlp.text(document.getElementById("no-target"), "Choose a target column to see its distribution, class balance and leakage checks.");
  }

  // --- correlations ----------------------------------------------------------------------------
  const corr = charts.correlations || {};
  if (corr.numeric) {
    Plotly.react("chart-corr", [{ type: "heatmap", z: corr.numeric.matrix, x: corr.numeric.columns, y: corr.numeric.columns, zmin: -1, zmax: 1, colorscale: "RdBu", reversescale: true }], layout({ title: { text: "Pearson correlation (numeric)" } }), config);
  } else { mlp.text(document.getElementById("chart-corr"), "Fewer than two numeric columns."); }
  if (corr.categorical) {
    Plotly.react("chart-cramer", [{ type: "heatmap", z: corr.categorical.matrix, x: corr.categorical.columns, y: corr.categorical.columns, zmin: 0, zmax: 1, colorscale: "Viridis" }], layout({ title: { text: "Cramér's V (categorical)" } }), config);
  }

  // --- scatter ---------------------------------------------------------------------------------
  const sc = charts.scatter;
  const sx = document.getElementById("scatter-x"), sy = document.getElementById("scatter-y");
  if (sc && sc.numeric.length >= 2) {
    sc.numeric.forEach((c) => { option(sx, c); option(sy, c); });
    sy.selectedIndex = 1;
    const draw = function () {
      const x = sc.values[sx.value], y = sc.values[sy.value];
      let traces;
      if (sc.target_values) {
        const groups = {};
        sc.target_values.forEach((v, i) => { (groups[v] = groups[v] || []).push(i); });
        const keys = Object.keys(groups);
        if (keys.length <= 20) {
          traces = keys.map((k) => ({ type: "scattergl", mode: "markers", name: k, x: groups[k].map((i) => x[i]), y: groups[k].map((i) => y[i]), marker: { size: 5, opacity: 0.6 } }));
        } else {
          traces = [{ type: "scattergl", mode: "markers", x: x, y: y, marker: { size: 5, color: sc.target_values.map(Number), colorscale: "Viridis", showscale: true } }];
        }
      } else {
        traces = [{ type: "scattergl", mode: "markers", x: x, y: y, marker: { size: 5, opacity: 0.6 } }];
      }
      Plotly.react("chart-scatter", traces, layout({ xaxis: { title: { text: sx.value } }, yaxis: { title: { text: sy.value } } }), config);
    };
    sx.addEventListener("change", draw); sy.addEventListener("change", draw); draw();
  } else { mlp.text(document.getElementById("chart-scatter"), "Fewer than two numeric columns."); }

  // --- paged rows ------------------------------------------------------------------------------
  function fillTable(table, columns, rows, extra) {
    const head = table.querySelector("thead"), body = table.querySelector("tbody");
    head.replaceChildren(); body.replaceChildren();
    const tr = document.createElement("tr");
    (extra ? ["split"].concat(columns) : columns).forEach((c) => { const th = document.createElement("th"); th.textContent = c; tr.appendChild(th); });
    head.appendChild(tr);
    rows.forEach((row, i) => {
      const r = document.createElement("tr");
      (extra ? [extra[i]].concat(row) : row).forEach((v) => { const td = document.createElement("td"); td.textContent = v == null ? "" : (typeof v === "number" ? +v.toPrecision(6) : String(v)); r.appendChild(td); });
      body.appendChild(r);
    });
  }
  let page = 1, pages = 1;
  async function loadPage() {
    const r = await mlp.api("/api/v1/dataset-versions/" + ui.version + "/rows/?page_size=25&page=" + page);
    if (!r.ok) return;
    pages = Math.max(1, Math.ceil(r.body.count / r.body.page_size));
    // The stable row id first (the same row keeps it in versions made by appending rows).
    const ids = r.body.row_ids || [];
    const rows = r.body.rows.map((row, i) => [ids[i] == null ? "" : String(ids[i])].concat(row));
    fillTable(document.getElementById("preview"), ["row"].concat(r.body.columns), rows, r.body.split);
    mlp.text(document.getElementById("page-label"), "Page " + page + " of " + pages + " (" + r.body.count + " rows)");
  }
  document.getElementById("prev-page").addEventListener("click", () => { if (page > 1) { page--; loadPage(); } });
  document.getElementById("next-page").addEventListener("click", () => { if (page < pages) { page++; loadPage(); } });
  loadPage();

  // --- recipe editor ---------------------------------------------------------------------------
  let steps = [];
  const opSelect = document.getElementById("step-op"), fields = document.getElementById("step-fields");
  const list = document.getElementById("steps"), json = document.getElementById("steps-json");
  const err = document.getElementById("recipe-error");
  const loadSelect = document.getElementById("recipe-load");
  ui.ops.forEach((op) => option(opSelect, op));
  ui.recipes.forEach((r, i) => option(loadSelect, String(i), r.label));
  const FIELDS = {
    drop_columns: [["columns", "columns"]],
    impute: [["columns", "columns"], ["strategy", ui.impute], ["value", "text"]],
    drop_duplicates: [],
    remove_outliers: [["columns", "columns"], ["method", ui.outliers], ["threshold", "number"]],
    encode: [["columns", "columns"], ["method", ui.encode]],
    scale: [["columns", "columns"], ["method", ui.scale]],
    date_parts: [["columns", "columns"], ["parts", ui.date_parts, true]],
    ratio: [["numerator", "column"], ["denominator", "column"], ["name", "text"]],
    age: [["column", "column"], ["name", "text"], ["reference", "text"]],
    uppercase_ratio: [["column", "column"], ["name", "text"]],
    tfidf: [["column", "column"], ["max_features", "number"]],
    pca: [["n_components", "number"]],
    select_k_best: [["k", "number"]],
  };
  function derived() { return steps.filter((s) => s.name && ["ratio", "age", "uppercase_ratio"].includes(s.op)).map((s) => s.name); }
  function renderFields() {
    fields.replaceChildren();
    (FIELDS[opSelect.value] || []).forEach(([key, type, multi]) => {
      const wrap = document.createElement("div");
      const label = document.createElement("label"); label.textContent = key; label.htmlFor = "field-" + key;
      let input;
      if (type === "columns" || type === "column" || Array.isArray(type)) {
        input = document.createElement("select"); input.id = "field-" + key;
        const values = Array.isArray(type) ? type : ui.columns.filter((c) => c !== ui.target).concat(derived());
        if (type === "columns" || multi) { input.multiple = true; input.size = Math.min(6, values.length); }
        values.forEach((v) => option(input, v));
      } else {
        input = document.createElement("input"); input.id = "field-" + key; input.type = type === "number" ? "number" : "text";
        if (type === "number") input.step = "any";
      }
      input.dataset.key = key; input.dataset.kind = Array.isArray(type) ? (multi ? "list" : "choice") : type;
      wrap.appendChild(label); wrap.appendChild(input); fields.appendChild(wrap);
    });
  }
  function renderSteps() {
    list.replaceChildren();
    steps.forEach((s, i) => {
      const li = document.createElement("li");
      const code = document.createElement("code"); code.textContent = JSON.stringify(s);
      const rm = document.createElement("button"); rm.type = "button"; rm.className = "btn secondary small"; rm.textContent = "Remove";
      rm.addEventListener("click", () => { steps.splice(i, 1); renderSteps(); });
      li.appendChild(code); li.appendChild(document.createTextNode(" ")); li.appendChild(rm); list.appendChild(li);
    });
    json.value = JSON.stringify(steps, null, 2);
    const hidden = document.getElementById("recipe-steps-input"); if (hidden) hidden.value = JSON.stringify(steps);
  }
  opSelect.addEventListener("change", renderFields);
  document.getElementById("add-step").addEventListener("click", () => {
    const step = { op: opSelect.value };
    fields.querySelectorAll("[data-key]").forEach((el) => {
      const k = el.dataset.key, kind = el.dataset.kind;
      if (el.multiple) { const v = Array.from(el.selectedOptions).map((o) => o.value); if (v.length) step[k] = v; }
      else if (kind === "number") { if (el.value !== "") step[k] = Number(el.value); }
      else if (el.value !== "") step[k] = el.value;
    });
    if (["pca", "select_k_best", "tfidf"].includes(step.op)) ["n_components", "k", "max_features"].forEach((k) => { if (k in step) step[k] = Math.round(step[k]); });
    steps.push(step); renderSteps(); renderFields();
  });
  document.getElementById("apply-json").addEventListener("click", () => {
    try { const v = JSON.parse(json.value); if (!Array.isArray(v)) throw new Error("a recipe is a list of steps"); steps = v; mlp.text(err, ""); renderSteps(); }
    catch (e) { mlp.text(err, "Invalid JSON: " + e.message); }
  });
  loadSelect.addEventListener("change", () => {
    const r = ui.recipes[Number(loadSelect.value)];
    steps = r ? JSON.parse(JSON.stringify(r.steps)) : [];
    const name = document.getElementById("recipe-name"); if (name && r) name.value = r.name;
    renderSteps();
  });
  document.getElementById("preview-recipe").addEventListener("click", async () => {
    mlp.text(err, "");
    const r = await mlp.api("/api/v1/recipes/preview/", { method: "POST", json: { dataset_version: ui.version, steps: steps } });
    const box = document.getElementById("recipe-preview");
    if (!r.ok) { box.hidden = true; mlp.text(err, (r.body && r.body.detail) || ("HTTP " + r.status)); return; }
    box.hidden = false;
    mlp.text(document.getElementById("recipe-notes"), r.body.rows_in + " sample rows, " + r.body.rows_after_row_filters + " after row filters; " + r.body.after.columns.length + " output columns. " + r.body.notes.join(" "));
    fillTable(document.getElementById("preview-before"), r.body.before.columns, r.body.before.rows);
    fillTable(document.getElementById("preview-after"), r.body.after.columns, r.body.after.rows);
  });
  renderFields(); renderSteps();
})();
