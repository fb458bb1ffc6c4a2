// The Flightdeck owner dashboard: one virtual cluster's nodes, live, and the owner's actions.
//
// The page carries no credential. Opened from a one-time link (`pilot open dashboard`), it
// takes the link token out of its own address, redeems it for a session (an HttpOnly,
// SameSite=Strict cookie the page never sees) and keeps the session's CSRF secret in memory,
// sending it with every request. Its actions are the owner API's operations, under
// /dashboard/api/v1/ (the same declarations, gate and audit as signed requests). Live updates
// come as server-sent events, read with fetch so they carry the CSRF header too. Everything
// the Airboss sends is shown as text (textContent), never as markup.

const API = '/dashboard/api';
const CSRF_HEADER = 'X-Flightdeck-CSRF';
const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;
const MAX_AUDIT = 60;

const $ = (id) => document.getElementById(id);
const state = { csrf: null, session: null, target: null, ended: false, names: {}, rows: new Map() };

class ApiError extends Error {
  constructor(code, message, status) {
    super(message);
    this.code = code;
    this.status = status;
  }
}

function setStatus(kind, text) {
  const s = $('status');
  s.dataset.state = kind;
  s.textContent = text;
}

function end(text) {
  state.ended = true;
  setStatus('ended', text);
  for (const b of document.querySelectorAll('main button')) b.disabled = true;
  $('logout').hidden = true;
}

async function api(method, path, data) {
  const headers = { [CSRF_HEADER]: state.csrf ?? '' };
  let url = API + path;
  const init = { method, headers, cache: 'no-store', credentials: 'same-origin' };
  if (method === 'GET') {
    if (data) url += '?' + new URLSearchParams(data);
  } else {
    headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(data ?? {});
  }
  const answer = await fetch(url, init);
  const body = await answer.json().catch(() => ({}));
  if (!answer.ok) {
    const err = new ApiError(body.error ?? `http-${answer.status}`,
                             body.message ?? `HTTP ${answer.status}`, answer.status);
    if (err.code === 'session-unknown' || err.code === 'session-expired') end(`session ended: ${err.message}`);
    throw err;
  }
  return body;
}

// The virtual-side names: `rocks open dashboard` on a virtual frontend puts MAC=name pairs in
// the link's fragment (never sent to the Airboss); kept for this tab's reloads.
function readNames(hash) {
  const names = {};
  for (const [mac, name] of new URLSearchParams(hash)) {
    if (/^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i.test(mac) && NAME.test(name)) names[mac.toLowerCase()] = name;
  }
  return names;
}

// Nodes ------------------------------------------------------------------------------------------

function cell(row, cls, label) {
  const td = document.createElement('td');
  td.className = cls;
  td.dataset.label = label;
  row.append(td);
  return td;
}

function button(text, title, onClick, danger = false) {
  const b = document.createElement('button');
  b.type = 'button';
  b.textContent = text;
  b.title = title;
  if (danger) b.className = 'danger';
  b.addEventListener('click', onClick);
  return b;
}

function makeRow(node) {
  const row = document.createElement('tr');
  row.dataset.host = node.host;
  const name = cell(row, 'host', 'Node');
  name.append(document.createTextNode(node.host));
  if (node.frontend) {
    const tag = document.createElement('span');
    tag.className = 'frontend';
    tag.textContent = 'frontend';
    name.append(tag);
  }
  cell(row, 'vname', 'Virtual-side name');
  cell(row, 'mac', 'MAC');
  cell(row, 'state', 'State');
  cell(row, 'action', 'Boot action');
  cell(row, 'cdrom', 'CD-ROM');
  const actions = cell(row, 'actions', 'Actions');
  const box = document.createElement('div');
  box.className = 'buttons';
  const host = node.host;
  box.append(
    button('On', `power on ${host}`, () => power(host, 'on')),
    button('Off', `power off ${host} (hard)`, () => power(host, 'off'), true),
    button('Install', `reinstall ${host}`, () => power(host, 'install'), true),
    button('Reset', `reset ${host}`, () => power(host, 'reset'), true),
    button('Shutdown', `shut ${host} down (ACPI)`, () => power(host, 'shutdown')),
    button('CD-ROM…', `change the CD-ROM of ${host}`, () => cdrom(host)),
    button('VNC', `open the VNC console of ${host}`, () => consoleOf(host, 'vnc')),
    button('Serial', `open the serial console of ${host}`, () => consoleOf(host, 'serial')),
  );
  for (const b of box.querySelectorAll('button')) b.dataset.action = b.textContent.replace('…', '').toLowerCase();
  actions.append(box);
  return row;
}

