// The review screen's keys: 1-9 (0 for 10) score the highlighted criterion, p/f pass or fail
// it, j/k (or Tab) move between criteria, Enter submits, s skips, r shows the judges, c
// writes a comment, ? shows the keys. Without this script the form posts all the same.
// On the queue list it adds rubric rows to the new-queue form.
(function () {
  "use strict";

  function reviewScreen(form) {
    var criteria = Array.prototype.slice.call(form.querySelectorAll(".rv-criterion"));
    var help = document.getElementById("shortcut-help");
    var judge = document.getElementById("judge-panel");
    var message = document.getElementById("score-msg");
    var comment = form.querySelector("textarea[name=comment]");
    var current = 0;

    function radios(i) { return criteria[i].querySelectorAll("input[type=radio]"); }
    function chosen(i) { return criteria[i].querySelector("input[type=radio]:checked"); }

    function highlight(i, moveFocus) {
      if (!criteria.length) return;
      current = Math.max(0, Math.min(criteria.length - 1, i));
      criteria.forEach(function (el, k) { el.classList.toggle("rv-focused", k === current); });
      if (moveFocus) {
        var target = chosen(current) || radios(current)[0];
        if (target) target.focus({ preventScroll: false });
      }
    }

    function firstUnscored() {
      for (var i = 0; i < criteria.length; i++) if (!chosen(i)) return i;
      return -1;
    }

    function choose(key) {
      var el = criteria[current];
      if (!el) return false;
      var binary = el.getAttribute("data-binary") === "true";
      if (binary !== (key === "p" || key === "f")) return false;
      var input = el.querySelector('input[type=radio][data-key="' + key + '"]');
      if (!input || input.disabled) return false;
      input.checked = true;
      input.dispatchEvent(new Event("change", { bubbles: true }));
      message.hidden = true;
      if (current < criteria.length - 1) highlight(current + 1, true);
      else input.focus();
      return true;
    }

    function submit() {
      var missing = firstUnscored();
      if (missing >= 0) {
        message.textContent = "Score every criterion first: " +
          criteria[missing].querySelector(".rv-criterion-name").textContent + " has no score.";
        message.hidden = false;
        highlight(missing, true);
        return;
      }
      form.requestSubmit(document.getElementById("submit-score"));
    }

    function toggleHelp(show) {
      help.hidden = show === undefined ? !help.hidden : !show;
    }

    form.addEventListener("focusin", function (event) {
      var el = event.target.closest(".rv-criterion");
      if (el) highlight(criteria.indexOf(el), false);
    });
    form.addEventListener("change", function (event) {
      var el = event.target.closest(".rv-criterion");
      if (el) { highlight(criteria.indexOf(el), false); message.hidden = true; }
    });
    document.getElementById("help-toggle").addEventListener("click", function () { toggleHelp(); });
    document.getElementById("help-close").addEventListener("click", function () { toggleHelp(false); });

    document.addEventListener("keydown", function (event) {
      if (event.altKey || event.defaultPrevented) return;
      var target = event.target;
      var typing = target.matches("textarea, input[type=text], input:not([type]), select");
      if (typing) {
        if (target === comment && event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
          event.preventDefault();
          submit();
        } else if (event.key === "Escape") {
          target.blur();
          highlight(current, true);
        }
        return;
      }
      if (event.ctrlKey || event.metaKey) return;
      var key = event.key;
      var handled = true;
      if (key === "?") toggleHelp();
      else if (key === "Escape") toggleHelp(false);
      else if (/^[0-9]$/.test(key) || key === "p" || key === "f") handled = choose(key);
      else if (key === "j") highlight(current + 1, true);
      else if (key === "k") highlight(current - 1, true);
      else if (key === "Enter") {
        if (/^(A|BUTTON|SUMMARY)$/.test(target.tagName)) return;  // their own Enter
        submit();
      } else if (key === "s") {
        var skip = document.getElementById("skip-task");
        if (!skip.disabled) form.requestSubmit(skip);
      } else if (key === "r") {
        if (judge) judge.open = !judge.open;
      } else if (key === "c") comment.focus();
      else handled = false;
      if (handled) event.preventDefault();
    });

    var start = firstUnscored();
    highlight(start < 0 ? 0 : start, !document.querySelector("#score-error"));
  }

  // More criteria than the form's rows: clone the last row with the next number.
  function rubricRows(fieldset) {
    var button = document.createElement("button");
    button.type = "button";
    button.className = "btn btn-xs";
    button.textContent = "Add a criterion";
    button.addEventListener("click", function () {
      var rows = fieldset.querySelectorAll(".rv-criterion-row");
      var last = rows[rows.length - 1];
      var copy = last.cloneNode(true);
      copy.querySelectorAll("input, select").forEach(function (el) {
        el.name = el.name.replace(/^c\d+\./, "c" + rows.length + ".");
        if (el.tagName === "INPUT") { el.value = ""; el.placeholder = ""; }
        else el.selectedIndex = 0;
      });
      last.insertAdjacentElement("afterend", copy);
      copy.querySelector("input").focus();
    });
    fieldset.querySelector(".rv-yaml").insertAdjacentElement("beforebegin", button);
  }

  document.addEventListener("DOMContentLoaded", function () {
    var form = document.getElementById("score-form");
    if (form && form.querySelector(".rv-criterion")) reviewScreen(form);
    var rows = document.getElementById("rubric-rows");
    if (rows) rubricRows(rows);
  });
})();
