/* The department inbox: open work orders by due time with countdowns and overdue marks; the
   case page with accept, dispose (after-photos), return, request extension. */
'use strict';

(() => {
  const { el, $ } = W;
  let open = null;

  async function load() {
    let data;
    try { data = await W.get('/work/api/inbox'); } catch (err) {
      $('#list-msg').className = 'msg err'; $('#list-msg').textContent = err.message; return;
    }
    $('#count').textContent = `(${data.count})`;
    const list = $('#list');
    if (!W.changed(list, data.items)) return;
    list.textContent = '';
    if (!data.items.length) list.append(el('li', { class: 'empty', text: '无待办 Nothing open' }));
    for (const c of data.items) {
      const marks = el('div', { class: 'row-actions' });
      if (c.overdue) marks.append(el('span', { class: 'badge bad overdue', text: '超期 overdue' }));
      if (c.extension_minutes) marks.append(el('span', { class: 'badge', text: `延期申请中 extension asked +${c.extension_minutes} min` }));
      if (c.extensions) marks.append(el('span', { class: 'badge', text: `已延期 extended ×${c.extensions}` }));
      if (c.state === 'rework') marks.append(el('span', { class: 'badge bad', text: '返工 rework' }));
      const li = W.caseItem(c, marks.childNodes.length ? marks : null);
      if (c.case_id === open) li.classList.add('sel');
      li.addEventListener('click', () => select(c.case_id));
      list.append(li);
    }
    W.tick();
  }

  function select(id) {
    open = id;
    for (const li of document.querySelectorAll('#list li')) li.classList.toggle('sel', li.dataset.caseId === id);
    history.replaceState(null, '', '#case=' + encodeURIComponent(id));
    W.showCase($('#case'), id, () => load()).then(() => {
      if (window.innerWidth < 900) $('#case').scrollIntoView();  // one column: go to the case
    });
  }

  W.signedIn().then(async () => {
    await load();
    const m = /#case=([^&]+)/.exec(location.hash);
    if (m) select(decodeURIComponent(m[1]));
    W.live((e) => { load(); if (open && e.case_id === open) W.refreshCase($('#case'), open, () => load(), e); });
  }).catch((err) => { document.body.append(el('p', { class: 'msg err', text: err.message })); });
})();
