// Small enhancements shared by every page: local times, copy buttons, "show all" on long texts.
(function () {
  "use strict";

  function pad(n) { return String(n).padStart(2, "0"); }

  // Times arrive in UTC; show them in the browser's time zone (the title keeps the UTC one).
  function localTimes(root) {
    root.querySelectorAll("time[datetime]").forEach(function (el) {
      var d = new Date(el.getAttribute("datetime"));
      if (isNaN(d.getTime())) return;
      el.textContent = d.getFullYear() + "-" + pad(d.getMonth() + 1) + "-" + pad(d.getDate()) +
        " " + pad(d.getHours()) + ":" + pad(d.getMinutes()) + ":" + pad(d.getSeconds());
    });
  }

  function copyButtons(root) {
    root.querySelectorAll("[data-copy]").forEach(function (btn) {
      btn.addEventListener("click", function () {
        var text = btn.getAttribute("data-copy");
        var done = function () {
          var label = btn.textContent;
          btn.textContent = "Copied";
          setTimeout(function () { btn.textContent = label; }, 1200);
        };
        if (navigator.clipboard) navigator.clipboard.writeText(text).then(done, function () {});
      });
    });
  }

  // Long transcript bubbles are clamped; a button opens them.
  function clamps(root) {
    root.querySelectorAll(".clamp").forEach(function (el) {
      if (el.scrollHeight <= el.clientHeight + 4) return;
      var btn = document.createElement("button");
      btn.type = "button";
      btn.className = "btn btn-xs btn-ghost clamp-toggle";
      btn.textContent = "Show all";
      btn.addEventListener("click", function () {
        var open = el.classList.toggle("open");
        btn.textContent = open ? "Show less" : "Show all";
      });
      el.insertAdjacentElement("afterend", btn);
    });
  }

  // Empty fields would clutter the URL with `name=&user=`: leave them out of the query.
  function tidyForms(root) {
    root.querySelectorAll("form.filters").forEach(function (form) {
      form.addEventListener("submit", function () {
        form.querySelectorAll("input, select").forEach(function (el) {
          if (el.name && !el.value) el.disabled = true;
        });
      });
    });
  }

  // Coming back through the history shows the form again: enable what submit disabled.
  window.addEventListener("pageshow", function () {
    document.querySelectorAll("form.filters [disabled]").forEach(function (el) { el.disabled = false; });
  });

  window.ControlTower = { localTimes: localTimes };
  document.addEventListener("DOMContentLoaded", function () {
    localTimes(document);
    copyButtons(document);
    clamps(document);
    tidyForms(document);
  });
})();
