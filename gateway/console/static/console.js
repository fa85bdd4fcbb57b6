// eventgate console. Plain JavaScript, no build step, no dependency: it reads the admin port's
// /status (resources and relations), /console/api/metrics and /console/api/series (figures),
// /tail (events, as Server-Sent Events read with fetch so the bearer token can go with them) and
// /redrives. The admin token, when the gateway asks for one (401), is asked once and kept in this
// tab's sessionStorage.
'use strict';

const REFRESH_MS = 5000;
const MAX_EVENTS = 500;        // events kept in a tail pane
const MAX_ROWS = 400;          // rows drawn per namespace and column before "N more"
const COLLAPSE_ABOVE = 300;    // with more nodes than this, namespaces start collapsed
const TOKEN_KEY = 'eventgate.adminToken';

const $ = (sel) => document.querySelector(sel);
const state = {
  status: null, figures: null, selected: null, collapsed: new Set(), collapsedInit: false,
  search: '', tail: null, dlq: null, model: null, jobsTimer: null,
};

// ---- talking to the gateway -----------------------------------------------------------------

let tokenAsk = null; // the pending token dialog, so that concurrent 401s ask once

function askToken() {
  if (tokenAsk) return tokenAsk;
  tokenAsk = new Promise((resolve) => {
    const dlg = $('#token-dialog');
    $('#token-input').value = '';
    dlg.addEventListener('close', () => {
      tokenAsk = null;
      const v = $('#token-input').value.trim();
      if (dlg.returnValue === 'ok' && v) {
        sessionStorage.setItem(TOKEN_KEY, v);
        resolve(true);
      } else {
        resolve(false);
      }
    }, { once: true });
    dlg.showModal();
  });
  return tokenAsk;
}

// api fetches path with the admin token when there is one; on 401 it asks for the token once and
// tries again. It returns the Response (the caller reads it), or throws with the gateway's message.
async function api(path, opts = {}) {
  for (let attempt = 0; attempt < 2; attempt++) {
    const headers = Object.assign({}, opts.headers || {});
    const tok = sessionStorage.getItem(TOKEN_KEY);
    if (tok) headers.Authorization = 'Bearer ' + tok;
    const resp = await fetch(path, Object.assign({}, opts, { headers }));
    if (resp.status === 401 && attempt === 0) {
      sessionStorage.removeItem(TOKEN_KEY);
      if (await askToken()) continue;
    }
    if (!resp.ok) {
      const text = (await resp.text()).trim();
      throw new Error(`${resp.status}: ${text || resp.statusText}`);
    }
    return resp;
  }
  throw new Error('401: an admin token is required');
}

async function getJSON(path) { return (await api(path)).json(); }

// readSSE reads a text/event-stream body and calls onMessage({event, data, id}) for each message.
async function readSSE(resp, onMessage) {
  const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
  let buf = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buf += value.replace(/\r\n?/g, '\n');
    let cut;
    while ((cut = buf.indexOf('\n\n')) >= 0) {
      const block = buf.slice(0, cut);
      buf = buf.slice(cut + 2);
      const msg = { event: 'message', data: '', id: '' };
      const data = [];
      for (const line of block.split('\n')) {
        if (line === '' || line.startsWith(':')) continue;
        const i = line.indexOf(':');
        const field = i < 0 ? line : line.slice(0, i);
        let v = i < 0 ? '' : line.slice(i + 1);
        if (v.startsWith(' ')) v = v.slice(1);
        if (field === 'event') msg.event = v;
        else if (field === 'data') data.push(v);
        else if (field === 'id') msg.id = v;
      }
      if (data.length) {
        msg.data = data.join('\n');
        onMessage(msg);
      }
    }
  }
}

// ---- small helpers ----------------------------------------------------------------------------

