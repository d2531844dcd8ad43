/* The command-center console: work queues with counts, filters and search, the case page.
   Actions go to the HTTP API (work.js); a viewer gets no buttons. */
'use strict';

(() => {
  const { el, $ } = W;
  const QUEUES = [
    ['list', '全部在办 Open cases'], ['triage', '待分类 Triage'],
    ['dispatch', '待派遣 Awaiting dispatch'], ['returned', '退回 Returned'],
    ['extension', '延期申请 Extension requests'], ['verified', '待结案 Verified'],
    ['overdue', '超期 Overdue'],
  ];
  let current = 'list';
  let data = null;
  let open = null;

  function params() {
    const p = new URLSearchParams();
    const v = (id) => $(id).value.trim();
    if (v('#f-street')) p.set('street', v('#f-street'));
    if (v('#f-department')) p.set('department', v('#f-department'));
    if (v('#f-type-filter')) p.set('type', v('#f-type-filter'));
    if (v('#f-state')) p.set('state', v('#f-state'));
    if (v('#q')) p.set('q', v('#q'));
    return p;
  }

  async function load() {
    try {
      data = await W.get('/work/api/console?' + params());
    } catch (err) {
      $('#list-msg').className = 'msg err';
      $('#list-msg').textContent = err.message;
      return;
    }
    drawQueues();
    drawList();
  }

  function drawQueues() {
    const box = $('#queues');
    box.textContent = '';
    for (const [key, label] of QUEUES) {
      const q = key === 'list' ? data.list : data.queues[key];
      const n = key === 'list' ? q.total : q.count;
      box.append(el('button', { type: 'button', id: `q-${key}`,
        class: (key === current ? 'on ' : '') + (key !== 'list' && n ? 'hot' : ''),
        onclick: () => { current = key; drawQueues(); drawList(); } },
      label, el('span', { class: 'n', text: n == null ? '…' : String(n) })));
    }
  }

  function rowActions(key, c) {
    const box = el('div', { class: 'row-actions' });
    const msg = el('span', { class: 'msg' });
    const send = (body) => W.act(c.case_id, body, msg, () => load());
    const stop = (fn) => (ev) => { ev.stopPropagation(); fn(); };
    if (key === 'triage' && W.may('classify')) {
      for (const s of c.suggestions || []) {
        box.append(el('button', { class: 'suggest', dataset: { code: s.type_code },
          onclick: stop(() => send({ action: 'classify', type_code: s.type_code })) },
        `${s.type_name} ${Math.round(s.score * 100)}%`));
      }
      if (W.may('reject')) {
        box.append(el('button', { class: 'bad reject', onclick: stop(() => send({
          action: 'reject', reason: '无效上报 not a city-management case' })) }, '不予立案 Reject'));
      }
    }
    if (key === 'returned') {
      box.append(c.arbitration ? el('span', { class: 'badge bad arb',
        text: `仲裁 Arbitration · 退回 ${c.returns} 次 returned ${c.returns}×` })
        : el('span', { class: 'badge', text: `退回 returned ${c.returns}×` }));
    }
    if (key === 'extension') {
      box.append(el('span', { class: 'badge', text: `+${c.extension_minutes} min → ${W.fmt(c.new_due)}` }));
      if (W.may('grant_extension')) {
        box.append(el('button', { class: 'grant', onclick: stop(() => send({ action: 'grant_extension' })) },
          '批准 Grant'), el('button', { class: 'bad deny', onclick: stop(() => send({ action: 'deny_extension' })) },
          '驳回 Deny'));
      }
    }
    if (key === 'verified' && W.may('close')) {
      box.append(el('button', { class: 'close', onclick: stop(() => send({ action: 'close' })) }, '结案 Close'));
    }
    if (key === 'overdue') {
      box.append(el('span', { class: 'badge bad', text: `超期 late ${Math.round(c.late_seconds / 60)} min` }));
      if (W.may('supervise')) {
        box.append(el('button', { class: 'sec supervise', onclick: stop(() => send({
          action: 'supervise', stage: c.stage || 'dispose' })) }, '督办 Supervise'));
      }
    }
    box.append(msg);
    return box.childNodes.length > 1 ? box : null;
  }

  function drawList() {
    const list = $('#list');
    const q = current === 'list' ? data.list : data.queues[current];
    if (!W.changed(list, q.items, current)) return;
    list.textContent = '';
    $('#list-title').textContent = current === 'list' ? data.list.title
      : QUEUES.find((x) => x[0] === current)[1];
    if (!q.items.length) list.append(el('li', { class: 'empty', text: '无 none' }));
    for (const c of q.items) {
      const li = W.caseItem(c, rowActions(current, c));
      if (c.case_id === open) li.classList.add('sel');
      li.addEventListener('click', () => select(c.case_id));
      list.append(li);
    }
    W.tick();
  }

  function select(id) {
    open = id;
    for (const li of document.querySelectorAll('#list li')) {
      li.classList.toggle('sel', li.dataset.caseId === id);
    }
    history.replaceState(null, '', '#case=' + encodeURIComponent(id));
    W.showCase($('#case'), id, () => load()).then(() => {
      if (window.innerWidth < 900) $('#case').scrollIntoView();  // one column: go to the case
    });
  }

  async function filters() {
    const [types, depts, geo] = await Promise.all([W.get('/work/api/types'),
      W.get('/work/api/departments'), fetch('/work/api/map.geojson').then((r) => r.json())]);
    for (const t of types.items) $('#f-type-filter').append(el('option', { value: t.code }, `${t.zh} ${t.en} (${t.code})`));
    for (const d of depts.items) $('#f-department').append(el('option', { value: d.code }, `${d.zh} ${d.en} (${d.code})`));
    const streets = (geo.features || []).map((f) => f.properties).filter((p) => p && p.code)
      .sort((a, b) => String(a.code).localeCompare(String(b.code)));
    for (const s of streets) $('#f-street').append(el('option', { value: s.code }, `${s.name || ''} (${s.code})`));
    const states = [['open', '在办 open'], ...Object.entries(W.STATES)];
    for (const [k, v] of states) $('#f-state').append(el('option', { value: k }, v));
  }

  $('#filters').addEventListener('submit', (ev) => { ev.preventDefault(); current = 'list'; load(); });
  document.addEventListener('keydown', (ev) => {
    if (ev.key === 'Escape') { open = null; $('#case').textContent = ''; history.replaceState(null, '', location.pathname); }
  });

  W.signedIn().then(async () => {
    await filters();
    await load();
    const m = /#case=([^&]+)/.exec(location.hash);
    if (m) select(decodeURIComponent(m[1]));
    W.live((e) => { load(); if (open && e.case_id === open) W.refreshCase($('#case'), open, () => load(), e); });
  }).catch((err) => { document.body.append(el('p', { class: 'msg err', text: err.message })); });
})();