function showNodes(nodes) {
  const body = $('nodes').tBodies[0];
  const seen = new Set();
  for (const node of nodes) {
    let row = state.rows.get(node.host);
    if (!row) {
      row = makeRow(node);
      state.rows.set(node.host, row);
    }
    body.append(row); // keeps the Airboss's order (the frontend first); moves, never recreates
    seen.add(node.host);
    row.dataset.state = node.status;
    const vnames = node.macs.map((m) => state.names[m.toLowerCase()]).filter(Boolean);
    row.querySelector('.vname').textContent = vnames.join(' ') || '—';
    row.querySelector('.mac').textContent = node.macs.join(' ') || '—';
    row.querySelector('.state').textContent = node.status;
    row.querySelector('.action').textContent = node.action ?? '—';
    row.querySelector('.cdrom').textContent = node.cdrom ?? 'empty';
  }
  for (const [host, row] of state.rows) {
    if (!seen.has(host)) {
      row.remove();
      state.rows.delete(host);
    }
  }
}

// Audit ------------------------------------------------------------------------------------------

function showAudit(entries) {
  const list = $('audit');
  for (const e of entries) {
    const li = document.createElement('li');
    li.value = e.seq;
    li.className = e.accepted ? 'accepted' : 'refused';
    if (e.token_id === `session:${state.session}`) li.classList.add('mine');
    const at = document.createElement('time');
    at.dateTime = e.at;
    at.textContent = e.at.slice(11, 19);
    const who = e.token_id ? e.token_id : (e.keyid ? `key ${e.keyid.slice(0, 12)}` : 'no key');
    li.append(at, document.createTextNode(
      ` ${e.operation ?? '?'} ${e.target ?? ''} — ${e.accepted ? 'accepted' : 'refused'}: ` +
      `${e.reason ?? ''} [${who}, ${e.client ?? '?'}]`));
    li.dataset.seq = e.seq;
    li.dataset.session = e.token_id ?? '';
    list.prepend(li);
  }
  while (list.children.length > MAX_AUDIT) list.lastElementChild.remove();
}

// Actions ----------------------------------------------------------------------------------------

function confirmed(text, ok) {
  const dialog = $('confirm');
  $('confirm-text').textContent = text;
  $('confirm-ok').textContent = ok;
  return new Promise((resolve) => {
    const done = (value) => {
      dialog.removeEventListener('close', onClose);
      $('confirm-ok').onclick = null;
      $('confirm-cancel').onclick = null;
      if (dialog.open) dialog.close();
      resolve(value);
    };
    const onClose = () => done(false);
    dialog.addEventListener('close', onClose);
    $('confirm-ok').onclick = () => done(true);
    $('confirm-cancel').onclick = () => done(false);
    dialog.showModal();
    $('confirm-cancel').focus(); // the safe choice has the focus
  });
}

async function act(what, work) {
  if (state.ended) return null;
  setStatus('busy', `${what}…`);
  try {
    const answer = await work();
    return answer;
  } catch (err) {
    if (!state.ended) setStatus('error', `${what}: refused: ${err.message}`);
    return null;
  }
}

async function power(host, action) {
  if ((action === 'off' || action === 'install' || action === 'reset') &&
      !(await confirmed(action === 'install'
        ? `Reinstall ${host}? Its disk is installed anew at its next boot.`
        : `Power ${action} ${host}? Anything running on it stops without a shutdown.`,
      `Power ${action}`))) {
    return;
  }
  const answer = await act(`power ${action} ${host}`,
    () => api('POST', '/v1/power', { target: host, action }));
  if (answer) setStatus('ready', `power ${action} ${host}: ${answer.result}`);
}

async function clusterPower(action) {
  if (action !== 'on' && !(await confirmed(
    action === 'install' ? 'Reinstall the whole cluster, frontend first?'
      : 'Power the whole cluster off, computes first, then the frontend?',
    `Cluster ${action}`))) {
    return;
  }
  const job = await act(`cluster ${action}`,
    () => api('POST', '/v1/cluster/power', { target: state.target, action }));
  if (!job) return;
  setStatus('ready', `cluster ${action}: job ${job.job} started`);
  followJob(job.job);
}

async function followJob(id) {
  for (;;) {
    let report;
    try {
      report = await api('GET', '/v1/job', { target: state.target, job: String(id) });
    } catch (err) {
      $('job').textContent = `job ${id}: ${err.message}`;
      return;
    }
    $('job').textContent = `job ${id} ${report.job.state}` +
      (report.job.summary ? `: ${report.job.summary}` : '');
    if (report.job.state !== 'running' || state.ended) return;
    await new Promise((r) => setTimeout(r, 2000));
  }
}

