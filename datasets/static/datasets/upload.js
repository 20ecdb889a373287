// File uploads (a new dataset, or a new version of one) with a progress bar. Errors from the API
// name their field: they are shown under that control, anything else next to the button.
(function () {
  function setup(form) {
    const url = form.getAttribute("data-upload-url");
    const project = form.getAttribute("data-project");
    const input = form.querySelector("input[type=file]");
    const zone = form.querySelector(".dropzone");
    const nameEl = form.querySelector("input[name=name]");
    const label = form.querySelector("#upload-filename");
    const bar = form.querySelector(".progress");
    let file = null;
    function fieldError(control, text) {
      // Under the field's label and control, or inside the drop zone for the file.
      const holder = control.classList.contains("dropzone") ? control : control.closest(".field") || control.parentNode;
      let list = holder.querySelector(":scope > .errorlist");
      if (!list) { list = document.createElement("ul"); list.className = "errorlist"; holder.appendChild(list); }
      list.replaceChildren();
      if (text) { const li = document.createElement("li"); li.textContent = text; list.appendChild(li); }
      if (text) control.setAttribute("aria-invalid", "true"); else control.removeAttribute("aria-invalid");
      return text ? control : null;
    }
    function clear() {
      form.querySelectorAll(".errorlist").forEach((l) => l.replaceChildren());
      form.querySelectorAll("[aria-invalid]").forEach((c) => c.removeAttribute("aria-invalid"));
      mlp.feedback(form, "");
    }
    function choose(f) {
      file = f || null;
      if (label) mlp.text(label, file ? file.name + " (" + Math.max(1, Math.round(file.size / 1024)) + " KB)" : "");
      if (file && nameEl && !nameEl.value) nameEl.value = file.name.replace(/\.[^.]+$/, "").slice(0, 120);
      if (file) fieldError(zone || input, "");
    }
    if (zone) {
      zone.addEventListener("click", (e) => { if (e.target === zone) input.click(); });
      zone.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); input.click(); } });
      zone.addEventListener("dragover", (e) => { e.preventDefault(); zone.classList.add("over"); });
      zone.addEventListener("dragleave", () => zone.classList.remove("over"));
      zone.addEventListener("drop", (e) => { e.preventDefault(); zone.classList.remove("over"); choose(e.dataTransfer.files[0]); });
    }
    input.addEventListener("change", () => choose(input.files[0]));
    form.addEventListener("submit", function (ev) {
      ev.preventDefault();
      clear();
      let first = null;
      if (nameEl && !nameEl.value.trim()) first = fieldError(nameEl, "Give the dataset a name.");
      if (!file) first = fieldError(zone || input, "Choose a file first.") || first;
      if (first) { first.scrollIntoView({ block: "center" }); first.focus(); return; }
      const data = new FormData();
      if (project) data.append("project", project);
      if (nameEl) data.append("name", nameEl.value.trim());
      data.append("file", file);
      const xhr = new XMLHttpRequest();
      xhr.open("POST", url);
      xhr.setRequestHeader("X-CSRFToken", mlp.csrf());
      xhr.setRequestHeader("Accept", "application/json");
      bar.hidden = false;
      const fill = bar.firstElementChild;
      xhr.upload.onprogress = (e) => { if (e.lengthComputable) fill.style.width = Math.round(100 * e.loaded / e.total) + "%"; };
      xhr.onload = function () {
        let body = null;
        try { body = JSON.parse(xhr.responseText); } catch (e) { body = null; }
        if ((xhr.status === 201 || xhr.status === 202) && body) {
          const version = body.latest_version ? body.latest_version.id : body.id;
          window.location = "/dataset-versions/" + version + "/";
          return;
        }
        bar.hidden = true;
        const errors = (body && body.errors) || {};
        let placed = null;
        if (errors.name && nameEl) placed = fieldError(nameEl, errors.name.join(" "));
        if (errors.file) placed = fieldError(zone || input, errors.file.join(" ")) || placed;
        if (placed) { placed.scrollIntoView({ block: "center" }); placed.focus(); }
        else mlp.feedback(form, xhr.status === 413 ? ((body && body.detail) || "The file is too large.") : mlp.errorText(body, xhr.status));
      };
      xhr.onerror = () => { bar.hidden = true; mlp.feedback(form, "Upload failed: network error. Try again."); };
      xhr.send(data);
    });
  }
  document.querySelectorAll("form[data-upload-url]").forEach(setup);
})();
