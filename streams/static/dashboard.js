/* Grid command-center dashboard. No dependencies, no network beyond this worker.
 * All text from reports is set with textContent (never innerHTML). */
"use strict";

const API = "/dashboard/api";
const STATE = {
  reported: "上报 Reported", triage: "待分拣 Triage", filed: "立案 Filed",
  rejected: "不予立案 Rejected", merged: "合并 Merged", dispatched: "已派遣 Dispatched",
  accepted: "已受理 Accepted", disposed: "已处置 Disposed", returned: "回退 Returned",
  rework: "返工 Rework", verified: "已核查 Verified", closed: "结案 Closed",
  transferred: "已移交应急 Transferred (110/119/120)",
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
  transferred: "移交应急联动 transferred to 110/119/120", follow_up_opened: "善后跟进 follow-up opened",
  legal_stage_closed: "执法阶段办结 legal stage closed", lead_disposed: "主办处置 lead disposed",
};
const TIERS = [["self", "自循环", "self"], ["community", "微循环", "community"],
  ["street", "小循环", "street"], ["district", "大循环·区", "district"], ["city", "大循环·市", "city"]];
const STAGE = { file: "立案 file", dispatch: "派遣 dispatch", dispose: "处置 dispose", verify: "核查 verify",
  investigation: "立案调查 investigation", notice: "告知 notice", decision: "决定 decision",
  execution: "执行 execution", court: "移送法院 transfer to court" };
const LEVEL = { street: "街镇 street", district: "区 district", city: "市 city",
  community: "社区 community", self: "自 self" };
const TIER_NAME = { self: "自循环 self", community: "微循环 community", street: "小循环 street",
  district: "大循环·区 district", city: "大循环·市 city" };
const SOURCE = { supervisor: "网格监督员 supervisor", hotline_12345: "12345 热线 hotline",
  hotline_12319: "12319 热线 hotline", video: "视频 video", sensor: "传感器 sensor", citizen: "市民 citizen" };
const ROLE = { supervisor: "监督员 supervisor", department: "部门 department", command_center: "指挥中心 command center",
  system: "系统 system", citizen: "市民 citizen", integration: "接口 integration" };
const HANDLING = { key_supervision: "重点监管 key supervision", dispatch: "派遣 dispatch",
  legal_process: "依法查处 legal process", emergency: "应急移交 emergency", triage: "人工分拣 triage",
  self_disposal: "自行处置 self-disposal", self_dispose: "自行处置 self-disposal" };
const PRIORITY = { urgent: "紧急 urgent", high: "高 high", normal: "一般 normal" };
const ALERT = { key_supervision: "重点监管 key supervision", warning: "预警 warning",
  supervision_order: "督办 supervision", arbitration: "仲裁 arbitration",
  emergency_transfer: "紧急移交 emergency transfer" };

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
function streetLabel(r) { return r.street_name || r.street || ""; }
function deptLabel(r) { return r.department ? (r.department_zh || r.department) : "—"; }
function named(name, code) { return name ? `${name} (${code})` : (code || "—"); }

async function getJSON(url) {
  const r = await fetch(url, { cache: "no-store" });
  if (!r.ok) throw new Error(`${url}: HTTP ${r.status}`);
  return r.json();
}

/* ---------- scope: the city, one district or one street (?district=, ?street=) ---------- */
const PAGE = new URLSearchParams(location.search);
const SCOPE = {};
for (const k of ["district", "street"]) if (PAGE.get(k)) SCOPE[k] = PAGE.get(k);
function scopeQS(extra) {
  const u = new URLSearchParams({ ...SCOPE, ...(extra || {}) });
  return u.toString();
}
function withScope(url, extra) {
  const qs = scopeQS(extra);
  return qs ? `${url}${url.includes("?") ? "&" : "?"}${qs}` : url;
}
/* go to another scope: the page reloads with it (a case link in the hash stays) */
function goScope(s) {
  const u = new URLSearchParams();
  if (s.district) u.set("district", s.district);
  if (s.street) u.set("street", s.street);
  const q = new URLSearchParams(location.hash.slice(1));
  const hash = q.get("case") ? `#case=${encodeURIComponent(q.get("case"))}` : "";
  location.assign(`${location.pathname}${u.toString() ? "?" + u : ""}${hash}`);
}
const LEVEL_WORDS = {
  city: { area: ["区", "districts"], en: "City Grid Management Command Center" },
  district: { area: ["街镇", "streets"], en: "District Grid Management Command Center" },
  street: { area: ["社区", "communities"], en: "Street Grid Management Command Center" },
};

/* ---------- map (canvas, equirectangular with cos(lat) scaling) ----------
 * One level at a time: the city's districts, a district's streets (its cells only while
 * it is small), a street's communities and cells. `streets` holds the shaded areas of the
 * level (districts, streets or communities). */
