/* The supervisor's phone page: report a problem (type picker, device location or a tap on the
   map, photos from the camera, "fixed on the spot"), my reports, verification tasks. */
'use strict';

(() => {
  const { el, $ } = W;
  let types = [];
  let chosen = null;
  let where = null;
  let open = null;
  const photos = W.photoInput('photos', '现场照片 Photos', { capture: true });
  const after = W.photoInput('after-photos', '处置后照片 After-photos', { capture: true });
  $('#photos-box').append(photos.node);
  $('#after-box').append(after.node);

  function tab(name) {
    for (const t of ['report', 'mine', 'verify']) {
      $(`#tab-${t}`).classList.toggle('on', t === name);
      $(`#pane-${t}`).classList.toggle('hidden', t !== name);
    }
    if (name === 'report') { $('#case').classList.add('hidden'); drawMap(); }
  }
  for (const t of ['report', 'mine', 'verify']) $(`#tab-${t}`).addEventListener('click', () => tab(t));

  function findTypes() {
    const q = $('#type-q').value.trim().toLowerCase();
    const list = $('#type-list');
    list.textContent = '';
    if (!q) return;
    const hits = types.filter((t) => t.zh.includes(q) || t.en.toLowerCase().includes(q)
      || t.code.startsWith(q) || t.keywords.some((k) => k.includes(q))).slice(0, 12);
    if (!hits.length) list.append(el('span', { class: 'en', text: '没有匹配 no match' }));
    for (const t of hits) {
      list.append(el('button', { type: 'button', dataset: { code: t.code },
        onclick: () => choose(t) }, `${t.zh} · ${t.en} (${t.code})`));
    }
  }
  function choose(t) {
    chosen = t;
    $('#type-chosen').textContent = `已选 Chosen: ${t.zh} · ${t.en} (${t.code})`
      + (t.self_disposable ? ' · 可自行处置 self-disposable' : '');
    $('#fixed-box').classList.toggle('hidden', !t.self_disposable);
    $('#type-list').textContent = '';
  }
  $('#type-q').addEventListener('input', findTypes);

  function setWhere(lon, lat, how) {
    where = { lon: Number(lon.toFixed(7)), lat: Number(lat.toFixed(7)) };
    $('#where').textContent = `${how}: ${where.lon.toFixed(6)}, ${where.lat.toFixed(6)} (WGS-84)`;
    drawMap();
  }
  function drawMap() {
    W.drawMap($('#m-map'), where ? [where.lon, where.lat] : null,
      (lon, lat) => setWhere(lon, lat, '地图点选 tapped on the map'));
  }
  $('#geo').addEventListener('click', () => {
    if (!navigator.geolocation) { $('#where').textContent = '此设备不能定位 no location on this device'; return; }
    $('#where').textContent = '定位中 Locating…';
    navigator.geolocation.getCurrentPosition(
      (pos) => setWhere(pos.coords.longitude, pos.coords.latitude, '设备定位 device location'),
      (err) => { $('#where').textContent = `定位失败 Location failed: ${err.message}；请在地图上点选 tap the map`; },
      { enableHighAccuracy: true, timeout: 10000 });
  });

  function uuid() {
    if (crypto.randomUUID) return crypto.randomUUID();
    const b = crypto.getRandomValues(new Uint8Array(16));
    b[6] = (b[6] & 0x0f) | 0x40; b[8] = (b[8] & 0x3f) | 0x80;
    const h = [...b].map((x) => x.toString(16).padStart(2, '0')).join('');
    return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
  }

  $('#submit').addEventListener('click', async () => {
    const msg = $('#report-msg');
    const missing = [!chosen && '类型 type', !where && '位置 location'].filter(Boolean);
    if (missing.length) {
      msg.className = 'msg err';
      msg.textContent = `请补充 Please add: ${missing.join('、')}`;
      return;
    }
    const fixed = chosen.self_disposable && $('#fixed').checked;
    const report = { schema: 'grid.report/1', report_id: uuid(), source: 'supervisor',
      reporter_id: W.me.name, reported_at: new Date().toISOString(),
      location: { lon: where.lon, lat: where.lat, crs: 'wgs84' }, type_code: chosen.code,
      description: $('#desc').value, photos: photos.urls() };
    if ($('#component').value.trim()) report.component_id = $('#component').value.trim();
    if ($('#address').value.trim()) report.address = $('#address').value.trim();
    if (fixed) { report.self_disposed = true; report.evidence_photos = after.urls(); }
    $('#submit').disabled = true;
    const res = await W.post('/api/v1/reports', report);
    $('#submit').disabled = false;
    if (res.ok) {
      msg.className = 'msg ok';
      msg.textContent = '';
      msg.append('已上报 Reported · 上报号 report ', el('span', { class: 'mono', id: 'report-id',
        text: res.data.report_id }));
      loadMine();
    } else {
      msg.className = 'msg err';
      msg.textContent = `未受理 Not accepted (${res.status}): ${res.data.error || ''}`;
    }
  });

  function list(box, items, empty) {
    if (!W.changed(box, items)) return;
    box.textContent = '';
    if (!items.length) box.append(el('li', { class: 'empty', text: empty }));
    for (const c of items) {
      const li = W.caseItem(c);
      li.addEventListener('click', () => select(c.case_id));
      box.append(li);
    }
  }
  async function loadMine() {
    const d = await W.get('/work/api/mine');
    list($('#mine-list'), d.reports, '还没有上报 No reports yet');
    list($('#verify-list'), d.verify, '没有核查任务 Nothing to verify');
    $('#n-mine').textContent = `(${d.reports.length})`;
    $('#n-verify').textContent = `(${d.verify.length})`;
    W.tick();
  }
  function select(id) {
    open = id;
    $('#case').classList.remove('hidden');
    W.showCase($('#case'), id, () => loadMine()).then(() => $('#case').scrollIntoView());
  }

  W.signedIn().then(async () => {
    types = (await W.get('/work/api/types')).items;
    findTypes();  // what was typed while the types were loading
    drawMap();
    await loadMine();
    W.live((e) => { loadMine(); if (open && e.case_id === open) W.refreshCase($('#case'), open, () => loadMine(), e); });
  }).catch((err) => { document.body.append(el('p', { class: 'msg err', text: err.message })); });
})();
