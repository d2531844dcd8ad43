/* Shared by the work screens (console.js, inbox.js, m.js): reading the page API, acting
   through the HTTP API (/api/v1: the same commands, the same checks), Shanghai time and
   countdowns on the engine clock, the case page, photo uploads, the map, live events.
   Text from cases is always set as text, never as markup. */
'use strict';

const W = (() => {
  const STATES = {
    reported: '上报 reported', triage: '待分类 triage', filed: '立案 filed',
    rejected: '不予立案 rejected', merged: '已合并 merged', dispatched: '已派遣 dispatched',
    accepted: '已签收 accepted', disposed: '已处置 disposed', returned: '已退回 returned',
    rework: '返工 rework', verified: '已核查 verified', closed: '已结案 closed',
    transferred: '已移交 transferred (110/119/120)',
  };
  const EVENTS = {
    reported: '上报 reported', filed: '立案 filed', classified: '分类 classified',
    dispatched: '派遣 dispatched', redispatched: '重新派遣 re-dispatched',
    accepted: '签收 accepted', disposed: '处置 disposed', lead_disposed: '主办处置 lead disposed',
    returned: '退回 returned', arbitration: '仲裁 arbitration',
    extension_requested: '申请延期 extension requested',
    extension_granted: '批准延期 extension granted', extension_denied: '驳回延期 extension denied',
    verified: '核查通过 verified', rework: '核查不通过·返工 failed verification',
    closed: '结案 closed', self_closed: '当场处置结案 fixed on the spot',
    supervised: '督办 supervision order', warned: '预警 deadline warning',
    merged: '合并重复上报 duplicate merged', command_rejected: '指令被拒 command refused',
    rejected: '不予立案 rejected', triaged: '待分类 sent to triage',
    transferred: '移交应急 transferred to 110/119/120',
    follow_up_opened: '善后立案 follow-up opened', legal_stage_closed: '法定程序阶段完成 legal stage closed',
    part_reported: '协办完成 assisting part done', part_closed_out: '协办终结 assisting part closed out',
    callback: '回访 callback', reopened: '重新办理 reopened',
  };
  const STAGES = { file: '立案 file', dispatch: '派遣 dispatch', dispose: '处置 dispose',
    verify: '核查 verify' };
  const PRIORITY = { urgent: '紧急 urgent', high: '高 high', normal: '一般 normal' };

  // --- DOM ---------------------------------------------------------------------------------
  function el(tag, attrs, ...kids) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === 'class') e.className = v;
      else if (k === 'text') e.textContent = v;
      else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
      else if (k === 'dataset') Object.assign(e.dataset, v);
      else e.setAttribute(k, v === true ? '' : v);
    }
    for (const k of kids.flat(Infinity)) {
      if (k === null || k === undefined || k === false) continue;
      e.append(k instanceof Node ? k : document.createTextNode(String(k)));
    }
    return e;
  }
  const $ = (sel) => document.querySelector(sel);

  // --- HTTP --------------------------------------------------------------------------------
  async function get(url) {
    const r = await fetch(url, { headers: { Accept: 'application/json' } });
    if (r.status === 401) { location.href = '/login?next=' + encodeURIComponent(location.pathname); }
    const data = await r.json().catch(() => ({}));
    if (!r.ok) throw new Error(data.error || `HTTP ${r.status}`);
    if (data.now) setClock(data.now, data.clock_speed);
    return data;
  }
  async function post(url, body) {
    const r = await fetch(url, { method: 'POST', body: JSON.stringify(body),
      headers: { 'Content-Type': 'application/json', Accept: 'application/json' } });
    const data = await r.json().catch(() => ({}));
    return { ok: r.ok, status: r.status, data };
  }
  async function upload(file) {
    const fd = new FormData();
    fd.append('photo', file, file.name || 'photo.jpg');
    const r = await fetch('/api/v1/photos', { method: 'POST', body: fd });
    const data = await r.json().catch(() => ({}));
    if (!r.ok) throw new Error(data.error || `HTTP ${r.status}`);
    return data;
  }

  // --- time --------------------------------------------------------------------------------
  let clock = { server: Date.now(), local: Date.now(), speed: 1 };
  function setClock(iso, speed) {
    clock = { server: Date.parse(iso), local: Date.now(), speed: speed || 1 };
  }
  const engineNow = () => clock.server + (Date.now() - clock.local) * clock.speed;
  const parts = new Intl.DateTimeFormat('en-CA', { timeZone: 'Asia/Shanghai', year: 'numeric',
    month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit', hourCycle: 'h23' });
  /** "2026-12-03 15:04" in Shanghai time. */
  function fmt(iso) {
    if (!iso) return '—';
    const p = Object.fromEntries(parts.formatToParts(new Date(iso)).map((x) => [x.type, x.value]));
    return `${p.year}-${p.month}-${p.day} ${p.hour}:${p.minute}`;
  }
  function span(ms) {
    const m = Math.floor(Math.abs(ms) / 60000);
    const d = Math.floor(m / 1440), h = Math.floor((m % 1440) / 60), mm = m % 60;
    return (d ? `${d}d ` : '') + (d || h ? `${h}h ` : '') + `${String(mm).padStart(2, '0')}m`;
  }
  function countdown(iso) {
    const left = Date.parse(iso) - engineNow();
    return left >= 0 ? { text: `剩余 ${span(left)} left`, late: false }
      : { text: `超期 ${span(left)} overdue`, late: true };
  }
  /** A due time in Shanghai time with a live countdown (updated by tick()). */
  function due(iso, label) {
    if (!iso) return el('span', { class: 'due', text: '—' });
    return el('span', { class: 'due', dataset: { due: iso } },
      (label ? label + ' ' : '') + fmt(iso) + ' · ', el('b', { class: 'cd' }));
  }
  function tick() {
    for (const e of document.querySelectorAll('[data-due]')) {
      const c = countdown(e.dataset.due);
      const b = e.querySelector('.cd');
      if (b && b.textContent !== c.text) b.textContent = c.text;
      e.classList.toggle('late', c.late);
    }
  }
  setInterval(tick, 1000);

  // --- who ---------------------------------------------------------------------------------
  let me = null;
  async function signedIn() {
    me = await get('/work/api/me');
    const role = { command_center: '指挥中心 command center', viewer: '只读 viewer',
      department: '部门 department', supervisor: '监督员 supervisor' }[me.role] || me.role;
    const who = $('#who');
    if (who) {
      who.textContent = '';
      who.append(el('b', { text: me.name }), ` · ${role} · `,
        me.department_name ? me.department_name + (me.unit ? ` · ${me.unit}` : '') : me.scope_text);
    }
    const nav = $('#nav');
    if (nav) {
      nav.textContent = '';
      const links = { console: ['/console', '指挥中心 Console'], inbox: ['/inbox', '部门工单 Inbox'],
        m: ['/m', '监督员 Supervisor'] };
      for (const p of me.pages) nav.append(el('a', { href: links[p][0], text: links[p][1] }));
      if (me.role === 'command_center' || me.role === 'viewer') {
        nav.append(el('a', { href: '/', text: '大屏 Dashboard' }));
      }
    }
    return me;
  }
  const may = (action) => me && me.actions.includes(action);

  // --- live --------------------------------------------------------------------------------
  function live(onCase) {
    const dot = $('#live');
    const es = new EventSource('/work/events');
    es.addEventListener('open', () => dot && dot.classList.remove('off'));
    es.addEventListener('error', () => dot && dot.classList.add('off'));
    let timer = null;
    es.addEventListener('case', (m) => {
      const data = JSON.parse(m.data);
      clearTimeout(timer);
      timer = setTimeout(() => onCase(data), 300);
    });
    return es;
  }

  // --- lists -------------------------------------------------------------------------------
  /** Whether ``items`` differ from what ``box`` shows (lists are redrawn only then, so a live
      event elsewhere does not move what the user is about to click). */
  function changed(box, items, extra) {
    const sig = JSON.stringify([extra || null, items.map((c) => {
      const { late_seconds: _l, ...rest } = c; return rest;
    })]);
    if (box.dataset.sig === sig) return false;
    box.dataset.sig = sig;
    return true;
  }
  function stateTag(s) { return el('span', { class: 'state', text: STATES[s] || s }); }
  function caseItem(c, extra) {
    const li = el('li', { dataset: { caseId: c.case_id } },
      el('div', { class: 'l1' },
        el('span', { class: 'what', text: c.type_name }),
        stateTag(c.state)),
      el('div', { class: 'meta' },
        el('span', { class: 'mono', text: c.case_id }), ' · ', c.street_name, ' · ',
        c.department_name, c.priority !== 'normal' ? el('span', { class: 'badge bad',
          text: PRIORITY[c.priority] || c.priority }) : null),
      el('div', { class: 'meta' }, c.due ? due(c.due, STAGES[c.stage] || c.stage) : null),
      el('div', { class: 'desc', text: c.description || '' }));
    if (extra) li.append(extra);
    return li;
  }

  // --- map ---------------------------------------------------------------------------------
  let geo = null;
  async function streets() {
    if (!geo) {
      const r = await fetch('/work/api/map.geojson');
      geo = r.ok ? await r.json() : { features: [] };
    }
    return geo;
  }
  /** Draw the district's streets on ``canvas`` with a marker at [lon, lat]; ``onTap(lon, lat)``
      makes a tap choose a place. */
  async function drawMap(canvas, point, onTap) {
    const g = await streets();
    const rings = [];
    for (const f of g.features || []) {
      const gm = f.geometry || {};
      const polys = gm.type === 'Polygon' ? [gm.coordinates] : gm.type === 'MultiPolygon'
        ? gm.coordinates : [];
      for (const poly of polys) rings.push(poly[0]);
    }
    let [x0, y0, x1, y1] = [180, 90, -180, -90];
    for (const r of rings) for (const [x, y] of r) {
      x0 = Math.min(x0, x); x1 = Math.max(x1, x); y0 = Math.min(y0, y); y1 = Math.max(y1, y);
    }
    if (!rings.length && point) { [x0, y0, x1, y1] = [point[0] - .01, point[1] - .01,
      point[0] + .01, point[1] + .01]; }
    const dpr = window.devicePixelRatio || 1;
    const w = canvas.clientWidth || 300, h = canvas.clientHeight || 200;
    canvas.width = w * dpr; canvas.height = h * dpr;
    const k = Math.cos(((y0 + y1) / 2) * Math.PI / 180);
    const s = Math.min((w - 16) / ((x1 - x0) * k || 1), (h - 16) / ((y1 - y0) || 1));
    const ox = (w - (x1 - x0) * k * s) / 2, oy = (h - (y1 - y0) * s) / 2;
    const px = (x, y) => [ox + (x - x0) * k * s, h - oy - (y - y0) * s];
    const ctx = canvas.getContext('2d');
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, w, h);
    ctx.strokeStyle = '#8da2c0'; ctx.fillStyle = '#f8fafc'; ctx.lineWidth = 1;
    for (const r of rings) {
      ctx.beginPath();
      r.forEach(([x, y], i) => { const [a, b] = px(x, y); if (i) ctx.lineTo(a, b); else ctx.moveTo(a, b); });
      ctx.closePath(); ctx.fill(); ctx.stroke();
    }
    if (point) {
      const [a, b] = px(point[0], point[1]);
      ctx.fillStyle = '#c62235'; ctx.beginPath(); ctx.arc(a, b, 6, 0, 2 * Math.PI); ctx.fill();
      ctx.strokeStyle = '#fff'; ctx.lineWidth = 2; ctx.stroke();
    }
    if (onTap && !canvas.dataset.tap) {
      canvas.dataset.tap = '1';
      canvas.addEventListener('click', (ev) => {
        const r = canvas.getBoundingClientRect();
        const a = ev.clientX - r.left, b = ev.clientY - r.top;
        const m = canvas._inv;
        onTap(m.x0 + (a - m.ox) / (m.k * m.s), m.y0 + (m.h - m.oy - b) / m.s);
      });
    }
    canvas._inv = { x0, y0, k, s, ox, oy, h };
  }

  // --- photos ------------------------------------------------------------------------------
  /** A file input that uploads each chosen photo; ``urls()`` gives the accepted ones. */
  function photoInput(id, label, opts) {
    const urls = [];
    const input = el('input', { id, type: 'file', accept: 'image/*', multiple: true,
      capture: (opts && opts.capture) ? 'environment' : null });
    const thumbs = el('div', { class: 'photos' });
    const msg = el('div', { class: 'msg', id: id + '-msg', role: 'alert' });
    input.addEventListener('change', async () => {
      msg.textContent = ''; msg.className = 'msg';
      for (const f of input.files) {
        try {
          const p = await upload(f);
          urls.push(p.url);
          thumbs.append(el('figure', {}, el('img', { src: p.url, alt: f.name }),
            p.taken_at ? `拍摄 taken ${p.taken_at}` : ''));
          msg.className = 'msg ok';
          msg.textContent = `已上传 ${urls.length} 张照片 · ${urls.length} photo(s) uploaded`;
        } catch (err) {
          msg.className = 'msg err';
          msg.textContent = `照片被拒绝 Photo refused (${f.name}): ${err.message}`;
        }
      }
      input.value = '';
    });
    const node = el('div', { class: 'photo-input' }, el('label', { for: id, text: label }),
      input, thumbs, msg);
    return { node, urls: () => urls.slice(), busy: () => false };
  }

  // --- the case page -----------------------------------------------------------------------
  let departments = null;
  async function deptList() {
    if (!departments) departments = (await get('/work/api/departments')).items;
    return departments;
  }

  /** Fill ``box`` with case ``id``; ``onDone()`` after an action the engine applied. */
  async function showCase(box, id, onDone) {
    box.textContent = '';
    box.append(el('p', { class: 'empty', text: '加载中 Loading…' }));
    let d;
    try { d = await get('/work/api/cases/' + encodeURIComponent(id)); } catch (err) {
      box.textContent = '';
      box.append(el('p', { class: 'msg err', text: err.message }));
      return;
    }
    box.textContent = '';
    box.dataset.caseId = d.case_id;
    box.dataset.state = d.state;
    box.dataset.last = (d.history || []).length ? d.history[d.history.length - 1].type : '';
    const dl = (rows) => el('dl', {}, rows.filter((r) => r[1]).map(([k, v]) =>
      [el('dt', { text: k }), el('dd', {}, v)]));
    const canvas = el('canvas', { class: 'map', id: 'case-map' });
    box.append(
      el('div', { class: 'case' },
        el('h2', { id: 'c-title' }, d.type_name, ' ', stateTag(d.state)),
        el('div', { class: 'sub' }, el('span', { class: 'mono', id: 'c-id', text: d.case_id }),
          ` · ${PRIORITY[d.priority] || d.priority}`,
          d.arbitration ? el('span', { class: 'badge bad', text: '仲裁 arbitration' }) : null,
          d.extension_minutes ? el('span', { class: 'badge',
            text: `申请延期 +${d.extension_minutes} min` }) : null),
        el('section', {}, el('h3', { text: '描述 Description' }),
          el('div', { class: 'desc-text', id: 'c-desc', text: d.description || '—' })),
        el('section', {}, el('h3', { text: '位置 Where' }),
          dl([['区 District', d.district_name], ['街镇 Street', d.street_name],
            ['社区 Community', d.community_name], ['地址 Address', d.address],
            ['坐标 WGS-84', d.lon != null ? `${d.lon.toFixed(6)}, ${d.lat.toFixed(6)}` : null]]),
          canvas),
        el('section', {}, el('h3', { text: '派遣决定 Decision' }),
          dl([['类型 Type', d.type_name], ['部门 Department', d.department_name],
            ['单位 Unit', d.unit_name ? `${d.unit_name} (${d.unit})` : d.unit],
            ['结案标准 Closing standard', d.closing_standard]]),
          el('ul', { class: 'why', id: 'c-why' }, (d.why || []).map((s) => el('li', { text: s })))),
        el('section', {}, el('h3', { text: '时限 Deadlines' }),
          el('dl', { id: 'c-deadlines' }, Object.entries(d.deadlines || {}).map(([k, v]) =>
            [el('dt', { text: STAGES[k] || k }), el('dd', {}, k === d.stage ? due(v) : fmt(v))])),
          d.new_due ? el('p', { class: 'msg ok', id: 'c-new-due' },
            `批准后处置时限 Due if granted: ${fmt(d.new_due)}`) : null),
        el('section', {}, el('h3', { text: '照片 Photos' }),
          d.photos.length ? el('div', { class: 'photos', id: 'c-photos' }, d.photos.map((p) =>
            el('figure', {}, el('img', { src: p.url, alt: p.what }),
              `${p.what === 'report' ? '上报 report' : '证据 evidence'} · ${fmt(p.at)}`)))
            : el('p', { class: 'empty', text: '无 none' })),
        el('section', {}, el('h3', { text: '处理过程 History' }),
          el('ol', { class: 'timeline', id: 'c-history' }, (d.history || []).map((h) =>
            el('li', {}, `${fmt(h.at)} · ${EVENTS[h.type] || h.type}`,
              h.actor_name ? ` · ${h.actor_name}` : '',
              h.reason ? ` — ${h.reason}` : '')))),
        actionsFor(d, onDone, () => showCase(box, id, onDone))));
    tick();
    if (d.lon != null) drawMap(canvas, [d.lon, d.lat]);
  }

  /** Re-read the open case after a live event, unless its action forms hold input. */
  function refreshCase(box, id, onDone, event) {
    const acts = box.querySelector('#c-actions');
    const shown = box.dataset.state;
    if (event && shown && event.state_to === shown) {  // a warning, an order: no new step
      if (event.type === box.dataset.last) return;  // the step already shown
      const note = box.querySelector('#c-updated');
      if (note) note.textContent = `新动态 New: ${EVENTS[event.type] || event.type}`;
      return;
    }
    if (acts && acts.dataset.dirty) {
      const note = box.querySelector('#c-updated');
      if (note) note.textContent = '案件已更新，操作后刷新 The case changed; it refreshes after your action';
      return;
    }
    showCase(box, id, onDone);
  }

  function resultMsg(node, res) {
    if (res.ok) {
      node.className = 'msg ok';
      node.textContent = res.status === 202 ? '已提交，等待处理 Sent; the engine has not answered yet'
        : `已完成 Done: ${STATES[res.data.state] || res.data.state}`;
    } else {
      node.className = 'msg err';
      node.textContent = `未执行 Refused (${res.status}): ${res.data.error || ''}`;
    }
  }

  let flash = null; // the last action's answer, shown again after the case page reloads
  async function act(caseId, body, msg, onDone) {
    msg.className = 'msg';
    msg.textContent = '发送中 Sending…';
    const res = await post(`/api/v1/cases/${encodeURIComponent(caseId)}/actions`, body);
    resultMsg(msg, res);
    flash = { caseId, res };
    if (res.ok && onDone) onDone(res);
    return res;
  }

  /** The action forms the case's ``actions`` allow (none: read-only). */
  function actionsFor(d, onDone, reload) {
    const acts = d.actions || [];
    const box = el('section', { class: 'actions', id: 'c-actions' },
      el('h3', { text: acts.length ? '操作 Actions' : '只读 Read-only' }));
    const msg = el('div', { class: 'msg', id: 'act-msg', role: 'status' });
    const dirty = () => { box.dataset.dirty = '1'; };
    box.addEventListener('input', dirty);
    box.addEventListener('change', dirty);
    const done = (res) => { if (onDone) onDone(res); reload(); };
    const send = (body) => act(d.case_id, body, msg, done);
    const has = (a) => acts.includes(a);
    const reason = (id, ph) => el('input', { id, placeholder: ph, size: 28 });
    if (has('classify')) {
      const code = el('input', { id: 'f-type', placeholder: '类型代码 type code', size: 10 });
      box.append(el('div', { class: 'act' }, el('label', { text: '分类 Classify' }),
        el('div', { class: 'inline' }, (d.suggestions || []).map((s) => el('button', {
          class: 'suggest', dataset: { code: s.type_code },
          onclick: () => send({ action: 'classify', type_code: s.type_code }),
        }, `${s.type_name} · ${Math.round(s.score * 100)}%`)), code,
        el('button', { id: 'act-classify', class: 'sec',
          onclick: () => send({ action: 'classify', type_code: code.value.trim() }) },
        '归类 Classify'))));
    }
    if (has('dispatch')) {
      const sel = el('select', { id: 'f-dept' });
      deptList().then((ds) => {
        for (const x of ds) sel.append(el('option', { value: x.code, selected: x.code === d.department },
          `${x.zh} ${x.en} (${x.code})`));
      });
      const why = reason('f-dispatch-reason', '说明 note');
      box.append(el('div', { class: 'act' },
        el('label', { text: d.arbitration ? '仲裁：改派部门 Arbitration: dispatch to'
          : '派遣至 Dispatch to' }),
        el('div', { class: 'inline' }, sel, why,
          el('button', { id: 'act-dispatch', onclick: () => send({ action: 'dispatch',
            department: sel.value, reason: why.value }) },
          d.arbitration ? '仲裁派遣 Arbitrate' : d.state === 'returned' ? '重新派遣 Re-dispatch'
            : '派遣 Dispatch'))));
    }
    if (has('reject')) {
      const why = reason('f-reject-reason', '不予立案理由 reason');
      box.append(el('div', { class: 'act inline' }, why, el('button', { id: 'act-reject',
        class: 'bad', onclick: () => send({ action: 'reject', reason: why.value }) },
      '不予立案 Reject')));
    }
    if (has('grant_extension')) {
      box.append(el('div', { class: 'act inline' },
        el('button', { id: 'act-grant_extension', onclick: () => send({ action: 'grant_extension' }) },
          `批准延期 Grant +${d.extension_minutes} min → ${fmt(d.new_due)}`),
        has('deny_extension') ? el('button', { id: 'act-deny_extension', class: 'bad',
          onclick: () => send({ action: 'deny_extension' }) }, '驳回延期 Deny') : null));
    }
    if (has('supervise')) {
      box.append(el('div', { class: 'act inline' }, el('button', { id: 'act-supervise',
        class: 'sec', onclick: () => send({ action: 'supervise', stage: d.stage || 'dispose' }) },
      '督办 Issue supervision order')));
    }
    if (has('close')) {
      box.append(el('div', { class: 'act inline' }, el('button', { id: 'act-close',
        onclick: () => send({ action: 'close' }) }, '结案 Close')));
    }
    if (has('accept')) {
      box.append(el('div', { class: 'act inline' }, el('button', { id: 'act-accept',
        onclick: () => send({ action: 'accept' }) }, '签收 Accept')));
    }
    if (has('dispose')) {
      const photos = photoInput('f-dispose-photos', '处置后照片 After-photos', { capture: true });
      const why = reason('f-dispose-reason', '处置说明 what was done');
      box.append(el('div', { class: 'act' }, el('label', { text: '处置反馈 Disposal' }),
        photos.node, el('div', { class: 'inline' }, why, el('button', { id: 'act-dispose',
          onclick: () => send({ action: 'dispose', evidence_photos: photos.urls(),
            reason: why.value }) }, '处置完成 Dispose'))));
    }
    if (has('return')) {
      const why = reason('f-return-reason', '退回理由 reason (required)');
      box.append(el('div', { class: 'act inline' }, why, el('button', { id: 'act-return',
        class: 'bad', onclick: () => send({ action: 'return', reason: why.value }) },
      '退回 Return')));
    }
    if (has('request_extension')) {
      const mins = el('input', { id: 'f-ext-minutes', type: 'number', min: 1, value: 120, size: 6 });
      const why = reason('f-ext-reason', '延期理由 reason');
      box.append(el('div', { class: 'act' }, el('label', { text: '申请延期 Request extension (分钟 minutes)' }),
        el('div', { class: 'inline' }, mins, why, el('button', { id: 'act-request_extension',
          class: 'sec', onclick: () => send({ action: 'request_extension',
            extension_minutes: Number(mins.value), reason: why.value }) }, '申请延期 Request'))));
    }
    if (has('verify')) {
      const photos = photoInput('f-verify-photos', '核查照片 Photo', { capture: true });
      const why = reason('f-verify-reason', '核查意见 note');
      box.append(el('div', { class: 'act' }, el('label', { text: '核查 Verify' }), photos.node,
        el('div', { class: 'inline' }, why,
          el('button', { id: 'act-verify-pass', onclick: () => send({ action: 'verify',
            passed: true, evidence_photos: photos.urls(), reason: why.value }) }, '核查通过 Pass'),
          el('button', { id: 'act-verify-fail', class: 'bad', onclick: () => send({
            action: 'verify', passed: false, evidence_photos: photos.urls(), reason: why.value }) },
          '核查不通过 Fail'))));
    }
    if (flash && flash.caseId === d.case_id) { resultMsg(msg, flash.res); flash = null; }
    box.append(msg, el('p', { class: 'en', id: 'c-updated' }));
    return box;
  }

  return { el, $, get, post, upload, fmt, due, tick, countdown, engineNow, signedIn, may, live,
    caseItem, changed, stateTag, drawMap, photoInput, showCase, refreshCase, act, resultMsg, STATES, PRIORITY,
    get me() { return me; } };
})();
