// The live view: the MJPEG <img> streams by itself; this script follows /api/events (Server-Sent
// Events) and shows the latest result. Read-only: it never sends anything but GETs.
"use strict";

const token = new URLSearchParams(location.search).get("token");
const withToken = (path) => (token ? `${path}?token=${encodeURIComponent(token)}` : path);
const $ = (id) => document.getElementById(id);
let uptimeBase = null;   // [uptime_s from the server, local time it arrived]

function percent(score) {
  return `${Math.round(score * 100)}%`;
}

function showLabel(result) {
  const label = $("label");
  let text = result.label;
  let kind = "class";
  if (result.label === "unsure") {
    kind = "unsure";
    text = result.guess ? `unsure (${result.guess}?)` : "unsure";
  } else if (result.label === "nothing") {
    kind = "nothing";
  }
  label.textContent = text;
  label.className = `label ${kind}`;
  label.dataset.label = result.label;
  const score = kind === "nothing" ? "" : ` · ${percent(result.score)}`;
  $("reason").textContent = `${(result.reason || "").replace(/_/g, " ")}${score}`;
}

function showTop(top) {
  const list = $("top");
  list.replaceChildren(...(top || []).slice(0, 3).map((entry) => {
    const item = document.createElement("li");
    const name = document.createElement("span");
    name.className = "name";
    name.textContent = entry.label;
    const bar = document.createElement("span");
    bar.className = "bar";
    const fill = document.createElement("span");
    fill.style.width = percent(Math.max(0, Math.min(1, entry.score)));
    bar.append(fill);
    const pct = document.createElement("span");
    pct.className = "pct";
    pct.textContent = percent(entry.score);
    item.append(name, bar, pct);
    return item;
  }));
}

function formatUptime(seconds) {
  const s = Math.floor(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const pad = (n) => String(n).padStart(2, "0");
  return h ? `${h}:${pad(m)}:${pad(s % 60)}` : `${m}:${pad(s % 60)}`;
}

function show(result) {
  showLabel(result);
  showTop(result.top);
  const camera = result.camera_fps || result.fps;
  $("fps").textContent = camera ? `${camera.toFixed(1)} fps` : "–";
  $("rate").textContent = `${result.fps.toFixed(1)} fps`;
  const ms = (result.latency_ms || 0) + (result.preprocess_ms || 0);
  $("latency").textContent = `${ms.toFixed(1)} ms (model ${(result.latency_ms || 0).toFixed(1)})`;
  $("model").textContent = result.model || "–";
  $("bundle").textContent = result.task ? `${result.bundle} (${result.task})` : result.bundle;
  $("source").textContent = result.source || "–";
  $("frame").textContent = result.frame;
  uptimeBase = [result.uptime_s, performance.now()];
  document.body.dataset.frame = result.frame;
}

function tick() {
  if (uptimeBase) {
    const [base, at] = uptimeBase;
    $("uptime").textContent = formatUptime(base + (performance.now() - at) / 1000);
  }
}

function start() {
  $("view").src = withToken("stream.mjpg");
  const events = new EventSource(withToken("api/events"));
  events.onopen = () => { $("state").textContent = "live"; };
  events.onmessage = (message) => show(JSON.parse(message.data));
  events.addEventListener("end", () => {
    $("state").textContent = "the run has ended (the source finished)";
    events.close();
  });
  events.onerror = () => { $("state").textContent = "reconnecting…"; };
  setInterval(tick, 500);
}

start();
