// The recipe editor: the automatic recipe (built from the profile, each step with its reason),
// a structured editor of steps, a JSON view, and a preview on a sample of training rows with the
// mapping each clean_categories step learned. Errors are shown at the step they name.
// User data only reaches the page through textContent.
(function () {
  function make(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text != null) node.textContent = String(text);
    return node;
  }
  function option(select, value, label) {
    const o = make("option", "", label == null ? value : label);
    o.value = value;
    select.appendChild(o);
    return o;
  }
  function list(values) { return values.map((v) => "“" + v + "”").join(", "); }

  function summary(step) {
    const cols = (step.columns || []).length ? list(step.columns) : "every applicable column";
    switch (step.op) {
      case "drop_columns": return "Drop " + cols;
      case "clean_categories": return "One spelling per category in " + cols + (step.merge_similar === false ? " (case and spaces only)" : " (case, spaces, near-identical spellings)");
      case "impute": return "Fill missing values of " + cols + " with the " + (step.strategy || "median").replace("_", " ") + (step.strategy === "constant" ? " " + JSON.stringify(step.value) : "");
      case "drop_duplicates": return "Drop duplicate rows (training rows only)";
      case "remove_outliers": return "Remove outlier rows of " + cols + " by " + (step.method || "iqr") + (step.threshold != null ? " " + step.threshold : "") + " (training rows only)";
      case "encode": return (step.method === "ordinal" ? "Ordinal codes for " : "One-hot encode ") + cols;
      case "scale": return "Scale " + cols + " (" + (step.method || "standard") + ")";
      case "date_parts": return "Date parts (" + (step.parts || ["year", "month", "day", "dayofweek"]).join(", ") + ") of " + cols;
      case "ratio": return "New column " + (step.name || step.numerator + "_per_" + step.denominator) + " = " + step.numerator + " / " + step.denominator;
      case "age": return "New column " + (step.name || step.column + "_age") + ": age of " + step.column;
      case "uppercase_ratio": return "New column " + (step.name || step.column + "_uppercase_ratio") + ": share of capitals in " + step.column;
      case "tfidf": return "TF-IDF of " + step.column + " (" + (step.max_features || 200) + " words)";
      case "pca": return "PCA to " + step.n_components + " components";
      case "select_k_best": return "Keep the " + step.k + " best features";
      default: return JSON.stringify(step);
    }
  }

  function Editor(root) {
    const cfg = JSON.parse(document.getElementById(root.getAttribute("data-config")).textContent);
    const q = (role) => root.querySelector('[data-role="' + role + '"]');
    const output = document.querySelector('[data-recipe-output="' + root.id + '"]');
    const baseOutput = document.querySelector('[data-recipe-base="' + root.id + '"]');
    const versionInput = document.getElementById(root.getAttribute("data-version-input") || "");
    const targetInput = document.getElementById(root.getAttribute("data-target-input") || "");
    const s = {
      version: versionInput ? versionInput.value : cfg.version,
      target: targetInput ? targetInput.value : cfg.target || "",
      columns: cfg.columns || [],
      items: [],
      source: "auto",
      touched: false,
      editing: null,
      error: cfg.error || null,
      mappings: {},
    };

    function setStatus(text) { mlp.text(q("status"), text); }
    function columnsFor(index) {
      const base = s.columns.map((c) => c.name).filter((n) => n !== s.target);
      s.items.slice(0, index).forEach(function (it) {
        const st = it.step;
        if (st.op === "ratio") base.push(st.name || st.numerator + "_per_" + st.denominator);
        if (st.op === "age") base.push(st.name || st.column + "_age");
        if (st.op === "uppercase_ratio") base.push(st.name || st.column + "_uppercase_ratio");
      });
      return base;
    }
    function errorIndex() {
      const m = s.error && /^steps\[(\d+)\]/.exec(s.error.field || "");
      return m ? Number(m[1]) : null;
    }
    function sync() {
      const steps = s.items.map((it) => it.step);
      if (output) output.value = JSON.stringify(steps);
      if (baseOutput) baseOutput.value = s.source.indexOf("saved:") === 0 && !s.touched ? String(cfg.recipes[Number(s.source.slice(6))].id) : "";
      q("json").value = JSON.stringify(steps, null, 2);
    }
    function showError(list, text) {
      list.replaceChildren();
      if (text) list.appendChild(make("li", "", text));
    }

    // --- fields of one step (add form and inline edit) ---------------------------------------
    function fieldWidgets(container, op, step, index, prefix) {
      container.replaceChildren();
      (cfg.fields[op] || []).forEach(function (f) {
        const wrap = make("div", "field");
        const id = root.id + "-" + prefix + "-" + f.key;
        const label = make("label", "", f.key.replace(/_/g, " ") + (f.required ? "" : " (optional)"));
        label.htmlFor = id;
        let input;
        const value = step[f.key] !== undefined ? step[f.key] : f.default;
        if (f.kind === "columns" || f.kind === "column" || f.kind === "choice" || f.kind === "choices") {
          input = make("select");
          const values = f.kind === "columns" || f.kind === "column" ? columnsFor(index) : f.options;
          if (f.kind === "columns" || f.kind === "choices") { input.multiple = true; input.size = Math.min(6, Math.max(3, values.length)); }
          if (f.kind === "column") option(input, "", "—");
          values.forEach(function (v) {
            const o = option(input, v);
            if (Array.isArray(value) ? value.indexOf(v) >= 0 : value === v) o.selected = true;
          });
        } else if (f.kind === "bool") {
          input = make("input"); input.type = "checkbox"; input.checked = value !== false;
          label.className = "check";
        } else {
          input = make("input"); input.type = f.kind === "number" || f.kind === "integer" ? "number" : "text";
          if (f.kind === "number") input.step = "any";
          if (f.kind === "integer") { input.step = "1"; input.min = "1"; }
          if (value !== undefined && value !== null) input.value = value;
        }
        input.id = id;
        input.setAttribute("data-key", f.key);
        input.setAttribute("data-kind", f.kind);
        if (f.kind === "bool") { label.prepend(input); wrap.appendChild(label); }
        else { wrap.appendChild(label); wrap.appendChild(input); }
        if (f.help) wrap.appendChild(make("div", "help", f.help));
        container.appendChild(wrap);
      });
    }
    function readWidgets(container, op) {
      const step = { op: op };
      const missing = [];
      container.querySelectorAll("[data-key]").forEach(function (input) {
        const key = input.getAttribute("data-key"), kind = input.getAttribute("data-kind");
        let value;
        if (input.multiple) value = Array.from(input.selectedOptions).map((o) => o.value);
        else if (kind === "bool") value = input.checked;
        else if (kind === "number" || kind === "integer") value = input.value === "" ? undefined : (kind === "integer" ? Math.round(Number(input.value)) : Number(input.value));
        else value = input.value === "" ? undefined : input.value;
        if (Array.isArray(value) && !value.length) value = undefined;
        const spec = (cfg.fields[op] || []).find((f) => f.key === key) || {};
        if (value === undefined && spec.required) missing.push(key.replace(/_/g, " "));
        if (value !== undefined) step[key] = value;
      });
      return { step: step, missing: missing };
    }

    // --- the list of steps ----------------------------------------------------------------------
    function mappingTable(column, rows) {
      const table = make("table", "mapping");
      const caption = make("caption", "help", "Learned on the sample: " + column);
      table.appendChild(caption);
      const body = make("tbody");
      rows.forEach(function (r) {
        const tr = make("tr");
        const from = make("td");
        r.from.forEach(function (v, i) {
          if (i) from.appendChild(document.createTextNode(", "));
          from.appendChild(make("span", "mono", "“" + v + "”"));
          if ((r.similar || []).indexOf(v) >= 0) from.appendChild(make("span", "badge warn", "spelling"));
        });
        tr.appendChild(from);
        tr.appendChild(make("td", "", "→"));
        tr.appendChild(make("td", "", "“" + r.to + "”"));
        body.appendChild(tr);
      });
      table.appendChild(body);
      return table;
    }
    function render() {
      const box = q("steps");
      box.replaceChildren();
      const bad = errorIndex();
      s.items.forEach(function (item, i) {
        const li = make("li");
        li.setAttribute("data-op", item.step.op);
        if (bad === i) li.classList.add("invalid");
        const head = make("div", "step-head");
        head.appendChild(make("span", "step-op", item.step.op));
        head.appendChild(make("span", "", summary(item.step)));
        const tools = make("span", "step-tools");
        [["Edit", "edit"], ["↑", "up"], ["↓", "down"], ["Remove", "remove"]].forEach(function (b) {
          const btn = make("button", "btn secondary small", b[0]);
          btn.type = "button";
          btn.setAttribute("data-step-action", b[1]);
          btn.setAttribute("aria-label", b[1] === "up" ? "Move step " + (i + 1) + " up" : b[1] === "down" ? "Move step " + (i + 1) + " down" : b[0] + " step " + (i + 1));
          if ((b[1] === "up" && i === 0) || (b[1] === "down" && i === s.items.length - 1)) btn.disabled = true;
          btn.addEventListener("click", function () { act(b[1], i); });
          tools.appendChild(btn);
        });
        head.appendChild(tools);
        if (item.why) head.appendChild(make("span", "step-why", item.why));
        li.appendChild(head);
        if (item.step.op === "clean_categories") {
          const cols = item.step.columns && item.step.columns.length ? item.step.columns : Object.keys(s.mappings);
          cols.forEach(function (c) { if (s.mappings[c] && s.mappings[c].length) li.appendChild(mappingTable(c, s.mappings[c])); });
        }
        if (bad === i) { const err = make("ul", "errorlist"); err.appendChild(make("li", "", s.error.detail)); li.appendChild(err); }
        if (s.editing === i) li.appendChild(inlineEditor(item, i));
        box.appendChild(li);
      });
      q("empty").hidden = s.items.length > 0;
      showError(q("error"), s.error && bad === null ? s.error.detail : "");
      sync();
    }
    function inlineEditor(item, i) {
      const wrap = make("div", "step-body");
      const fields = make("div", "row");
      fieldWidgets(fields, item.step.op, item.step, i, "edit" + i);
      const err = make("ul", "errorlist");
      const actions = make("div", "actions");
      const save = make("button", "btn small", "Save step"); save.type = "button";
      const cancel = make("button", "btn secondary small", "Cancel"); cancel.type = "button";
      save.addEventListener("click", function () {
        const read = readWidgets(fields, item.step.op);
        if (read.missing.length) { showError(err, "Choose " + read.missing.join(" and ") + "."); return; }
        s.items[i] = { step: read.step, why: "" };
        changed(); s.editing = null; render();
      });
      cancel.addEventListener("click", function () { s.editing = null; render(); });
      actions.append(save, cancel);
      wrap.append(fields, err, actions);
      return wrap;
    }
    function changed() { s.touched = true; s.error = null; s.mappings = {}; q("preview-box").hidden = true; }
    function act(action, i) {
      if (action === "edit") { s.editing = s.editing === i ? null : i; render(); return; }
      if (action === "remove") s.items.splice(i, 1);
      if (action === "up" && i > 0) s.items.splice(i - 1, 0, s.items.splice(i, 1)[0]);
      if (action === "down" && i < s.items.length - 1) s.items.splice(i + 1, 0, s.items.splice(i, 1)[0]);
      s.editing = null; changed(); render();
    }

    // --- sources: automatic, none, saved ---------------------------------------------------------
    // Only the newest request may fill the editor: changing the target while the first recipe is
    // on its way must not let the older answer (for another target) land last. While one is on
    // its way the editor says so (aria-busy), and the form around it waits (see submit below).
    let loading = 0;
    async function loadAuto(why) {
      if (!s.version) { s.items = []; render(); setStatus("Choose a dataset version first."); return; }
      const mine = ++loading;
      root.setAttribute("aria-busy", "true");
      setStatus("Building the automatic recipe from the profile…");
      const url = "/dataset-versions/" + encodeURIComponent(s.version) + "/recipe/auto/?target=" + encodeURIComponent(s.target || "");
      const r = await mlp.api(url);
      if (mine !== loading) return;
      root.setAttribute("aria-busy", "false");
      if (!r.ok) { setStatus(""); s.error = { detail: mlp.errorText(r.body, r.status), field: "steps" }; render(); return; }
      s.columns = r.body.columns;
      s.items = r.body.steps.map((x) => ({ step: x.step, why: x.why }));
      s.source = "auto"; s.touched = false; s.error = null; s.mappings = {};
      q("start").value = "auto";
      setStatus(why || ("Automatic recipe: " + s.items.length + " step" + (s.items.length === 1 ? "" : "s") + " from this version's profile. Edit anything before training."));
      render();
    }
    function fillStart() {
      const start = q("start");
      start.replaceChildren();
      option(start, "auto", "Automatic recipe (from the profile)");
      option(start, "none", "No steps (built-in defaults)");
      (cfg.recipes || []).forEach((r, i) => option(start, "saved:" + i, "Saved: " + r.label));
    }
    q("start").addEventListener("change", function () {
      const v = q("start").value;
      s.error = null; s.mappings = {}; s.editing = null;
      if (v === "auto") { loadAuto(); return; }
      s.source = v; s.touched = false;
      if (v === "none") { s.items = []; setStatus("No steps: the built-in defaults apply."); }
      else {
        const r = cfg.recipes[Number(v.slice(6))];
        s.items = r.steps.map((st) => ({ step: JSON.parse(JSON.stringify(st)), why: "" }));
        setStatus("Saved recipe " + r.label + ".");
        const name = document.querySelector("[data-recipe-name='" + root.id + "']") || document.getElementById("recipe-name");
        if (name && !name.value) name.value = r.name;
      }
      render();
    });
    q("reset").addEventListener("click", function () { loadAuto(); });

    // --- add a step ------------------------------------------------------------------------------
    const opSelect = q("op");
    cfg.ops.forEach((op) => option(opSelect, op));
    function showOp() {
      fieldWidgets(q("fields"), opSelect.value, {}, s.items.length, "add");
      mlp.text(q("op-help"), (cfg.reference || {})[opSelect.value] || "");
      showError(q("add-error"), "");
    }
    opSelect.addEventListener("change", showOp);
    q("add-box").addEventListener("toggle", showOp);
    q("add-step").addEventListener("click", function () {
      const read = readWidgets(q("fields"), opSelect.value);
      if (read.missing.length) { showError(q("add-error"), "Choose " + read.missing.join(" and ") + "."); return; }
      const tail = s.items.findIndex((it) => it.step.op === "pca" || it.step.op === "select_k_best");
      const at = read.step.op === "pca" || read.step.op === "select_k_best" || tail < 0 ? s.items.length : tail;
      s.items.splice(at, 0, { step: read.step, why: "" });
      changed(); render(); showOp();
      setStatus("Step added as number " + (at + 1) + ".");
    });

    // --- JSON -------------------------------------------------------------------------------------
    q("apply-json").addEventListener("click", function () {
      let value;
      try { value = JSON.parse(q("json").value); } catch (e) { showError(q("json-error"), "Not valid JSON: " + e.message); return; }
      if (!Array.isArray(value)) { showError(q("json-error"), "A recipe is a list of steps: [{\"op\": ...}, ...]."); return; }
      const bad = value.findIndex((st) => !st || typeof st !== "object" || cfg.ops.indexOf(st.op) < 0);
      if (bad >= 0) { showError(q("json-error"), "Step " + (bad + 1) + ": \"op\" must be one of " + cfg.ops.join(", ") + "."); return; }
      showError(q("json-error"), "");
      s.items = value.map((st) => ({ step: st, why: "" }));
      changed(); render(); setStatus("JSON applied: " + s.items.length + " steps.");
    });

    // --- preview ----------------------------------------------------------------------------------
    function fillTable(table, columns, rows) {
      const head = table.querySelector("thead"), body = table.querySelector("tbody");
      head.replaceChildren(); body.replaceChildren();
      const tr = make("tr");
      columns.forEach((c) => tr.appendChild(make("th", "", c)));
      head.appendChild(tr);
      rows.forEach(function (row) {
        const r = make("tr");
        row.forEach((v) => r.appendChild(make("td", "", v == null ? "" : (typeof v === "number" ? +v.toPrecision(4) : v))));
        body.appendChild(r);
      });
    }
    q("preview").addEventListener("click", async function () {
      s.error = null;
      const steps = s.items.map((it) => it.step);
      setStatus("Fitting the recipe on a sample…");
      const r = await mlp.api("/dataset-versions/" + encodeURIComponent(s.version) + "/recipe/preview/", { method: "POST", json: { steps: steps, target: s.target } });
      const box = q("preview-box");
      if (!r.ok) {
        box.hidden = true; setStatus("");
        const field = r.body && r.body.errors ? Object.keys(r.body.errors)[0] : "steps";
        s.error = { detail: (r.body && r.body.detail) || mlp.errorText(r.body, r.status), field: field || "steps" };
        render();
        const bad = root.querySelector(".steps > li.invalid") || q("error");
        bad.scrollIntoView({ block: "center" });
        return;
      }
      s.mappings = r.body.category_mappings || {};
      render();
      box.hidden = false;
      setStatus("Preview on " + r.body.sample_rows + " training rows.");
      mlp.text(q("notes"), r.body.rows_in + " sample rows, " + r.body.rows_after_row_filters + " after row filters; " + r.body.after.columns.length + " model inputs. " + r.body.notes.join(" "));
      fillTable(q("before"), r.body.before.columns, r.body.before.rows);
      fillTable(q("after"), r.body.after.columns, r.body.after.rows);
    });

    // --- the form around it (New experiment): version and target -------------------------------
    function dataChanged() {
      const version = versionInput ? versionInput.value : s.version;
      const target = targetInput ? targetInput.value : s.target;
      if (version === s.version && target === s.target) return;
      s.version = version; s.target = target;
      if (!s.touched && s.source === "auto") loadAuto();
      else setStatus("The data or the target changed: check the steps, or use the automatic recipe again.");
    }
    if (versionInput) versionInput.addEventListener("change", dataChanged);
    if (targetInput) targetInput.addEventListener("change", dataChanged);
    const form = output ? output.form : null;
    if (form) form.addEventListener("submit", function (e) {
      if (root.getAttribute("aria-busy") !== "true") return;
      e.preventDefault();
      setStatus("The recipe for this target is still being built: submit again in a moment.");
    });

    fillStart();
    if (cfg.initial) {
      s.items = cfg.initial.map((st) => (st && st.step ? st : { step: st, why: "" }));
      s.source = "edited"; s.touched = true;
      setStatus(s.error ? "Fix the step marked below, then submit again." : "");
      render();
      const bad = root.querySelector(".steps > li.invalid");
      if (bad) bad.scrollIntoView({ block: "center" });
    } else {
      loadAuto();
    }
  }
  document.querySelectorAll("[data-recipe-editor]").forEach(Editor);
})();
