// New experiment form: the target list follows the chosen dataset version (its columns, its
// target preselected). Loaded before the recipe editor, which listens to the same controls.
(function () {
  const versions = JSON.parse(document.getElementById("version-targets").textContent);
  const version = document.getElementById("id_dataset_version");
  const target = document.getElementById("id_target");
  if (!version || !target) return;
  version.addEventListener("change", function () {
    const info = versions[version.value] || { columns: [], target: "" };
    const keep = info.columns.indexOf(target.value) >= 0 ? target.value : info.target || "";
    target.replaceChildren();
    const blank = document.createElement("option"); blank.value = ""; blank.textContent = "— choose —"; target.appendChild(blank);
    info.columns.forEach(function (c) { const o = document.createElement("option"); o.value = c; o.textContent = c; target.appendChild(o); });
    target.value = keep;
  });
})();