function el(tag, attrs = {}, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === 'class') e.className = v;
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v);
  }
  for (const k of kids) if (k != null) e.append(k);
  return e;
}
const esc = (s) => String(s).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }[c]));
function fmtNum(v, unit = '') {
  if (v == null) return '–';
  if (Number.isInteger(v)) return v + unit;
  const a = Math.abs(v);
  const s = a >= 100 ? v.toFixed(0) : a >= 10 ? v.toFixed(1) : a >= 1 ? v.toFixed(2) : v === 0 ? '0' : v.toFixed(3);
  return s + unit;
}
function fmtSecs(v) {
  if (v == null) return '–';
  return v < 1 ? fmtNum(v * 1000, ' ms') : fmtNum(v, ' s');
}
function fmtBytes(v) {
  if (v == null) return '–';
  const u = ['B', 'KiB', 'MiB', 'GiB'];
  let i = 0;
  while (v >= 1024 && i < u.length - 1) { v /= 1024; i++; }
  return fmtNum(v, ' ' + u[i]);
}
function ago(t) {
  if (!t) return '–';
  const s = (Date.now() - new Date(t).getTime()) / 1000;
  if (s < 60) return Math.max(0, Math.round(s)) + 's ago';
  if (s < 3600) return Math.round(s / 60) + 'm ago';
  return Math.round(s / 3600) + 'h ago';
}
function b64text(s) {
  try {
    const bin = atob(s);
    const bytes = Uint8Array.from(bin, (c) => c.charCodeAt(0));
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch (e) {
    return s + ' (base64)';
  }
}
function splitKey(key) { const i = key.indexOf('/'); return [key.slice(0, i), key.slice(i + 1)]; }

// ---- the model: nodes and edges from /status --------------------------------------------------

// A node id is KIND:NAMESPACE/NAME for resources and url:URL for subscribers outside the gateway.
function buildModel(st) {
  const nodes = new Map();
  const edges = [];
  const add = (n) => { nodes.set(n.id, n); return n; };
  const stateOf = (r) => (r.reason === 'Unknown' ? 'unknown' : r.ready ? 'ready' : 'notready');
  for (const c of st.channels || []) add({ id: 'channel:' + c.namespace + '/' + c.name, kind: 'channel', col: 1, ns: c.namespace, name: c.name, res: c, state: stateOf(c) });
  for (const b of st.brokers || []) add({ id: 'broker:' + b.namespace + '/' + b.name, kind: 'broker', col: 1, ns: b.namespace, name: b.name, res: b, state: stateOf(b) });
  // A destination as /status names it: "channel:NS/NAME" (a broker's channel is broker.NAME),
  // "channel NS/NAME", "broker NS/NAME", or a URL.
  const target = (dest, ns) => {
    if (!dest) return null;
    let m = /^channel[: ]([^/]+)\/broker\.(.+)$/.exec(dest) || /^broker ([^/]+)\/(.+)$/.exec(dest);
    if (m) return 'broker:' + m[1] + '/' + m[2];
    m = /^channel[: ]([^/]+)\/(.+)$/.exec(dest);
    if (m) return 'channel:' + m[1] + '/' + m[2];
    const id = 'url:' + dest;
    if (!nodes.has(id)) add({ id, kind: 'subscriber', col: 3, ns, name: dest, state: 'plain' });
    return id;
  };
  const subs = [
    ...(st.subscriptions || []).map((s) => ({ s, kind: 'subscription', from: 'channel:' + s.channel })),
    ...(st.triggers || []).map((s) => ({ s, kind: 'trigger', from: 'broker:' + s.channel })),
  ];
  for (const { s, kind, from } of subs) {
    const n = add({ id: kind + ':' + s.namespace + '/' + s.name, kind, col: 2, ns: s.namespace, name: s.name, res: s, state: stateOf(s) });
    edges.push({ from, to: n.id, kind: 'flow' });
    const sub = target(s.subscriber, s.namespace);
    if (sub) edges.push({ from: n.id, to: sub, kind: 'flow' });
    const reply = target(s.reply, s.namespace);
    // A trigger's replies go back to its own broker: implied, not drawn.
    if (reply && !(kind === 'trigger' && reply === from)) edges.push({ from: n.id, to: reply, kind: 'reply' });
    const dead = target(s.deadLetterSink, s.namespace);
    if (dead) {
      edges.push({ from: n.id, to: dead, kind: 'dead' });
      const dn = nodes.get(dead);
      if (dn) dn.deadLetter = true;
    }
  }
  for (const s of st.sources || []) {
    const n = add({ id: 'source:' + s.kind + '/' + s.namespace + '/' + s.name, kind: 'source', col: 0, ns: s.namespace, name: s.name, res: s, state: stateOf(s) });
    const sink = target(s.sink, s.namespace);
    if (sink) edges.push({ from: n.id, to: sink, kind: 'flow' });
  }
  const kept = edges.filter((e) => nodes.has(e.from) && nodes.has(e.to));
  // Neighbours each way, for ordering the columns.
  const into = new Map(), outOf = new Map();
  for (const e of kept) {
    if (!into.has(e.to)) into.set(e.to, []);
    into.get(e.to).push(e.from);
    if (!outOf.has(e.from)) outOf.set(e.from, []);
    outOf.get(e.from).push(e.to);
  }
  return { nodes, edges: kept, into, outOf };
}

function figuresOf(n) {
  const f = state.figures;
  if (!f || !n.res) return null;
  const key = n.ns + '/' + n.name;
  if (n.kind === 'subscription') return f.subscriptions[key];
  if (n.kind === 'trigger') return f.triggers[key];
  if (n.kind === 'channel' || n.kind === 'broker') return f.channels[key];
  return null;
}

function nodeLine(n) {
  const f = figuresOf(n);
  if (n.kind === 'subscription' || n.kind === 'trigger') {
    if (!f) return n.state === 'ready' ? 'ready' : n.res.reason;
    return `${fmtNum(f.deliveredPerSec, '/s')} · lag ${fmtNum(n.res.lag ?? f.lag)} · limit ${fmtNum(f.limit)}`;
  }
  if (n.kind === 'channel' || n.kind === 'broker') {
    const head = (n.kind === 'broker' ? 'broker · ' : '') + (n.res.backend || '') + (n.deadLetter ? ' · dead letters' : '');
    return f ? `${head} · ${fmtNum(f.eventsPerSec, '/s')}` : head;
  }
  if (n.kind === 'source') return n.res.kind;
  return 'subscriber';
}

// ---- the graph --------------------------------------------------------------------------------

const COLS = ['Sources', 'Channels & brokers', 'Subscriptions & triggers', 'Subscribers'];
const ROW = 44, NODE_H = 36, HEAD = 28, PAD = 10, GAP = 36;

function renderGraph() {
  const st = state.status;
  if (!st) return;
  const model = buildModel(st);
  state.model = model;
  const q = state.search.toLowerCase();
  // Search: the matching nodes and their neighbours.
  let visible = null;
  if (q) {
    const hits = new Set();
    for (const n of model.nodes.values()) if ((n.ns + '/' + n.name + ' ' + n.kind).toLowerCase().includes(q)) hits.add(n.id);
    visible = new Set(hits);
    for (const e of model.edges) {
      if (hits.has(e.from) || hits.has(e.to)) { visible.add(e.from); visible.add(e.to); }
    }
  }
  const byNs = new Map();
  for (const n of model.nodes.values()) {
    if (visible && !visible.has(n.id)) continue;
    if (!byNs.has(n.ns)) byNs.set(n.ns, [[], [], [], []]);
    byNs.get(n.ns)[n.col].push(n);
  }
  const total = model.nodes.size;
  if (!state.collapsedInit) {
    state.collapsedInit = true;
    if (total > COLLAPSE_ABOVE) for (const ns of byNs.keys()) state.collapsed.add(ns);
  }
  const notReady = [...model.nodes.values()].filter((n) => n.state === 'notready').length;
  const subscribers = [...model.nodes.values()].filter((n) => n.kind === 'subscriber').length;
  $('#counts').textContent = `${total - subscribers} resources, ${subscribers} subscribers in ${byNs.size} namespaces` + (notReady ? ` · ${notReady} not ready` : '') +
    (q ? ` · matching “${state.search}”` : '');

  // Only the columns that have something to show (a gateway without sources has no such column).
  const used = COLS.map((_, c) => [...byNs.values()].some((cols) => cols[c].length > 0));
  if (!used.some(Boolean)) used.fill(true);
  const slot = [];
  used.forEach((u, c) => { slot[c] = u ? slot.filter((v) => v != null).length : null; });
  const ncols = used.filter(Boolean).length;
  const width = Math.max(170 * ncols, $('#graph').clientWidth - 2);
  const colW = (width - PAD * 2 - GAP * (ncols - 1)) / ncols;
  const colX = (c) => PAD + (slot[c] ?? 0) * (colW + GAP);
  let y = HEAD;
  const pos = new Map();
  const parts = [];
  COLS.forEach((t, c) => { if (used[c]) parts.push(`<text class="col-title" x="${colX(c) + 4}" y="18">${t}</text>`); });
  const order = (list, key) => list.sort((a, b) => key(a) - key(b) || (a.name < b.name ? -1 : 1));
  for (const ns of [...byNs.keys()].sort()) {
    const cols = byNs.get(ns);
    const collapsed = state.collapsed.has(ns) && !q;
    const count = cols.reduce((s, l) => s + l.length, 0);
    const bad = cols.flat().filter((n) => n.state === 'notready').length;
    parts.push(`<g class="ns-head" data-ns="${esc(ns)}"><rect x="0" y="${y}" width="${width}" height="22"></rect>` +
      `<text x="8" y="${y + 15}">${collapsed ? '▸' : '▾'} ${esc(ns)} <tspan class="sub">(${count}${bad ? ', ' + bad + ' not ready' : ''})</tspan></text></g>`);
    y += 28;
    if (collapsed) continue;
    // Order the columns so that edges mostly run straight: channels by name, what hangs off a
    // channel after it, subscribers after their first subscription.
    const rank = new Map();
    order(cols[1], () => 0).forEach((n, i) => rank.set(n.id, i));
    const firstFrom = (n, dir) => {
      let best = Infinity;
      for (const other of (dir === 'in' ? model.into : model.outOf).get(n.id) || []) {
        if (rank.has(other)) best = Math.min(best, rank.get(other));
      }
      return best === Infinity ? 1e9 : best;
    };
    order(cols[2], (n) => firstFrom(n, 'in')).forEach((n, i) => rank.set(n.id, 1000 + i));
    order(cols[3], (n) => firstFrom(n, 'in'));
    order(cols[0], (n) => firstFrom(n, 'out'));
    let rows = 0;
    cols.forEach((list, c) => {
      list.slice(0, MAX_ROWS).forEach((n, i) => {
        const ny = y + i * ROW;
        pos.set(n.id, { x: colX(c), y: ny });
        const sel = state.selected === n.id ? ' selected' : '';
        parts.push(`<g class="node ${n.state}${sel}" data-id="${esc(n.id)}" data-kind="${n.kind}" data-key="${esc(n.ns + '/' + n.name)}">` +
          `<rect x="${colX(c)}" y="${ny}" width="${colW}" height="${NODE_H}" rx="6"></rect>` +
          `<text x="${colX(c) + 8}" y="${ny + 15}">${esc(clip(n.name, colW))}</text>` +
          `<text class="sub" x="${colX(c) + 8}" y="${ny + 29}">${esc(clip(nodeLine(n), colW))}</text></g>`);
      });
      if (list.length > MAX_ROWS) {
        parts.push(`<text class="more" x="${colX(c) + 8}" y="${y + MAX_ROWS * ROW + 14}">${list.length - MAX_ROWS} more: search to narrow</text>`);
      }
      rows = Math.max(rows, Math.min(list.length, MAX_ROWS) + (list.length > MAX_ROWS ? 1 : 0));
    });
    y += rows * ROW + 8;
  }
  const edgeParts = [];
  for (const e of model.edges) {
    const a = pos.get(e.from), b = pos.get(e.to);
    if (!a || !b) continue;
    const hot = state.selected && (e.from === state.selected || e.to === state.selected) ? ' hot' : '';
    const x1 = a.x + colW, y1 = a.y + NODE_H / 2;
    let x2 = b.x, y2 = b.y + NODE_H / 2;
    let d;
    if (x2 > x1) {
      const mx = (x1 + x2) / 2;
      d = `M${x1},${y1} C${mx},${y1} ${mx},${y2} ${x2},${y2}`;
    } else { // back to an earlier column (a reply or dead letter into a channel): loop below
      x2 = b.x + colW / 2; y2 = b.y + NODE_H;
      d = `M${x1},${y1} C${x1 + 40},${y1 + 60} ${x2},${y2 + 60} ${x2},${y2}`;
    }
    edgeParts.push(`<path class="edge ${e.kind}${hot}" d="${d}"></path>`);
  }
  $('#graph').innerHTML = `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${y + 10}" role="img">` +
    edgeParts.join('') + parts.join('') + '</svg>';
}

function clip(s, w) {
  const max = Math.max(8, Math.floor((w - 14) / 6.6));
  return s.length > max ? s.slice(0, max - 1) + '…' : s;
}

// ---- details of the selected node ---------------------------------------------------------------

async function renderDetails() {
  const box = $('#details');
  const n = state.selected && state.model && state.model.nodes.get(state.selected);
  if (!n) {
    box.replaceChildren(el('p', { class: 'hint' }, 'Select a resource to see its figures.'));
    return;
  }
  const r = n.res || {};
  const f = figuresOf(n) || {};
  const rows = [];
  const row = (k, v) => { if (v != null && v !== '') rows.push(el('dt', {}, k), el('dd', {}, String(v))); };
  row('kind', n.kind === 'source' ? r.kind : (r.kind || n.kind));
  if (n.res) row('ready', `${r.ready ? 'True' : 'False'} (${r.reason || ''})`);
  row('message', r.message);
  row('since', r.since && ago(r.since));
  if (n.kind === 'channel' || n.kind === 'broker') {
    row('backend', r.backend); row('partitions', r.partitions); row('address', r.address);
    row('ingress', fmtNum(f.eventsPerSec, ' events/s'));
    if (f.bytes != null) row('size', `${fmtBytes(f.bytes)} of ${fmtBytes(f.limitBytes)}`);
  }
  if (n.kind === 'subscription' || n.kind === 'trigger') {
    row(n.kind === 'trigger' ? 'broker' : 'channel', r.channel); row('subscriber', r.subscriber);
    row('reply', r.reply); row('dead letters to', r.deadLetterSink);
    row('delivered', fmtNum(f.deliveredPerSec, ' events/s'));
    row('errors', fmtNum(f.errorsPerSec, ' /s'));
    row('dead-lettered', fmtNum(f.deadLetteredPerSec, ' /s'));
    row('lag', fmtNum(r.lag ?? f.lag));
    row('concurrency limit', r.concurrencyLimit ?? fmtNum(f.limit));
    row('in flight', fmtNum(f.inFlight));
    row('latency p50 / p99', `${fmtSecs(f.p50)} / ${fmtSecs(f.p99)} (5 min)`);
    row('last delivery', r.lastDeliveryTime && ago(r.lastDeliveryTime));
    row('last error', r.lastError && `${r.lastError} (${ago(r.lastErrorTime)})`);
  }
  if (n.kind === 'source') {
    row('sink', r.sink); row('running', r.running); row('last event', r.lastEventTime && ago(r.lastEventTime));
    row('last error', r.lastError && `${r.lastError} (${ago(r.lastErrorTime)})`);
  }
  const actions = el('div', { class: 'actions' });
  const key = n.ns + '/' + n.name;
  if (n.kind === 'channel' || n.kind === 'broker') {
    actions.append(el('button', { id: 'details-tail', onclick: () => openTail(key) }, 'Tail events'));
    if (n.kind === 'channel') actions.append(el('button', { id: 'details-dlq', onclick: () => openDLQ(key) }, 'Dead letters'));
  }
  if (n.kind === 'subscription') actions.append(el('button', { onclick: () => openTail(r.channel) }, 'Tail its channel'));
  if (n.kind === 'trigger') actions.append(el('button', { onclick: () => openTail(r.channel) }, 'Tail its broker'));
  const sparks = el('div', { id: 'sparks' });
  box.replaceChildren(el('h2', {}, n.kind === 'subscriber' ? n.name : key), el('dl', {}, ...rows), actions, sparks);
  if (['subscription', 'trigger', 'channel', 'broker'].includes(n.kind)) {
    try {
      const s = await getJSON(`/console/api/series?${n.kind}=${encodeURIComponent(key)}`);
      if (state.selected !== n.id) return;
      const charts = n.kind === 'channel' || n.kind === 'broker'
        ? [['ingress events/s', s.eventsPerSec], ['size (bytes)', s.bytes]]
        : [['delivered/s', s.deliveredPerSec], ['errors/s', s.errorsPerSec], ['lag', s.lag], ['concurrency limit', s.limit], ['latency p50 and p99 (s)', s.p50, s.p99]];
      sparks.replaceChildren(...charts.map(([label, a, b]) => spark(label, a, b)));
    } catch (e) {
      sparks.replaceChildren(el('p', { class: 'error' }, 'figures: ' + e.message));
    }
  }
}

// spark draws one or two series (arrays with nulls) as a sparkline over the sampled window.
function spark(label, a, b) {
  const vals = [...(a || []), ...(b || [])].filter((v) => v != null);
  const top = vals.length ? Math.max(...vals) : null;
  const max = Math.max(1e-9, top || 0);
  const line = (arr) => (arr || []).map((v, i) => v == null ? null : `${(i / Math.max(1, arr.length - 1)) * 300},${34 - (v / max) * 32}`).filter(Boolean).join(' ');
  const last = (a || []).filter((v) => v != null).pop();
  const svg = `<svg viewBox="0 0 300 36" preserveAspectRatio="none"><polyline points="${line(a)}"></polyline>` +
    (b ? `<polyline class="second" points="${line(b)}"></polyline>` : '') + '</svg>';
  const div = el('div', { class: 'spark' }, el('div', { class: 'label' }, `${label}: ${last == null ? '–' : fmtNum(last)} (max ${fmtNum(top)})`));
  div.insertAdjacentHTML('beforeend', svg);
  return div;
}

// ---- refresh loop ----------------------------------------------------------------------------

async function refresh() {
  try {
    const [st, fig] = await Promise.all([getJSON('/status'), getJSON('/console/api/metrics')]);
    state.status = st;
    state.figures = fig;
    const h = $('#health');
    h.textContent = st.ready ? 'ready' : 'not ready';
    h.className = 'pill ' + (st.ready ? 'ok' : 'bad');
    h.title = (st.notReady || []).join('\n');
    fillTargets();
    if (!$('#view-graph').hidden) { // hidden, it is drawn when shown
      renderGraph();
      if (state.selected) renderDetails();
    }
  } catch (e) {
    const h = $('#health');
    h.textContent = 'unreachable';
    h.className = 'pill bad';
    h.title = e.message;
  }
}

// fillTargets lists channels and brokers in the tail's and the dead letters' selects, keeping the choice.
function fillTargets() {
  const st = state.status;
  const opts = [
    ...(st.channels || []).map((c) => ({ key: c.namespace + '/' + c.name, label: c.namespace + '/' + c.name })),
    ...(st.brokers || []).map((b) => ({ key: b.namespace + '/' + b.name, label: b.namespace + '/' + b.name + ' (broker)' })),
  ];
  const dead = new Set([...(st.subscriptions || []), ...(st.triggers || [])].map((s) => s.deadLetterSink).filter(Boolean)
    .map((d) => { const m = /^channel[: ](.+)$/.exec(d); return m ? m[1] : null; }).filter(Boolean));
  const fill = (sel, list) => {
    const keep = sel.value;
    const sig = list.map((o) => o.key).join('|');
    if (sel.dataset.sig === sig) return;
    sel.dataset.sig = sig;
    sel.replaceChildren(...list.map((o) => el('option', { value: o.key }, o.label)));
    if (list.some((o) => o.key === keep)) sel.value = keep;
  };
  fill($('#tail-target'), opts);
  // Dead-letter channels first (those some subscription dead-letters into), then the others.
  const chans = opts.filter((o) => !o.label.endsWith('(broker)'));
  fill($('#dlq-target'), [...chans.filter((o) => dead.has(o.key)).map((o) => ({ key: o.key, label: o.label + ' (dead letters)' })),
    ...chans.filter((o) => !dead.has(o.key))]);
}

// ---- views -----------------------------------------------------------------------------------

function show(view) {
  for (const v of ['graph', 'tail', 'dlq']) {
    $('#view-' + v).hidden = v !== view;
    $('#tab-' + v).classList.toggle('active', v === view);
  }
  if (view === 'graph') { renderGraph(); renderDetails(); }
  if (view === 'dlq') loadJobs();
}

// ---- event lists (tail and dead letters) -------------------------------------------------------

function eventItem(ev, dead) {
  const a = ev.attributes || {};
  const x = ev.extensions || {};
  const rows = [];
  const row = (k, v, cls) => rows.push(el('dt', cls ? { class: cls } : {}, k), el('dd', cls ? { class: cls } : {}, v));
  for (const k of ['source', 'subject', 'time', 'datacontenttype', 'dataschema']) if (a[k]) row(k, a[k]);
  for (const k of Object.keys(x).sort()) {
    const isErr = k.startsWith('knativeerror');
    row(k, k === 'knativeerrordata' ? b64text(x[k]) : x[k], isErr ? 'err' : null);
  }
  let data = ev.data != null ? ev.data : ev.dataBase64 != null ? ev.dataBase64 + '  (base64)' : '';
  if (data && (a.datacontenttype || '').includes('json')) {
    try { data = JSON.stringify(JSON.parse(data), null, 2); } catch (e) { /* as it came */ }
  }
  if (ev.dataTruncated) data += `\n… (${ev.dataSize} bytes in all)`;
  const head = el('div', { class: 'head' }, el('span', { class: 'type' }, a.type || ''), el('span', { class: 'id' }, a.id || ''),
    el('span', { class: 'where' }, `${ev.channel} ${ev.partition}/${ev.offset}`));
  if (dead && x.knativeerrorcode) head.append(el('span', { class: 'where err' }, 'failed with ' + x.knativeerrorcode));
  return el('li', { class: 'tail-event' + (dead ? ' dead' : ''), 'data-id': a.id || '' }, head, el('dl', {}, ...rows), data ? el('pre', {}, data) : null);
}

// stream opens GET /tail/KEY?query and feeds each event to list (newest first), until stopped.
function stream(key, query, list, stateEl, dead) {
  const ctl = new AbortController();
  const run = { ctl, count: 0 };
  stateEl.textContent = `connecting to ${key}…`;
  stateEl.classList.remove('error');
  (async () => {
    try {
      const resp = await api(`/tail/${key}?${query}`, { signal: ctl.signal });
      stateEl.textContent = `tailing ${key}: waiting for events…`;
      await readSSE(resp, (msg) => {
        if (msg.event === 'end') {
          stateEl.textContent = `${key}: the stream ended: ${msg.data}`;
          return;
        }
        if (msg.event !== 'cloudevent') return;
        const ev = JSON.parse(msg.data);
        run.count++;
        list.prepend(eventItem(ev, dead));
        while (list.childElementCount > MAX_EVENTS) list.lastElementChild.remove();
        stateEl.textContent = `tailing ${key}: ${run.count} event${run.count === 1 ? '' : 's'}` +
          (run.count > MAX_EVENTS ? ` (the last ${MAX_EVENTS} shown)` : '');
        if (dead) $('#dlq-redrive').disabled = false;
      });
      if (!ctl.signal.aborted) stateEl.textContent += ' (closed)';
    } catch (e) {
      if (ctl.signal.aborted) return;
      stateEl.textContent = `${key}: ${e.message}`;
      stateEl.classList.add('error');
    } finally {
      if (run.onEnd) run.onEnd();
    }
  })();
  return run;
}

function tailQuery(from, type, filter) {
  const p = new URLSearchParams({ from });
  if (type) p.set('type', type);
  if (filter) p.set('filter', filter);
  return p.toString();
}

function startTail() {
  stopTail();
  const key = $('#tail-target').value;
  if (!key) return;
  state.tail = stream(key, tailQuery($('#tail-from').value, $('#tail-type').value.trim(), $('#tail-filter').value.trim()),
    $('#tail-events'), $('#tail-state'), false);
  state.tail.onEnd = () => { $('#tail-start').disabled = false; $('#tail-stop').disabled = true; };
  $('#tail-start').disabled = true;
  $('#tail-stop').disabled = false;
}
function stopTail() {
  if (state.tail) { state.tail.ctl.abort(); state.tail = null; }
  $('#tail-start').disabled = false;
  $('#tail-stop').disabled = true;
}
function openTail(key) {
  show('tail');
  fillTargets();
  $('#tail-target').value = key;
  startTail();
}

function loadDLQ() {
  if (state.dlq) state.dlq.ctl.abort();
  const key = $('#dlq-target').value;
  if (!key) return;
  $('#dlq-events').replaceChildren();
  $('#dlq-redrive').disabled = true;
  state.dlq = stream(key, tailQuery('earliest', '', $('#dlq-filter').value.trim()), $('#dlq-events'), $('#dlq-state'), true);
}
function openDLQ(key) {
  show('dlq');
  fillTargets();
  $('#dlq-target').value = key;
  loadDLQ();
}

function confirmRedrive() {
  const key = $('#dlq-target').value;
  const n = $('#dlq-events').childElementCount;
  $('#redrive-summary').textContent = `Send the dead letters of ${key} (${n} shown here) back to where each failed, ` +
    'or to the subscription you name. This is not undone: a subscriber gets each event again.';
  $('#redrive-filter').value = $('#dlq-filter').value;
  const dlg = $('#redrive-dialog');
  dlg.addEventListener('close', async () => {
    if (dlg.returnValue !== 'ok') return;
    const req = { from: key };
    const f = $('#redrive-filter').value.trim();
    const to = $('#redrive-to').value.trim();
    if (f) req.filter = f;
    if (to) req.to = to;
    if ($('#redrive-dry').checked) req.dryRun = true;
    try {
      const resp = await api('/redrives', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(req) });
      const job = await resp.json();
      $('#dlq-state').textContent = `redrive ${job.id} started (${job.state})`;
      $('#dlq-state').classList.remove('error');
      loadJobs();
    } catch (e) {
      $('#dlq-state').textContent = 'redrive: ' + e.message;
      $('#dlq-state').classList.add('error');
    }
  }, { once: true });
  dlg.showModal();
}

