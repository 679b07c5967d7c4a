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
      else if (name === "result") { out.textContent = data.value.text; warn(data.warnings); say(`${data.value.word_count} words · ${data.usage.requests} request(s) · ${data.model}`); }
      else if (name === "error") failure(422, data);
    }
  }
}

function escapeHtml(s) { return s.replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" }[c])); }
function highlight(source, quotes) {
  // Mark each evidence quote where it occurs in the source (whitespace- and case-insensitive).
  let spans = [];
  quotes.forEach(([quote, event]) => {
    const pattern = quote.trim().replace(/[.*+?^${}()|[\]\\]/g, "\\$&").replace(/\s+/g, "\\s+");
    const match = new RegExp(pattern, "i").exec(source);
    if (match) spans.push([match.index, match.index + match[0].length, event]);
  });
  spans.sort((a, b) => a[0] - b[0]);
  let out = "", at = 0;
  for (const [start, end, event] of spans) {
    if (start < at) continue;
    out += escapeHtml(source.slice(at, start)) + `<mark data-event="${event}">` + escapeHtml(source.slice(start, end)) + "</mark>";
    at = end;
  }
  return out + escapeHtml(source.slice(at));
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
    tr.addEventListener("mouseenter", () => document.querySelectorAll(`mark[data-event="${i}"]`).forEach((m) => m.classList.add("active")));
    tr.addEventListener("mouseleave", () => document.querySelectorAll("mark.active").forEach((m) => m.classList.remove("active")));
    rows.appendChild(tr);
    e.evidence.forEach((q) => quotes.push([q, i]));
  });
  const source = html ? new DOMParser().parseFromString($("text").value, "text/html").body.innerText : $("text").value;
  $("source").innerHTML = highlight(source, quotes);
  warn(data.warnings);
  say(`${report.events.length} event(s) · ${data.usage.requests} request(s) · ${data.model}`);
}

$("run").addEventListener("click", async () => {
  $("run").disabled = true; say("working…"); $("warnings").innerHTML = "";
  try { await ($("task-events").checked ? events() : brief()); }
  catch (err) { say(String(err), "error"); }
  finally { $("run").disabled = false; }
});
