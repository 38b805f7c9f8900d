// XinTu admin dashboard: plain JavaScript, hand-drawn SVG, no external resources.
// Everything shown comes from /api/v1/stats/* with the admin token kept in sessionStorage;
// the live panel reads the /stats/stream Server-Sent Events.
"use strict";

const API = "/api/v1";
const TOKEN_KEY = "xintu.admin.token";
const SVG_NS = "http://www.w3.org/2000/svg";

const $ = (id) => document.getElementById(id);

function el(tag, attrs = {}, children = []) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "text") node.textContent = value;
    else if (key === "class") node.className = value;
    else node.setAttribute(key, value);
  }
  for (const child of children) node.append(child);
  return node;
}

function svg(tag, attrs = {}, text) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, value);
  if (text !== undefined) node.textContent = text;
  return node;
}

const number = new Intl.NumberFormat("en-US");
const fmt = {
  int: (v) => number.format(v),
  pct: (v) => `${(v * 100).toFixed(1)}%`,
  ms: (v) => (v >= 1000 ? `${(v / 1000).toFixed(2)} s` : `${v.toFixed(v < 10 ? 1 : 0)} ms`),
  money: (v, currency = "CNY") => `${currency === "CNY" ? "¥" : ""}${v.toFixed(v < 1 ? 4 : 2)}`,
  bytes: (v) => {
    const units = ["B", "KB", "MB", "GB", "TB"];
    let i = 0;
    while (v >= 1024 && i < units.length - 1) { v /= 1024; i += 1; }
    return `${v.toFixed(i ? 1 : 0)} ${units[i]}`;
  },
  day: (iso) => iso.slice(5).replace("-", "/"),
  time: (iso) => (iso ? iso.replace("T", " ").slice(0, 16) : "—"),
};

// -- session --------------------------------------------------------------------------

const token = {
  get: () => sessionStorage.getItem(TOKEN_KEY),
  set: (value) => sessionStorage.setItem(TOKEN_KEY, value),
  clear: () => sessionStorage.removeItem(TOKEN_KEY),
};

class Unauthorized extends Error {}

async function api(path) {
  const response = await fetch(API + path, { headers: { Authorization: `Bearer ${token.get()}` } });
  if (response.status === 401 || response.status === 403) throw new Unauthorized();
  if (!response.ok) throw new Error(`${path}: HTTP ${response.status}`);
  return (await response.json()).data;
}

function showLogin(message) {
  $("dashboard").hidden = true;
  $("actions").hidden = true;
  $("login").hidden = false;
  const error = $("login-error");
  error.hidden = !message;
  error.textContent = message || "";
  $("username").focus();
}

async function login(event) {
  event.preventDefault();
  const button = $("login-submit");
  button.disabled = true;
  try {
    const response = await fetch(`${API}/admin/login`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ username: $("username").value, password: $("password").value }),
    });
    const body = await response.json();
    if (!response.ok) {
      showLogin(body.detail && typeof body.detail === "string" ? body.detail : "Sign-in failed");
      return;
    }
    token.set(body.access_token);
    $("password").value = "";
    await load();
  } catch (error) {
    showLogin(`Sign-in failed: ${error.message}`);
  } finally {
    button.disabled = false;
  }
}

// -- rendering ------------------------------------------------------------------------

function tile(key, label, value, { hint = "", tone = "" } = {}) {
  return el("div", { class: `tile ${tone}`, "data-tile": key }, [
    el("div", { class: "label", text: label }),
    el("div", { class: "value", id: `tile-${key}`, text: value }),
    el("div", { class: "hint", text: hint }),
  ]);
}

function renderTiles(today) {
  $("today-date").textContent = today.date;
  $("tiles").replaceChildren(
    tile("total_requests", "Requests", fmt.int(today.total_requests), { tone: "accent" }),
    tile("cache_hit_rate", "Cache hit rate", fmt.pct(today.cache_hit_rate), {
      tone: "good", hint: `${fmt.int(today.cache_hits)} hits`,
    }),
    tile("cache_hits", "Cache hits", fmt.int(today.cache_hits)),
    tile("remote_calls", "Remote calls", fmt.int(today.remote_calls)),
    tile("local_calls", "Local calls", fmt.int(today.local_calls)),
    tile("failed_requests", "Failed", fmt.int(today.failed_requests), {
      tone: today.failed_requests ? "bad" : "",
    }),
    tile("unique_users", "Users", fmt.int(today.unique_users)),
    tile("avg_processing_ms", "Avg latency", fmt.ms(today.avg_processing_ms)),
    tile("p95_processing_ms", "p95 latency", fmt.ms(today.p95_processing_ms)),
    tile("cost", "Cost", fmt.money(today.cost, today.currency), { hint: today.currency }),
    tile("cost_saved", "Saved by cache", fmt.money(today.cost_saved, today.currency), {
      tone: "good", hint: today.currency,
    }),
  );
}

