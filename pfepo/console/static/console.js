// PF-EPO console: live overview over server-sent events, readable errors for htmx forms, file upload
// into the what-if editor. No framework; htmx (vendored) handles the forms.
(function () {
  "use strict";
  function ready(fn) {
    if (document.readyState !== "loading") fn(); else document.addEventListener("DOMContentLoaded", fn);
  }
  ready(function () {
    var main = document.getElementById("main");
    var url = main && main.getAttribute("data-live");
    if (url && window.EventSource) {
      var es = new EventSource(url);
      es.addEventListener("overview", function (ev) {
        var live = document.getElementById("live");
        if (!live) return;
        // keep keyboard focus on the same link across an update
        var a = document.activeElement, key = null;
        if (a && live.contains(a)) key = a.getAttribute("href") || a.id;
        live.innerHTML = ev.data;
        live.setAttribute("data-updated", String(Date.now()));
        if (key) {
          var again = live.querySelector('[href="' + key + '"]') || document.getElementById(key);
          if (again) again.focus();
        }
      });
    }
    document.querySelectorAll("input[type=file][data-into]").forEach(function (inp) {
      inp.addEventListener("change", function () {
        var f = inp.files && inp.files[0], ta = document.getElementById(inp.getAttribute("data-into"));
        if (!f || !ta) return;
        var rd = new FileReader();
        rd.onload = function () { ta.value = String(rd.result); };
        rd.readAsText(f);
      });
    });
  });
  document.addEventListener("htmx:configRequest", function (ev) {
    var m = document.querySelector('meta[name="csrf-token"]');
    if (m && m.content) ev.detail.headers["X-CSRF-Token"] = m.content;
  });
  // Refusals (401/403/409/422...) are shown where the result goes, not dropped silently.
  document.addEventListener("htmx:beforeSwap", function (ev) {
    var xhr = ev.detail.xhr;
    if (xhr.status >= 400) {
      ev.detail.shouldSwap = true;
      ev.detail.isError = false;
      var ct = xhr.getResponseHeader("content-type") || "";
      if (ct.indexOf("application/json") === 0) {
        var msg = xhr.responseText;
        try { msg = JSON.parse(xhr.responseText).detail; } catch (e) { /* keep the raw text */ }
        var p = document.createElement("p");
        p.className = "bad";
        p.textContent = "\u2717 Refused (" + xhr.status + "): " + msg;
        ev.detail.serverResponse = p.outerHTML;
      }
    }
  });
})();
