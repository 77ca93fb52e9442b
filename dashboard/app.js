// The abcast dashboard: follows this node's live feed (GET /v1/dashboard) and the delivered
// messages (GET /v1/stream), both Server-Sent Events read through fetch so that a token can
// travel in the Authorization header (EventSource cannot send one). No framework, no CDN:
// the charts are uPlot, served by the node.

const messagesShown = 50;
const topicLookBack = 10000;
const reconnectDelayMs = 1000;
const state = {
  token:
    sessionStorage.getItem('abcast-token') ??
    new URLSearchParams(location.search).get('token') ??
    '',
  view: null,
  /** Who the node serves this page as ({name, role}); null without --auth or before the feed. */
  viewer: null,
  samples: [],
  topic: '',
  lastPosition: 0,
  messagesAbort: null,
};

const $ = (id) => document.getElementById(id);

function headers(extra = {}) {
  return state.token === '' ? extra : { ...extra, authorization: `Bearer ${state.token}` };
}

/**
 * Reads `url` as Server-Sent Events, calling onEvent(name, data, id) per event, until `signal`
 * aborts; reconnects after a drop, resuming with Last-Event-ID as EventSource would. A 401 or
 * 403 ends it: asking again every second would not change the answer, a new token does
 * (the token form starts over).
 */
async function follow(url, onEvent, signal, onState = () => {}) {
  let lastEventId = null;
  while (!signal.aborted) {
    let failure = null;
    try {
      const extra = lastEventId === null ? {} : { 'last-event-id': lastEventId };
      const response = await fetch(url, { headers: headers(extra), signal });
      if (!response.ok) {
        const body = await response.json().catch(() => ({}));
        failure = new Error(`${response.status} ${body.error ?? ''}: ${body.message ?? ''}`);
        failure.status = response.status;
        throw failure;
      }
      onState(true);
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = '';
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value;
        let end = buffer.indexOf('\n\n');
        while (end >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const parsed = parseEvent(block);
          if (parsed.id !== null) lastEventId = parsed.id;
          if (parsed.data !== null) onEvent(parsed.event, JSON.parse(parsed.data), parsed.id);
          end = buffer.indexOf('\n\n');
        }
      }
    } catch (error) {
      if (signal.aborted) return;
      failure = error;
    }
    onState(false, failure);
    if (failure?.status === 401 || failure?.status === 403) return;
    await new Promise((resolve) => setTimeout(resolve, reconnectDelayMs));
  }
}

function parseEvent(block) {
  const parsed = { event: 'message', data: null, id: null };
  for (const line of block.split('\n')) {
    if (line.startsWith(':')) continue;
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
    if (field === 'event') parsed.event = value;
    else if (field === 'data')
      parsed.data = parsed.data === null ? value : `${parsed.data}\n${value}`;
    else if (field === 'id') parsed.id = value;
  }
  return parsed;
}

// ------------------------------------------------------------------ the feed

function onFeed(name, data) {
  if (name === 'history') {
    state.viewer = data.viewer ?? null;
    state.samples = data.samples;
    if (data.latest !== null) render(data.latest);
  } else if (name === 'view') {
    state.samples.push(data.sample);
    if (state.samples.length > 300) state.samples.shift();
    render(data);
  }
}

function render(view) {
  state.view = view;
  const node = view.node;
  $('node-id').textContent = node.id;
  $('node-role').textContent = node.role;
  $('term').textContent = String(node.term);
  $('leader').textContent = node.leader ?? 'none';
  $('delivered').textContent = String(node.deliveredPosition);
  const ready = $('ready');
  ready.textContent = node.ready ? 'ready' : `not ready: ${node.readiness}`;
  ready.className = node.ready ? 'badge' : 'badge bad';
  renderViewer(view);
  renderMembers(view);
  renderLeaderChanges(view.leaderChanges);
  renderCharts();
  if (state.messagesAbort === null) followMessages();
}

/**
 * Admin controls only for an admin (or on a node without --auth): a read token sees none.
 * This is for the reader's sake; the routes behind the buttons check the role themselves.
 */
function renderViewer(view) {
  const admin = !view.authRequired || state.viewer?.role === 'admin';
  document.body.classList.toggle('admin-on', admin);
  const viewer = state.viewer;
  $('viewer').textContent =
    viewer === null
      ? ''
      : `${viewer.name} (${viewer.role})${admin ? '' : ': admin actions need an admin token'}`;
}

function cell(row, text, className) {
  const td = row.insertCell();
  td.textContent = text === null || text === undefined ? '—' : String(text);
  if (className) td.className = className;
  return td;
}

function renderMembers(view) {
  const body = $('members').tBodies[0];
  body.replaceChildren();
  for (const member of view.members) {
    const row = body.insertRow();
    row.dataset.member = member.id;
    if (member.id === view.node.id) row.className = 'self';
    cell(row, member.id);
    cell(row, member.voter ? member.role : `${member.role} (learner)`, `role-${member.role}`);
    cell(row, member.health, `health-${member.health}`);
    cell(row, member.term);
    cell(row, member.commitIndex);
    cell(row, member.appliedIndex);
    cell(row, member.deliveredPosition);
    cell(row, member.matchIndex);
    cell(row, member.lagEntries);
    const address = cell(row, member.address);
    if (member.httpUrl) {
      const link = document.createElement('a');
      link.href = `${member.httpUrl}/`;
      link.textContent = ' dashboard';
      address.append(link);
    }
    const actions = cell(row, '', 'admin');
    if (member.voter && member.id !== view.node.leader) {
      actions.append(
        button(`lead`, `Transfer leadership to ${member.id}?`, () => transfer(member.id)),
      );
    }
    actions.append(
      button('remove', `Remove ${member.id} from the cluster?`, () => removeMember(member.id)),
    );
  }
}

