// The sample app's page: one EventSource on /events, which sends the whole
// state after every change. Text from Presence is set with textContent.
function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined) e.textContent = text;
  if (cls) e.className = cls;
  return e;
}
function render(s) {
  document.getElementById('channel').textContent = s.channel;
  const users = document.getElementById('users');
  const to = document.getElementById('to');
  const chosen = to.value;
  if (s.users && s.users.length) {
    users.replaceChildren(...s.users.map((u) => {
      const tr = el('tr', undefined, u.status);
      tr.dataset.puid = u.puid;
      const st = el('td', undefined, 'status');
      st.append(el('span', undefined, 'dot'), u.status === 'unavailable' ? 'away' : u.status);
      tr.append(el('td', u.name, 'name'), st, el('td', u.message || '', 'message'),
        el('td', u.at && !u.at.startsWith('0001') ? new Date(u.at).toLocaleTimeString() : '—'));
      return tr;
    }));
    to.replaceChildren(...s.users.map((u) => { const o = el('option', u.name); o.value = u.puid; return o; }));
    if (chosen) to.value = chosen;
  }
  document.getElementById('events').replaceChildren(...(s.events || []).slice().reverse().map((e) => {
    const li = el('li', undefined, e.kind);
    li.append(el('time', new Date(e.at).toLocaleTimeString()), e.text);
    return li;
  }));
}
new EventSource('/events').onmessage = (m) => render(JSON.parse(m.data));
