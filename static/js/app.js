// Shared by every page: CSRF-aware fetch, live job progress bars, the narrow-screen menu, tabs
// that show when they scroll, widths from data attributes (no inline styles under our CSP),
// auto-submitting selects, copy buttons, and feedback placed next to the form that caused it.
(function () {
  function cookie(name) {
    const m = document.cookie.match(new RegExp("(^|; )" + name + "=([^;]*)"));
    return m ? decodeURIComponent(m[2]) : "";
  }
  window.mlp = {
    csrf: () => cookie("csrftoken"),
    api: async function (url, options) {
      options = options || {};
      options.headers = Object.assign({ "X-CSRFToken": cookie("csrftoken"), "Accept": "application/json" }, options.headers || {});
      if (options.json !== undefined) {
        options.body = JSON.stringify(options.json);
        options.headers["Content-Type"] = "application/json";
        delete options.json;
      }
      options.credentials = "same-origin";
      const resp = await fetch(url, options);
      let body = null;
      try { body = await resp.json(); } catch (e) { body = null; }
      return { ok: resp.ok, status: resp.status, body: body };
    },
    text: function (el, value) { if (el) el.textContent = value == null ? "" : String(value); },
    // Same rules as the `user_error` template filter: no traceback, no exception class in front.
    userError: function (value) {
      let text = String(value || "").trim(), cause = "";
      const prefix = /^(?:[A-Za-z_][\w.]*\.)?[A-Z]\w*(?:Error|Exception|Warning|Failure)\s*:\s*/;
      const at = text.indexOf("Traceback (most recent call last):");
      if (at >= 0) {
        const lines = text.slice(at).split("\n").map((l) => l.trim()).filter(Boolean);
        cause = lines.length ? lines[lines.length - 1].replace(prefix, "") : "";
        text = text.slice(0, at);
      }
      const noise = /^(It is very likely that your model|You can try to debug|Below are more details|----|\d+ fits? failed with the following error:$)/;
      const message = text.split("\n").map((l) => l.trim()).filter((l) => l && !noise.test(l)).map((l) => l.replace(prefix, "")).join(" ").trim();
      if (cause && message.indexOf(cause) < 0) return message ? message.replace(/[.:]+$/, "") + ": " + cause : cause;
      return message;
    },
    // The message of an API error body, with the first field error when there is one.
    errorText: function (body, status) {
      if (!body) return "The request failed (HTTP " + status + ").";
      const errors = body.errors || {};
      const first = Object.keys(errors)[0];
      const detail = body.detail || "The request failed.";
      if (first && errors[first] && errors[first].length && String(errors[first][0]) !== String(detail)) {
        return detail + " (" + first + ": " + errors[first][0] + ")";
      }
      return detail;
    },
    // Show a form-level message next to a form's submit button and bring it into view.
    feedback: function (form, text, kind) {
      let box = form.querySelector(".form-feedback");
      if (!box) {
        box = document.createElement("ul");
        box.className = "form-feedback";
        box.setAttribute("role", "alert");
        box.tabIndex = -1;
        const anchor = form.querySelector(".actions") || form.querySelector("[type=submit]");
        if (anchor && anchor.parentNode) anchor.parentNode.insertBefore(box, anchor.classList && anchor.classList.contains("actions") ? anchor.nextSibling : anchor);
        else form.appendChild(box);
      }
      box.replaceChildren();
      if (!text) return box;
      const li = document.createElement("li");
      li.className = kind || "error";
      li.textContent = text;
      box.appendChild(li);
      box.scrollIntoView({ block: "center" });
      box.focus({ preventScroll: true });
      return box;
    },
    applyWidths: function (root) {
      (root || document).querySelectorAll("[data-width]").forEach(function (el) {
        el.style.width = Math.max(0, Math.min(100, Number(el.getAttribute("data-width")) || 0)) + "%";
      });
      (root || document).querySelectorAll("[data-left]").forEach(function (el) {
        el.style.left = Math.max(0, Math.min(100, Number(el.getAttribute("data-left")) || 0)) + "%";
      });
    },
  };

  // <div data-job-id="12" data-reload-on-finish="1"> with .progress>span, [data-job-status], [data-job-message]
  function watch(el) {
    const id = el.getAttribute("data-job-id");
    const bar = el.querySelector(".progress > span");
    const status = el.querySelector("[data-job-status]");
    const message = el.querySelector("[data-job-message]");
    const error = el.querySelector("[data-job-error]");
    const done = (s) => ["succeeded", "failed", "cancelled"].indexOf(s) >= 0;
    const ownDoneAtLoad = done(el.getAttribute("data-own-status"));
    async function tick() {
      const r = await window.mlp.api("/api/v1/jobs/" + id + "/");
      if (!r.ok) return;
      const job = r.body;
      if (bar) bar.style.width = job.progress + "%";
      if (status) { mlp.text(status, job.status); status.className = "badge " + job.status; }
      if (message) mlp.text(message, job.message);
      if (error) mlp.text(error, mlp.userError(job.error));
      el.setAttribute("data-status", job.status);
      // job.status covers the job's child jobs; own_status is its own step. A page showing the
      // job's result reloads once its own step is done (a batch's output is ready while its
      // logging child still runs), or at the very end when that step was done at page load.
      const ownDone = done(job.own_status || job.status);
      const reload = el.getAttribute("data-reload-on-finish");
      if (reload && ((ownDone && !ownDoneAtLoad) || done(job.status))) { window.location.reload(); return; }
      if (done(job.status)) {
        el.dispatchEvent(new CustomEvent("job:finished", { detail: job, bubbles: true }));
        return;
      }
      setTimeout(tick, 1000);
    }
    tick();
  }
  window.mlp.watchJob = watch;

  function tabs(box) {
    const strip = box.querySelector("nav.sub");
    if (!strip) return;
    function update() {
      const max = strip.scrollWidth - strip.clientWidth;
      box.classList.toggle("more-left", strip.scrollLeft > 2);
      box.classList.toggle("more-right", strip.scrollLeft < max - 2);
    }
    box.querySelectorAll("[data-tabs-scroll]").forEach(function (b) {
      b.addEventListener("click", function () { strip.scrollBy({ left: Number(b.getAttribute("data-tabs-scroll")) * strip.clientWidth * 0.7 }); });
    });
    const active = strip.querySelector("a.active");
    if (active) {
      const left = active.offsetLeft - strip.offsetLeft;
      // Keep the current tab clear of the right-hand fade and arrow.
      if (left + active.offsetWidth > strip.clientWidth - 48) strip.scrollLeft = left - strip.clientWidth / 2 + active.offsetWidth / 2;
    }
    strip.addEventListener("scroll", update, { passive: true });
    window.addEventListener("resize", update);
    update();
  }

  // Which form the user submitted last, so the page that answers can show its errors there.
  function formKey(form) {
    if (form.id) return "#" + form.id;
    const kind = form.querySelector("input[type=hidden][name=form]");
    return (form.getAttribute("action") || location.pathname) + (kind ? "|" + kind.value : "");
  }
  function findForm(key) {
    return Array.from(document.forms).find(function (f) { return formKey(f) === key; }) || null;
  }
  function placeFeedback() {
    let last = null;
    try { last = JSON.parse(sessionStorage.getItem("mlp:last-form") || "null"); } catch (e) { last = null; }
    sessionStorage.removeItem("mlp:last-form");
    const invalid = document.querySelector("form .errorlist li, form [aria-invalid=true]");
    if (invalid) {
      const form = invalid.closest("form");
      form.querySelectorAll(".errorlist").forEach(function (list) {
        if (!list.children.length) return;
        const field = list.closest(".field") || list.parentNode;
        const control = field && field.querySelector("input:not([type=hidden]),select,textarea");
        if (control) control.setAttribute("aria-invalid", "true");
      });
      const first = form.querySelector("[aria-invalid=true]") || invalid;
      first.scrollIntoView({ block: "center" });
      if (first.focus) first.focus({ preventScroll: true });
      return;
    }
    if (!last || Date.now() - last.at > 120000) return;
    const form = findForm(last.key);
    const messages = Array.from(document.querySelectorAll("#messages li.error, #messages li.warning"));
    if (!form || !messages.length) return;
    const box = mlp.feedback(form, "");
    messages.forEach(function (li) { box.appendChild(li); });
    const list = document.getElementById("messages");
    if (list && !list.children.length) list.remove();
    box.scrollIntoView({ block: "center" });
    box.focus({ preventScroll: true });
  }

  document.addEventListener("submit", function (ev) {
    const form = ev.target;
    const question = form.getAttribute("data-confirm");
    if (question && !window.confirm(question)) { ev.preventDefault(); return; }
    try { sessionStorage.setItem("mlp:last-form", JSON.stringify({ key: formKey(form), at: Date.now() })); } catch (e) { /* private mode */ }
  });
  document.addEventListener("change", function (ev) {
    const el = ev.target;
    if (el.matches && el.matches("[data-autosubmit]") && el.form) el.form.requestSubmit();
  });
  document.addEventListener("click", function (ev) {
    const btn = ev.target.closest && ev.target.closest("[data-copy]");
    if (!btn) return;
    const source = document.getElementById(btn.getAttribute("data-copy"));
    if (!source) return;
    const text = source.textContent.trim();
    const done = function () { const was = btn.getAttribute("data-label") || btn.textContent; btn.setAttribute("data-label", was); mlp.text(btn, "Copied"); setTimeout(function () { mlp.text(btn, was); }, 1600); };
    if (navigator.clipboard && window.isSecureContext) navigator.clipboard.writeText(text).then(done, function () {});
    else { const r = document.createRange(); r.selectNodeContents(source); const s = getSelection(); s.removeAllRanges(); s.addRange(r); try { document.execCommand("copy"); done(); } catch (e) { /* selected for manual copy */ } }
  });

  document.addEventListener("DOMContentLoaded", function () {
    mlp.applyWidths();
    const toggle = document.getElementById("menu-toggle"), menu = document.getElementById("top-menu");
    if (toggle && menu) toggle.addEventListener("click", function () {
      const open = menu.classList.toggle("open");
      toggle.setAttribute("aria-expanded", open ? "true" : "false");
    });
    document.querySelectorAll("[data-tabs]").forEach(tabs);
    document.querySelectorAll("[data-job-id]").forEach(function (el) {
      const s = el.getAttribute("data-status");
      if (!s || ["queued", "running"].indexOf(s) >= 0) watch(el);
    });
    placeFeedback();
  });
})();
