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
  const range = data.range || {};
  // Every time chart spans the selected range (24h to 90d), whatever the snapshots cover.
  // A little room after "now" so that the newest point (a bar centred on its window's end) shows whole.
  const pad = range.start ? (Date.parse(range.end) - Date.parse(range.start)) * 0.02 : 0;
  const axisEnd = range.end ? new Date(Date.parse(range.end) + pad).toISOString() : undefined;
  const timeAxis = () => axis("", { type: "date", range: [range.start, axisEnd], tickformat: range.key === "24h" ? "%H:%M" : "%b %d" });
  const line = (y, name, extra) => Object.assign({ x: t, y: y, mode: "lines+markers", name: name, marker: { size: 5 },
    hovertemplate: "%{x|%b %d %H:%M}: %{y:.3~g}<extra>" + name + "</extra>" }, extra || {});
  const nothing = "No snapshot in this time range.";
  if (t.length) {
    Plotly.newPlot("chart-traffic", [
      { x: t, y: s.map((r) => r.predictions), type: "bar", name: "predictions", hovertemplate: "%{y:,}<extra>predictions</extra>" },
      line(s.map((r) => r.requests), "requests"),
    ], lay({ xaxis: timeAxis(), yaxis: axis("per window", { rangemode: "tozero" }) }), cfg);
    Plotly.newPlot("chart-latency", [
      line(s.map((r) => (r.latency_ms || {}).p50), "p50"),
      line(s.map((r) => (r.latency_ms || {}).p95), "p95"),
    ], lay({ xaxis: timeAxis(), yaxis: axis("ms per request", { rangemode: "tozero" }) }), cfg);
    Plotly.newPlot("chart-rows", [
      line(s.map((r) => (r.rows_per_request || {}).mean), "mean"),
      line(s.map((r) => (r.rows_per_request || {}).p95), "p95"),
    ], lay({ xaxis: timeAxis(), yaxis: axis("rows per request", { rangemode: "tozero" }) }), cfg);
    const judged = s.map((r) => (r.drift_enough === false ? null : r.max_psi));
    const drift = [line(judged, "largest PSI")];
    if (data.psi_alert != null) {
      drift.push({ x: [range.start, range.end], y: [data.psi_alert, data.psi_alert], mode: "lines", name: "alert level",
        line: { dash: "dash", width: 1, color: "#b42318" }, hoverinfo: "skip" });
    }
    if (judged.some((v) => v != null)) {
      Plotly.newPlot("chart-drift-series", drift, lay({ xaxis: timeAxis(), yaxis: axis("PSI", { rangemode: "tozero" }) }), cfg);
    } else {
      empty("chart-drift-series", "Not enough predictions per window yet for a drift verdict.");
    }
  } else {
    ["chart-traffic", "chart-latency", "chart-rows", "chart-drift-series"].forEach((id) => empty(id, nothing));
  }
  const metrics = Object.keys(data.performance.metrics || {});
  const primary = metrics.find((m) => data.test[m]) || metrics[0];
  const traces = [];
  const live = (r) => (r.performance || {})[primary] || {};
  if (primary) {
    const ref = data.test[primary];
    if (ref && ref.ci_low != null) {
      traces.push({ x: [range.start, range.end, range.end, range.start], y: [ref.ci_low, ref.ci_low, ref.ci_high, ref.ci_high],
        fill: "toself", mode: "lines", line: { width: 0 }, fillcolor: "rgba(46,139,87,0.2)", name: "test 95% interval", hoverinfo: "skip" });
    }
    const ys = s.map((r) => live(r).value);
    traces.push(line(ys, "live " + primary, {
      error_y: { type: "data", symmetric: false, visible: true, thickness: 1, width: 3,
        array: s.map((r) => (live(r).high != null && live(r).value != null ? live(r).high - live(r).value : null)),
        arrayminus: s.map((r) => (live(r).low != null && live(r).value != null ? live(r).value - live(r).low : null)) },
      customdata: s.map((r) => [live(r).low, live(r).high, r.n_labels]),
      hovertemplate: "%{x|%b %d %H:%M}: %{y:.3~g} (95% CI %{customdata[0]:.3~g} to %{customdata[1]:.3~g}, %{customdata[2]} labels)<extra></extra>",
    }));
  }
  if (traces.length && s.some((r) => live(r).value != null)) {
    Plotly.newPlot("chart-performance", traces, lay({ xaxis: timeAxis(), yaxis: axis(primary) }), cfg);
  } else {
    empty("chart-performance", "No ground truth yet: post feedback to see live performance.");
  }
  // Estimated performance before labels: the estimate's 95% band, the realized value once labels come.
  const est = data.estimation || {};
  if (document.getElementById("chart-estimation")) {
    const pts = s.map((r) => r.estimation || {});
    const has = pts.some((p) => p.value != null);
    if (has) {
      const lows = pts.map((p) => (p.low != null ? p.low : null));
      const highs = pts.map((p) => (p.high != null ? p.high : null));
      const traces = [
        { x: t, y: lows, mode: "lines", line: { width: 0 }, hoverinfo: "skip", showlegend: false, connectgaps: false },
        { x: t, y: highs, mode: "lines", line: { width: 0 }, fill: "tonexty", fillcolor: "rgba(37,99,235,0.18)",
          name: "estimate 95% interval", hoverinfo: "skip", connectgaps: false },
        line(pts.map((p) => p.value), "estimated " + est.metric, {
          line: { dash: "dot" }, customdata: pts.map((p) => [p.low, p.high, p.n_rows]),
          hovertemplate: "%{x|%b %d %H:%M}: %{y:.3~g} (95% %{customdata[0]:.3~g} to %{customdata[1]:.3~g}, %{customdata[2]} rows)<extra>estimated</extra>" }),
        line(pts.map((p) => p.realized), "realized " + est.metric, {
          error_y: { type: "data", symmetric: false, visible: true, thickness: 1, width: 3,
            array: pts.map((p) => (p.realized_high != null && p.realized != null ? p.realized_high - p.realized : null)),
            arrayminus: pts.map((p) => (p.realized_low != null && p.realized != null ? p.realized - p.realized_low : null)) },
          customdata: pts.map((p) => [p.n_labels]),
          hovertemplate: "%{x|%b %d %H:%M}: %{y:.3~g} on %{customdata[0]} labels<extra>realized</extra>" }),
      ];
      if (est.threshold != null) {
        traces.push({ x: [range.start, range.end], y: [est.threshold, est.threshold], mode: "lines", name: "alert bar",
          line: { dash: "dash", width: 1, color: "#b42318" }, hoverinfo: "skip" });
      }
      // The legend hangs from under the time labels (a short, wide chart: anchored at its bottom it
      // covered them).
      Plotly.newPlot("chart-estimation", traces, lay({ xaxis: timeAxis(), yaxis: axis(est.metric),
        legend: { orientation: "h", y: -0.18, yanchor: "top" } }), cfg);
    } else {
      empty("chart-estimation", "No estimate in this time range.");
    }
  }
  function bars(el, d) {
    if (!d) { empty(el, "No data yet."); return false; }
    if (!(d.current_shares || []).length) { empty(el, "Not enough predictions in the latest window to compare with training."); return false; }
    Plotly.newPlot(el, [
      { x: d.labels, y: d.reference_shares, type: "bar", name: "training" },
      { x: d.labels, y: d.current_shares, type: "bar", name: "now" },
    ], lay({ barmode: "group", yaxis: axis("share", { tickformat: ".0%" }), xaxis: axis("", { tickangle: -30, tickfont: { size: 10 } }) }), cfg);
    return true;
  }
  bars("chart-prediction", data.outputs.prediction);
  bars("chart-confidence", data.outputs.confidence);
  const rows = document.querySelectorAll("#drift .drift-row");
  function overlay(i) {
    const f = data.drift[i];
    if (!f) return;
    const el = document.getElementById("chart-overlay");
    el.classList.remove("chart-empty");
    if (bars("chart-overlay", f)) Plotly.relayout("chart-overlay", { title: { text: f.feature, font: { size: 13 } }, "margin.t": 34 });
    rows.forEach((r) => r.classList.toggle("selected", Number(r.dataset.index) === i));
  }
  rows.forEach((r) => {
    r.tabIndex = 0;
    r.addEventListener("click", () => overlay(Number(r.dataset.index)));
    r.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); overlay(Number(r.dataset.index)); } });
  });
  if (data.drift.length) overlay(0); else empty("chart-overlay", "No drift computed yet.");
})();
