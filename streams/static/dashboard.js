/* Grid command-center dashboard. No dependencies, no network beyond this worker.
 * All text from reports is set with textContent (never innerHTML). */
"use strict";

const API = "/dashboard/api";
const STATE = {
  reported: "上报 Reported", triage: "待分拣 Triage", filed: "立案 Filed",
  rejected: "不予立案 Rejected", merged: "合并 Merged", dispatched: "已派遣 Dispatched",
  accepted: "已受理 Accepted", disposed: "已处置 Disposed", returned: "回退 Returned",
  rework: "返工 Rework", verified: "已核查 Verified", closed: "结案 Closed",
};
const EVENT = {
  reported: "上报 reported", triaged: "待分拣 triage", filed: "立案 filed",
  classified: "分拣立案 classified", dispatched: "派遣 dispatched", redispatched: "重新派遣 re-dispatched",
  accepted: "受理 accepted", disposed: "处置反馈 disposed", returned: "回退 returned",
  arbitration: "仲裁 arbitration", extension_requested: "申请延期 extension requested",
  extension_granted: "批准延期 extension granted", extension_denied: "驳回延期 extension denied",
  verified: "核查通过 verified", rework: "返工 rework", closed: "结案 closed",
  self_closed: "自行处置结案 self-closed", supervised: "督办 supervision order",
  warned: "预警 deadline warning", merged: "合并重复 duplicate merged", rejected: "不予立案 rejected",
  command_rejected: "指令被拒 command rejected",
};
const TIERS = [["self", "自循环", "self"], ["community", "微循环", "community"],
  ["street", "小循环", "street"], ["district", "大循环·区", "district"], ["city", "大循环·市", "city"]];
const STAGE = { file: "立案 file", dispatch: "派遣 dispatch", dispose: "处置 dispose", verify: "核查 verify" };
const PRIORITY = { urgent: "紧急 urgent", high: "高 high", normal: "一般 normal" };
const ALERT = { key_supervision: "重点监管 key supervision", warning: "预警 warning",
  supervision_order: "督办 supervision", arbitration: "仲裁 arbitration" };

