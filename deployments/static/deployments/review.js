// Review item page: keyboard decisions (a approve, o override, e escalate, c comment, j/k next /
// previous, Esc leaves a field). A static file: the CSP allows no inline script.
(function () {
  const form = document.getElementById("decide-form");
  function submit(action) {
    if (!form) return;
    const btn = document.querySelector("#decide-form button[value=" + action + "]");
    if (btn && !btn.disabled) btn.click();
  }
  function go(id) { const a = document.getElementById(id); if (a) window.location = a.href; }
  const label = document.getElementById("label");
  if (label) label.addEventListener("keydown", function (ev) {
    if (ev.key === "Enter") { ev.preventDefault(); submit("override"); }
  });
  document.addEventListener("keydown", function (ev) {
    const t = ev.target;
    if (ev.key === "Escape" && t && t.blur) { t.blur(); return; }
    if (t && (t.tagName === "INPUT" || t.tagName === "TEXTAREA" || t.tagName === "SELECT")) return;
    if (ev.ctrlKey || ev.metaKey || ev.altKey) return;
    if (ev.key === "a") { ev.preventDefault(); submit("approve"); }
    else if (ev.key === "o" && label) { ev.preventDefault(); label.focus(); }
    else if (ev.key === "e") { ev.preventDefault(); submit("escalate"); }
    else if (ev.key === "c") { const c = document.getElementById("comment"); if (c) { ev.preventDefault(); c.focus(); } }
    else if (ev.key === "j") { go("next-link"); }
    else if (ev.key === "k") { go("prev-link"); }
  });
})();
