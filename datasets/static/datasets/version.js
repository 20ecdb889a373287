// Version page: plotly charts from the embedded JSON and a paged row preview (the recipe editor
// is static/js/recipe-editor.js). User data only reaches the page through textContent / plotly
// data (never innerHTML). SVG traces only: WebGL ones need 'unsafe-eval' (see mlplatform/csp.py).
(function () {
  const charts = JSON.parse(document.getElementById("charts-data").textContent);
  const ui = JSON.parse(document.getElementById("recipe-ui").textContent);
  const axis = (title, extra) => Object.assign({ automargin: true, title: title ? { text: title } : undefined }, extra || {});
  const layout = (extra) => Object.assign({ margin: { t: 36, r: 12, b: 12, l: 12 }, xaxis: axis(), yaxis: axis() }, extra || {});
  const config = { responsive: true, displaylogo: false };

  function option(select, value, label) {
    const o = document.createElement("option");
    o.value = value; o.textContent = label == null ? value : label;
    select.appendChild(o);
  }
  function empty(id, text) {
    const el = document.getElementById(id);
    if (!el) return;
    el.classList.add("chart-empty");
    el.textContent = text;
  }

  // --- distributions: the most informative column first (never an id or a constant) ------------
  const histSelect = document.getElementById("hist-column");
  const usable = (c) => (c.histogram || (c.top_values && c.top_values.length)) && c.kind !== "id_like" && c.kind !== "text" && (c.unique || 0) > 1;
  const withHist = charts.columns.filter((c) => c.histogram || (c.top_values && c.top_values.length));
  withHist.filter(usable).concat(withHist.filter((c) => !usable(c))).forEach((c) => option(histSelect, c.name, c.name + " (" + c.kind + ")"));
  if (charts.default_column) histSelect.value = charts.default_column;
  function drawHist() {
    const c = withHist.find((x) => x.name === histSelect.value);
    if (!c) return;
    let trace;
    if (c.histogram) {
      const e = c.histogram.edges;
      const mids = c.histogram.counts.map((_, i) => (c.kind === "datetime" ? e[i] : (e[i] + e[i + 1]) / 2));
      trace = { type: "bar", x: mids, y: c.histogram.counts, marker: { color: "#4f6bed" }, hovertemplate: "%{x}: %{y} rows<extra></extra>" };
    } else {
      trace = { type: "bar", x: c.top_values.map((t) => t.value), y: c.top_values.map((t) => t.count), marker: { color: "#4f6bed" }, hovertemplate: "%{x}: %{y} rows<extra></extra>" };
    }
    Plotly.react("chart-hist", [trace], layout({ title: { text: c.name, font: { size: 14 } }, bargap: 0.04, xaxis: axis(c.name), yaxis: axis("rows") }), config);
  }
  histSelect.addEventListener("change", drawHist);
  if (withHist.length) drawHist(); else empty("chart-hist", "No column to chart yet.");

  // --- target -----------------------------------------------------------------------------------
  const t = charts.target;
  if (t && t.classes) {
    Plotly.react("chart-target", [{ type: "bar", x: t.classes.map((c) => c.value), y: t.classes.map((c) => c.count), marker: { color: "#e08a1e" }, hovertemplate: "%{x}: %{y} rows<extra></extra>" }],
      layout({ title: { text: t.column, font: { size: 14 } }, xaxis: axis(t.column, { type: "category" }), yaxis: axis("rows") }), config);
  } else if (t && t.histogram) {
    const e = t.histogram.edges;
    Plotly.react("chart-target", [{ type: "bar", x: t.histogram.counts.map((_, i) => (e[i] + e[i + 1]) / 2), y: t.histogram.counts, marker: { color: "#e08a1e" } }],
      layout({ title: { text: t.column, font: { size: 14 } }, bargap: 0.04, xaxis: axis(t.column), yaxis: axis("rows") }), config);
  } else {
    empty("chart-target", "");
    mlp.text(document.getElementById("no-target"), "Choose a target column to see its distribution, class balance and leakage checks.");
  }

  // --- correlations -----------------------------------------------------------------------------
  const corr = charts.correlations || {};
  if (corr.numeric) {
    Plotly.react("chart-corr", [{ type: "heatmap", z: corr.numeric.matrix, x: corr.numeric.columns, y: corr.numeric.columns, zmin: -1, zmax: 1, colorscale: "RdBu", reversescale: true, texttemplate: corr.numeric.columns.length <= 12 ? "%{z:.2f}" : "",
      colorbar: { title: { text: "r" }, tickvals: [-1, 0, 1], ticktext: ["−1 opposite", "0 none", "+1 together"] }, hovertemplate: "%{y} × %{x}: r = %{z:.2f}<extra></extra>" }],
    layout({ title: { text: "Pearson correlation (numeric)", font: { size: 14 } }, yaxis: axis("", { autorange: "reversed" }) }), config);
  } else { empty("chart-corr", "Fewer than two numeric columns."); }
  if (corr.categorical) {
    Plotly.react("chart-cramer", [{ type: "heatmap", z: corr.categorical.matrix, x: corr.categorical.columns, y: corr.categorical.columns, zmin: 0, zmax: 1, colorscale: "Viridis", texttemplate: corr.categorical.columns.length <= 12 ? "%{z:.2f}" : "",
      colorbar: { title: { text: "V" }, tickvals: [0, 1], ticktext: ["0 independent", "1 one decides the other"] }, hovertemplate: "%{y} × %{x}: V = %{z:.2f}<extra></extra>" }],
    layout({ title: { text: "Cramér's V (categorical)", font: { size: 14 } }, yaxis: axis("", { autorange: "reversed" }) }), config);
  } else { document.getElementById("chart-cramer").hidden = true; }

  // --- scatter ----------------------------------------------------------------------------------
  const sc = charts.scatter;
  const sx = document.getElementById("scatter-x"), sy = document.getElementById("scatter-y");
  if (sc && sc.numeric.length >= 2) {
    sc.numeric.forEach((c) => { option(sx, c); option(sy, c); });
    const first = charts.default_column && sc.numeric.indexOf(charts.default_column) >= 0 ? charts.default_column : sc.numeric[0];
    sx.value = first;
    sy.value = sc.numeric.find((c) => c !== first && c !== sc.target) || sc.numeric[1];
    const draw = function () {
      const x = sc.values[sx.value], y = sc.values[sy.value];
      let traces;
      if (sc.target_values) {
        const groups = {};
        sc.target_values.forEach((v, i) => { (groups[v] = groups[v] || []).push(i); });
        const keys = Object.keys(groups);
        if (keys.length <= 20) {
          traces = keys.map((k) => ({ type: "scatter", mode: "markers", name: k, x: groups[k].map((i) => x[i]), y: groups[k].map((i) => y[i]), marker: { size: 5, opacity: 0.6 } }));
        } else {
          traces = [{ type: "scatter", mode: "markers", x: x, y: y, marker: { size: 5, color: sc.target_values.map(Number), colorscale: "Viridis", showscale: true, colorbar: { title: { text: sc.target } } } }];
        }
      } else {
        traces = [{ type: "scatter", mode: "markers", x: x, y: y, marker: { size: 5, opacity: 0.6 } }];
      }
      Plotly.react("chart-scatter", traces, layout({ xaxis: axis(sx.value), yaxis: axis(sy.value), legend: { title: { text: sc.target || "" } } }), config);
    };
    sx.addEventListener("change", draw); sy.addEventListener("change", draw); draw();
  } else { empty("chart-scatter", "Fewer than two numeric columns."); }

  // --- paged rows -------------------------------------------------------------------------------
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
    mlp.text(document.getElementById("page-label"), "Page " + page + " of " + pages + " (" + r.body.count.toLocaleString("en") + " rows)");
    document.getElementById("prev-page").disabled = page <= 1;
    document.getElementById("next-page").disabled = page >= pages;
  }
  document.getElementById("prev-page").addEventListener("click", () => { if (page > 1) { page--; loadPage(); } });
  document.getElementById("next-page").addEventListener("click", () => { if (page < pages) { page++; loadPage(); } });
  loadPage();
})();
