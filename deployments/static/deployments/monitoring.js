// Monitoring dashboard charts, from the page's json_script block (no inline script: CSP).
(function () {
  const data = JSON.parse(document.getElementById("monitoring-data").textContent);
  if (typeof Plotly === "undefined") return;
  const cfg = { displayModeBar: false, responsive: true };
  const axis = (title, extra) => Object.assign({ automargin: true, title: title ? { text: title } : undefined }, extra || {});
  const lay = (extra) => Object.assign({ margin: { l: 12, r: 12, t: 10, b: 12 }, legend: { orientation: "h", y: -0.3 }, xaxis: axis(), yaxis: axis() }, extra);
  function empty(id, text) {
    const el = document.getElementById(id);
    el.classList.add("chart-empty");
    el.textContent = text;
  }
  const s = data.series;
  const t = s.map((r) => r.window_end);
  if (t.length) {
    Plotly.newPlot("chart-traffic", [
      { x: t, y: s.map((r) => r.predictions), type: "bar", name: "predictions" },
      { x: t, y: s.map((r) => (r.latency_ms || {}).p95), yaxis: "y2", mode: "lines+markers", name: "p95 latency (ms)" },
    ], lay({ xaxis: axis("", { type: "date", tickformat: "%b %d %H:%M" }), yaxis: axis("predictions", { rangemode: "tozero" }),
      yaxis2: axis("p95 ms", { overlaying: "y", side: "right", rangemode: "tozero", showgrid: false }) }), cfg);
  } else {
    empty("chart-traffic", "No snapshot yet.");
  }
  const metrics = Object.keys(data.performance.metrics || {});
  const primary = metrics.find((m) => data.test[m]) || metrics[0];
  const traces = [];
  if (primary) {
    const ref = data.test[primary];
    if (ref && ref.ci_low != null && t.length) {
      traces.push({ x: [t[0], t[t.length - 1], t[t.length - 1], t[0]], y: [ref.ci_low, ref.ci_low, ref.ci_high, ref.ci_high],
        fill: "toself", mode: "lines", line: { width: 0 }, fillcolor: "rgba(46,139,87,0.2)", name: "test 95% interval" });
    }
    traces.push({ x: t, y: s.map((r) => (r.performance || {})[primary]), mode: "lines+markers", name: "live " + primary });
  }
  if (traces.length && s.some((r) => (r.performance || {})[primary] != null)) {
    Plotly.newPlot("chart-performance", traces, lay({ xaxis: axis("", { type: "date", tickformat: "%b %d %H:%M" }), yaxis: axis(primary) }), cfg);
  } else {
    empty("chart-performance", "No ground truth yet: post feedback to see live performance.");
  }
  function bars(el, d) {
    if (!d) { empty(el, "No data yet."); return; }
    Plotly.newPlot(el, [
      { x: d.labels, y: d.reference_shares, type: "bar", name: "training" },
      { x: d.labels, y: d.current_shares, type: "bar", name: "now" },
    ], lay({ barmode: "group", yaxis: axis("share", { tickformat: ".0%" }), xaxis: axis("", { tickangle: -30, tickfont: { size: 10 } }) }), cfg);
  }
  bars("chart-prediction", data.outputs.prediction);
  bars("chart-confidence", data.outputs.confidence);
  const rows = document.querySelectorAll("#drift .drift-row");
  function overlay(i) {
    const f = data.drift[i];
    if (!f) return;
    const el = document.getElementById("chart-overlay");
    el.classList.remove("chart-empty");
    bars("chart-overlay", f);
    Plotly.relayout("chart-overlay", { title: { text: f.feature, font: { size: 13 } }, "margin.t": 34 });
    rows.forEach((r) => r.classList.toggle("selected", Number(r.dataset.index) === i));
  }
  rows.forEach((r) => {
    r.tabIndex = 0;
    r.addEventListener("click", () => overlay(Number(r.dataset.index)));
    r.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); overlay(Number(r.dataset.index)); } });
  });
  if (data.drift.length) overlay(0); else empty("chart-overlay", "No drift computed yet.");
})();