/* ---------- small DOM helpers (text only) ---------- */
function el(tag, attrs, ...kids) {
  const n = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") n.className = v;
    else if (k === "data") for (const [dk, dv] of Object.entries(v)) n.dataset[dk] = dv;
    else if (k === "on") for (const [ev, fn] of Object.entries(v)) n.addEventListener(ev, fn);
    else if (k === "style") {  // through the CSSOM: the page's CSP forbids style attributes
      for (const decl of String(v).split(";")) {
        const i = decl.indexOf(":");
        if (i > 0) n.style.setProperty(decl.slice(0, i).trim(), decl.slice(i + 1).trim());
      }
    }
    else n.setAttribute(k, v);
  }
  for (const kid of kids.flat()) {
    if (kid === null || kid === undefined || kid === false) continue;
    n.appendChild(kid instanceof Node ? kid : document.createTextNode(String(kid)));
  }
  return n;
}
const $ = (id) => document.getElementById(id);
function setText(id, v) { const n = $(id); if (n && n.textContent !== String(v)) n.textContent = v; }
function clear(n) { while (n.firstChild) n.removeChild(n.firstChild); }
function pct(v) { return v === null || v === undefined ? "—" : (v * 100).toFixed(1) + "%"; }
function fmtTime(iso) {
  if (!iso) return "—";
  const d = new Date(iso);
  return d.toLocaleString("zh-CN", { timeZone: "Asia/Shanghai", hour12: false,
    month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", second: "2-digit" });
}
function fmtClock(iso) {
  return new Date(iso).toLocaleString("zh-CN", { timeZone: "Asia/Shanghai", hour12: false });
}
function fmtLate(s) {
  if (!s) return "";
  const d = Math.floor(s / 86400), h = Math.floor((s % 86400) / 3600), m = Math.floor((s % 3600) / 60);
  return d ? `${d}d ${h}h` : h ? `${h}h ${m}m` : `${m}m`;
}
function typeLabel(r) { return r.type_zh ? `${r.type_zh}` : (r.type_code || "未分类 unclassified"); }

async function getJSON(url) {
  const r = await fetch(url, { cache: "no-store" });
  if (!r.ok) throw new Error(`${url}: HTTP ${r.status}`);
  return r.json();
}

/* ---------- map (canvas, equirectangular with cos(lat) scaling) ---------- */
const map = {
  canvas: null, ctx: null, cells: [], streets: [], bbox: null, counts: {}, markers: [],
  dpr: 1, view: null, base: null,
  async load() {
    this.canvas = $("map");
    this.ctx = this.canvas.getContext("2d");
    const [cells, streets] = await Promise.all([
      getJSON(`${API}/cells.geojson`), getJSON(`${API}/streets.geojson`).catch(() => null)]);
    this.cells = cells.features.map((f) => ({ code: f.properties.code, rings: rings(f.geometry) }));
    this.streets = streets ? streets.features.map((f) => ({
      code: f.properties.code, name: f.properties.name, rings: rings(f.geometry) })) : [];
    const all = (this.streets.length ? this.streets : this.cells).flatMap((c) => c.rings);
    let x0 = Infinity, y0 = Infinity, x1 = -Infinity, y1 = -Infinity;
    for (const r of all) for (const [x, y] of r) {
      if (x < x0) x0 = x; if (x > x1) x1 = x; if (y < y0) y0 = y; if (y > y1) y1 = y;
    }
    this.bbox = [x0, y0, x1, y1];
    $("map-msg").hidden = true;
    new ResizeObserver(() => this.resize()).observe($("map-wrap"));
    this.canvas.addEventListener("click", (e) => this.click(e));
    this.canvas.addEventListener("mousemove", (e) => this.hover(e));
    this.canvas.addEventListener("mouseleave", () => { $("map-tip").hidden = true; });
    this.resize();
  },
  resize() {
    const w = this.canvas.clientWidth, h = this.canvas.clientHeight;
    if (!w || !h || !this.bbox) return;
    this.dpr = window.devicePixelRatio || 1;
    this.canvas.width = Math.round(w * this.dpr);
    this.canvas.height = Math.round(h * this.dpr);
    const [x0, y0, x1, y1] = this.bbox;
    const k = Math.cos(((y0 + y1) / 2) * Math.PI / 180);
    const pad = 18;
    const s = Math.min((w - 2 * pad) / ((x1 - x0) * k), (h - 2 * pad) / (y1 - y0));
    const ox = (w - (x1 - x0) * k * s) / 2, oy = (h - (y1 - y0) * s) / 2;
    this.view = { k, s, ox, oy, x0, y1 };
    for (const c of this.cells) c.path = this.path(c.rings);
    for (const st of this.streets) {
      st.path = this.path(st.rings);
      const r = st.rings[0];
      let cx = 0, cy = 0;
      for (const [x, y] of r) { cx += x; cy += y; }
      st.label = this.px(cx / r.length, cy / r.length);
    }
    this.base = null;
    this.draw();
  },
  px(lon, lat) {
    const v = this.view;
    return [v.ox + (lon - v.x0) * v.k * v.s, v.oy + (v.y1 - lat) * v.s];
  },
  path(rs) {
    const p = new Path2D();
    for (const r of rs) {
      r.forEach(([x, y], i) => { const [a, b] = this.px(x, y); i ? p.lineTo(a, b) : p.moveTo(a, b); });
      p.closePath();
    }
    return p;
  },
  color(n) {
    if (!n) return "#16233d";
    if (n === 1) return "#1f5a8a";
    if (n === 2) return "#2a8fc4";
    if (n <= 4) return "#f0a431";
    return "#ff5a4e";
  },
  draw() {
    if (!this.view) return;
    const ctx = this.ctx;
    ctx.setTransform(this.dpr, 0, 0, this.dpr, 0, 0);
    ctx.clearRect(0, 0, this.canvas.width, this.canvas.height);
    ctx.lineWidth = 0.4;
    ctx.strokeStyle = "#0b1220";
    const byColor = new Map();
    for (const c of this.cells) {
      const col = this.color(this.counts[c.code] || 0);
      if (!byColor.has(col)) byColor.set(col, []);
      byColor.get(col).push(c);
    }
    for (const [col, list] of byColor) {
      ctx.fillStyle = col;
      for (const c of list) { ctx.fill(c.path); }
    }
    if (this.cells.length < 20000) for (const c of this.cells) ctx.stroke(c.path);
    ctx.lineWidth = 1.4;
    ctx.strokeStyle = "#5b7bb0";
    for (const st of this.streets) ctx.stroke(st.path);
    ctx.font = "11px " + getComputedStyle(document.body).fontFamily;
    ctx.textAlign = "center";
    for (const st of this.streets) {
      if (!st.label || !st.name) continue;
      ctx.fillStyle = "#0b1220cc";
      const w = ctx.measureText(st.name).width + 8;
      ctx.fillRect(st.label[0] - w / 2, st.label[1] - 8, w, 15);
      ctx.fillStyle = "#9fb4d8";
      ctx.fillText(st.name, st.label[0], st.label[1] + 3);
    }
    for (const m of this.markers) {
      const [x, y] = this.px(m.lon, m.lat);
      m.sx = x; m.sy = y;
      if (m.overdue) {
        ctx.beginPath(); ctx.arc(x, y, 7, 0, 2 * Math.PI);
        ctx.strokeStyle = "#ffb020"; ctx.lineWidth = 2; ctx.stroke();
      }
      if (m.priority === "urgent") {
        ctx.beginPath(); ctx.arc(x, y, 4.5, 0, 2 * Math.PI);
        ctx.fillStyle = "#ff3b4f"; ctx.shadowColor = "#ff3b4f"; ctx.shadowBlur = 8;
        ctx.fill(); ctx.shadowBlur = 0;
      } else {
        ctx.beginPath(); ctx.arc(x, y, 2.5, 0, 2 * Math.PI);
        ctx.fillStyle = "#ffb020"; ctx.fill();
      }
    }
  },
  nearest(e) {
    const r = this.canvas.getBoundingClientRect();
    const x = e.clientX - r.left, y = e.clientY - r.top;
    let best = null, bd = 100;
    for (const m of this.markers) {
      const d = (m.sx - x) ** 2 + (m.sy - y) ** 2;
      if (d < bd) { bd = d; best = m; }
    }
    return [best, x, y];
  },
  click(e) { const [m] = this.nearest(e); if (m) openCase(m.case_id); },
  hover(e) {
    const [m, x, y] = this.nearest(e);
    const tip = $("map-tip");
    if (!m) { tip.hidden = true; this.canvas.style.cursor = "crosshair"; return; }
    this.canvas.style.cursor = "pointer";
    clear(tip);
    tip.append(el("div", { class: "mono" }, m.case_id),
      el("div", {}, PRIORITY[m.priority] || m.priority, " · ", STATE[m.state] || m.state,
        m.overdue ? " · 超期 overdue" : ""));
    tip.style.left = `${x + 12}px`; tip.style.top = `${y + 12}px`; tip.hidden = false;
  },
  update(counts, markers) { this.counts = counts; this.markers = markers; this.draw(); },
};

function rings(g) {
  if (!g) return [];
  if (g.type === "Polygon") return g.coordinates;
  if (g.type === "MultiPolygon") return g.coordinates.flat();
  return [];
}

/* ---------- panels ---------- */
let lastCounters = {};
function renderCounters(c) {
  for (const [k, v] of Object.entries(c)) {
    const n = $(`k-${k}`);
    if (!n) continue;
    if (lastCounters[k] !== undefined && lastCounters[k] !== v) {
      const card = n.parentElement;
      card.classList.remove("bump"); void card.offsetWidth; card.classList.add("bump");
    }
    setText(`k-${k}`, v);
  }
  lastCounters = c;
}

function renderTiers(flow) {
  const box = $("tiers");
  clear(box);
  const max = Math.max(1, ...TIERS.map(([t]) => (flow[t] || {}).total || 0));
  for (const [t, zh, en] of TIERS) {
    const f = flow[t] || { total: 0, open: 0, closed: 0 };
    box.append(el("div", { class: "tier", title: `${en}: ${f.closed} closed, ${f.open} open` },
      el("div", { class: "name" }, zh, el("small", {}, en)),
      el("div", { class: "bar" },
        el("span", { class: "closed", style: `width:${(f.closed / max) * 100}%` }),
        el("span", { class: "open", style: `width:${(f.open / max) * 100}%` })),
      el("div", { class: "n" }, f.total)));
  }
}

function alertItem(a, fresh) {
  return el("li", { class: fresh ? "new" : "", data: { caseId: a.case_id }, on: { click: () => openCase(a.case_id) } },
    el("div", { class: "row" },
      el("span", {}, el("span", { class: `tag ${a.kind}` }, ALERT[a.kind] || a.kind),
        el("span", { class: `tag ${a.priority}` }, PRIORITY[a.priority] || a.priority)),
      el("span", { class: "t" }, fmtTime(a.at))),
    el("div", { class: "desc" }, a.message || ""),
    el("div", { class: "t mono" }, a.case_id));
}

const seenAlerts = new Set();
function renderAlerts(list) {
  const box = $("alerts");
  clear(box);
  seenAlerts.clear();
  for (const a of list) { seenAlerts.add(a.alert_id); box.append(alertItem(a, false)); }
  if (!list.length) box.append(el("li", { class: "empty" }, "暂无告警 No alerts"));
  setText("alert-count", list.length);
}
function pushAlert(a) {
  if (seenAlerts.has(a.alert_id)) return;
  seenAlerts.add(a.alert_id);
  const box = $("alerts");
  const empty = box.querySelector(".empty"); if (empty) empty.remove();
  box.prepend(alertItem(a, true));
  while (box.children.length > 50) box.lastChild.remove();
  setText("alert-count", box.children.length);
}

function renderOverdue(rows, total) {
  const box = $("overdue");
  clear(box);
  for (const r of rows) {
    box.append(el("li", { data: { caseId: r.case_id }, on: { click: () => openCase(r.case_id) } },
      el("div", { class: "row" },
        el("span", {}, el("span", { class: `tag ${r.priority}` }, PRIORITY[r.priority] || r.priority), typeLabel(r)),
        el("span", { class: "late" }, "+" + fmtLate(r.late_seconds))),
      el("div", { class: "row" },
        el("span", { class: "t" }, STAGE[r.stage] || r.stage || "", " · ", r.department || "—", " · 督办级别 ", r.level),
        el("span", { class: "t mono" }, r.case_id))));
  }
  if (!rows.length) box.append(el("li", { class: "empty" }, "无超期案件 Nothing overdue"));
  setText("overdue-count", total);
}

let figMode = "dept", lastSummary = null;
function meter(v, bad) {
  if (v === null || v === undefined) return el("span", { class: "pct" }, "—");
  return el("span", {}, el("span", { class: "pct" }, pct(v)),
    el("span", { class: "meter" + (bad ? " bad" : "") }, el("i", { style: `width:${Math.min(100, v * 100)}%` })));
}
function renderFigures(s) {
  const body = $("figures-body");
  clear(body);
  const rows = figMode === "dept" ? s.departments : s.streets;
  setText("fig-name-h", figMode === "dept" ? "部门 Department" : "街镇 Street");
  for (const f of rows) {
    const name = figMode === "dept"
      ? el("td", { class: "name" }, f.name_zh, el("small", {}, f.name_en))
      : el("td", { class: "name" }, f.name, el("small", { class: "mono" }, f.key));
    body.append(el("tr", {}, name,
      el("td", {}, f.dispatched),
      el("td", {}, meter(f.closure_rate)),
      el("td", {}, meter(f.on_time_rate)),
      el("td", {}, meter(f.rework_rate, true)),
      el("td", {}, meter(f.extension_rate, true)),
      el("td", { class: f.open ? "" : "zero" }, f.open),
      el("td", { class: f.overdue ? "hot" : "zero" }, f.overdue)));
  }
  if (!rows.length) body.append(el("tr", {}, el("td", { class: "name zero", colspan: "8" }, "暂无派遣案件 No dispatched cases yet")));
}

function renderStreetRank(streets) {
  const box = $("street-rank");
  clear(box);
  const rows = streets.filter((r) => r.open > 0).sort((a, b) => b.open - a.open).slice(0, 8);
  const max = Math.max(1, ...rows.map((r) => r.open));
  for (const r of rows) {
    box.append(el("li", { title: `${r.key}: ${r.open} open, ${r.overdue} overdue` },
      el("span", { class: "nm" }, r.name || r.key),
      el("span", { class: "bar" }, el("span", { class: "open", style: `width:${(r.open / max) * 100}%` })),
      el("span", { class: "n" + (r.overdue ? " late-n" : "") }, r.open)));
  }
  if (!rows.length) box.append(el("li", { class: "empty" }, "暂无 None"));
}

/* ---------- live feed ---------- */
let feedCount = 0;
function pushEvent(ev, c, fresh) {
  const box = $("feed");
  const empty = box.querySelector(".empty"); if (empty) empty.remove();
  const row = c || {};
  const li = el("li", { class: fresh ? "new" : "", data: { caseId: ev.case_id, type: ev.type },
    on: { click: () => openCase(ev.case_id) } },
    el("div", { class: "row" },
      el("span", {}, el("span", { class: `tag ${ev.type} ${row.priority === "urgent" ? "urgent" : ""}` }, EVENT[ev.type] || ev.type),
        typeLabel(row)),
      el("span", { class: "t" }, fmtTime(ev.at))),
    row.description ? el("div", { class: "desc" }, row.description) : null,
    el("div", { class: "t mono" }, ev.case_id, row.street ? ` · ${row.street}` : ""));
  box.prepend(li);
  while (box.children.length > 120) box.lastChild.remove();
  feedCount += 1;
  setText("feed-count", feedCount);
}

/* ---------- case drawer ---------- */
function kv(pairs) {
  const dl = el("dl", { class: "kv" });
  for (const [k, v] of pairs) dl.append(el("dt", {}, k), el("dd", {}, v === null || v === undefined || v === "" ? "—" : v));
  return dl;
}
async function openCase(id) {
  const drawer = $("drawer"), body = $("d-body");
  setText("d-id", id);
  clear(body);
  body.append(el("div", { class: "empty" }, "加载中 Loading…"));
  drawer.hidden = false;
  let d;
  try { d = await getJSON(`${API}/cases/${encodeURIComponent(id)}`); } catch (e) {
    clear(body); body.append(el("div", { class: "empty" }, "未找到 Not found")); return;
  }
  clear(body);
  body.append(
    kv([["状态 State", STATE[d.state] || d.state],
      ["类型 Type", `${d.type_code || "—"} ${d.type_zh || ""} ${d.type_en ? "· " + d.type_en : ""}`],
      ["优先级 Priority", PRIORITY[d.priority] || d.priority],
      ["循环 Tier / 级别 Level", `${d.tier} / ${d.level}`],
      ["部门 Department", d.department ? `${d.department_zh || d.department} (${d.department})` : "—"],
      ["位置 Where", [d.street, d.community, d.cell].filter(Boolean).join(" › ")],
      ["来源 Source", d.source],
      ["上报 Reported", fmtTime(d.created_at)],
      ["超期 Overdue", d.overdue ? `+${fmtLate(d.late_seconds)} (${STAGE[d.stage] || d.stage})` : "否 no"],
      ["返工/延期/回退", `${d.reworks} / ${d.extensions} / ${d.returns}`],
      ["重复上报 Reports", d.report_count]]),
    el("h4", {}, "描述 Description"),
    el("div", { class: "desc-box", id: "d-desc" }, d.description || "—"));
  if (d.address) body.append(kv([["地址 Address", d.address]]));
  const dec = d.decision;
  body.append(el("h4", {}, "派遣决定 Decision"));
  if (dec) {
    body.append(kv([["规则 Rule", dec.winner], ["处置方式 Handling", dec.handling],
      ["日历 Calendar", dec.calendar], ["结案标准 Standard", dec.closing_standard],
      ["规则集 Ruleset", dec.ruleset_version]]));
    if (dec.explanation && dec.explanation.length)
      body.append(el("ol", { class: "explain" }, dec.explanation.map((l) => el("li", {}, l))));
  } else body.append(el("div", { class: "empty" }, "—"));
  body.append(el("h4", {}, "时限 Deadlines"));
  body.append(kv(Object.entries(d.deadlines || {}).map(([k, v]) => [STAGE[k] || k, fmtTime(v)])));
  body.append(el("h4", {}, "处置过程 History"));
  if (!d.history_kept) body.append(el("div", { class: "empty" },
    "仅保留最近案件的过程 History is kept for recent cases only: see /api/v1/cases/" + d.case_id));
  body.append(el("ol", { class: "timeline" }, (d.history || []).map((h) =>
    el("li", {}, el("div", {}, el("b", {}, EVENT[h.type] || h.type), " → ", STATE[h.state_to] || h.state_to),
      el("div", { class: "when" }, fmtTime(h.at), " · ", h.actor, " (", h.role, ")"),
      h.reason ? el("div", {}, h.reason) : null))));
}

/* ---------- refresh loop ---------- */
async function refresh() {
  const s = await getJSON(`${API}/summary.json`);
  lastSummary = s;
  setText("district-name", s.district_name || s.district || "");
  setText("district-code", s.district || "");
  setText("clock", fmtClock(s.now));
  setText("case-total", s.cases);
  renderCounters(s.counters);
  renderTiers(s.tier_flow);
  renderAlerts(s.alerts);
  renderOverdue(s.overdue, s.overdue_total);
  renderFigures(s);
  renderStreetRank(s.streets);
  map.update(s.cells, s.markers);
}
let pending = null;
function scheduleRefresh(ms) {
  if (pending) return;
  pending = setTimeout(() => { pending = null; refresh().catch(showError); }, ms);
}
function showError(e) { console.warn("dashboard refresh failed:", e && e.message); }

function connect() {
  const es = new EventSource("/dashboard/events");
  const live = $("live");
  es.onopen = () => { live.classList.remove("off"); setText("live-text", "实时 Live"); };
  es.onerror = () => { live.classList.add("off"); setText("live-text", "重连中 Reconnecting"); };
  es.addEventListener("event", (m) => {
    const d = JSON.parse(m.data);
    pushEvent(d.event, d.case, true);
    scheduleRefresh(700);
  });
  es.addEventListener("alert", (m) => { pushAlert(JSON.parse(m.data)); scheduleRefresh(700); });
}

function init() {
  $("d-close").addEventListener("click", () => { $("drawer").hidden = true; });
  document.addEventListener("keydown", (e) => { if (e.key === "Escape") $("drawer").hidden = true; });
  $("tab-dept").addEventListener("click", () => { figMode = "dept"; $("tab-dept").classList.add("on"); $("tab-street").classList.remove("on"); if (lastSummary) renderFigures(lastSummary); });
  $("tab-street").addEventListener("click", () => { figMode = "street"; $("tab-street").classList.add("on"); $("tab-dept").classList.remove("on"); if (lastSummary) renderFigures(lastSummary); });
  $("feed").append(el("li", { class: "empty" }, "等待新事件 Waiting for events…"));
  map.load().then(() => refresh()).catch((e) => { setText("map-msg", "地图不可用 Map unavailable"); showError(e); });
  refresh().catch(showError);
  connect();
  setInterval(() => scheduleRefresh(0), 5000);
}
document.addEventListener("DOMContentLoaded", init);