async function loadJobs() {
  try {
    const { jobs } = await getJSON('/redrives');
    $('#redrive-jobs').replaceChildren(...(jobs || []).slice().reverse().map((j) => el('li', {},
      `${j.id} · ${j.request.from}${j.request.to ? ' → ' + j.request.to : ''}${j.request.dryRun ? ' (dry run)' : ''} · ${j.state}` +
      ` · matched ${j.matched}, sent ${j.sent}, failed ${j.failed}, remaining ${j.remaining}` +
      (j.error ? ' · ' + j.error : j.lastError ? ' · last error: ' + j.lastError : ''))));
    clearTimeout(state.jobsTimer);
    if ((jobs || []).some((j) => j.state === 'running')) state.jobsTimer = setTimeout(loadJobs, 2000);
  } catch (e) {
    $('#redrive-jobs').replaceChildren(el('li', { class: 'error' }, e.message));
  }
}

// ---- wiring ---------------------------------------------------------------------------------

function init() {
  for (const b of document.querySelectorAll('.tab')) b.addEventListener('click', () => show(b.dataset.view));
  let searchTimer;
  $('#search').addEventListener('input', (e) => {
    clearTimeout(searchTimer);
    searchTimer = setTimeout(() => { state.search = e.target.value.trim(); show('graph'); }, 150);
  });
  $('#graph').addEventListener('click', (e) => {
    const head = e.target.closest('.ns-head');
    if (head) {
      const ns = head.dataset.ns;
      if (state.collapsed.has(ns)) state.collapsed.delete(ns); else state.collapsed.add(ns);
      renderGraph();
      return;
    }
    const node = e.target.closest('.node');
    if (node) {
      state.selected = node.dataset.id;
      renderGraph();
      renderDetails();
    }
  });
  $('#expand-all').addEventListener('click', () => { state.collapsed.clear(); renderGraph(); });
  $('#collapse-all').addEventListener('click', () => {
    for (const n of state.model ? state.model.nodes.values() : []) state.collapsed.add(n.ns);
    renderGraph();
  });
  $('#token-button').addEventListener('click', () => askToken());
  $('#tail-form').addEventListener('submit', (e) => { e.preventDefault(); startTail(); });
  $('#tail-stop').addEventListener('click', stopTail);
  $('#tail-clear').addEventListener('click', () => $('#tail-events').replaceChildren());
  $('#dlq-form').addEventListener('submit', (e) => { e.preventDefault(); loadDLQ(); });
  $('#dlq-redrive').addEventListener('click', confirmRedrive);
  let resizeTimer;
  window.addEventListener('resize', () => { clearTimeout(resizeTimer); resizeTimer = setTimeout(renderGraph, 200); });
  const hash = location.hash.slice(1);
  if (['graph', 'tail', 'dlq'].includes(hash)) show(hash);
  refresh();
  setInterval(refresh, REFRESH_MS);
}

init();
