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
  // The session ended (the live stream says so before it closes): to the
  // sign-in page, and back here afterwards.
  document.addEventListener("htmx:sseMessage", function (e) {
    if (e.target && e.target.id === "session-end") {
      location.assign("/ui/login?next=" + encodeURIComponent(location.pathname + location.search));
    }
  });
  // A live refresh never replaces what someone is typing or choosing: a
  // refresh triggered by the stream waits while focus is in a field of the
  // part it would replace (the next change refreshes it).
  document.addEventListener("htmx:beforeRequest", function (e) {
    var d = e.detail, ev = d && d.requestConfig && d.requestConfig.triggeringEvent;
    var a = document.activeElement;
    if (ev && typeof ev.type === "string" && ev.type.indexOf("sse:") === 0 && a && d.target &&
        d.target.contains(a) && a.matches("input, select, textarea")) {
      e.preventDefault();
    }
  });
  // Select every row of the bulk form.
  document.addEventListener("change", function (e) {
    var t = e.target;
    if (t && t.id === "select-all") {
      document.querySelectorAll("input[name=ids]").forEach(function (c) { c.checked = t.checked; });
    }
  });
})();
