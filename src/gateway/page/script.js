// The status page's behaviour (ui.rs includes it): groups that open to
// show their metrics (fetched on demand, remembered across reloads), the
// filter, and the delete buttons.

// A group's metrics are fetched when it is opened, once; whether it is
// open is remembered for the session.
for (const d of document.querySelectorAll('details[data-path]')) {
  const key = 'coll_' + d.dataset.path;
  d.addEventListener('toggle', async () => {
    sessionStorage.setItem(key, d.open);
    if (!d.open || d.dataset.loaded) return;
    d.dataset.loaded = '1';
    const pre = d.querySelector('pre');
    const r = await fetch(d.dataset.path);
    pre.textContent = r.ok ? await r.text() : 'HTTP ' + r.status + ': ' + await r.text();
  });
  if (sessionStorage.getItem(key) === 'true') d.open = true;
}

// The filter matches a group's labels, or any of its metric names: rows
// carry the positions of their names in the page's sorted list of names.
const filter = document.getElementById('filter');
const names = JSON.parse(document.getElementById('names').textContent);
if (filter) {
  filter.addEventListener('input', () => {
    const q = filter.value.toLowerCase();
    const hits = new Set();
    names.forEach((name, i) => {
      if (name.includes(q)) hits.add(i + '');
    });
    let shown = 0;
    for (const row of document.querySelectorAll('tr.group')) {
      const match = row.dataset.text.includes(q) || row.dataset.f.split(' ').some((i) => hits.has(i));
      row.style.display = match ? '' : 'none';
      if (match) shown++;
    }
    document.getElementById('shown').textContent = shown;
  });
}

// One group: deleted in place, without a reload.
for (const b of document.querySelectorAll('button.delete')) {
  b.addEventListener('click', async () => {
    if (!confirm('Delete group ' + b.dataset.name + ' and all its metrics?')) return;
    const r = await fetch(b.dataset.path, { method: 'DELETE' });
    if (r.status === 202) {
      sessionStorage.removeItem('coll_' + b.dataset.path);
      const row = b.closest('tr');
      row.parentNode.removeChild(row);
      const count = document.getElementById('count');
      count.textContent = Number(count.textContent) - 1;
    } else {
      alert('Delete failed: HTTP ' + r.status + ' ' + await r.text());
    }
  });
}

// A whole job (the admin API's delete by selector), then a reload.
for (const b of document.querySelectorAll('button.deljob')) {
  b.addEventListener('click', async () => {
    if (!confirm('Delete all ' + b.dataset.n + ' groups of job ' + b.dataset.job + ' and all their metrics?')) return;
    const selector = '{job=' + JSON.stringify(b.dataset.job) + '}';
    const r = await fetch('api/v1/admin/delete?match[]=' + encodeURIComponent(selector), { method: 'POST' });
    if (r.ok) location.reload();
    else alert('Delete failed: HTTP ' + r.status + ' ' + await r.text());
  });
}

// Every group (the admin API's wipe), then a reload.
for (const b of document.querySelectorAll('button.wipe')) {
  b.addEventListener('click', async () => {
    if (!confirm('Delete all ' + b.dataset.n + ' groups and all their metrics?')) return;
    const r = await fetch('api/v1/admin/wipe', { method: 'PUT' });
    if (r.ok) location.reload();
    else alert('Delete failed: HTTP ' + r.status + ' ' + await r.text());
  });
}
