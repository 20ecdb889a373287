// Problem statement form: the success metric list follows the task type; assumptions editor.
(function () {
  const metrics = JSON.parse(document.getElementById("metrics-by-task").textContent);
  const task = document.getElementById("id_task_type");
  const metric = document.getElementById("id_success_metric");
  function syncMetrics() {
    const current = metric.value;
    metric.replaceChildren();
    const blank = document.createElement("option"); blank.value = ""; blank.textContent = "—"; metric.appendChild(blank);
    (metrics[task.value] || []).forEach(function (m) {
      const o = document.createElement("option"); o.value = m[0]; o.textContent = m[1]; metric.appendChild(o);
    });
    metric.value = current;
  }
  task.addEventListener("change", syncMetrics); syncMetrics();
  const hidden = document.getElementById("id_assumptions_json");
  const box = document.getElementById("assumptions");
  let items = [];
  try { items = JSON.parse(hidden.value || "[]"); } catch (e) { items = []; }
  function save() { hidden.value = JSON.stringify(items); }
  function render() {
    box.replaceChildren();
    items.forEach(function (item, i) {
      const row = document.createElement("div"); row.className = "row tight assumption";
      const text = document.createElement("input"); text.type = "text"; text.value = item.text || ""; text.placeholder = "e.g. Prices are stable over the next year";
      text.setAttribute("aria-label", "Assumption " + (i + 1));
      text.addEventListener("input", function () { item.text = text.value; save(); });
      const status = document.createElement("select"); status.setAttribute("aria-label", "Status of assumption " + (i + 1));
      [["unchecked", "Not checked yet"], ["holds", "Holds"], ["violated", "Violated"]].forEach(function (s) {
        const o = document.createElement("option"); o.value = s[0]; o.textContent = s[1]; status.appendChild(o);
      });
      status.value = item.status || "unchecked";
      status.addEventListener("change", function () { item.status = status.value; save(); });
      const del = document.createElement("button"); del.type = "button"; del.className = "btn secondary small shrink"; del.textContent = "Remove";
      del.addEventListener("click", function () { items.splice(i, 1); save(); render(); });
      row.append(text, status, del); box.appendChild(row);
    });
  }
  document.getElementById("add-assumption").addEventListener("click", function () {
    items.push({ text: "", status: "unchecked" }); save(); render();
    box.querySelector(".assumption:last-child input").focus();
  });
  render(); save();
})();
