// Review queue: keyboard navigation (j/k move, x select, Enter open, B approve the selected).
(function () {
  const rows = Array.from(document.querySelectorAll("tr.queue-row"));
  let cur = rows.length ? 0 : -1;
  function show() {
    rows.forEach(function (r, i) { r.classList.toggle("current", i === cur); });
    if (cur >= 0) rows[cur].scrollIntoView({ block: "nearest" });
  }
  const all = document.getElementById("select-all");
  if (all) all.addEventListener("change", function () {
    document.querySelectorAll("input[name=ids]").forEach(function (b) { b.checked = all.checked; });
  });
  document.addEventListener("keydown", function (ev) {
    const t = ev.target;
    if (t && (t.tagName === "INPUT" && t.type !== "checkbox" || t.tagName === "TEXTAREA" || t.tagName === "SELECT")) return;
    if (ev.ctrlKey || ev.metaKey || ev.altKey) return;
    if (ev.key === "j" && cur < rows.length - 1) { cur++; show(); ev.preventDefault(); }
    else if (ev.key === "k" && cur > 0) { cur--; show(); ev.preventDefault(); }
    else if (ev.key === "x" && cur >= 0) {
      const box = rows[cur].querySelector("input[name=ids]");
      if (box) box.checked = !box.checked;
      ev.preventDefault();
    } else if (ev.key === "Enter" && cur >= 0) { window.location = rows[cur].getAttribute("data-href"); ev.preventDefault(); }
    else if (ev.key === "B") {
      const btn = document.getElementById("bulk-approve");
      if (btn && document.querySelector("input[name=ids]:checked")) { btn.click(); ev.preventDefault(); }
    }
  });
  // Tapping a row opens it (tablets have no keyboard); the checkbox and links keep their job.
  rows.forEach(function (row) {
    row.addEventListener("click", function (ev) {
      if (ev.target.closest("a, input, button, label")) return;
      window.location = row.getAttribute("data-href");
    });
  });
  show();
})();
