const $ = (id) => document.getElementById(id);
let html = false;
$("token").value = sessionStorage.getItem("summarizer-token") || "";
$("file").addEventListener("change", async (e) => {
  const file = e.target.files[0];
  if (!file) return;
  $("text").value = await file.text();
  html = /\.html?$/i.test(file.name);
});
$("text").addEventListener("input", () => { html = /^\s*</.test($("text").value); });
for (const id of ["task-brief", "task-events"]) $(id).addEventListener("change", () => {
  const events = $("task-events").checked;
  $("events-panel").classList.toggle("hidden", !events);
  $("brief-panel").classList.toggle("hidden", events);
});

function headers() {
  const token = $("token").value.trim();
  sessionStorage.setItem("summarizer-token", token);
  const h = { "Content-Type": "application/json" };
  if (token) h["Authorization"] = "Bearer " + token;
  return h;
}
function body(extra) {
  const text = $("text").value;
  return JSON.stringify(Object.assign(html ? { html: text } : { text: text }, extra));
}
function say(message, kind) { $("status").textContent = message; $("status").className = kind || ""; }
function warn(list) {
  $("warnings").innerHTML = "";
  for (const w of list || []) { const p = document.createElement("div"); p.className = "warning"; p.textContent = "warning: " + w; $("warnings").appendChild(p); }
}
function failure(status, data) {
  const e = data && data.error ? data.error : {};
  say(`${status} ${e.code || ""}: ${e.message || "request failed"}`, "error");
}

async function brief() {
  const out = $("brief-output");
  out.textContent = "";
  const response = await fetch("/v1/brief", { method: "POST", headers: headers(), body: body({ stream: true }) });
  if (!response.ok) { failure(response.status, await response.json().catch(() => null)); return; }
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, cut); buffer = buffer.slice(cut + 2);
      const name = (block.match(/^event: (.*)$/m) || [])[1];
      const data = JSON.parse((block.match(/^data: (.*)$/m) || [])[1] || "null");
      if (name === "delta") out.textContent += data.text;
      else if (name === "retry") { out.textContent = ""; say("asking again: " + data.errors.join("; ")); }
      else if (name === "result") { cite(data); warn(data.warnings); say(`${data.value.word_count} words · ${data.usage.requests} request(s) · ${data.model}`); }
      else if (name === "error") failure(422, data);
    }
  }
}

function escapeHtml(s) { return s.replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" }[c])); }

// The source the model saw (the result's source.text), with marks at the given offsets: [start, end, owners].
// Marks of the same span share one element; a span overlapping an earlier one is left out. Offsets count
// code points (Python's indices), not UTF-16 units like a JavaScript string: the source is sliced as code points.
function showSource(result, spans, attr) {
  const points = Array.from(result.source ? result.source.text : "");
  const source = { length: points.length, slice: (a, b) => points.slice(a, b).join("") };
  const merged = new Map();
  for (const [start, end, owner] of spans) {
    const key = start + ":" + end;
    if (!merged.has(key)) merged.set(key, [start, end, []]);
    merged.get(key)[2].push(owner);
  }
  const marks = [...merged.values()].sort((a, b) => a[0] - b[0]);
  let out = "", at = 0;
  for (const [start, end, owners] of marks) {
    if (start < at || end > source.length) continue;
    out += escapeHtml(source.slice(at, start)) + `<mark data-${attr}="${owners.join(" ")}">` + escapeHtml(source.slice(start, end)) + "</mark>";
    at = end;
  }
  $("source").innerHTML = out + escapeHtml(source.slice(at));
  const dropped = (result.warnings || []).find((w) => w.startsWith("dropped "));
  $("source-note").textContent = dropped ? "(" + dropped.replace(" from the input", "") + ")" : "";
  $("source-panel").classList.remove("hidden");
}
function light(attr, id, on) {
  document.querySelectorAll(`mark[data-${attr}]`).forEach((m) => {
    if (m.dataset[attr].split(" ").includes(String(id))) m.classList.toggle("active", on);
  });
}

// A brief as its sentences: each one lights up the source sentences it cites; unsupported ones are marked.
function cite(result) {
  const out = $("brief-output");
  const sentences = result.value.sentences || [];
  if (!sentences.length) { out.textContent = result.value.text; return; }
  out.innerHTML = "";
  const spans = [];
  sentences.forEach((s, i) => {
    const span = document.createElement("span");
    span.className = "sentence " + s.support + (s.judged === "unsupported" ? " unsupported" : "");
    span.dataset.sentence = i;
    span.textContent = s.text;
    const problems = s.issues.map((x) => `${x.kind} “${x.text}”: ${x.detail}`);
    if (s.judge_reason && s.judged === "unsupported") problems.push("judge: " + s.judge_reason);
    span.title = (s.citations.length ? "" : "no source sentence backs it\n") + problems.join("\n");
    span.addEventListener("mouseenter", () => light("sentence", i, true));
    span.addEventListener("mouseleave", () => { if (!span.classList.contains("active")) light("sentence", i, false); });
    span.addEventListener("click", () => {
      const on = !span.classList.contains("active");
      document.querySelectorAll(".sentence.active").forEach((o) => { o.classList.remove("active"); light("sentence", o.dataset.sentence, false); });
      span.classList.toggle("active", on);
      light("sentence", i, on);
      const first = document.querySelector("mark.active");
      if (first) first.scrollIntoView({ block: "nearest" });
    });
    out.appendChild(span);
    out.appendChild(document.createTextNode(" "));
    s.citations.forEach((c) => spans.push([c.start, c.end, i]));
  });
  showSource(result, spans, "sentence");
}

async function events() {
  const response = await fetch("/v1/events", { method: "POST", headers: headers(), body: body({}) });
  const data = await response.json().catch(() => null);
  if (!response.ok) { failure(response.status, data); return; }
  const report = data.value;
  $("headline").textContent = "— " + report.headline;
  const rows = $("events-table").querySelector("tbody");
  rows.innerHTML = "";
  const quotes = [];
  report.events.forEach((e, i) => {
    const tr = document.createElement("tr");
    tr.dataset.event = i;
    const who = e.participants.map((p) => `${p.name} (${p.role})`).join(", ");
    const when = e.when ? e.when.text + (e.when.date ? ` → ${e.when.date}` : "") : "";
    for (const cell of [e.type, e.summary, who, e.where ? e.where.name : "", when, e.status]) {
      const td = document.createElement("td"); td.textContent = cell; tr.appendChild(td);
    }
    tr.addEventListener("mouseenter", () => light("event", i, true));
    tr.addEventListener("mouseleave", () => light("event", i, false));
    rows.appendChild(tr);
    e.evidence.forEach((q) => quotes.push([q.start, q.end, i]));
  });
  showSource(data, quotes, "event");
  warn(data.warnings);
  say(`${report.events.length} event(s) · ${data.usage.requests} request(s) · ${data.model}`);
}

$("run").addEventListener("click", async () => {
  $("run").disabled = true; say("working…"); $("warnings").innerHTML = "";
  $("source-panel").classList.add("hidden");
  try { await ($("task-events").checked ? events() : brief()); }
  catch (err) { say(String(err), "error"); }
  finally { $("run").disabled = false; }
});