async function cdrom(host) {
  const list = await act(`the CD-ROM images of ${host}`, () => api('GET', '/v1/isos', { target: host }));
  if (!list) return;
  setStatus('ready', 'ready');
  const select = $('cdrom-select');
  select.replaceChildren();
  for (const image of ['none', ...list.images]) {
    const option = document.createElement('option');
    option.value = image;
    option.textContent = image === 'none' ? 'none (empty the drive)' : image;
    select.append(option);
  }
  $('cdrom-label').textContent = `CD-ROM of ${host}, for its next start`;
  const dialog = $('cdrom');
  const chosen = await new Promise((resolve) => {
    const done = (value) => {
      $('cdrom-ok').onclick = null;
      $('cdrom-cancel').onclick = null;
      dialog.onclose = null;
      if (dialog.open) dialog.close();
      resolve(value);
    };
    $('cdrom-ok').onclick = () => done(select.value);
    $('cdrom-cancel').onclick = () => done(null);
    dialog.onclose = () => done(null);
    dialog.showModal();
    select.focus();
  });
  if (chosen === null) return;
  const answer = await act(`CD-ROM of ${host}`, () => api('POST', '/v1/cdrom', { target: host, cdrom: chosen }));
  if (answer) setStatus('ready', `CD-ROM of ${host}: ${answer.cdrom ?? 'empty'}`);
}

async function consoleOf(host, kind) {
  // Opened at once (a click's window), then pointed at the console page with its token.
  const win = window.open('about:blank', '_blank');
  const answer = await act(`the ${kind} console of ${host}`,
    () => api('POST', '/v1/console/token', { target: host, kind }));
  if (!answer) {
    win?.close();
    return;
  }
  setStatus('ready', `${kind} console of ${host}: opened in a new tab`);
  if (win) {
    win.opener = null;
    win.location.href = answer.path;
  } else {
    setStatus('error', `the browser blocked the console's tab: allow pop-ups for this page`);
  }
}

// Live updates -----------------------------------------------------------------------------------

function onEvent(block) {
  let name = 'message';
  const data = [];
  for (const line of block.split('\n')) {
    if (line.startsWith('event:')) name = line.slice(6).trim();
    else if (line.startsWith('data:')) data.push(line.slice(5).trimStart());
  }
  if (!data.length) return;
  const value = JSON.parse(data.join('\n'));
  if (name === 'nodes') {
    showNodes(value.nodes);
    document.body.dataset.updated = String(value.at);
  } else if (name === 'audit') {
    showAudit(value.entries);
  } else if (name === 'end') {
    end(`session ended: ${value.reason}; open a new link (pilot open dashboard host=<frontend>)`);
  }
}

async function listen() {
  while (!state.ended) {
    try {
      const answer = await fetch(`${API}/events`, {
        headers: { [CSRF_HEADER]: state.csrf }, cache: 'no-store', credentials: 'same-origin',
      });
      if (!answer.ok) {
        const body = await answer.json().catch(() => ({}));
        if (answer.status === 401 || answer.status === 403) {
          end(`session ended: ${body.message ?? `HTTP ${answer.status}`}`);
          return;
        }
        throw new Error(body.message ?? `HTTP ${answer.status}`);
      }
      const reader = answer.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = '';
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value;
        let cut;
        while ((cut = buffer.indexOf('\n\n')) >= 0) {
          onEvent(buffer.slice(0, cut));
          buffer = buffer.slice(cut + 2);
        }
      }
    } catch (err) {
      if (!state.ended) setStatus('error', `live updates interrupted (${err.message}); reconnecting`);
    }
    if (!state.ended) await new Promise((r) => setTimeout(r, 2000));
  }
}

// Start ------------------------------------------------------------------------------------------

async function start() {
  const here = new URL(window.location.href);
  const link = here.searchParams.get('link');
  if (here.hash.length > 1) {
    state.names = readNames(here.hash.slice(1));
    sessionStorage.setItem('fd-names', JSON.stringify(state.names));
  } else {
    try {
      state.names = readNames(new URLSearchParams(JSON.parse(sessionStorage.getItem('fd-names') ?? '{}')));
    } catch {
      state.names = {};
    }
  }
  window.history.replaceState(null, '', here.pathname); // the link goes nowhere else
  let session;
  try {
    session = link ? await api('POST', '/session', { link }) : await api('GET', '/session');
  } catch (err) {
    state.ended = true;
    setStatus('refused', link ? `refused: ${err.message}`
      : 'this page has no session (a link works once): open a new link with ' +
        'pilot open dashboard host=<frontend>');
    return;
  }
  state.csrf = session.csrf;
  state.session = session.session;
  state.target = session.target;
  $('cluster').textContent = `— cluster of ${session.host}`;
  const until = new Date(session.expires * 1000).toISOString().slice(11, 16);
  $('session').textContent = `session ${session.session}; ends at ${until} UTC, or after ` +
    `${Math.round(session.idle / 60)} min without a click`;
  $('cluster-power').hidden = false;
  for (const b of document.querySelectorAll('[data-cluster]')) {
    b.addEventListener('click', () => clusterPower(b.dataset.cluster));
  }
  const logout = $('logout');
  logout.hidden = false;
  logout.addEventListener('click', async () => {
    await api('POST', '/logout', {}).catch(() => null);
    end('logged out: open a new link to come back');
  });
  setStatus('ready', 'ready');
  listen();
}

start();