function button(label, question, action) {
  const element = document.createElement('button');
  element.type = 'button';
  element.textContent = label;
  element.addEventListener('click', () => {
    if (window.confirm(question)) void action();
  });
  return element;
}

function renderLeaderChanges(changes) {
  const list = $('leader-changes');
  list.replaceChildren();
  for (const change of [...changes].reverse()) {
    const item = document.createElement('li');
    const at = new Date(change.atMs).toLocaleTimeString();
    item.textContent = `${at}: ${change.leader ?? 'no leader'} (term ${change.term})`;
    list.append(item);
  }
}

// ------------------------------------------------------------------ charts

const charts = {};

function chart(id, label, stroke) {
  const element = $(id);
  const options = {
    width: Math.max(300, element.clientWidth),
    height: 180,
    legend: { show: false },
    scales: { x: { time: true } },
    series: [{}, { label, stroke, width: 2, fill: `${stroke}22`, spanGaps: false }],
    axes: [{}, { size: 50 }],
  };
  return new uPlot(options, [[], []], element);
}

function renderCharts() {
  if (typeof uPlot === 'undefined') return;
  charts.throughput ??= chart('throughput-chart', 'msgs/s', '#2d6cdf');
  charts.latency ??= chart('latency-chart', 'ms', '#c0392b');
  const times = state.samples.map((sample) => sample.atMs / 1000);
  charts.throughput.setData([times, state.samples.map((sample) => sample.deliveredPerSecond)]);
  charts.latency.setData([times, state.samples.map((sample) => sample.commitLatencyMs)]);
}

window.addEventListener('resize', () => {
  for (const [name, instance] of Object.entries(charts)) {
    const element = $(`${name}-chart`);
    instance.setSize({ width: Math.max(300, element.clientWidth), height: 180 });
  }
});

// ------------------------------------------------------------------ messages

function followMessages() {
  state.messagesAbort?.abort();
  const controller = new AbortController();
  state.messagesAbort = controller;
  $('messages').tBodies[0].replaceChildren();
  const delivered = state.view?.node.deliveredPosition ?? 0;
  // A filtered stream skips other topics: look further back to find the last few of one.
  const lookBack = state.topic === '' ? messagesShown : topicLookBack;
  const first = Math.max(state.view?.node.firstRetainedPosition ?? 1, delivered - lookBack + 1, 1);
  const query = new URLSearchParams({ from: String(first) });
  if (state.topic !== '') query.set('topic', state.topic);
  void follow(`/v1/stream?${query}`, onMessage, controller.signal);
}

function onMessage(name, message) {
  if (name !== 'message') return;
  const body = $('messages').tBodies[0];
  const row = body.insertRow(0);
  row.className = 'fresh';
  row.dataset.position = String(message.index);
  cell(row, message.index);
  cell(row, message.topic || '');
  cell(row, message.client);
  cell(row, message.seq);
  cell(row, JSON.stringify(message.payload), 'payload');
  while (body.rows.length > messagesShown) body.deleteRow(body.rows.length - 1);
}

// ------------------------------------------------------------------ admin actions

async function act(what, method, url, body) {
  const result = $('action-result');
  result.textContent = `${what}…`;
  try {
    const response = await fetch(url, {
      method,
      headers: headers({ 'content-type': 'application/json' }),
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const answer = await response.json().catch(() => ({}));
    result.textContent = response.ok
      ? `${what}: done`
      : `${what}: ${response.status} ${answer.error}: ${answer.message}`;
    return { response, answer };
  } catch (error) {
    result.textContent = `${what}: ${error.message}`;
    return null;
  }
}

/** Only the leader hands leadership over: ask it directly when this node is not it. */
async function transfer(to) {
  const view = state.view;
  const leader = view?.members.find((member) => member.id === view.node.leader);
  const base = view?.node.role === 'leader' || !leader?.httpUrl ? '' : leader.httpUrl;
  await act(`transfer leadership to ${to}`, 'POST', `${base}/v1/leader/transfer`, { to });
}

async function removeMember(id) {
  await act(`remove ${id}`, 'DELETE', `/v1/members/${encodeURIComponent(id)}`);
}

$('add-member').addEventListener('submit', (event) => {
  event.preventDefault();
  const id = $('add-id').value.trim();
  const address = $('add-address').value.trim();
  const voter = $('add-voter').checked;
  if (!window.confirm(`Add ${id} at ${address} as a ${voter ? 'voter' : 'learner'}?`)) return;
  void act(`add ${id}`, 'POST', '/v1/members', { id, address, voter });
});

$('token-form').addEventListener('submit', (event) => {
  event.preventDefault();
  state.token = $('token').value.trim();
  sessionStorage.setItem('abcast-token', state.token);
  start();
});

$('topic-form').addEventListener('submit', (event) => {
  event.preventDefault();
  state.topic = $('topic').value.trim();
  followMessages();
});

// ------------------------------------------------------------------ start

let feedAbort = null;

function start() {
  state.viewer = null;
  document.body.classList.remove('admin-on');
  $('viewer').textContent = '';
  feedAbort?.abort();
  feedAbort = new AbortController();
  state.messagesAbort?.abort();
  state.messagesAbort = null;
  void follow('/v1/dashboard', onFeed, feedAbort.signal, (up, error) => {
    const badge = $('connection');
    badge.textContent = up ? 'live' : error ? `offline: ${error.message}` : 'reconnecting';
    badge.className = up ? 'badge' : 'badge off';
  });
}

start();