const map = {
  canvas: null, ctx: null, cells: [], streets: [], bbox: null, counts: {}, markers: [],
  streetOpen: {}, mode: "open", dpr: 1, view: null, base: null, level: null, scope: null,
  loaded: new Set(), cellsState: "none",
  /* zoom (wheel) and pan (drag): z × the fitted scale, shifted by pan (screen px) */
  z: 1, panX: 0, panY: 0, drag: null, moved: false, streetCells: {}, pending: false,
  async load(s) {
    this.canvas = $("map");
    this.ctx = this.canvas.getContext("2d");
    this.level = s.scope.level;
    this.scope = s.scope;
    this.loaded = new Set(s.loaded || []);
    const lv = LEVEL_WORDS[this.level];
    setText("view-streets", `${lv.area[0]}在办 Open`);
    setText("view-overdue", `${lv.area[0]}超期 Overdue`);
    $("view-cells").hidden = this.level === "city";
    let areas;
    if (this.level === "city") {
      areas = await getJSON(`${API}/map/districts.geojson`);
    } else if (this.level === "district") {
      areas = await getJSON(`${API}/map/streets.geojson?district=${s.scope.district}`);
    } else {
      const [comms, cells] = await Promise.all([
        getJSON(`${API}/map/communities.geojson?street=${s.scope.street}`).catch(() => null),
        getJSON(`${API}/map/cells.geojson?street=${s.scope.street}`)]);
      areas = comms;
      this.setCells(cells);
    }
    this.streets = areas ? areas.features.map((f) => ({
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
    this.canvas.addEventListener("dblclick", (e) => this.dblclick(e));
    this.canvas.addEventListener("mousemove", (e) => this.hover(e));
    this.canvas.addEventListener("mouseleave", () => { $("map-tip").hidden = true; this.drag = null; });
    this.canvas.addEventListener("wheel", (e) => this.wheel(e), { passive: false });
    this.canvas.addEventListener("mousedown", (e) => { this.drag = [e.clientX, e.clientY, this.panX, this.panY]; this.moved = false; });
    window.addEventListener("mouseup", () => { this.drag = null; });
    $("map-reset").addEventListener("click", () => this.zoomTo(1, 0, 0));
    this.setMode(this.level === "street" ? "cells" : "open");
    this.resize();
    window.gridMapDrawn = performance.now();  // first paint of the map (grid bench paint)
  },
  setCells(fc) {
    this.cells = fc ? fc.features.map((f) => ({ code: f.properties.code, rings: rings(f.geometry) })) : [];
    this.cellsState = "ready";
    if (this.view) for (const c of this.cells) c.path = this.path(c.rings);
  },
  /* a district's cells: loaded on first use, and only while the district is small */
  async loadCells() {
    if (this.cellsState !== "none") return;
    this.cellsState = "loading";
    const r = await fetch(`${API}/cells.geojson?district=${this.scope.district}`);
    if (!r.ok) {
      this.cellsState = "refused";
      const msg = (await r.json().catch(() => ({}))).error || `HTTP ${r.status}`;
      note(`网格太多：请选择街镇查看网格 Too many cells for one map: choose a street to see its cells (${msg})`);
      $("view-cells").disabled = true;
      this.setMode("open");
      return;
    }
    this.setCells(await r.json());
    this.draw();
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
      const r = st.rings.reduce((a, b) => (b.length > a.length ? b : a), st.rings[0]);
      let cx = 0, cy = 0;
      for (const [x, y] of r) { cx += x; cy += y; }
      st.anchor = this.px(cx / r.length, cy / r.length);
      let bx0 = Infinity, by0 = Infinity, bx1 = -Infinity, by1 = -Infinity;
      for (const ring of st.rings) for (const [x, y] of ring) {
        const [a, b] = this.px(x, y);
        if (a < bx0) bx0 = a; if (a > bx1) bx1 = a; if (b < by0) by0 = b; if (b > by1) by1 = b;
      }
      st.box = [bx0, by0, bx1, by1];  // fitted screen px
    }
    for (const list of Object.values(this.streetCells))
      if (Array.isArray(list)) for (const c of list) c.path = this.path(c.rings);
    this.base = null;
    this.draw();
  },
  px(lon, lat) {
    const v = this.view;
    return [v.ox + (lon - v.x0) * v.k * v.s, v.oy + (v.y1 - lat) * v.s];
  },
  /* fitted screen position → zoomed screen position */
  tx(p) { return [p[0] * this.z + this.panX, p[1] * this.z + this.panY]; },
  zoomT() { const d = this.dpr; this.ctx.setTransform(d * this.z, 0, 0, d * this.z, d * this.panX, d * this.panY); },
  inPath(path, x, y) {
    this.zoomT();
    const hit = this.ctx.isPointInPath(path, x * this.dpr, y * this.dpr);
    this.ctx.setTransform(this.dpr, 0, 0, this.dpr, 0, 0);
    return hit;
  },
  /* how many screen px a 100 m cell spans now */
  cellPx() { return this.view ? this.z * this.view.s * (100 / 111320) : 0; },
  zoomTo(z, panX, panY) {
    this.z = z; this.panX = panX; this.panY = panY;
    $("map-reset").hidden = z <= 1.001;
    this.redraw();
    if (this.level === "district") this.loadVisibleCells();
  },
  wheel(e) {
    e.preventDefault();
    const r = this.canvas.getBoundingClientRect();
    const mx = e.clientX - r.left, my = e.clientY - r.top;
    const z = Math.min(400, Math.max(1, this.z * Math.exp(-e.deltaY * 0.0015)));
    const k = z / this.z;
    if (z === 1) this.zoomTo(1, 0, 0);
    else this.zoomTo(z, mx - (mx - this.panX) * k, my - (my - this.panY) * k);
  },
  redraw() {
    if (this.pending) return;
    this.pending = true;
    requestAnimationFrame(() => { this.pending = false; this.draw(); });
  },
  /* district level zoomed in far enough (a cell ≥ 3 px): the cells of the streets in view */
  async loadVisibleCells() {
    if (this.cellPx() < 3) return;
    const w = this.canvas.clientWidth, h = this.canvas.clientHeight;
    const want = this.streets.filter((st) => {
      if (this.streetCells[st.code] || !st.box) return false;
      const [a, b] = this.tx([st.box[0], st.box[1]]), [c, d] = this.tx([st.box[2], st.box[3]]);
      return c >= 0 && a <= w && d >= 0 && b <= h;
    });
    for (const st of want) {
      this.streetCells[st.code] = "loading";
      getJSON(`${API}/map/cells.geojson?street=${st.code}`).then((fc) => {
        this.streetCells[st.code] = fc.features.map((f) => {
          const c = { code: f.properties.code, rings: rings(f.geometry) };
          c.path = this.path(c.rings);
          return c;
        });
        this.redraw();
      }).catch(() => { this.streetCells[st.code] = []; });
    }
  },
  zoomedCells() {
    if (this.level !== "district" || this.mode === "cells" || this.cellPx() < 3) return [];
    return Object.values(this.streetCells).filter(Array.isArray).flat();
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
  /* area view: 0, then four classes at the quartiles of the areas' non-zero counts */
  bins() {
    const key = this.mode === "overdue" ? "overdue" : "open";
    const vals = Object.values(this.streetOpen).map((v) => v[key] || 0).filter((v) => v > 0)
      .sort((a, b) => a - b);
    const q = (f) => vals[Math.min(vals.length - 1, Math.floor(vals.length * f))];
    const breaks = vals.length ? [q(0.25), q(0.5), q(0.75), vals[vals.length - 1]] : [];
    return { key, breaks, min: vals[0] || 0 };
  },
  streetColor(n) {
    if (!n) return "#16233d";
    const { breaks } = this.bins();
    const i = breaks.findIndex((b) => n <= b);
    return ["#1f5a8a", "#2a8fc4", "#f0a431", "#ff5a4e"][i < 0 ? 3 : i];
  },
  streetValue(st) { return (this.streetOpen[st.code] || {})[this.bins().key] || 0; },
  /* at city level a district without layers in the loaded geodata has no cases to show */
  isLoaded(st) { return this.level !== "city" || this.loaded.has(st.code); },
  /* a label position inside the area with the fewest markers under it */
  placeLabel(st, w) {
    const [ax, ay] = this.tx(st.anchor);
    let best = null;
    for (const [dx, dy] of [[0, 0], [0, -20], [0, 20], [-30, 0], [30, 0], [0, -40], [0, 40],
      [-30, -20], [30, 20], [-30, 20], [30, -20]]) {
      const x = ax + dx, y = ay + dy;
      if (!this.inPath(st.path, x, y)) continue;
      let hits = 0;
      for (const m of this.markers) {
        if (m.sx > x - w / 2 - 8 && m.sx < x + w / 2 + 8 && m.sy > y - 16 && m.sy < y + 14) hits++;
      }
      if (!best || hits < best.hits) best = { x, y, hits };
      if (!hits) break;
    }
    return best ? [best.x, best.y] : [ax, ay];
  },
  setMode(mode) {
    if (mode === "cells" && this.level === "city") mode = "open";
    this.mode = mode;
    for (const [id, m] of [["view-cells", "cells"], ["view-streets", "open"], ["view-overdue", "overdue"]])
      $(id).classList.toggle("on", m === mode);
    const [zh, en] = LEVEL_WORDS[this.level || "district"].area;
    setText("map-title", mode === "cells" ? "Cells · open cases"
      : mode === "open" ? `${zh} ${en} · open cases` : `${zh} ${en} · overdue cases`);
    $("street-card").hidden = !(mode === "cells" && this.level === "district");
    if (mode === "cells" && this.level === "district") this.loadCells().catch(showError);
    this.legend();
    this.draw();
  },
  legend() {
    if (this.mode === "cells") {
      ["0", "1", "2", "3–4", "5+"].forEach((t, i) => setText(`lg${i}`, t));
      return;
    }
    const { breaks, min } = this.bins();
    const lows = [min, ...breaks.slice(0, 3).map((b) => b + 1)];
    const text = breaks.map((b, i) => (lows[i] > b ? "—" : lows[i] === b ? `${b}` : `${lows[i]}–${b}`));
    ["0", ...text, "", "", "", ""].slice(0, 5).forEach((t, i) => setText(`lg${i}`, t || "—"));
  },
  draw() {
    if (!this.view) return;
    const ctx = this.ctx;
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.clearRect(0, 0, this.canvas.width, this.canvas.height);
    this.zoomT();
    if (this.mode === "cells") {
      ctx.lineWidth = 0.4 / this.z;
      ctx.strokeStyle = "#0b1220";
      const byColor = new Map();
      for (const c of this.cells) {
        if (!c.path) continue;
        const col = this.color(this.counts[c.code] || 0);
        if (!byColor.has(col)) byColor.set(col, []);
        byColor.get(col).push(c);
      }
      for (const [col, list] of byColor) {
        ctx.fillStyle = col;
        for (const c of list) { ctx.fill(c.path); }
      }
      if (this.cells.length < 20000) for (const c of this.cells) if (c.path) ctx.stroke(c.path);
    } else {
      for (const st of this.streets) {
        ctx.fillStyle = this.isLoaded(st) ? this.streetColor(this.streetValue(st)) : "#0e1626";
        ctx.fill(st.path);
      }
      const zc = this.zoomedCells();  // zoomed in: the cells of the streets in view
      if (zc.length) {
        for (const c of zc) {
          const n = this.counts[c.code] || 0;
          if (n) { ctx.fillStyle = this.color(n); ctx.fill(c.path); }
        }
        if (this.cellPx() >= 6) {
          ctx.lineWidth = 0.5 / this.z; ctx.strokeStyle = "#0b122080";
          for (const c of zc) ctx.stroke(c.path);
        }
      }
    }
    ctx.lineWidth = (this.level === "street" ? 1.0 : 1.4) / this.z;
    ctx.strokeStyle = "#5b7bb0";
    for (const st of this.streets) ctx.stroke(st.path);
    ctx.setTransform(this.dpr, 0, 0, this.dpr, 0, 0);
    for (const m of this.markers) { [m.sx, m.sy] = this.tx(this.px(m.lon, m.lat)); }
    if (this.showMarkers()) this.drawMarkers();
    this.drawLabels();
  },
  showMarkers() { return this.mode === "cells" || this.level === "city" || this.zoomedCells().length > 0; },
  /* area names last, each where the fewest markers are (placeLabel): readable on top */
  drawLabels() {
    const ctx = this.ctx;
    ctx.font = "11px " + getComputedStyle(document.body).fontFamily;
    ctx.textAlign = "center";
    // names without the parent's (浦东新区街镇07 → 街镇07); a street's communities none over the cells
    // when they are many (the tooltip names them)
    if (this.level === "street" && this.mode === "cells" && this.streets.length > 20) return;
    const prefix = this.level === "street" ? (this.scope.street_name || "")
      : this.level === "district" ? (this.scope.district_name || "") : "";
    for (const st of this.streets) {
      if (!st.anchor || !st.name) continue;
      const name = prefix && st.name.startsWith(prefix) && st.name.length > prefix.length
        ? st.name.slice(prefix.length) : st.name;
      const text = !this.isLoaded(st) ? name
        : this.mode === "cells" ? name : `${name} ${this.streetValue(st)}`;
      const w = ctx.measureText(text).width + 8;
      st.label = this.placeLabel(st, w);
      ctx.fillStyle = "#0b1220cc";
      ctx.fillRect(st.label[0] - w / 2, st.label[1] - 8, w, 15);
      ctx.fillStyle = this.isLoaded(st) ? "#9fb4d8" : "#56627a";
      ctx.fillText(text, st.label[0], st.label[1] + 3);
    }
  },
  drawMarkers() {
    const ctx = this.ctx;
    for (const m of this.markers) {
      const x = m.sx, y = m.sy;
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
  streetAt(x, y) {
    return this.streets.find((st) => st.path && this.inPath(st.path, x, y));
  },
  nearest(e) {
    const r = this.canvas.getBoundingClientRect();
    const x = e.clientX - r.left, y = e.clientY - r.top;
    let best = null, bd = 100;
    if (!this.showMarkers()) return [null, x, y];
    for (const m of this.markers) {
      const d = (m.sx - x) ** 2 + (m.sy - y) ** 2;
      if (d < bd) { bd = d; best = m; }
    }
    return [best, x, y];
  },
  /* city: a district opens its view; district: a street opens its list (double click: its
   * view); street: a marker opens its case */
  click(e) {
    if (this.moved) { this.moved = false; return; }  // the end of a drag
    const [m, x, y] = this.nearest(e);
    if (m) { go({ case: m.case_id }); return; }
    const st = this.streetAt(x, y);
    if (!st) return;
    if (this.level === "city") {
      if (this.isLoaded(st) && canGo(st.code)) goScope({ district: st.code });
      return;
    }
    if (this.level === "district")
      go(this.mode === "overdue" ? { street: st.code, overdue: "1" } : { street: st.code });
  },
  dblclick(e) {
    const r = this.canvas.getBoundingClientRect();
    const st = this.level === "district" && this.streetAt(e.clientX - r.left, e.clientY - r.top);
    if (st) goScope({ district: this.scope.district, street: st.code });
  },
  hover(e) {
    if (this.drag && e.buttons === 1) {
      const [x0, y0, px0, py0] = this.drag;
      const dx = e.clientX - x0, dy = e.clientY - y0;
      if (Math.abs(dx) + Math.abs(dy) > 4) this.moved = true;
      if (this.moved && this.z > 1) { this.zoomTo(this.z, px0 + dx, py0 + dy); return; }
    }
    const [m, x, y] = this.nearest(e);
    const tip = $("map-tip");
    if (!m) {
      const st = (this.mode !== "cells" || this.level === "street") && this.streetAt(x, y);
      if (!st) { tip.hidden = true; this.canvas.style.cursor = "crosshair"; return; }
      const n = this.streetOpen[st.code] || { open: 0, overdue: 0 };
      this.canvas.style.cursor = this.level === "street" ? "crosshair" : "pointer";
      clear(tip);
      tip.append(el("div", {}, el("b", {}, st.name || st.code), " ", el("span", { class: "mono" }, st.code)),
        el("div", {}, this.isLoaded(st) ? `在办 open ${n.open} · 超期 overdue ${n.overdue}`
          : "未加载图层 not in the loaded geodata"));
      tip.style.left = `${x + 12}px`; tip.style.top = `${y + 12}px`; tip.hidden = false;
      return;
    }
    this.canvas.style.cursor = "pointer";
    clear(tip);
    tip.append(el("div", {}, m.type_zh || m.type_code || "未分类 unclassified", " ",
      el("span", { class: "mono" }, m.case_id)),
      el("div", {}, PRIORITY[m.priority] || m.priority, " · ", STATE[m.state] || m.state,
        m.overdue ? " · 超期 overdue" : ""));
    tip.style.left = `${x + 12}px`; tip.style.top = `${y + 12}px`; tip.hidden = false;
  },
  update(counts, markers, areaOpen) {
    this.counts = counts; this.markers = markers; this.streetOpen = areaOpen || {};
    this.legend(); this.draw();
  },
};
function note(text) { const n = $("map-note"); n.textContent = text; n.hidden = !text; }
let choices = { city: false, districts: [], streets: [] };
function canGo(district) { return choices.city || choices.districts.some((d) => d.code === district); }

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
  const what = a.type_zh ? `${a.type_zh} ${a.type_en || ""}`.trim() : (a.type_code || "未分类 unclassified");
  // the engine's message says "<what happened> — <type> in <street>" (key supervision:
  // "<type> in <street> — on site by …"); the type and street are shown above it already
  const parts = (a.message || "").split(" — ");
  const detail = a.kind === "key_supervision" ? parts.slice(1).join(" — ") : parts[0];
  return el("li", { class: fresh ? "new" : "", data: { caseId: a.case_id }, on: { click: () => go({ case: a.case_id }) } },
    el("div", { class: "row" },
      el("span", {}, el("span", { class: `tag ${a.kind}` }, ALERT[a.kind] || a.kind),
        el("span", { class: `tag ${a.priority}` }, PRIORITY[a.priority] || a.priority)),
      el("span", { class: "t" }, fmtTime(a.at))),
    el("div", { class: "what" }, what, a.street ? ` · ${named(a.street_name, a.street)}` : ""),
    detail ? el("div", { class: "desc wrap" }, detail) : null,
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
    box.append(el("li", { data: { caseId: r.case_id }, on: { click: () => go({ case: r.case_id }) } },
      el("div", { class: "row" },
        el("span", {}, el("span", { class: `tag ${r.priority}` }, PRIORITY[r.priority] || r.priority), typeLabel(r)),
        el("span", { class: "late" }, "+" + fmtLate(r.late_seconds))),
      el("div", { class: "row" },
        el("span", { class: "t" }, STAGE[r.stage] || r.stage || "", " · ", deptLabel(r), " · ",
          streetLabel(r), " · 督办 ", LEVEL[r.level] || r.level),
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
const FIG_WORDS = {
  dept: ["部门考核", "Department evaluation (cases dispatched since start) · click a row for its cases", "部门 Department"],
  street: ["街镇考核", "Street evaluation (cases dispatched since start) · click a row for its cases", "街镇 Street"],
  district: ["区考核排名", "District evaluation and ranking (cases dispatched since start; by closure rate, then on-time rate) · click a row for the district", "排名 · 区 Rank · District"],
};
function setFigMode(mode) {
  figMode = mode;
  for (const m of ["district", "dept", "street"]) $(`tab-${m}`).classList.toggle("on", m === mode);
  if (lastSummary) renderFigures(lastSummary);
}
function renderFigures(s) {
  const body = $("figures-body");
  clear(body);
  const rows = figMode === "dept" ? s.departments : figMode === "district" ? s.districts : s.streets;
  const [zh, en, head] = FIG_WORDS[figMode];
  setText("fig-title-zh", zh);
  setText("fig-title", en);
  setText("fig-name-h", head);
  for (const f of rows) {
    const name = figMode === "dept"
      ? el("td", { class: "name" }, f.name_zh, el("small", {}, f.name_en))
      : figMode === "district"
        ? el("td", { class: "name" }, el("span", { class: "rank" }, `${f.rank}`), f.name, el("small", { class: "mono" }, f.key))
        : el("td", { class: "name" }, f.name, el("small", { class: "mono" }, f.key));
    const open = () => (figMode === "district" ? goScope({ district: f.key })
      : go(figMode === "dept" ? { department: f.key } : { street: f.key }));
    body.append(el("tr", { class: "link-row", tabindex: "0",
      title: figMode === "district" ? "点击进入该区 Click: the district's view" : "点击查看在办案件 Click: its open cases",
      data: { key: f.key }, on: { click: open, keydown: (e) => { if (e.key === "Enter") open(); } } }, name,
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

function renderStreetRank(byStreet) {
  const box = $("street-rank");
  clear(box);
  const rows = Object.entries(byStreet || {}).map(([key, v]) => ({ key, ...v }))
    .filter((r) => r.open > 0).sort((a, b) => b.open - a.open).slice(0, 8);
  const max = Math.max(1, ...rows.map((r) => r.open));
  for (const r of rows) {
    box.append(el("li", { title: `${r.name || r.key} (${r.key}): ${r.open} open, ${r.overdue} overdue — click for the list`,
      data: { street: r.key }, on: { click: () => go({ street: r.key }) } },
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
    on: { click: () => go({ case: ev.case_id }) } },
    el("div", { class: "row" },
      el("span", {}, el("span", { class: `tag ${ev.type} ${row.priority === "urgent" ? "urgent" : ""}` }, EVENT[ev.type] || ev.type),
        typeLabel(row)),
      el("span", { class: "t" }, fmtTime(ev.at))),
    row.description ? el("div", { class: "desc" }, row.description) : null,
    el("div", { class: "t" }, el("span", { class: "mono" }, ev.case_id),
      row.street ? ` · ${streetLabel(row)}` : "", row.department ? ` · ${deptLabel(row)}` : ""));
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
/* ---------- navigation: every view of the drawer has a link (#case=…, #street=…) ---------- */
const LIST_KEYS = ["street", "department", "counter", "q", "state", "overdue"];
function hashOf(params) {
  const u = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== "") u.set(k, v);
  return u.toString();
}
function go(params) {
  const h = hashOf(params);
  if (location.hash.slice(1) === h) route(); else location.hash = h;
}
let lastList = null;  // the hash of the list the drawer showed last (for "back")
function route() {
  const q = new URLSearchParams(location.hash.slice(1));
  if (q.get("case")) { openCase(q.get("case")); return; }
  const params = {};
  for (const k of LIST_KEYS) if (q.has(k)) params[k] = q.get(k);
  if (Object.keys(params).length) { openList(params); return; }
  $("drawer").hidden = true;
}
function closeDrawer() {
  $("drawer").hidden = true;
  history.pushState(null, "", location.pathname + location.search);
}
function drawerHead(kind, title, hash, mono) {
  setText("d-kind", kind);
  const h = $("d-id");
  h.textContent = title;
  h.className = mono ? "mono" : "";
  $("d-link").setAttribute("href", "#" + hash);
  $("d-link").title = location.origin + location.pathname + "#" + hash;
  const back = $("d-back");
  back.hidden = !(kind.startsWith("案件") && lastList);
  if (lastList) back.setAttribute("href", "#" + lastList);
}

/* ---------- case list (drill-down and search) ---------- */
let listSeq = 0;
async function openList(params) {
  const drawer = $("drawer"), body = $("d-body");
  const hash = hashOf(params);
  lastList = hash;
  drawerHead("案件列表 Cases", "…", hash, false);
  clear(body);
  body.append(el("div", { class: "empty" }, "加载中 Loading…"));
  drawer.hidden = false;
  const mine = ++listSeq;
  let d;
  try { d = await getJSON(withScope(`${API}/cases?${hash}`, params.street ? { street: params.street } : {})); } catch (e) {
    if (mine !== listSeq) return;
    clear(body); body.append(el("div", { class: "empty" }, "无法加载 Could not load: " + e.message)); return;
  }
  if (mine !== listSeq) return;  // a newer list was asked for meanwhile
  drawerHead("案件列表 Cases", d.title, hash, false);
  clear(body);
  if (params.street && lastSummary && lastSummary.scope.level === "district")
    body.append(el("a", { class: "to-scope", id: "to-street-view",
      href: `?${new URLSearchParams({ district: lastSummary.scope.district, street: params.street })}` },
    "进入街镇视图 Open the street view (communities, cells) →"));
  if (params.street || params.department) {
    const base = params.street ? { street: params.street } : { department: params.department };
    const tabs = el("div", { class: "tabs list-tabs" });
    for (const [label, extra] of [["在办 Open", {}], ["超期 Overdue", { overdue: "1" }], ["全部 All", { state: "all" }]]) {
      const on = (extra.overdue || "") === (params.overdue || "") && (extra.state || "") === (params.state || "");
      tabs.append(el("button", { type: "button", class: on ? "on" : "", on: { click: () => go({ ...base, ...extra }) } }, label));
    }
    body.append(tabs);
  }
  body.append(el("div", { class: "list-n", id: "list-n" },
    d.more ? `${d.items.length}+ 件 cases · 显示最新 ${d.items.length} showing the newest ${d.items.length}`
      : `${d.total} 件 cases`));
  const ol = el("ol", { class: "feed caselist", id: "case-list" });
  for (const r of d.items) {
    ol.append(el("li", { data: { caseId: r.case_id }, on: { click: () => go({ case: r.case_id }) } },
      el("div", { class: "row" },
        el("span", {}, el("span", { class: `tag ${r.priority}` }, PRIORITY[r.priority] || r.priority),
          el("span", { class: "tag" }, STATE[r.state] || r.state), typeLabel(r)),
        r.late_seconds ? el("span", { class: "late" }, "+" + fmtLate(r.late_seconds)) : el("span", { class: "t" }, fmtTime(r.created_at))),
      r.description ? el("div", { class: "desc" }, r.description) : null,
      el("div", { class: "t" }, el("span", { class: "mono" }, r.case_id), " · ", streetLabel(r), " · ", deptLabel(r))));
  }
  if (!d.items.length) ol.append(el("li", { class: "empty" }, "没有案件 No cases"));
  body.append(ol);
}

/* ---------- case drawer ---------- */
function kv(pairs) {
  const dl = el("dl", { class: "kv" });
  for (const [k, v] of pairs) dl.append(el("dt", {}, k), el("dd", {}, v === null || v === undefined || v === "" ? "—" : v));
  return dl;
}
async function openCase(id) {
  const drawer = $("drawer"), body = $("d-body");
  drawerHead("案件 Case", id, hashOf({ case: id }), true);
  clear(body);
  body.append(el("div", { class: "empty" }, "加载中 Loading…"));
  drawer.hidden = false;
  const mine = ++listSeq;
  let d;
  try { d = await getJSON(`${API}/cases/${encodeURIComponent(id)}`); } catch (e) {
    if (mine !== listSeq) return;
    clear(body); body.append(el("div", { class: "empty" }, "未找到 Not found")); return;
  }
  if (mine !== listSeq) return;
  clear(body);
  const where = [d.district_name && named(d.district_name, d.district), named(d.street_name, d.street),
    d.community && named(d.community_name, d.community), d.cell && `网格 cell ${d.cell}`].filter(Boolean).join(" › ");
  body.append(
    kv([["状态 State", STATE[d.state] || d.state],
      ["类型 Type", d.type_zh ? `${d.type_zh} · ${d.type_en || ""} (${d.type_code})` : (d.type_code || "未分类 unclassified")],
      ["优先级 Priority", PRIORITY[d.priority] || d.priority],
      ["循环 Loop / 督办 Level", `${TIER_NAME[d.tier] || d.tier} / ${LEVEL[d.level] || d.level}`],
      ["部门 Department", d.department ? named([d.department_zh, d.department_en].filter(Boolean).join(" "), d.department) : "—"],
      ["承办单位 Unit", d.unit ? named(d.unit_name, d.unit) : null],
      ["位置 Where", el("span", { id: "d-where" }, where)],
      ["来源 Source", SOURCE[d.source] || d.source],
      ["上报 Reported", fmtTime(d.created_at)],
      ["超期 Overdue", d.overdue ? `+${fmtLate(d.late_seconds)} (${STAGE[d.stage] || d.stage})` : "否 no"],
      ["返工/延期/回退", `${d.reworks} / ${d.extensions} / ${d.returns}  (rework / extension / return)`],
      ["重复上报 Reports", d.report_count],
      ["复发 Recurred", d.recurrence ? el("span", { id: "d-recur" }, `${d.recurrence.text} · `,
        ...d.recurrence.earlier.map((c, i) => [i ? ", " : "", el("a", { href: `#case=${encodeURIComponent(c)}` }, c)]).flat())
        : null]]),
    el("h4", {}, "描述 Description"),
    el("div", { class: "desc-box", id: "d-desc" }, d.description || "—"));
  if (d.address) body.append(kv([["地址 Address", d.address]]));
  const dec = d.decision;
  body.append(el("h4", {}, "派遣决定 Decision"));
  if (dec) {
    if (d.why && d.why.length) body.append(el("ul", { class: "why", id: "d-why" }, d.why.map((l) => el("li", {}, l))));
    body.append(kv([["处置方式 Handling", HANDLING[dec.handling] || dec.handling],
      ["日历 Calendar", dec.calendar === "24h" ? "24 小时 around the clock" : `${dec.calendar} (工作时间 working time)`],
      ["结案标准 Standard", dec.closing_standard], ["规则 Rule", dec.winner],
      ["规则集 Ruleset", dec.ruleset_version]]));
    if (dec.explanation && dec.explanation.length)
      body.append(el("details", { class: "trace" }, el("summary", {}, "规则明细 Rule trace"),
        el("ol", { class: "explain" }, dec.explanation.map((l) => el("li", {}, l)))));
  } else body.append(el("div", { class: "empty" }, "—"));
  body.append(el("h4", {}, "时限 Deadlines (上海时间 Shanghai time)"));
  body.append(kv(Object.entries(d.deadlines || {}).map(([k, v]) => [STAGE[k] || k, fmtTime(v)])));
  if (dec && dec.transfer) body.append(el("h4", {}, "应急移交 Emergency transfer"),
    kv(dec.transfer.services.map((s) => [s.number, `${s.name_zh} ${s.name_en}`])));
  if (dec && dec.suggestions && dec.suggestions.length) body.append(el("h4", {}, "分类建议 Suggested types (待人工确认 to be checked)"),
    kv(dec.suggestions.map((s) => [s.type_code, `${s.name_zh} ${s.name_en} (${s.score})`])));
  if (d.legal_stages && d.legal_stages.length) body.append(el("h4", {}, "执法阶段 Legal stages (上海时间 Shanghai time)"),
    kv(d.legal_stages.map((x) => [`${x.name_zh} ${x.name_en}`,
      (x.closed_at ? `${x.on_time ? "按期办结 closed on time" : "超期办结 closed late"} ${fmtTime(x.closed_at)} · `
        : (x.stage === d.legal_stage ? "进行中 open · " : "")) + `期限 due ${fmtTime(x.due)} (${x.limit})`])));
  body.append(el("h4", {}, "处置过程 History"));
  if (!d.history_kept) body.append(el("div", { class: "empty" },
    "仅保留最近案件的过程 History is kept for recent cases only: see /api/v1/cases/" + d.case_id));
  body.append(el("ol", { class: "timeline" }, (d.history || []).map((h) =>
    el("li", {}, el("div", {}, el("b", {}, EVENT[h.type] || h.type), " → ", STATE[h.state_to] || h.state_to),
      el("div", { class: "when" }, fmtTime(h.at), " · ", h.actor || "—", " (", ROLE[h.role] || h.role, ")"),
      h.reason ? el("div", {}, h.reason) : null))));
}

/* ---------- refresh loop ---------- */
async function refresh() {
  const s = await getJSON(withScope(`${API}/summary.json`));
  const first = !lastSummary;
  lastSummary = s;
  choices = s.choices || choices;
  setText("district-name", s.scope.title || "");
  setText("district-code", s.scope.street || s.scope.district || "");
  setText("scope-label", s.scope.label);
  setText("level-en", LEVEL_WORDS[s.scope.level].en);
  document.title = `${s.scope.title} 城市网格化管理指挥中心 · Grid Command Center`;
  if (first) renderScope(s);
  setText("clock", fmtClock(s.now));
  const speed = $("clock-speed");
  speed.hidden = !(s.clock_speed > 1);
  if (s.clock_speed > 1) {
    speed.textContent = `演示加速时钟 ×${s.clock_speed} accelerated demo clock`;
    speed.title = `引擎时间比真实时间快 ${s.clock_speed} 倍 Engine time runs ${s.clock_speed}× real time: deadlines pass in minutes`;
  }
  setText("case-total", s.cases);
  renderCounters(s.counters);
  renderTiers(s.tier_flow);
  renderAlerts(s.alerts);
  renderOverdue(s.overdue, s.overdue_total);
  renderFigures(s);
  renderStreetRank(s.street_open);
  map.update(s.cells, s.markers, s.scope.level === "city" ? s.district_open
    : s.scope.level === "street" ? s.community_open : s.street_open);
  if (first) {
    if (s.scope.level === "city") setFigMode("district");
    $("tab-district").hidden = s.scope.level !== "city";
    $("tab-street").hidden = s.scope.level === "city";
    map.load(s).then(() => map.update(s.cells, s.markers, s.scope.level === "city" ? s.district_open
      : s.scope.level === "street" ? s.community_open : s.street_open))
      .catch((e) => { setText("map-msg", "地图不可用 Map unavailable"); showError(e); });
  }
}

/* the header's way between scopes: city › district (a select for who may switch) › street */
function renderScope(s) {
  const sc = s.scope;
  $("to-city").hidden = !(choices.city && sc.level !== "city");
  const ds = $("district-select");
  clear(ds);
  if (choices.city) ds.append(el("option", { value: "" }, "全市 whole city"));
  for (const d of choices.districts) ds.append(el("option", { value: d.code }, `${d.name} (${d.code})`));
  ds.value = sc.district || "";
  ds.disabled = !choices.city && choices.districts.length < 2;
  ds.hidden = ds.options.length === 0 || (ds.disabled && sc.level === "city");
  ds.title = ds.disabled ? "您的权限只含本区 Your scope is this district only" : "切换区 Switch district";
  $("sep-district").hidden = $("to-city").hidden || ds.hidden;
  const ss = $("street-select");
  clear(ss);
  ss.hidden = sc.level === "city" || !choices.streets.length;
  $("sep-street").hidden = ss.hidden;
  if (!ss.hidden) {
    ss.append(el("option", { value: "" }, "全区 whole district"));
    for (const st of choices.streets) ss.append(el("option", { value: st.code }, `${st.name} (${st.code})`));
    ss.value = sc.street || "";
  }
}
let pending = null;
function scheduleRefresh(ms) {
  if (pending) return;
  pending = setTimeout(() => { pending = null; refresh().catch(showError); }, ms);
}
function showError(e) { console.warn("dashboard refresh failed:", e && e.message); }

function connect() {
  const es = new EventSource(withScope("/dashboard/events"));
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
  $("d-close").addEventListener("click", closeDrawer);
  document.addEventListener("keydown", (e) => { if (e.key === "Escape" && !$("drawer").hidden) closeDrawer(); });
  window.addEventListener("hashchange", route);
  $("search").addEventListener("submit", (e) => {
    e.preventDefault();
    const q = $("q").value.trim();
    if (q) go({ q });
  });
  for (const card of document.querySelectorAll(".kpi")) card.addEventListener("click", () => go({ counter: card.dataset.key }));
  $("view-cells").addEventListener("click", () => map.setMode("cells"));
  $("view-streets").addEventListener("click", () => map.setMode("open"));
  $("view-overdue").addEventListener("click", () => map.setMode("overdue"));
  for (const m of ["district", "dept", "street"]) $(`tab-${m}`).addEventListener("click", () => setFigMode(m));
  $("district-select").addEventListener("change", (e) => goScope({ district: e.target.value }));
  $("street-select").addEventListener("change", (e) => goScope({ district: lastSummary.scope.district, street: e.target.value }));
  $("feed").append(el("li", { class: "empty" }, "等待新事件 Waiting for events…"));
  refresh().catch((e) => { setText("map-msg", "无法加载 Could not load: " + e.message); showError(e); });
  connect();
  route();  // a link to a case or a list opens it
  setInterval(() => scheduleRefresh(0), 5000);
}
document.addEventListener("DOMContentLoaded", init);
