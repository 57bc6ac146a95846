// A prompt's page: the playground (a form from the variable schema; render; run through the
// gateway) and the per-version metrics table, shown only when the server has that route.
// Everything is built with DOM nodes and textContent: stored data is never parsed as HTML.
(function () {
  "use strict";

  var V = window.CTView;
  var el = V.el;
  var data = JSON.parse(document.getElementById("prompt-data").textContent);
  var name = data.name;
  var apiBase = "/api/prompts/" + name.split("/").map(encodeURIComponent).join("/");
  var byVersion = {};
  data.versions.forEach(function (v) { byVersion[v.version] = v; });
  var byLabel = {};
  data.labels.forEach(function (l) { byLabel[l.label] = l; });

  var form = document.getElementById("pg-form");
  var target = document.getElementById("pg-target");
  var varsBox = document.getElementById("pg-vars");
  var modelInput = document.getElementById("pg-model");
  var msg = document.getElementById("pg-msg");
  var renderedBox = document.getElementById("pg-rendered");
  var answerBox = document.getElementById("pg-answer");

  function say(text, isError) {
    msg.textContent = text;
    msg.classList.toggle("error", !!isError);
  }

  // The version a choice of the select stands for (a label shows the version it points at).
  function chosen() {
    var value = target.value;
    if (value.charAt(0) === "@") {
      var label = byLabel[value.slice(1)];
      return { label: value.slice(1), version: byVersion[label.version] };
    }
    return { label: null, version: byVersion[Number(value.slice(1))] };
  }

  // ---- the variables form, one field per variable of the chosen version ----
  function field(spec) {
    var label = el("label", "pg-var");
    var title = el("span", null, spec.name + (spec.required ? " *" : ""));
    var hint = spec.type + (spec.description ? " — " + spec.description : "");
    title.append(el("em", "pg-type", hint));
    var input;
    if (spec.enum) {
      input = el("select");
      if (!spec.required) input.append(new Option("(unset)", ""));
      spec.enum.forEach(function (v) { input.append(new Option(String(v), JSON.stringify(v))); });
      if (spec.default !== undefined) input.value = JSON.stringify(spec.default);
    } else if (spec.type === "boolean") {
      input = el("select");
      [["", "(unset)"], ["true", "true"], ["false", "false"]].forEach(function (o) { input.append(new Option(o[1], o[0])); });
      if (spec.default !== undefined) input.value = String(spec.default);
    } else if (spec.type === "array" || spec.type === "object") {
      input = el("textarea");
      input.rows = 3;
      input.placeholder = spec.type === "array" ? '["a", "b"]' : '{"key": "value"}';
      if (spec.default !== undefined) input.value = JSON.stringify(spec.default);
    } else {
      input = el(spec.type === "string" ? "textarea" : "input");
      if (spec.type === "string") input.rows = 2;
      else input.inputMode = "decimal";
      if (spec.default !== undefined) input.placeholder = "default: " + spec.default;
    }
    input.name = spec.name;
    input.dataset.type = spec.type;
    input.dataset.kind = spec.enum ? "enum" : "";
    label.append(title, input);
    return label;
  }

  function buildForm() {
    var version = chosen().version;
    varsBox.textContent = "";
    if (!version.variables.length) varsBox.append(el("p", "dim", "This version takes no variables."));
    version.variables.forEach(function (spec) { varsBox.append(field(spec)); });
    modelInput.placeholder = version.model || "a model alias of the gateway";
  }

  // The variables as JSON values; an empty field is left out (defaults then apply).
  function readVariables() {
    var out = {};
    varsBox.querySelectorAll("[name]").forEach(function (input) {
      var raw = input.value;
      if (raw === "") return;
      var type = input.dataset.type;
      if (input.dataset.kind === "enum" || type === "boolean" || type === "array" || type === "object") {
        try { out[input.name] = JSON.parse(raw); }
        catch (e) { throw new Error("`" + input.name + "` is not valid JSON"); }
      } else if (type === "number" || type === "integer") {
        var n = Number(raw);
        out[input.name] = raw.trim() === "" || isNaN(n) ? raw : n;
      } else {
        out[input.name] = raw;
      }
    });
    return out;
  }

  // ---- calls ----
  function call(url, body, headers) {
    return fetch(url, {
      method: "POST", credentials: "same-origin",
      headers: Object.assign({ "content-type": "application/json", accept: "application/json" }, headers || {}),
      body: JSON.stringify(body),
    }).then(function (resp) {
      return resp.json().catch(function () { return {}; }).then(function (answer) {
        return { ok: resp.ok, status: resp.status, answer: answer, headers: resp.headers };
      });
    });
  }

  function failure(result) {
    var error = result.answer && result.answer.error;
    var err = new Error((error && error.message) || "HTTP " + result.status);
    err.param = error && error.param;
    return err;
  }

  function render() {
    var pick = chosen();
    var body = { variables: readVariables() };
    if (pick.label) body.label = pick.label; else body.version = pick.version.version;
    return call(apiBase + "/render", body).then(function (result) {
      if (!result.ok) throw failure(result);
      showRendered(result.answer);
      return result.answer;
    });
  }

  function showRendered(rendered) {
    renderedBox.textContent = "";
    var head = el("div", "pg-out-head");
    head.append(el("h3", null, "Rendered #" + rendered.version), el("span", "dim mono", rendered.model || ""));
    renderedBox.append(head);
    if (rendered.messages) renderedBox.append(V.chatBlock({ messages: rendered.messages, rest: null }));
    else renderedBox.append(V.textBlock(rendered.text));
    if (rendered.params && Object.keys(rendered.params).length) renderedBox.append(V.jsonBlock(rendered.params));
  }

  // Through the gateway by reference first; a gateway without prompt references (it names
  // `model` or `messages` in its error) gets the rendered messages and the version's model.
  function run(rendered) {
    var pick = chosen();
    var ref = "prompt:" + name + (pick.label ? "@" + pick.label : "#" + rendered.version);
    var headers = { "x-controltower-tags": "playground" };
    var byRef = { model: ref, variables: readVariables() };
    return call("/v1/chat/completions", byRef, headers).then(function (result) {
      if (result.ok) return { result: result, how: "by reference " + ref };
      var err = failure(result);
      if (err.param !== "model" && err.param !== "messages") throw err;
      return runInline(rendered, headers);
    }).then(function (done) {
      if (!done.result.ok) throw failure(done.result);
      showAnswer(done.result, done.how);
    });
  }

  function runInline(rendered, headers) {
    var model = modelInput.value.trim() || rendered.model;
    if (!model) throw new Error("This version has no model: enter one");
    var messages = rendered.messages || [{ role: "user", content: rendered.text }];
    var body = Object.assign({}, rendered.params, { model: model, messages: messages });
    var meta = { prompt_name: name, prompt_version: rendered.version, source: "playground" };
    var all = Object.assign({ "x-controltower-metadata": JSON.stringify(meta) }, headers);
    return call("/v1/chat/completions", body, all).then(function (result) {
      return { result: result, how: "inline, as model " + model };
    });
  }

  function showAnswer(result, how) {
    var traceId = result.headers.get("x-controltower-trace-id");
    answerBox.textContent = "";
    var head = el("div", "pg-out-head");
    head.append(el("h3", null, "Answer"), el("span", "dim", how));
    if (traceId) {
      var link = el("a", "pg-trace", "Open the trace »");
      link.href = "/traces/" + encodeURIComponent(traceId);
      head.append(link);
    }
    answerBox.append(head);
    var chat = V.toChat(result.answer);
    answerBox.append(chat ? V.chatBlock(chat) : V.jsonBlock(result.answer));
    var usage = result.answer.usage;
    if (usage) answerBox.append(el("p", "dim", V.fmtNum(usage.prompt_tokens) + " in · " + V.fmtNum(usage.completion_tokens) + " out"));
    answerBox.hidden = false;
  }

  function busy(on) {
    form.querySelectorAll("button").forEach(function (b) { b.disabled = on; });
  }

  document.getElementById("pg-render").addEventListener("click", function () {
    busy(true);
    say("Rendering…");
    Promise.resolve().then(render)
      .then(function () { say("Rendered."); })
      .catch(function (err) { say("Not rendered: " + err.message, true); })
      .finally(function () { busy(false); });
  });

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    busy(true);
    say("Running…");
    answerBox.hidden = true;
    Promise.resolve().then(render).then(run)
      .then(function () { say("Done."); })
      .catch(function (err) { say("Not run: " + err.message, true); })
      .finally(function () { busy(false); });
  });

  target.addEventListener("change", buildForm);
  buildForm();

  // ---- per-version metrics (the table stays hidden when the route is absent) ----
  function pct(v) { return v === null || v === undefined ? "—" : (v * 100).toFixed(1) + "%"; }

  function scoresText(scores) {
    var names = Object.keys(scores || {});
    if (!names.length) return "—";
    return names.map(function (n) {
      var s = scores[n];
      return n + " " + (Math.round(s.mean * 1000) / 1000) + " (" + V.fmtNum(s.count) + ")";
    }).join(", ");
  }

  var COLUMNS = [
    ["Version", "", function (r) { return "#" + r.version; }],
    ["Labels", "", function (r) { return (r.labels || []).join(", ") || "—"; }],
    ["Requests", "num", function (r) { return V.fmtNum(r.requests); }],
    ["Error rate", "num", function (r) { return pct(r.error_rate); }],
    ["Latency p50", "num", function (r) { return V.fmtMs(r.latency_p50_ms); }],
    ["Latency p95", "num", function (r) { return V.fmtMs(r.latency_p95_ms); }],
    ["Tokens in", "num", function (r) { return V.fmtNum(r.input_tokens); }],
    ["Tokens out", "num", function (r) { return V.fmtNum(r.output_tokens); }],
    ["Cost", "num", function (r) { return V.fmtCost(r.cost); }],
    ["User scores (mean, n)", "", function (r) { return scoresText(r.user_scores); }],
  ];

  function metricsTable(rows) {
    var table = document.getElementById("metrics-table");
    var head = el("tr");
    COLUMNS.forEach(function (c) { head.append(el("th", c[1], c[0])); });
    var thead = el("thead");
    thead.append(head);
    var tbody = el("tbody");
    rows.forEach(function (row) {
      var tr = el("tr", row.requests ? "" : "dim");
      tr.dataset.version = row.version;
      COLUMNS.forEach(function (c) { tr.append(el("td", c[1], c[2](row))); });
      tbody.append(tr);
    });
    table.append(thead, tbody);
    document.getElementById("metrics").hidden = false;
  }

  fetch(apiBase + "/metrics", { credentials: "same-origin", headers: { accept: "application/json" } })
    .then(function (resp) { return resp.ok ? resp.json() : null; })
    .then(function (answer) {
      var rows = answer && answer.data;
      if (Array.isArray(rows) && rows.length) metricsTable(rows);
    })
    .catch(function () {})
    .finally(function () { document.getElementById("playground").dataset.ready = "true"; });
})();
