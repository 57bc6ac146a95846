// Renders one trace or span in the detail pane: chat messages, text and JSON, cut when huge.
// Everything is built with DOM nodes and textContent: stored data is never parsed as HTML.
(function () {
  "use strict";

  var TEXT_LIMIT = 5000;        // characters of a text shown before "Show all"
  var JSON_LIMIT = 20000;       // characters of pretty JSON shown before "Show all"
  var HIGHLIGHT_LIMIT = 300000; // past this, JSON is shown without colours (cheaper)
  var TOKEN = /("(?:[^"\\\n]|\\.)*")(\s*:)?|\b(true|false)\b|\bnull\b|-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?/g;

  function el(tag, cls, text) {
    var node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined && text !== null) node.textContent = text;
    return node;
  }

  function fmtMs(ms) {
    if (ms === null || ms === undefined) return "—";
    if (ms === 0) return "0";
    if (ms < 1) return ms.toFixed(2) + " ms";
    if (ms < 1000) return Math.round(ms) + " ms";
    if (ms < 60000) return (ms / 1000).toFixed(2) + " s";
    var s = Math.round(ms / 1000);
    return Math.floor(s / 60) + "m " + String(s % 60).padStart(2, "0") + "s";
  }

  function fmtCost(v) {
    if (v === null || v === undefined) return "—";
    if (v === 0) return "$0";
    if (v >= 1) return "$" + v.toFixed(2);
    if (v >= 0.01) return "$" + v.toFixed(4);
    return "$" + v.toFixed(6);
  }

  function fmtNum(v) {
    return v === null || v === undefined ? "—" : Number(v).toLocaleString("en-US");
  }

  function fmtTime(iso) {
    if (!iso) return "—";
    var d = new Date(iso);
    if (isNaN(d.getTime())) return iso;
    var p = function (n, w) { return String(n).padStart(w || 2, "0"); };
    return d.getFullYear() + "-" + p(d.getMonth() + 1) + "-" + p(d.getDate()) + " " + p(d.getHours()) +
      ":" + p(d.getMinutes()) + ":" + p(d.getSeconds()) + "." + p(d.getMilliseconds(), 3);
  }

  function highlight(pre, text) {
    var frag = document.createDocumentFragment();
    var last = 0, m;
    TOKEN.lastIndex = 0;
    while ((m = TOKEN.exec(text))) {
      if (m.index > last) frag.appendChild(document.createTextNode(text.slice(last, m.index)));
      var cls = m[1] ? (m[2] ? "j-key" : "j-str") : m[3] ? "j-bool" : m[0] === "null" ? "j-null" : "j-num";
      frag.appendChild(el("span", cls, m[1] || m[0]));
      if (m[1] && m[2]) frag.appendChild(document.createTextNode(m[2]));
      last = TOKEN.lastIndex;
    }
    frag.appendChild(document.createTextNode(text.slice(last)));
    pre.replaceChildren(frag);
  }

  function moreButton(total, onClick) {
    var btn = el("button", "btn btn-xs more", "Show all (" + fmtNum(total) + " characters)");
    btn.type = "button";
    btn.addEventListener("click", function () { btn.remove(); onClick(); });
    return btn;
  }

  // A long text, cut at TEXT_LIMIT characters with a button that shows the rest.
  function textBlock(text, cls) {
    var wrap = el("div");
    var pre = el(cls === "msg-body" ? "div" : "pre", cls || "text");
    if (text.length > TEXT_LIMIT) {
      pre.textContent = text.slice(0, TEXT_LIMIT) + " …";
      wrap.append(pre, moreButton(text.length, function () { pre.textContent = text; }));
    } else {
      pre.textContent = text === "" ? "(empty string)" : text;
      wrap.append(pre);
    }
    return wrap;
  }

  function jsonText(value) {
    try {
      var text = JSON.stringify(value, null, 2);
      return text === undefined ? String(value) : text;
    } catch (e) {
      return String(value);
    }
  }

  function jsonBlock(value) {
    var text = typeof value === "string" ? value : jsonText(value);
    var wrap = el("div");
    var pre = el("pre", "json");
    if (text.length > JSON_LIMIT) {
      highlight(pre, text.slice(0, JSON_LIMIT) + "\n…");
      wrap.append(pre, moreButton(text.length, function () {
        if (text.length > HIGHLIGHT_LIMIT) pre.textContent = text;
        else highlight(pre, text);
      }));
    } else {
      highlight(pre, text);
      wrap.append(pre);
    }
    return wrap;
  }

  // Any value: text as text, everything else as JSON.
  function valueBlock(value) {
    return typeof value === "string" ? textBlock(value) : jsonBlock(value);
  }

  function isMessage(m) {
    return m !== null && typeof m === "object" && !Array.isArray(m) && typeof m.role === "string";
  }

  // The chat messages a value holds (OpenAI or Anthropic style), or null when it holds none.
  function toChat(value) {
    if (Array.isArray(value) && value.length && value.every(isMessage)) return { messages: value, rest: null };
    if (value === null || typeof value !== "object" || Array.isArray(value)) return null;
    if (Array.isArray(value.messages) && value.messages.length && value.messages.every(isMessage)) {
      var rest = Object.assign({}, value);
      delete rest.messages;
      if (typeof rest.system === "string") {
        var system = rest.system;
        delete rest.system;
        return { messages: [{ role: "system", content: system }].concat(value.messages), rest: rest };
      }
      return { messages: value.messages, rest: rest };
    }
    if (isMessage(value)) return { messages: [value], rest: null };
    if (Array.isArray(value.choices) && value.choices.length && value.choices.every(function (c) { return c && isMessage(c.message); })) {
      return { messages: value.choices.map(function (c) { return c.message; }), rest: null };
    }
    return null;
  }

  function parseArgs(args) {
    if (typeof args !== "string") return args;
    try { return JSON.parse(args); } catch (e) { return args; }
  }

  function toolCall(name, id, args) {
    var box = el("div", "toolcall");
    var head = el("div", "toolcall-head", "→ " + (name || "tool"));
    if (id) head.append(el("span", "dim", "  " + id));
    box.append(head);
    if (args !== undefined && args !== null && args !== "") box.append(jsonBlock(parseArgs(args)));
    return box;
  }

  function partNode(part) {
    if (typeof part === "string") return textBlock(part, "msg-body");
    if (!part || typeof part !== "object") return jsonBlock(part);
    if (typeof part.text === "string") return textBlock(part.text, "msg-body");
    if (part.type === "image_url" || part.type === "image" || part.type === "input_image") {
      var url = part.image_url && (part.image_url.url || part.image_url);
      var note = typeof url === "string" ? url.slice(0, 80) + (url.length > 80 ? "…" : "") : "";
      return el("div", "msg-body part-note", "[image] " + note);
    }
    if (part.type === "tool_use") return toolCall(part.name, part.id, part.input);
    if (part.type === "tool_result") {
      var box = el("div", "msg-body");
      box.append(el("div", "dim", "result of " + (part.tool_use_id || "tool call")));
      box.append(contentNode(part.content));
      return box;
    }
    var wrap = el("div", "msg-body");
    wrap.append(jsonBlock(part));
    return wrap;
  }

  function contentNode(content) {
    if (content === null || content === undefined) return el("div", "msg-body part-note", "(no content)");
    if (typeof content === "string") return textBlock(content, "msg-body");
    if (Array.isArray(content)) {
      var frag = document.createDocumentFragment();
      content.forEach(function (part) { frag.append(partNode(part)); });
      return frag;
    }
    var wrap = el("div", "msg-body");
    wrap.append(jsonBlock(content));
    return wrap;
  }

  // A tool's answer is often JSON text: show it as JSON when it parses.
  function toolResult(text) {
    var wrap = el("div", "msg-body");
    try {
      wrap.append(jsonBlock(JSON.parse(text)));
    } catch (e) {
      return textBlock(text, "msg-body");
    }
    return wrap;
  }

  var ROLE_CLASS = { system: "system", developer: "system", user: "user", human: "user", assistant: "assistant", ai: "assistant", model: "assistant", tool: "tool", "function": "tool" };

  function messageNode(m) {
    var box = el("div", "msg msg-" + (ROLE_CLASS[m.role] || "other"));
    var head = el("div", "msg-role", m.role);
    var extra = [m.name, m.tool_call_id].filter(Boolean).join(" · ");
    if (extra) head.append(el("span", "msg-extra", extra));
    box.append(head);
    var calls = Array.isArray(m.tool_calls) ? m.tool_calls : [];
    if (ROLE_CLASS[m.role] === "tool" && typeof m.content === "string" && /^\s*[[{]/.test(m.content)) {
      box.append(toolResult(m.content));
    } else if (!(calls.length && (m.content === null || m.content === undefined || m.content === ""))) {
      box.append(contentNode(m.content));
    }
    calls.forEach(function (call) {
      var fn = (call && call["function"]) || {};
      box.append(toolCall(fn.name || call.name, call.id, fn.arguments !== undefined ? fn.arguments : call.arguments));
    });
    if (m.function_call) box.append(toolCall(m.function_call.name, null, m.function_call.arguments));
    return box;
  }

  function chatBlock(chat) {
    var wrap = el("div", "chat");
    chat.messages.forEach(function (m) { wrap.append(messageNode(m)); });
    if (chat.rest && Object.keys(chat.rest).length) wrap.append(jsonBlock(chat.rest));
    return wrap;
  }

  // A titled section for an input or output: chat view when it holds messages, with a JSON switch.
  function ioSection(title, value) {
    var section = el("section", "d-section");
    var head = el("div", "d-section-head");
    head.append(el("h3", null, title));
    section.append(head);
    if (value === null || value === undefined) {
      section.append(el("div", "dim", "Not recorded."));
      return section;
    }
    var chat = toChat(value);
    var body = el("div");
    if (chat) {
      var seg = el("div", "seg");
      var views = { Chat: function () { return chatBlock(chat); }, JSON: function () { return jsonBlock(value); } };
      Object.keys(views).forEach(function (name, i) {
        var b = el("button", i === 0 ? "on" : "", name);
        b.type = "button";
        b.addEventListener("click", function () {
          seg.querySelectorAll("button").forEach(function (x) { x.classList.toggle("on", x === b); });
          body.replaceChildren(views[name]());
        });
        seg.append(b);
      });
      head.append(seg);
      body.append(chatBlock(chat));
    } else {
      body.append(valueBlock(value));
    }
    section.append(body);
    return section;
  }

  function kvSection(title, obj, open) {
    if (!obj || typeof obj !== "object" || !Object.keys(obj).length) return null;
    var details = el("details", "d-section");
    details.open = !!open;
    var summary = el("summary", "d-section-head");
    summary.append(el("h3", null, title), el("span", "count", String(Object.keys(obj).length)));
    details.append(summary, jsonBlock(obj));
    return details;
  }

  function metaGrid(items) {
    var dl = el("dl", "d-meta");
    items.forEach(function (item) {
      if (item[1] === null || item[1] === undefined || item[1] === "" || item[1] === "—") return;
      var cell = el("div");
      var dd = el("dd", item[2] || null, String(item[1]));
      dd.title = String(item[1]);
      cell.append(el("dt", null, item[0]), dd);
      dl.append(cell);
    });
    return dl;
  }

  var KIND_LABEL = { generation: "gen", span: "span", tool: "tool", retrieval: "retr", embedding: "emb", guardrail: "guard", event: "event", trace: "trace" };

  function kindBadge(kind) {
    var b = el("span", "kind kind-" + kind, KIND_LABEL[kind] || kind);
    b.title = kind;
    return b;
  }

  function statusBadge(status) {
    return el("span", "status status-" + status, status);
  }

  function tokensText(usage) {
    if (!usage || (usage.input_tokens == null && usage.output_tokens == null)) return null;
    return fmtNum((usage.input_tokens || 0) + (usage.output_tokens || 0)) + " (" +
      fmtNum(usage.input_tokens) + " in · " + fmtNum(usage.output_tokens) + " out)";
  }

  function spanMeta(span) {
    var usage = span.usage || {};
    var prompt = span.prompt_name ? span.prompt_name + (span.prompt_version != null ? " v" + span.prompt_version : "") : null;
    return [
      ["Start", fmtTime(span.start_time)], ["Latency", span.end_time ? fmtMs(span.latency_ms) : "running"],
      ["First token", span.ttft_ms != null ? fmtMs(span.ttft_ms) : null],
      ["Model", span.model], ["Provider", span.provider], ["Deployment", span.deployment],
      ["Tokens", tokensText(usage)], ["Cached tokens", usage.cached_tokens != null ? fmtNum(usage.cached_tokens) : null],
      ["Reasoning tokens", usage.reasoning_tokens != null ? fmtNum(usage.reasoning_tokens) : null],
      ["Cost", span.cost != null ? fmtCost(span.cost) : null], ["Prompt", prompt], ["Span id", span.id, "mono"],
    ];
  }

  function traceMeta(trace) {
    return [
      ["Start", fmtTime(trace.start_time)], ["Latency", fmtMs(trace.latency_ms)], ["Tokens", tokensText(trace.usage)],
      ["Cost", trace.cost != null ? fmtCost(trace.cost) : null], ["User", trace.user_id], ["Session", trace.session_id],
      ["Environment", trace.environment], ["Release", trace.release], ["Trace id", trace.id, "mono"],
    ];
  }

  // The whole detail pane of a trace (isTrace) or of one span.
  function observation(obj, isTrace) {
    var frag = document.createDocumentFragment();
    var head = el("div", "d-head");
    head.append(kindBadge(isTrace ? "trace" : obj.kind), el("h2", null, obj.name || (isTrace ? "(unnamed trace)" : obj.kind)), statusBadge(obj.status));
    frag.append(head, metaGrid(isTrace ? traceMeta(obj) : spanMeta(obj)));
    if (obj.error) frag.append(el("div", "d-error", obj.error));
    frag.append(ioSection("Input", obj.input), ioSection("Output", obj.output));
    [kvSection("Parameters", obj.parameters, true), kvSection(isTrace ? "Metadata" : "Attributes", isTrace ? obj.metadata : obj.attributes, false)]
      .forEach(function (node) { if (node) frag.append(node); });
    return frag;
  }

  window.CTView = {
    el: el, fmtMs: fmtMs, fmtCost: fmtCost, fmtNum: fmtNum, fmtTime: fmtTime,
    kindLabel: KIND_LABEL, observation: observation,
    toChat: toChat, chatBlock: chatBlock, textBlock: textBlock, jsonBlock: jsonBlock,
  };
})();
