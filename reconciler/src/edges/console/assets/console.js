// Berth console: the little JavaScript the pages need. Pages work without
// it (read-only); with it the workspace updates live, logs follow, and the
// terminal runs.
"use strict";

function csrf() {
  const m = document.querySelector('meta[name="csrf"]');
  return m ? m.content : "";
}

// The workspace: re-render its main part when the server says it changed.
function liveWorkspace() {
  const root = document.getElementById("workspace");
  if (!root || !window.EventSource) return;
  const events = new EventSource(root.dataset.events);
  events.addEventListener("changed", async () => {
    const resp = await fetch(root.dataset.fragment, { credentials: "same-origin" });
    if (resp.ok) root.innerHTML = await resp.text();
  });
}

// Logs: the last lines, then new ones as they come, until the page closes.
function liveLogs() {
  const out = document.getElementById("log");
  if (!out || !window.EventSource) return;
  const events = new EventSource(out.dataset.stream);
  events.onmessage = (e) => {
    const stick = out.scrollTop + out.clientHeight >= out.scrollHeight - 4;
    out.textContent += e.data + "\n";
    if (stick) out.scrollTop = out.scrollHeight;
  };
  events.addEventListener("end", () => events.close());
}

// Terminal: xterm.js over a WebSocket; text both ways, resizes as JSON.
function terminal() {
  const box = document.getElementById("terminal");
  if (!box || !window.Terminal) return;
  const term = new Terminal({ cursorBlink: true, convertEol: false });
  const fit = new FitAddon.FitAddon();
  term.loadAddon(fit);
  term.open(box);
  fit.fit();
  const url = new URL(box.dataset.ws, location.href);
  url.protocol = location.protocol === "https:" ? "wss:" : "ws:";
  const ws = new WebSocket(url);
  ws.binaryType = "arraybuffer";
  const status = document.getElementById("terminal-status");
  const resize = () => {
    fit.fit();
    if (ws.readyState === 1) ws.send(JSON.stringify({ resize: [term.cols, term.rows] }));
  };
  ws.onopen = () => { if (status) status.textContent = "connected"; resize(); term.focus(); };
  ws.onmessage = (e) => term.write(typeof e.data === "string" ? e.data : new Uint8Array(e.data));
  ws.onclose = () => { if (status) status.textContent = "disconnected"; };
  term.onData((d) => { if (ws.readyState === 1) ws.send(new TextEncoder().encode(d)); });
  window.addEventListener("resize", resize);
  window.berthTerminal = term;
}

document.addEventListener("DOMContentLoaded", () => {
  liveWorkspace();
  liveLogs();
  terminal();
});