// Vertical paired bars: one series drawn behind (e.g. total), one in front.
function barChart(container, points, { back, front, backClass, frontClass, label, max }) {
  // One SVG unit per CSS pixel, so that labels keep their size on any screen.
  const width = Math.max(280, Math.round(container.clientWidth || 640));
  const height = width < 480 ? 180 : 220, left = 46, bottom = 26, top = 20;
  const plotW = width - left - 6, plotH = height - top - bottom;
  const top_ = max ?? Math.max(1e-9, ...points.map((p) => Math.max(back(p), front(p))));
  const chart = svg("svg", { viewBox: `0 0 ${width} ${height}`, role: "img" });
  for (let i = 0; i <= 4; i += 1) {
    const y = top + plotH - (plotH * i) / 4;
    chart.append(svg("line", { x1: left, x2: width - 6, y1: y, y2: y, class: "grid-line" }));
    chart.append(svg("text", { x: left - 6, y: y + 4, "text-anchor": "end" }, label.axis((top_ * i) / 4)));
  }
  const step = plotW / Math.max(points.length, 1);
  const barW = Math.max(3, Math.min(38, step * 0.62));
  const labelEvery = Math.ceil(points.length / Math.max(2, Math.floor(plotW / 48)));
  points.forEach((point, i) => {
    const x = left + step * i + (step - barW) / 2;
    const scale = (v) => (plotH * v) / top_;
    const hb = scale(back(point)), hf = scale(front(point));
    chart.append(svg("rect", { x, y: top + plotH - hb, width: barW, height: hb, rx: 3, class: backClass }));
    const bar = svg("rect", { x: x + barW * 0.18, y: top + plotH - hf, width: barW * 0.64, height: hf, rx: 3, class: frontClass });
    bar.append(svg("title", {}, label.title(point)));
    chart.append(bar);
    if (i % labelEvery === 0) {
      chart.append(svg("text", { x: x + barW / 2, y: height - 8, "text-anchor": "middle" }, fmt.day(point.date)));
    }
    if (label.value && step >= 40) {
      chart.append(svg("text", {
        x: x + barW / 2, y: top + plotH - Math.max(hb, hf) - 5, "text-anchor": "middle", class: "value-label",
      }, label.value(point)));
    }
  });
  container.replaceChildren(chart);
}

function renderHitRate(efficiency) {
  $("hit-summary").textContent =
    `${fmt.pct(efficiency.hit_rate)} of ${fmt.int(efficiency.total_requests)} requests · ` +
    `${fmt.int(efficiency.uploads_avoided)} uploads avoided · ${fmt.bytes(efficiency.bandwidth_saved_bytes)} saved`;
  barChart($("chart-hit-rate"), efficiency.daily, {
    back: () => 1,
    front: (p) => p.hit_rate,
    backClass: "bar-total",
    frontClass: "bar-hit",
    max: 1,
    label: {
      axis: (v) => `${Math.round(v * 100)}%`,
      title: (p) => `${p.date}: ${fmt.pct(p.hit_rate)} (${p.cache_hits}/${p.total_requests})`,
      value: (p) => (p.total_requests ? fmt.pct(p.hit_rate) : ""),
    },
  });
}

function renderCategories(distribution) {
  $("category-total").textContent = `${fmt.int(distribution.total)} classifications · 30 days`;
  const max = Math.max(1, ...distribution.categories.map((c) => c.count));
  const rows = [...distribution.categories]
    .sort((a, b) => b.count - a.count)
    .map((c) => {
      const fill = el("div", { class: "fill" });
      fill.style.width = `${(100 * c.count) / max}%`;
      return el("div", { class: "hbar", "data-category": c.category }, [
        el("span", { class: "name", text: c.category_name, title: c.category }),
        el("div", { class: "track" }, [fill]),
        el("span", { class: "num", text: `${fmt.int(c.count)} · ${fmt.pct(c.ratio)}` }),
      ]);
    });
  $("chart-categories").replaceChildren(el("div", { class: "hbars" }, rows));
}

