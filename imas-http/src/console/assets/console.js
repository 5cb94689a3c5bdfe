// IMAS console: SLA countdowns (elements with data-due="<RFC 3339>").
(function () {
  "use strict";
  function fmt(ms) {
    var late = ms < 0, s = Math.floor(Math.abs(ms) / 1000);
    var h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = s % 60;
    var t = (h ? h + "h " : "") + (h || m ? m + "m " : "") + r + "s";
    return late ? t + " overdue" : t + " left";
  }
  function tick() {
    var now = Date.now();
    document.querySelectorAll("[data-due]").forEach(function (el) {
      var due = Date.parse(el.getAttribute("data-due"));
      if (isNaN(due)) return;
      var out = el.querySelector(".countdown") || el;
      if (el.getAttribute("data-paused") === "true") return;
      out.textContent = fmt(due - now);
      if (due - now < 0) el.classList.add("overdue");
    });
  }
  document.addEventListener("DOMContentLoaded", function () {
    tick();
    setInterval(tick, 1000);
  });
  // Select every row of the bulk form.
  document.addEventListener("change", function (e) {
    var t = e.target;
    if (t && t.id === "select-all") {
      document.querySelectorAll("input[name=ids]").forEach(function (c) { c.checked = t.checked; });
    }
  });
})();
