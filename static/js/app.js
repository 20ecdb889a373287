// Small helpers shared by every page: CSRF-aware fetch and live job progress bars.
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
    text: function (el, value) { el.textContent = value == null ? "" : String(value); },
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
      if (error) mlp.text(error, job.error);
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
  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-job-id]").forEach(function (el) {
      const s = el.getAttribute("data-status");
      if (!s || ["queued", "running"].indexOf(s) >= 0) watch(el);
    });
  });
  window.mlp.watchJob = watch;
})();
