// Charts, the live leaderboard and the final-evaluation picker of the experiments pages. Data
// comes from json_script blocks; user strings are only ever set through plotly's data (text) or
// textContent. Pages say what to draw with data attributes on <body>'s charts (no inline script).
(function () {
  const axis = (title, extra) => Object.assign({ automargin: true, title: title ? { text: title } : undefined }, extra || {});
  const layout = (title, extra) => Object.assign({ title: { text: title, font: { size: 14 } }, margin: { l: 12, r: 12, t: 40, b: 12 }, xaxis: axis(), yaxis: axis() }, extra || {});
  const config = { displaylogo: false, responsive: true };
  function plot(id, data, lay) { const el = document.getElementById(id); if (el && window.Plotly) Plotly.newPlot(el, data, lay, config); }
  function json(id) { const el = document.getElementById(id); return el ? JSON.parse(el.textContent) : null; }
  const rate = new Set(["accuracy", "balanced_accuracy", "precision", "recall", "mape"]);
  const fmt = (metric, v) => (v == null ? "—" : rate.has(metric) ? (v * 100).toFixed(1) + "%" : Number(v.toPrecision(3)).toString());

  // Horizontal bars, best at the top: run names stay readable at any width (automargin on y).
  function scoreChart(id, chart) {
    if (!chart || !chart.runs.length) return;
    const runs = chart.runs.slice().reverse();
    const names = runs.map((r) => r.name + (r.kind === "baseline" ? " (baseline)" : ""));
    const color = (r) => (r.id === chart.best ? "#1f7a45" : r.kind === "baseline" ? "#b5bccb" : r.kind === "ensemble" ? "#6c8cf0" : "#3457d5");
    const data = [
      { type: "bar", orientation: "h", name: "CV " + chart.label, y: names, x: runs.map((r) => r.score), marker: { color: runs.map(color) },
        hovertemplate: "%{y}<br>CV " + chart.label + ": %{x:.3g}<extra></extra>" },
      { type: "scatter", mode: "markers", name: "training folds", y: names, x: runs.map((r) => r.train), marker: { symbol: "diamond", color: "#c27c0e", size: 9 },
        hovertemplate: "%{y}<br>training " + chart.label + ": %{x:.3g}<extra></extra>" },
    ];
    const shapes = [];
    if (chart.baseline_score != null) shapes.push({ type: "line", yref: "paper", y0: 0, y1: 1, x0: chart.baseline_score, x1: chart.baseline_score, line: { dash: "dot", color: "#b42828" } });
    if (chart.threshold != null) shapes.push({ type: "line", yref: "paper", y0: 0, y1: 1, x0: chart.threshold, x1: chart.threshold, line: { dash: "dash", color: "#1f7a45" } });
    plot(id, data, layout("Cross-validated " + chart.label, {
      shapes: shapes, legend: { orientation: "h", y: -0.18 }, bargap: 0.3,
      xaxis: axis(chart.label + (chart.higher_is_better ? " (higher is better)" : " (lower is better)")), yaxis: axis("", { type: "category" }),
    }));
  }

  function watch(experimentId) {
    let finished = null;
    async function tick() {
      const r = await window.mlp.api("/api/v1/experiments/" + experimentId + "/");
      if (!r.ok) return;
      const e = r.body;
      const bar = document.getElementById("experiment-progress");
      if (bar) bar.style.width = e.progress + "%";
      mlp.text(document.getElementById("progress-text"), e.progress + "%");
      const st = document.getElementById("experiment-status");
      if (st) { mlp.text(st, e.status); st.className = "badge " + e.status; }
      const done = e.runs.filter((x) => ["succeeded", "failed", "cancelled"].indexOf(x.status) >= 0).length + ":" + e.runs.length;
      if (finished !== null && done !== finished) { window.location.reload(); return; }
      finished = done;
      if (["succeeded", "failed", "cancelled"].indexOf(e.status) >= 0) { window.location.reload(); return; }
      setTimeout(tick, 1500);
    }
    tick();
  }

  // Confusion matrix on a diverging scale: each cell is its share of the actual class, positive
  // (blue) on the diagonal where the model is right, negative (red) off it where it is wrong, so
  // errors stand out whatever the class sizes. Text: the count and the share.
  function confusion(d) {
    const labels = d.classes.map(String);
    const m = d.confusion_matrix;
    const z = m.map((row, i) => { const n = row.reduce((a, b) => a + b, 0) || 1; return row.map((v, j) => (i === j ? 1 : -1) * v / n); });
    const text = m.map((row) => { const n = row.reduce((a, b) => a + b, 0) || 1; return row.map((v) => v + "<br>" + Math.round(100 * v / n) + "%"); });
    plot("chart-confusion", [{ type: "heatmap", z: z, x: labels, y: labels, zmin: -1, zmax: 1, zmid: 0, text: text, texttemplate: "%{text}",
      colorscale: [[0, "#b42828"], [0.5, "#ffffff"], [1, "#1f4fb4"]],
      hovertemplate: "actual %{y}, predicted %{x}: %{text}<extra></extra>",
      colorbar: { title: { text: "share of the<br>actual class" }, tickvals: [-1, -0.5, 0, 0.5, 1], ticktext: ["100% wrong", "50% wrong", "0", "50% right", "100% right"], len: 0.9 } }],
    layout("Confusion matrix: blue = right, red = wrong", { xaxis: axis("predicted", { type: "category", side: "bottom" }), yaxis: axis("actual", { type: "category", autorange: "reversed" }) }));
  }

  function diagnostics(d) {
    if (d.confusion_matrix) confusion(d);
    if (d.roc) {
      plot("chart-roc", [{ x: d.roc.fpr, y: d.roc.tpr, mode: "lines", name: "ROC" }, { x: [0, 1], y: [0, 1], mode: "lines", line: { dash: "dot", color: "#9aa3b5" }, name: "chance" }],
        layout("ROC curve (AUC " + (d.metrics.roc_auc != null ? d.metrics.roc_auc.toFixed(3) : "n/a") + ")", { xaxis: axis("false positive rate"), yaxis: axis("true positive rate"), legend: { orientation: "h", y: -0.3 } }));
      plot("chart-pr", [{ x: d.pr.recall, y: d.pr.precision, mode: "lines", name: "PR" }], layout("Precision-recall curve", { xaxis: axis("recall"), yaxis: axis("precision") }));
      const slider = document.getElementById("threshold");
      const show = function () {
        const row = d.thresholds[Number(slider.value)];
        mlp.text(document.getElementById("t-threshold"), row.threshold.toFixed(2));
        mlp.text(document.getElementById("t-precision"), row.precision.toFixed(3));
        mlp.text(document.getElementById("t-recall"), row.recall.toFixed(3));
        mlp.text(document.getElementById("t-f1"), row.f1.toFixed(3));
        mlp.text(document.getElementById("t-accuracy"), row.accuracy.toFixed(3));
        mlp.text(document.getElementById("t-flagged"), row.predicted_positive.toLocaleString("en") + " of " + d.n_val.toLocaleString("en"));
      };
      if (slider) { slider.addEventListener("input", show); show(); }
    }
    if (d.residuals) {
      const r = d.residuals;
      const lo = Math.min.apply(null, r.actual.concat(r.predicted)), hi = Math.max.apply(null, r.actual.concat(r.predicted));
      plot("chart-pva", [{ x: r.actual, y: r.predicted, mode: "markers", name: "rows", marker: { size: 5 } }, { x: [lo, hi], y: [lo, hi], mode: "lines", line: { dash: "dot" }, name: "perfect" }],
        layout("Predicted vs actual", { xaxis: axis("actual"), yaxis: axis("predicted"), legend: { orientation: "h", y: -0.3 } }));
      plot("chart-residuals", [{ x: r.predicted, y: r.residual, mode: "markers", marker: { size: 5 } }],
        layout("Residuals", { xaxis: axis("predicted"), yaxis: axis("actual − predicted"), shapes: [{ type: "line", xref: "paper", x0: 0, x1: 1, y0: 0, y1: 0, line: { dash: "dot" } }] }));
    }
    const lc = d.learning_curve || {};
    if (lc.train_sizes) {
      plot("chart-learning", [{ x: lc.train_sizes, y: lc.train, mode: "lines+markers", name: "training" }, { x: lc.train_sizes, y: lc.validation, mode: "lines+markers", name: "validation" }],
        layout("Learning curve (" + lc.metric + ")", { xaxis: axis("training rows"), yaxis: axis(lc.metric), legend: { orientation: "h", y: -0.3 } }));
    }
    const imp = (d.permutation_importance || []).slice(0, 15).reverse();
    if (imp.length) {
      plot("chart-importance", [{ type: "bar", orientation: "h", x: imp.map((p) => p.mean), y: imp.map((p) => p.feature), error_x: { type: "data", array: imp.map((p) => p.std) } }],
        layout("Permutation importance (validation)", { xaxis: axis("drop in score when shuffled"), yaxis: axis("", { type: "category" }) }));
    }
  }

  function compare(c) {
    plot("chart-compare", c.runs.map((r) => ({ type: "bar", name: r.name, x: c.metrics, y: r.values })), layout("CV metrics", { barmode: "group", legend: { orientation: "h", y: -0.2 } }));
    const roc = c.runs.filter((r) => r.roc).map((r) => ({ x: r.roc.fpr, y: r.roc.tpr, mode: "lines", name: r.name }));
    const lc = c.runs.filter((r) => r.learning_curve && r.learning_curve.train_sizes).map((r) => ({ x: r.learning_curve.train_sizes, y: r.learning_curve.validation, mode: "lines+markers", name: r.name }));
    if (roc.length) plot("chart-compare-roc", roc, layout("ROC curves (runs with diagnostics)", { xaxis: axis("false positive rate"), yaxis: axis("true positive rate") }));
    else if (lc.length) plot("chart-compare-roc", lc, layout("Validation learning curves", { xaxis: axis("training rows") }));
    else { const el = document.getElementById("chart-compare-roc"); if (el) { el.classList.add("chart-empty"); el.textContent = "Compute diagnostics of these runs to compare their curves."; } }
  }

  // The final-evaluation picker: say what is wrong with the chosen run and ask for the explicit
  // confirmation the server also requires.
  function picker(form) {
    const select = form.querySelector("select[name=run]");
    const box = form.querySelector("[data-run-warnings]");
    const confirmRow = form.querySelector("[data-confirm-row]");
    const confirm = form.querySelector("input[name=confirm]");
    function update() {
      const opt = select.selectedOptions[0];
      const warnings = opt ? JSON.parse(opt.getAttribute("data-warnings") || "[]") : [];
      box.replaceChildren();
      warnings.forEach((w) => { const li = document.createElement("li"); li.className = "warning"; li.textContent = w; box.appendChild(li); });
      box.hidden = !warnings.length;
      confirmRow.hidden = !warnings.length;
      confirm.required = warnings.length > 0;
      if (!warnings.length) confirm.checked = false;
    }
    select.addEventListener("change", update);
    update();
  }

  window.mlpExperiments = { scoreChart: scoreChart, watch: watch, diagnostics: diagnostics, compare: compare };
  document.addEventListener("DOMContentLoaded", function () {
    const chart = json("chart-data");
    if (chart) scoreChart("score-chart", chart);
    const live = document.querySelector("[data-watch-experiment]");
    if (live) watch(live.getAttribute("data-watch-experiment"));
    const diag = json("diagnostics-data");
    if (diag) diagnostics(diag);
    const cmp = json("compare-data");
    if (cmp) compare(cmp);
    const form = document.getElementById("evaluate-form");
    if (form) picker(form);
  });
  window.mlpExperiments.format = fmt;
})();
