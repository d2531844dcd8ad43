// The analytics view: hot spots, recurrence queue, trends (data: /analytics/api/data.json).
"use strict";
(() => {
  const $ = (id) => document.getElementById(id);
  const pct = (v) => (v === null || v === undefined ? "—" : (v * 100).toFixed(1) + "%");
  const WEEKDAYS = ["周一", "周二", "周三", "周四", "周五", "周六", "周日"];

  function el(tag, text, cls) {
    const e = document.createElement(tag);
    if (text !== undefined && text !== null) e.textContent = String(text);
    if (cls) e.className = cls;
    return e;
  }
  function row(tbody, cells) {
    const tr = document.createElement("tr");
    for (const c of cells) {
      if (c instanceof Node) { const td = el("td"); td.appendChild(c); tr.appendChild(td); }
      else tr.appendChild(el("td", c, typeof c === "number" ? "n" : ""));
    }
    tbody.appendChild(tr);
    return tr;
  }
  function caseLink(id) {
    const a = el("a", id);
    a.href = "/#case=" + encodeURIComponent(id);
    return a;
  }

  async function getJSON(url) {
    const r = await fetch(url, { credentials: "same-origin" });
    if (r.status === 401) { location.href = "/login?next=" + encodeURIComponent(location.pathname + location.search); return null; }
    const body = await r.json();
    if (!r.ok) throw new Error(body.error || r.statusText);
    return body;
  }

  function kpis(d) {
    const box = $("kpis"); box.replaceChildren();
    const t = d.evaluation.total;
    const items = [["派遣 Dispatched", t.dispatched], ["结案率 Closure", pct(t.closure_rate)],
      ["按期结案率 On time", pct(t.on_time_rate)], ["超期 Overdue", t.overdue],
      ["热点网格 Hot cells", d.hotspots.hot.length], ["重复发生 Recurred", d.recurrences.queue.length],
      ["有效案件 Cases", d.hotspots.cases]];
    for (const [label, v] of items) {
      const div = el("div", label); const b = el("b", v); div.appendChild(b); box.appendChild(div);
    }
  }

  function rings(geom) {
    if (!geom) return [];
    if (geom.type === "Polygon") return [geom.coordinates[0]];
    if (geom.type === "MultiPolygon") return geom.coordinates.map((p) => p[0]);
    return [];
  }

  function drawMap(d, cells, streets) {
    const cv = $("map"), ctx = cv.getContext("2d");
    const all = (streets.features.length ? streets : cells).features.flatMap((f) => rings(f.geometry));
    let x0 = Infinity, y0 = Infinity, x1 = -Infinity, y1 = -Infinity;
    for (const r of all) for (const [x, y] of r) { x0 = Math.min(x0, x); x1 = Math.max(x1, x); y0 = Math.min(y0, y); y1 = Math.max(y1, y); }
    const k = Math.cos(((y0 + y1) / 2) * Math.PI / 180);
    const s = Math.min((cv.width - 20) / ((x1 - x0) * k || 1), (cv.height - 20) / ((y1 - y0) || 1));
    const px = (x, y) => [10 + (x - x0) * k * s, cv.height - 10 - (y - y0) * s];
    ctx.clearRect(0, 0, cv.width, cv.height);
    const fill = (geom, color) => {
      ctx.fillStyle = color;
      for (const r of rings(geom)) {
        ctx.beginPath(); r.forEach(([x, y], i) => { const [a, b] = px(x, y); if (i) ctx.lineTo(a, b); else ctx.moveTo(a, b); });
        ctx.closePath(); ctx.fill();
      }
    };
    const counts = d.hotspots.counts, hot = new Set(d.hotspots.hot.map((h) => h.cell));
    const max = Math.max(1, ...Object.values(counts));
    for (const f of cells.features) {
      const code = f.properties.code, n = counts[code] || 0;
      if (hot.has(code)) fill(f.geometry, "#ff3b30");
      else if (n) fill(f.geometry, `rgba(74,123,183,${0.35 + 0.65 * n / max})`);
    }
    ctx.strokeStyle = "#5b6b80"; ctx.lineWidth = 1;
    for (const f of streets.features) for (const r of rings(f.geometry)) {
      ctx.beginPath(); r.forEach(([x, y], i) => { const [a, b] = px(x, y); if (i) ctx.lineTo(a, b); else ctx.moveTo(a, b); });
      ctx.closePath(); ctx.stroke();
    }
  }

  function tables(d) {
    const h = d.hotspots;
    $("hot-stat").textContent = `局部莫兰指数 Local Moran's I · FDR α=${h.alpha} · p ≤ ${h.p_bound.toFixed(4)} · ${h.cells} cells`;
    const byStreet = {};
    for (const x of h.hot) byStreet[x.street_name] = (byStreet[x.street_name] || 0) + 1;
    $("hot-streets").textContent = Object.entries(byStreet).sort((a, b) => b[1] - a[1]).map(([k, n]) => `${k} ${n}`).join(" · ");
    const hb = $("hot").tBodies[0]; hb.replaceChildren();
    for (const x of h.hot) row(hb, [x.cell, x.street_name, x.cases, x.neighbours_mean, x.p_value.toFixed(3)]).dataset.cell = x.cell;
    const r = d.recurrences;
    $("rec-stat").textContent = `同类问题在同一位置结案后 ${r.days} 天内再次上报 · same type, same place, within ${r.days} days of a close`;
    const qb = $("recur").tBodies[0]; qb.replaceChildren();
    for (const x of r.queue) {
      const earlier = el("span"); x.earlier.forEach((id, i) => { if (i) earlier.appendChild(document.createTextNode(", ")); earlier.appendChild(caseLink(id)); });
      row(qb, [caseLink(x.case_id), x.type_name, x.street_name, x.department_name, x.created_at.slice(0, 16).replace("T", " "),
        `第${x.nth}次 ${x.nth}×`, earlier]).dataset.case = x.case_id;
    }
    for (const [id, items] of [["rec-dept", r.by_department], ["rec-street", r.by_street]]) {
      const tb = $(id).tBodies[0]; tb.replaceChildren();
      for (const x of items) row(tb, [x.name, x.cases]);
    }
    const sb = $("sups").tBodies[0]; sb.replaceChildren();
    for (const s of d.trends.supervisors.slice(0, 30)) row(sb, [s.reporter, s.reports, pct(s.valid_rate), pct(s.self_disposal_share), s.verifications, s.mean_verify_hours ?? "—"]);
  }

  const METRIC_PCT = { closure_rate: true, on_time_rate: true };

  function trendSeries(d) {
    const by = $("trend-by").value, keySel = $("trend-key");
    if (by === "district") { keySel.hidden = true; return d.trends.weekly_district; }
    const all = { street: d.trends.weekly_by_street, department: d.trends.weekly_by_department,
      category: d.trends.weekly }[by] || {};
    const names = {};
    for (const r of d.streets) names[r.key] = r.name;
    for (const r of d.departments) names[r.key] = r.name;
    Object.assign(names, d.category_names || {});
    const keys = Object.keys(all).filter((k) => k);
    if (keySel.dataset.by !== by) {
      keySel.replaceChildren(...keys.map((k) => { const o = el("option", names[k] ? `${names[k]} ${k}` : k); o.value = k; return o; }));
      keySel.dataset.by = by;
    }
    keySel.hidden = false;
    return all[keySel.value] || {};
  }

  function weekly(d) {
    const svg = $("weekly"), NS = "http://www.w3.org/2000/svg";
    svg.replaceChildren();
    const metric = $("trend-metric").value, pctm = METRIC_PCT[metric];
    const weeks = Object.entries(trendSeries(d));
    if (!weeks.length) return;
    const val = (w) => w[metric];
    const W = 640, H = 220, L = 36, B = 30;
    const max = pctm ? 1 : Math.max(1, ...weeks.map(([, w]) => val(w) || 0));
    const bw = (W - L - 10) / weeks.length;
    const add = (tag, attrs, text) => { const e = document.createElementNS(NS, tag); for (const k in attrs) e.setAttribute(k, attrs[k]); if (text) e.textContent = text; svg.appendChild(e); return e; };
    weeks.forEach(([wk, w], i) => {
      const v = val(w), h = (H - B - 28) * (v || 0) / max, x = L + i * bw;
      const bar = add("rect", { x: x + bw * 0.15, y: H - B - h, width: bw * 0.7, height: h, fill: pctm ? "#ff6b5e" : "#4a7bb7" });
      bar.dataset.week = wk; bar.dataset.value = v === null ? "" : String(v);
      add("text", { x: x + bw / 2, y: H - B + 14, "text-anchor": "middle" }, wk.slice(5));
      add("text", { x: x + bw / 2, y: H - B - h - 3, "text-anchor": "middle" }, v === null ? "—" : pctm ? pct(v) : String(v));
    });
    add("text", { x: 2, y: 12 }, $("trend-metric").selectedOptions[0].textContent + " · 周一起 weeks from Monday");
  }

  function heat(d) {
    const tb = $("heat").tBodies[0]; tb.replaceChildren();
    const grid = d.trends.heatmap, max = Math.max(1, ...grid.flat());
    const head = document.createElement("tr"); head.appendChild(el("th", ""));
    for (let h = 0; h < 24; h++) head.appendChild(el("th", h % 3 ? "" : h + "时"));
    tb.appendChild(head);
    grid.forEach((hours, wd) => {
      const tr = document.createElement("tr"); tr.appendChild(el("th", WEEKDAYS[wd]));
      hours.forEach((n, h) => {
        const td = el("td", n || ""); td.title = `${WEEKDAYS[wd]} ${h}时: ${n}`;
        td.style.background = `rgba(255,59,48,${n / max})`;
        tr.appendChild(td);
      });
      tb.appendChild(tr);
    });
  }

  async function load() {
    const q = new URLSearchParams(location.search);
    if (q.get("from")) $("from").value = q.get("from");
    if (q.get("to")) $("to").value = q.get("to");
    if (q.get("days")) $("days").value = q.get("days");
    try {
      const d = await getJSON("/analytics/api/data.json?" + q.toString());
      if (!d) return;
      $("from").value = d.from; $("to").value = d.to;
      $("district-name").textContent = d.district_name;
      document.title = `${d.district_name} 薄弱环节分析 ${d.from} – ${d.to}`;
      const dq = "?district=" + encodeURIComponent(d.district);
      const [cells, streets] = await Promise.all([getJSON("/dashboard/api/cells.geojson" + dq), getJSON("/dashboard/api/streets.geojson" + dq)]);
      $("main").hidden = false;
      data = d;
      kpis(d); tables(d); weekly(d); heat(d); drawMap(d, cells, streets);
      $("msg").textContent = `${d.from} 至 ${d.to}（上海时间）· 口径见 docs/evaluation.md`;
      document.body.dataset.ready = "1";
    } catch (err) {
      $("msg").textContent = "无法加载 Could not load: " + err.message;
    }
  }

  let data = null;
  for (const id of ["trend-by", "trend-key", "trend-metric"]) $(id).addEventListener("change", () => data && weekly(data));

  $("period").addEventListener("submit", (e) => {
    e.preventDefault();
    const q = new URLSearchParams(location.search);
    q.set("from", $("from").value); q.set("to", $("to").value); q.set("days", $("days").value);
    location.search = q.toString();
  });
  load();
})();
