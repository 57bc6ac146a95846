// The trace page: a virtual span tree with a timeline, the detail pane, and adding scores.
// Only the rows in view are in the DOM, and a span's input and output are fetched when it is
// selected, so a trace with thousands of spans and MBs of text opens at once.
(function () {
  "use strict";

  var V = window.CTView;
  var ROW_H = 28;
  var OVERSCAN = 15;
  var INDENT = 14;
  var MAX_INDENT = 30;
  var CACHE_SIZE = 40;

  var data = JSON.parse(document.getElementById("trace-data").textContent);
  var C = {};
  data.columns.forEach(function (name, i) { C[name] = i; });
  var rows = data.rows;
  var n = rows.length;
  var traceId = data.trace.id;
  var total = Math.max(data.duration_ms || 0, 0.001);

  var scroller = document.getElementById("tree-scroll");
  var spacer = document.getElementById("tree-spacer");
  var detail = document.getElementById("detail");

  // Rows come depth first: a row's subtree is the rows after it up to end[i].
  var end = new Int32Array(n);
  var parent = new Int32Array(n);
  var byId = new Map();
  (function () {
    var stack = [];
    for (var i = 0; i < n; i++) {
      var depth = rows[i][C.depth];
      while (stack.length && rows[stack[stack.length - 1]][C.depth] >= depth) end[stack.pop()] = i;
      parent[i] = stack.length ? stack[stack.length - 1] : -1;
      stack.push(i);
      byId.set(rows[i][C.id], i);
    }
    while (stack.length) end[stack.pop()] = n;
  })();

  var collapsed = new Uint8Array(n);
  var visible = [];
  var position = new Int32Array(n);  // index in `visible`, or -1
  var selected = -1;
  var matches = null;
  var frame = 0;

  function hasChildren(i) { return end[i] > i + 1; }

  function computeVisible() {
    visible = [];
    position.fill(-1);
    for (var i = 0; i < n;) {
      position[i] = visible.length;
      visible.push(i);
      i = collapsed[i] ? end[i] : i + 1;
    }
    spacer.style.height = visible.length * ROW_H + "px";
    version++;
  }

  function pct(ms) { return Math.max(0, Math.min(100, (ms / total) * 100)); }

  function rowNode(i, k) {
    var r = rows[i];
    var cls = "trow";
    if (i === selected) cls += " selected";
    if (r[C.status] === "error") cls += " error";
    if (matches && matches.has(i)) cls += " match";
    var node = V.el("div", cls);
    node.style.top = k * ROW_H + "px";
    node.dataset.i = i;
    node.setAttribute("role", "treeitem");
    node.setAttribute("aria-level", String(r[C.depth] + 1));
    node.setAttribute("aria-selected", i === selected ? "true" : "false");

    var name = V.el("div", "tname");
    name.style.paddingLeft = 6 + Math.min(r[C.depth], MAX_INDENT) * INDENT + "px";
    var twisty = V.el("button", "twisty" + (hasChildren(i) ? "" : " leaf"), collapsed[i] ? "▸" : "▾");
    twisty.type = "button";
    twisty.tabIndex = -1;
    if (hasChildren(i)) node.setAttribute("aria-expanded", collapsed[i] ? "false" : "true");
    var badge = V.el("span", "kind kind-" + r[C.kind], V.kindLabel[r[C.kind]] || r[C.kind]);
    badge.title = r[C.kind];
    var text = V.el("span", "tname-text", r[C.name]);
    text.title = r[C.name];
    var meta = [];
    if (r[C.model]) meta.push(r[C.model]);
    if (r[C.tokens] != null) meta.push(V.fmtNum(r[C.tokens]) + " tok");
    if (r[C.cost] != null && i > 0) meta.push(V.fmtCost(r[C.cost]));
    if (collapsed[i]) meta.push("+" + V.fmtNum(end[i] - i - 1) + " hidden");
    name.append(twisty, badge, text, V.el("span", "tname-meta", meta.join(" · ")));

    var line = V.el("div", "tline");
    var open = r[C.duration_ms] === null || r[C.duration_ms] === undefined;
    var duration = open ? total - r[C.offset_ms] : r[C.duration_ms];
    var bar = V.el("div", "tbar kind-" + r[C.kind] + (open ? " open" : ""));
    bar.style.left = pct(r[C.offset_ms]) + "%";
    bar.style.width = Math.max(pct(duration), 0.25) + "%";
    bar.title = "starts at +" + V.fmtMs(r[C.offset_ms]) + ", takes " + (open ? "(still running)" : V.fmtMs(duration));
    line.append(bar, V.el("span", "tlat", open ? "…" : V.fmtMs(duration)));
    node.append(name, line);
    return node;
  }

  // Rows already in the DOM stay while scrolling (a click must land on the node it pressed);
  // they are rebuilt only when what they show changes (selection, collapse, search).
  var rendered = new Map();
  var version = 0;

  function render() {
    frame = 0;
    // after a collapse the browser may not have clamped scrollTop to the shorter list yet
    var top = Math.min(scroller.scrollTop, Math.max(0, visible.length * ROW_H - scroller.clientHeight));
    var first = Math.max(0, Math.floor(top / ROW_H) - OVERSCAN);
    var last = Math.min(visible.length, Math.ceil((top + scroller.clientHeight) / ROW_H) + OVERSCAN);
    var wanted = new Set();
    for (var k = first; k < last; k++) {
      var i = visible[k];
      wanted.add(i);
      var node = rendered.get(i);
      if (node && node.ctVersion === version) continue;
      var fresh = rowNode(i, k);
      fresh.ctVersion = version;
      if (node) node.replaceWith(fresh);
      else spacer.append(fresh);
      rendered.set(i, fresh);
    }
    rendered.forEach(function (node, i) {
      if (!wanted.has(i)) { node.remove(); rendered.delete(i); }
    });
  }

  function repaint() { version++; render(); }

  function schedule() { if (!frame) frame = requestAnimationFrame(render); }

  function axis() {
    var box = document.getElementById("axis");
    [0, 0.25, 0.5, 0.75, 1].forEach(function (f) {
      var tick = V.el("span", "tick", V.fmtMs(total * f));
      tick.style.left = f * 100 + "%";
      if (f === 1) tick.style.transform = "translateX(-100%)";
      box.append(tick);
    });
  }

  function toggle(i, collapse) {
    if (!hasChildren(i)) return;
    collapsed[i] = collapse === undefined ? (collapsed[i] ? 0 : 1) : collapse ? 1 : 0;
    refresh();
  }

  // Recompute the rows shown; a selection that a collapse hid moves up to its visible ancestor.
  function refresh() {
    computeVisible();
    if (selected >= 0 && position[selected] < 0) {
      var up = selected;
      while (position[up] < 0) up = parent[up];
      select(up, { scroll: "centre" });
    } else {
      render();
    }
  }

  function reveal(i) {
    var changed = false;
    for (var p = parent[i]; p >= 0; p = parent[p]) {
      if (collapsed[p]) { collapsed[p] = 0; changed = true; }
    }
    if (changed) computeVisible();
  }

  // Keep a row in view: the least scroll for a step, centred for a jump.
  function scrollTo(i, centre) {
    var y = position[i] * ROW_H;
    var height = scroller.clientHeight;
    if (y >= scroller.scrollTop && y + ROW_H <= scroller.scrollTop + height) return;
    if (centre) scroller.scrollTop = Math.max(0, y - (height - ROW_H) / 2);
    else if (y < scroller.scrollTop) scroller.scrollTop = y;
    else scroller.scrollTop = y + ROW_H - height;
  }

  function select(i, opts) {
    if (i < 0 || i >= n) return;
    reveal(i);
    selected = i;
    if (opts && opts.scroll) scrollTo(i, opts.scroll === "centre");
    repaint();
    history.replaceState(null, "", i === 0 ? location.pathname + location.search : "#span=" + rows[i][C.id]);
    targetOption();
    showDetail(i);
  }

  // ---- detail pane ----
  var cache = new Map();
  var inflight = null;

  function remember(id, span) {
    cache.set(id, span);
    if (cache.size > CACHE_SIZE) cache.delete(cache.keys().next().value);
  }

  function paint(obj, isTrace) {
    detail.replaceChildren(V.observation(obj, isTrace));
    detail.scrollTop = 0;
  }

  function showDetail(i) {
    if (inflight) { inflight.abort(); inflight = null; }
    if (i === 0) { paint(data.trace, true); return; }
    var id = rows[i][C.id];
    if (cache.has(id)) { paint(cache.get(id), false); return; }
    var ctrl = new AbortController();
    inflight = ctrl;
    detail.replaceChildren(V.el("div", "loading", "Loading " + rows[i][C.name] + "…"));
    var url = "/api/traces/" + encodeURIComponent(traceId) + "/spans/" + encodeURIComponent(id);
    fetch(url, { signal: ctrl.signal, headers: { accept: "application/json" }, credentials: "same-origin" })
      .then(function (resp) {
        return resp.json().catch(function () { return {}; }).then(function (body) {
          if (!resp.ok) throw new Error((body.error && body.error.message) || "HTTP " + resp.status);
          return body;
        });
      })
      .then(function (span) {
        remember(id, span);
        if (selected === i) paint(span, false);
      })
      .catch(function (err) {
        if (err.name === "AbortError") return;
        detail.replaceChildren(V.el("div", "d-error", "Could not load this span: " + err.message));
      })
      .finally(function () { if (inflight === ctrl) inflight = null; });
  }

  // ---- keyboard, mouse, search ----
  function move(delta) {
    var k = Math.max(0, Math.min(visible.length - 1, (selected < 0 ? 0 : position[selected]) + delta));
    select(visible[k], { scroll: true });
  }

  var KEYS = {
    ArrowDown: function () { move(1); },
    ArrowUp: function () { move(-1); },
    PageDown: function () { move(Math.floor(scroller.clientHeight / ROW_H)); },
    PageUp: function () { move(-Math.floor(scroller.clientHeight / ROW_H)); },
    Home: function () { select(0, { scroll: true }); },
    End: function () { select(visible[visible.length - 1], { scroll: true }); },
    ArrowRight: function () {
      if (collapsed[selected]) toggle(selected, false);
      else if (hasChildren(selected)) select(selected + 1, { scroll: true });
    },
    ArrowLeft: function () {
      if (hasChildren(selected) && !collapsed[selected]) toggle(selected, true);
      else if (parent[selected] >= 0) select(parent[selected], { scroll: true });
    },
  };

  scroller.addEventListener("keydown", function (event) {
    var action = KEYS[event.key];
    if (!action || selected < 0) return;
    event.preventDefault();
    action();
  });
  scroller.addEventListener("scroll", schedule, { passive: true });
  window.addEventListener("resize", schedule);
  spacer.addEventListener("click", function (event) {
    var row = event.target.closest(".trow");
    if (!row) return;
    var i = Number(row.dataset.i);
    if (event.target.closest(".twisty")) toggle(i);
    else select(i);
    scroller.focus({ preventScroll: true });
  });

  function setAll(value) {
    for (var i = 1; i < n; i++) if (hasChildren(i)) collapsed[i] = value;
    refresh();
  }
  document.getElementById("expand-all").addEventListener("click", function () { setAll(0); });
  document.getElementById("collapse-all").addEventListener("click", function () { setAll(1); });

  var search = document.getElementById("span-search");
  var order = [];
  search.addEventListener("input", function () {
    var q = search.value.trim().toLowerCase();
    matches = null;
    order = [];
    if (q) {
      matches = new Set();
      for (var i = 1; i < n; i++) {
        var r = rows[i];
        var hay = (r[C.name] + " " + r[C.kind] + " " + (r[C.model] || "") + " " + r[C.id]).toLowerCase();
        if (hay.indexOf(q) >= 0) { matches.add(i); order.push(i); }
      }
    }
    repaint();
  });
  search.addEventListener("keydown", function (event) {
    if (event.key !== "Enter" || !order.length) return;
    event.preventDefault();
    var next = order.find(function (i) { return i > selected; });
    select(next === undefined ? order[0] : next, { scroll: "centre" });
  });

  // ---- scores ----
  var form = document.getElementById("score-form");
  var toggleButton = document.getElementById("score-toggle");
  var message = document.getElementById("score-msg");

  function targetOption() {
    var option = form.querySelector("option[value=span]");
    option.disabled = selected <= 0;
    option.textContent = selected > 0 ? "span " + rows[selected][C.name] : "the selected span";
    if (option.disabled && form.elements.target.value === "span") form.elements.target.value = "trace";
  }

  function parseValue(text) {
    var t = text.trim();
    if (/^(true|false)$/i.test(t)) return t.toLowerCase() === "true";
    if (t !== "" && isFinite(Number(t))) return Number(t);
    return t;
  }

  function scoreBadge(score) {
    var value = typeof score.value === "boolean" ? String(score.value) : String(score.value);
    var cls = "score score-" + score.data_type + (score.value === true ? " score-true" : score.value === false ? " score-false" : "");
    var badge = V.el("span", cls);
    badge.title = score.name + " = " + value + (score.comment ? " — " + score.comment : "") + " (" + score.source + ")";
    badge.append(V.el("span", "score-name", score.name), V.el("span", "score-value", value));
    return badge;
  }

  function scoreRow(score) {
    var tr = document.createElement("tr");
    var on = score.span_id ? "span " + score.span_id.slice(0, 8) : "trace";
    [score.name, String(score.value), score.comment || "", on, score.source, V.fmtTime(score.created_time).slice(0, 19)].forEach(function (text, i) {
      tr.append(V.el("td", i === 1 || i === 3 ? "mono" : "", text));
    });
    return tr;
  }

  function showScore(score) {
    data.scores.unshift(score);
    var empty = document.getElementById("no-scores");
    if (empty) empty.remove();
    document.getElementById("score-list").prepend(scoreBadge(score));
    document.getElementById("score-details").hidden = false;
    var table = document.getElementById("score-table");
    table.tBodies[0].prepend(scoreRow(score));
  }

  function say(text, isError) {
    message.textContent = text;
    message.classList.toggle("error", !!isError);
  }

  toggleButton.addEventListener("click", function () {
    form.hidden = !form.hidden;
    toggleButton.setAttribute("aria-expanded", String(!form.hidden));
    if (!form.hidden) form.elements.name.focus();
  });

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    var name = form.elements.name.value.trim();
    var raw = form.elements.value.value;
    var comment = form.elements.comment.value.trim();
    if (!name && !raw.trim() && comment) { name = "comment"; raw = "true"; }
    if (!name || !raw.trim()) { say("Give a name and a value (or only a comment).", true); return; }
    var body = { trace_id: traceId, name: name, value: parseValue(raw), comment: comment || null, source: "human" };
    if (form.elements.target.value === "span" && selected > 0) body.span_id = rows[selected][C.id];
    var button = form.querySelector("button[type=submit]");
    button.disabled = true;
    say("Saving…");
    fetch("/api/scores", {
      method: "POST", credentials: "same-origin",
      headers: { "content-type": "application/json", accept: "application/json" },
      body: JSON.stringify(body),
    })
      .then(function (resp) {
        return resp.json().catch(function () { return {}; }).then(function (answer) {
          if (!resp.ok) throw new Error((answer.error && answer.error.message) || "HTTP " + resp.status);
          return answer;
        });
      })
      .then(function (score) {
        showScore(score);
        form.elements.value.value = "";
        form.elements.comment.value = "";
        say("Saved.");
      })
      .catch(function (err) { say("Not saved: " + err.message, true); })
      .finally(function () { button.disabled = false; });
  });

  // ---- start ----
  function initialSelection() {
    var match = /^#span=([0-9A-Za-z_-]+)$/.exec(location.hash);
    var i = match && byId.has(match[1]) ? byId.get(match[1]) : 0;
    select(i, { scroll: "centre" });
  }

  axis();
  computeVisible();
  initialSelection();
  document.getElementById("explorer").dataset.ready = "true";
})();
