// Charts and the live leaderboard of the experiments pages. Data comes from json_script blocks;
// user strings are only ever set through plotly's data (text) or textContent.
(function () {
  const layout = (title, extra) => Object.assign({ title: { text: title, font: { size: 14 } }, margin: { l: 50, r: 20, t: 40, b: 45 } }, extra || {});
  const config = { displaylogo: false, responsive: true };
  function plot(id, data, lay) { const el = document.getElementById(id); if (el && window.Plotly) Plotly.newPlot(el, data, lay, config); }

  function scoreChart(id, chart) {
    if (!chart.runs.length) return;
    const names = chart.runs.map((r) => r.name);
    const data = [
      { type: "bar", name: "CV " + chart.label, x: names, y: chart.runs.map((r) => r.score), marker: { color: chart.runs.map((r) => (r.kind === "baseline" ? "#9aa3b5" : r.kind === "ensemble" ? "#1f9d55" : "#3457d5")) } },
      { type: "scatter", mode: "markers", name: "train", x: names, y: chart.runs.map((r) => r.train), marker: { symbol: "diamond", color: "#c27c0e" } },
    ];
    const shapes = [];
    if (chart.baseline_score != null) shapes.push({ type: "line", xref: "paper", x0: 0, x1: 1, y0: chart.baseline_score, y1: chart.baseline_score, line: { dash: "dot", color: "#c93434" } });
    if (chart.threshold != null) shapes.push({ type: "line", xref: "paper", x0: 0, x1: 1, y0: chart.threshold, y1: chart.threshold, line: { dash: "dash", color: "#1f9d55" } });
    plot(id, data, layout("Runs vs the project's baseline (red) and success threshold (green)", { shapes: shapes }));
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

  function diagnostics(d) {
    if (d.confusion_matrix) {
      const labels = d.classes.map(String);
      plot("chart-confusion", [{ type: "heatmap", z: d.confusion_matrix, x: labels, y: labels, colorscale: "Blues", text: d.confusion_matrix, texttemplate: "%{text}" }],
        layout("Confusion matrix", { xaxis: { title: { text: "predicted" } }, yaxis: { title: { text: "actual" }, autorange: "reversed" } }));
    }
    if (d.roc) {
      plot("chart-roc", [{ x: d.roc.fpr, y: d.roc.tpr, mode: "lines", name: "ROC" }, { x: [0, 1], y: [0, 1], mode: "lines", line: { dash: "dot", color: "#9aa3b5" }, name: "chance" }],
        layout("ROC curve (AUC " + (d.metrics.roc_auc != null ? d.metrics.roc_auc.toFixed(3) : "n/a") + ")", { xaxis: { title: { text: "false positive rate" } }, yaxis: { title: { text: "true positive rate" } } }));
      plot("chart-pr", [{ x: d.pr.recall, y: d.pr.precision, mode: "lines", name: "PR" }], layout("Precision-recall curve", { xaxis: { title: { text: "recall" } }, yaxis: { title: { text: "precision" } } }));
      const slider = document.getElementById("threshold");
      const show = function () {
        const row = d.thresholds[Number(slider.value)];
        mlp.text(document.getElementById("t-threshold"), row.threshold.toFixed(2));
        mlp.text(document.getElementById("t-precision"), row.precision.toFixed(3));
        mlp.text(document.getElementById("t-recall"), row.recall.toFixed(3));
        mlp.text(document.getElementById("t-f1"), row.f1.toFixed(3));
        mlp.text(document.getElementById("t-accuracy"), row.accuracy.toFixed(3));
        mlp.text(document.getElementById("t-flagged"), row.predicted_positive + " of " + d.n_val);
      };
      if (slider) { slider.addEventListener("input", show); show(); }
    }
    if (d.residuals) {
      const r = d.residuals;
      const lo = Math.min.apply(null, r.actual.concat(r.predicted)), hi = Math.max.apply(null, r.actual.concat(r.predicted));
      plot("chart-pva", [{ x: r.actual, y: r.predicted, mode: "markers", name: "runs", marker: { size: 5 } }, { x: [lo, hi], y: [lo, hi], mode: "lines", line: { dash: "dot" }, name: "perfect" }],
        layout("Predicted vs actual", { xaxis: { title: { text: "actual" } }, yaxis: { title: { text: "predicted" } } }));
      plot("chart-residuals", [{ x: r.predicted, y: r.residual, mode: "markers", marker: { size: 5 } }],
        layout("Residuals", { xaxis: { title: { text: "predicted" } }, yaxis: { title: { text: "actual − predicted" } }, shapes: [{ type: "line", xref: "paper", x0: 0, x1: 1, y0: 0, y1: 0, line: { dash: "dot" } }] }));
    }
    const lc = d.learning_curve || {};
    if (lc.train_sizes) {
      plot("chart-learning", [{ x: lc.train_sizes, y: lc.train, mode: "lines+markers", name: "training" }, { x: lc.train_sizes, y: lc.validation, mode: "lines+markers", name: "validation" }],
        layout("Learning curve (" + lc.metric + ")", { xaxis: { title: { text: "training rows" } } }));
    }
    const imp = (d.permutation_importance || []).slice(0, 15).reverse();
    if (imp.length) {
      plot("chart-importance", [{ type: "bar", orientation: "h", x: imp.map((p) => p.mean), y: imp.map((p) => p.feature), error_x: { type: "data", array: imp.map((p) => p.std) } }],
        layout("Permutation importance (validation)", { margin: { l: 140, r: 20, t: 40, b: 45 } }));
    }
  }

  function compare(c) {
    plot("chart-compare", c.runs.map((r) => ({ type: "bar", name: r.name, x: c.metrics, y: r.values })), layout("CV metrics", { barmode: "group" }));
    const roc = c.runs.filter((r) => r.roc).map((r) => ({ x: r.roc.fpr, y: r.roc.tpr, mode: "lines", name: r.name }));
    const lc = c.runs.filter((r) => r.learning_curve && r.learning_curve.train_sizes).map((r) => ({ x: r.learning_curve.train_sizes, y: r.learning_curve.validation, mode: "lines+markers", name: r.name }));
    if (roc.length) plot("chart-compare-roc", roc, layout("ROC curves (runs with diagnostics)"));
    else if (lc.length) plot("chart-compare-roc", lc, layout("Validation learning curves"));
  }

  window.mlpExperiments = { scoreChart: scoreChart, watch: watch, diagnostics: diagnostics, compare: compare };
})();