function table(target, headers, rows) {
  if (!rows.length) {
    target.replaceChildren(el("caption", { class: "empty", text: "No data yet" }));
    return;
  }
  target.replaceChildren(
    el("thead", {}, [el("tr", {}, headers.map((h) => el("th", { text: h })))]),
    el("tbody", {}, rows.map((cells) => el("tr", {}, cells.map((c) => (c instanceof Node ? c : el("td", { text: c })))))),
  );
}

function renderCosts(costs, days) {
  $("cost-summary").textContent =
    `${fmt.money(costs.total_cost, costs.currency)} spent · ${fmt.money(costs.cost_saved, costs.currency)} saved`;
  const daily = costs.daily.slice(-days);
  barChart($("chart-costs"), daily, {
    back: (p) => p.cost_saved,
    front: (p) => p.cost,
    backClass: "bar-saved",
    frontClass: "bar-cost",
    label: {
      axis: (v) => (v >= 1 ? v.toFixed(0) : v.toFixed(3)),
      title: (p) => `${p.date}: spent ${fmt.money(p.cost)}, saved ${fmt.money(p.cost_saved)} (${p.calls} calls)`,
    },
  });
  table($("table-costs"), ["Model", "Calls", "Tokens in/out", "Cost", "Saved"],
    costs.providers.map((p) => [
      el("td", { class: "id", text: `${p.model ?? "—"}${p.provider ? ` · ${p.provider}` : ""}` }),
      fmt.int(p.calls),
      `${fmt.int(p.input_tokens)} / ${fmt.int(p.output_tokens)}`,
      fmt.money(p.cost, costs.currency),
      fmt.money(p.cost_saved, costs.currency),
    ]));
}

function renderUsers(top) {
  table($("table-users"), ["User", "Requests", "Hits", "Remote", "Last active"],
    top.users.map((u) => [
      el("td", { class: "id", text: u.nickname ? `${u.nickname} (${u.user_id})` : (u.user_id ?? "anonymous"), title: u.user_id ?? "" }),
      fmt.int(u.requests),
      fmt.int(u.cache_hits),
      fmt.int(u.remote_calls),
      fmt.time(u.last_active),
    ]));
}

function renderLatency(performance) {
  const methods = performance.methods;
  const max = Math.max(1, ...methods.map((m) => m.p95_ms));
  $("chart-latency").replaceChildren(el("div", { class: "hbars" }, methods.map((m) => {
    const fill = el("div", { class: "fill" });
    fill.style.width = `${(100 * m.p95_ms) / max}%`;
    if (!m.count) fill.classList.add("zero");
    return el("div", { class: "hbar", "data-method": m.inference_method }, [
      el("span", { class: "name", text: m.inference_method }),
      el("div", { class: "track" }, [fill]),
      el("span", { class: "num", text: `p95 ${fmt.ms(m.p95_ms)}` }),
    ]);
  })));
  table($("table-latency"), ["Method", "Count", "Success", "p50", "p95", "p99"],
    methods.map((m) => [m.inference_method, fmt.int(m.count), fmt.pct(m.success_rate),
      fmt.ms(m.p50_ms), fmt.ms(m.p95_ms), fmt.ms(m.p99_ms)]));
}

// -- live panel: Server-Sent Events from /stats/stream ----------------------------------
// EventSource cannot send the Authorization header, so the stream is read with fetch and
// its events parsed here (the token stays out of URLs and logs).

let liveAbort = null;

function renderSpark(perSecond) {
  const width = Math.max(240, Math.round($("live-spark").clientWidth || 360));
  const height = 64;
  const max = Math.max(1, ...perSecond);
  const step = width / perSecond.length;
  const chart = svg("svg", { viewBox: `0 0 ${width} ${height}`, role: "img" });
  chart.append(svg("title", {}, "requests per second, last minute"));
  chart.append(svg("line", { x1: 0, x2: width, y1: height - 0.5, y2: height - 0.5, class: "spark-base" }));
  perSecond.forEach((count, i) => {
    const h = ((height - 4) * count) / max;
    if (count) chart.append(svg("rect", { x: i * step + 0.5, y: height - h, width: Math.max(1, step - 1), height: h, class: "spark-bar" }));
  });
  $("live-spark").replaceChildren(chart);
}

function renderLive(data) {
  $("live-rps").textContent = data.requests_per_s.toFixed(2);
  $("live-requests").textContent = fmt.int(data.requests);
  $("live-requests-hint").textContent = `${fmt.int(data.per_second[data.per_second.length - 1] ?? 0)} in the last second`;
  $("live-hit-rate").textContent = fmt.pct(data.hit_rate);
  $("live-hits-hint").textContent = `${fmt.int(data.cache_hits)} hits`;
  $("live-p95").textContent = data.requests ? fmt.ms(data.p95_ms) : "—";
  $("live-errors").textContent = fmt.int(data.errors);
  $("live-errors-tile").classList.toggle("bad", data.errors > 0);
  $("live-queue").textContent = data.edit_queue_depth === null ? "—" : fmt.int(data.edit_queue_depth);
  $("live-instances").textContent = data.degraded
    ? "this instance only (Redis down)"
    : `${data.instances} instance${data.instances === 1 ? "" : "s"}`;
  $("live-providers").replaceChildren(...(data.providers.length
    ? data.providers.map((p) => el("li", { "data-circuit": p.circuit, text: `${p.name}: ${p.circuit.replace("_", "-")}` }))
    : [el("li", { text: "no remote provider configured" })]));
  renderSpark(data.per_second);
  $("live-status").textContent = `updated ${new Date(data.at).toLocaleTimeString()}`;
  const panel = $("live");
  panel.dataset.events = String(Number(panel.dataset.events) + 1);
}

function stopLive() {
  if (liveAbort) liveAbort.abort();
  liveAbort = null;
  $("live").dataset.state = "closed";
}

async function startLive() {
  if (liveAbort || !token.get()) return;
  const controller = new AbortController();
  liveAbort = controller;
  try {
    const response = await fetch(`${API}/stats/stream`, {
      headers: { Authorization: `Bearer ${token.get()}`, Accept: "text/event-stream" },
      signal: controller.signal,
    });
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    $("live").dataset.state = "open";
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      // sse-starlette ends lines with CRLF; a CR at a chunk's end waits for its LF.
      buffer = (buffer + value).replace(/\r\n/g, "\n");
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        let event = "message";
        const data = [];
        for (const line of block.split("\n")) {
          if (line.startsWith("event:")) event = line.slice(6).trim();
          else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
        }
        if (event === "stats" && data.length) renderLive(JSON.parse(data.join("\n")));
      }
    }
  } catch (error) {
    if (controller.signal.aborted) return;
    $("live-status").textContent = `disconnected (${error.message}); retrying`;
  } finally {
    if (liveAbort === controller) liveAbort = null;
    $("live").dataset.state = "closed";
  }
  // The server went away or restarted: reconnect while the page is open and signed in.
  setTimeout(() => { if (token.get() && !document.hidden) startLive(); }, 2000);
}

// -- loading --------------------------------------------------------------------------

async function load() {
  if (!token.get()) { showLogin(); return; }
  const days = Number($("days").value);
  try {
    const [today, efficiency, categories, costs, users, performance] = await Promise.all([
      api("/stats/today"),
      api(`/stats/cache-efficiency?days=${days}`),
      api("/stats/category-distribution?days=30"),
      api(`/stats/costs?days=${days}`),
      api("/stats/users/top?limit=10&days=30"),
      api("/stats/performance?hours=24"),
    ]);
    $("login").hidden = true;
    $("dashboard").hidden = false;
    $("actions").hidden = false;
    renderTiles(today);
    renderHitRate(efficiency);
    renderCategories(categories);
    renderCosts(costs, days);
    renderUsers(users);
    renderLatency(performance);
    $("updated").textContent = `updated ${new Date().toLocaleTimeString()}`;
    document.body.dataset.loaded = "true";
    startLive();
  } catch (error) {
    if (error instanceof Unauthorized) {
      token.clear();
      showLogin("Your session has ended; please sign in again.");
    } else {
      $("updated").textContent = `Could not load: ${error.message}`;
    }
  }
}

document.addEventListener("DOMContentLoaded", () => {
  $("login-form").addEventListener("submit", login);
  $("refresh").addEventListener("click", load);
  $("days").addEventListener("change", load);
  $("logout").addEventListener("click", () => { stopLive(); token.clear(); showLogin(); });
  document.addEventListener("visibilitychange", () => { if (!document.hidden) startLive(); });
  load();
  // Keep the numbers fresh while the page is open and visible.
  setInterval(() => { if (!document.hidden && token.get()) load(); }, 60000);
});

// Charts are drawn at the container's pixel width: redraw after the layout changes.
let resizeTimer = 0;
window.addEventListener("resize", () => {
  clearTimeout(resizeTimer);
  resizeTimer = setTimeout(() => { if (document.body.dataset.loaded) load(); }, 250);
});
