/*
 * fleetwatch dashboard — single-page app, vanilla JS, no build step.
 *
 * Security: every piece of server data is inserted with textContent /
 * setAttribute only (never as HTML). All non-GET requests carry the CSRF
 * token from GET /api/session.
 */
(function () {
  'use strict';

  // ---------------------------------------------------------------------------
  // Constants
  // ---------------------------------------------------------------------------

  const DASH = '—';
  const REFRESH_MS = 30000;
  const MAX_LIVE_POINTS = 3600;
  const MAX_FEED_ENTRIES = 500;
  const TERMINAL_COMMAND_STATES = ['completed', 'failed'];
  const CHART_MISSING_TEXT = 'Chart.js is not installed on the hub (apt install libjs-chart.js)';

  const FLEET_FIELDS = [
    'name', 'state', 'trades_executed', 'success_rate', 'total_pnl', 'daily_pnl',
    'memory_usage_mb', 'cpu_usage_percent', 'api_errors', 'websocket_status',
    'balance_manager_health', 'alerts', 'last_seen'
  ];

  const FIELD_LABELS = {
    name: 'Bot', state: 'State', trades_executed: 'Trades', success_rate: 'Success',
    total_pnl: 'Total PnL', daily_pnl: 'Daily PnL', memory_usage_mb: 'Memory (MB)',
    cpu_usage_percent: 'CPU', api_errors: 'API errors', websocket_status: 'WebSocket',
    balance_manager_health: 'Balance mgr', alerts: 'Alerts', last_seen: 'Last seen'
  };

  /** How each numeric/text field is formatted. */
  const FIELD_KINDS = {
    trades_executed: 'count', api_errors: 'count',
    success_rate: 'percent', cpu_usage_percent: 'percent',
    total_pnl: 'pnl', daily_pnl: 'pnl',
    memory_usage_mb: 'decimal',
    websocket_status: 'text', balance_manager_health: 'text'
  };

  const GOOD_STATUS_TEXT = ['connected', 'healthy', 'ok', 'up', 'online'];

  const TOTALS = [
    ['total_pnl', 'Total PnL', 'pnl'], ['daily_pnl', 'Daily PnL', 'pnl'],
    ['trades_executed', 'Trades', 'count'], ['success_rate', 'Success rate', 'percent'],
    ['bots_online', 'Online', 'count'], ['bots_stale', 'Stale', 'count'],
    ['bots_offline', 'Offline', 'count'], ['bots_emergency', 'Emergency', 'count'],
    ['alerts_critical', 'Critical', 'count'], ['alerts_warning', 'Warning', 'count'],
    ['alerts_info', 'Info', 'count']
  ];

  const CHART_METRICS = [
    ['total_pnl', 'Total PnL'], ['daily_pnl', 'Daily PnL'], ['success_rate', 'Success rate (%)'],
    ['memory_usage_mb', 'Memory (MB)'], ['cpu_usage_percent', 'CPU (%)'], ['api_errors', 'API errors'],
    ['websocket_latency_ms', 'WebSocket latency (ms)'], ['trade_execution_time', 'Trade execution time'],
    ['balance_check_time', 'Balance check time']
  ];
  const COUNTER_METRICS = ['trades_executed', 'api_errors'];
  const TICK_STEP_MS = { '1h': 10 * 60000, '24h': 4 * 3600000, '7d': 24 * 3600000 };

  const STATES = ['online', 'stale', 'offline', 'emergency'];
  const LEVELS = ['CRITICAL', 'WARNING', 'INFO'];

  const app = { session: null, view: null, redirecting: false };

  // ---------------------------------------------------------------------------
  // DOM helpers
  // ---------------------------------------------------------------------------

  /** createElement with safe props: `text` → textContent, other keys → attributes. */
  function el(tag, props, children) {
    const node = document.createElement(tag);
    if (props) {
      Object.keys(props).forEach(function (key) {
        const value = props[key];
        if (value === undefined || value === null || value === false) return;
        if (key === 'text') node.textContent = String(value);
        else if (key === 'className') node.className = value;
        else if (typeof value === 'function') node.addEventListener(key.replace(/^on/, ''), value);
        else node.setAttribute(key, value === true ? '' : String(value));
      });
    }
    (children || []).forEach(function (child) {
      if (child !== null && child !== undefined && child !== false) node.append(child);
    });
    return node;
  }

  function byId(id) { return document.getElementById(id); }

  function setText(node, text) {
    const value = String(text);
    if (node.textContent !== value) node.textContent = value;
  }

  /** Classes managed from data; static classes of the element are untouched. */
  const dynamicClasses = new WeakMap();
  function setDynClass(node, classes) {
    const next = classes.filter(Boolean);
    (dynamicClasses.get(node) || []).forEach(function (c) {
      if (next.indexOf(c) < 0) node.classList.remove(c);
    });
    next.forEach(function (c) { node.classList.add(c); });
    dynamicClasses.set(node, next);
  }

  function classToken(value) { return String(value).replace(/[^A-Za-z0-9_-]/g, '_'); }

  function isOperator() { return !!app.session && app.session.role !== 'viewer'; }

  /** Button only operators may use: hidden via CSS and disabled for viewers. */
  function operatorButton(props, text) {
    const button = el('button', Object.assign({ type: 'button', text: text }, props));
    button.classList.add('operator-only');
    if (!isOperator()) button.disabled = true;
    return button;
  }

  let toastTimer = null;
  function toast(message, kind) {
    const box = byId('toast');
    if (!box) return;
    box.textContent = String(message);
    setDynClass(box, ['toast-' + (kind || 'info')]);
    box.hidden = false;
    clearTimeout(toastTimer);
    toastTimer = setTimeout(function () { box.hidden = true; }, kind === 'error' ? 8000 : 4000);
  }

  function toastError(err) { toast(err && err.message ? err.message : String(err), 'error'); }

  function showInlineError(node, message) {
    node.textContent = message || '';
    node.hidden = !message;
  }

  function uuid() {
    if (window.crypto && typeof window.crypto.randomUUID === 'function') {
      try { return window.crypto.randomUUID(); } catch (ignored) { /* insecure context */ }
    }
    const b = window.crypto.getRandomValues(new Uint8Array(16));
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    const h = Array.prototype.map.call(b, function (x) { return x.toString(16).padStart(2, '0'); }).join('');
    return h.slice(0, 8) + '-' + h.slice(8, 12) + '-' + h.slice(12, 16) + '-' + h.slice(16, 20) + '-' + h.slice(20);
  }

  // ---------------------------------------------------------------------------
  // Formatting
  // ---------------------------------------------------------------------------

  function toNumber(value) {
    if (typeof value === 'number') return Number.isFinite(value) ? value : null;
    if (typeof value === 'string' && value.trim() !== '' && Number.isFinite(Number(value))) return Number(value);
    return null;
  }

  /** ISO 8601 string or unix seconds/milliseconds → epoch milliseconds (or null). */
  function parseTime(value) {
    if (value === null || value === undefined || value === '') return null;
    if (typeof value === 'number') return value < 1e11 ? value * 1000 : value;
    const ms = Date.parse(value);
    return Number.isNaN(ms) ? null : ms;
  }

  function pad2(n) { return String(n).padStart(2, '0'); }

  function fmtDateTime(ms) {
    if (ms === null || ms === undefined) return DASH;
    const d = new Date(ms);
    return d.getFullYear() + '-' + pad2(d.getMonth() + 1) + '-' + pad2(d.getDate()) + ' ' +
      pad2(d.getHours()) + ':' + pad2(d.getMinutes()) + ':' + pad2(d.getSeconds());
  }

  function fmtTick(ms, range) {
    const d = new Date(ms);
    const hm = pad2(d.getHours()) + ':' + pad2(d.getMinutes());
    return range === '7d' ? pad2(d.getMonth() + 1) + '-' + pad2(d.getDate()) + ' ' + hm : hm;
  }

  function fmtAgo(ms) {
    if (ms === null || ms === undefined) return DASH;
    const s = Math.max(0, Math.round((Date.now() - ms) / 1000));
    if (s < 60) return s + ' s ago';
    const m = Math.floor(s / 60);
    if (m < 60) return m + ' min ago';
    const h = Math.floor(m / 60);
    if (h < 48) return h + ' h ago';
    return Math.floor(h / 24) + ' d ago';
  }

  function formatValue(kind, raw) {
    if (kind === 'text') return raw === null || raw === undefined || raw === '' ? DASH : String(raw);
    const n = toNumber(raw);
    if (n === null) return raw === null || raw === undefined || raw === '' ? DASH : String(raw);
    switch (kind) {
      case 'pnl': return n.toFixed(2);
      case 'percent': return n.toFixed(1) + '%';
      case 'count': return Number.isInteger(n) ? String(n) : n.toFixed(1);
      default: return String(Math.round(n * 100) / 100);
    }
  }

  /** Writes a formatted value into a node, with pos/neg/status classes and data-value. */
  function setValue(node, kind, raw) {
    setText(node, formatValue(kind, raw));
    const n = toNumber(raw);
    if (kind !== 'text' && n !== null) node.setAttribute('data-value', String(n));
    else node.removeAttribute('data-value');
    if (kind === 'pnl') setDynClass(node, [n > 0 ? 'pos' : n < 0 ? 'neg' : null]);
    else if (kind === 'text') {
      const known = raw !== null && raw !== undefined && raw !== '';
      const good = known && GOOD_STATUS_TEXT.indexOf(String(raw).toLowerCase()) >= 0;
      setDynClass(node, [known ? (good ? 'status-good' : 'status-warn') : null]);
    }
  }

  function alertsText(counts) {
    const parts = [];
    if (counts.critical > 0) parts.push(counts.critical + ' critical');
    if (counts.warning > 0) parts.push(counts.warning + ' warning');
    if (counts.info > 0) parts.push(counts.info + ' info');
    return parts.length ? parts.join(', ') : DASH;
  }

  function topLevel(counts) {
    if (counts.critical > 0) return 'CRITICAL';
    if (counts.warning > 0) return 'WARNING';
    if (counts.info > 0) return 'INFO';
    return null;
  }

  // ---------------------------------------------------------------------------
  // HTTP API
  // ---------------------------------------------------------------------------

  function redirectToLogin() {
    if (app.redirecting) return;
    app.redirecting = true;
    stopLive();
    window.location.href = '/login?next=' + encodeURIComponent(window.location.hash || '');
  }

  function errorMessage(data, text, status) {
    if (data && data.error && typeof data.error.message === 'string') return data.error.message;
    if (data && typeof data.message === 'string') return data.message;
    if (data && typeof data.error === 'string') return data.error;
    if (text && text.length < 300) return text;
    return 'Request failed (HTTP ' + status + ')';
  }

  /** fetch wrapper: JSON in/out, CSRF on writes, 401 → sign-in page, errors → Error(message). */
  async function api(path, options) {
    const opts = options || {};
    const method = opts.method || 'GET';
    const headers = { 'Accept': 'application/json' };
    if (method !== 'GET') {
      headers['Content-Type'] = 'application/json';
      headers['X-CSRF-Token'] = app.session ? app.session.csrfToken || '' : '';
    }
    Object.assign(headers, opts.headers || {});
    let response;
    try {
      response = await fetch(path, {
        method: method, headers: headers, credentials: 'same-origin',
        body: opts.body === undefined ? undefined : JSON.stringify(opts.body)
      });
    } catch (err) {
      throw Object.assign(new Error('Network error: cannot reach the hub'), { status: 0 });
    }
    if (response.status === 401 && path.indexOf('/api') === 0) {
      redirectToLogin();
      throw Object.assign(new Error('Not signed in'), { status: 401 });
    }
    const text = await response.text();
    let data = null;
    if (text) {
      try { data = JSON.parse(text); } catch (ignored) { data = null; }
    }
    if (!response.ok) {
      throw Object.assign(new Error(errorMessage(data, text, response.status)), { status: response.status });
    }
    return data;
  }

  function botPath(name) { return '/api/bots/' + encodeURIComponent(name); }
  function botHref(name) { return '#/bot/' + encodeURIComponent(name); }
  function asArray(value) { return Array.isArray(value) ? value : []; }

  // ---------------------------------------------------------------------------
  // Bot model (shared by the fleet and bot views)
  // ---------------------------------------------------------------------------

  function newBot(name) {
    return {
      id: name, state: null, metrics: {}, states: {}, alerts: { critical: 0, warning: 0, info: 0 },
      lastSeen: null, emergencySince: null, allowLiquidation: false,
      connectedHub: null, agentVersion: null, profile: null
    };
  }

  function alertCounts(source) {
    const s = source || {};
    return { critical: toNumber(s.critical) || 0, warning: toNumber(s.warning) || 0, info: toNumber(s.info) || 0 };
  }

  /** Copies a GET /api/bots record into a bot model object. */
  function applyBotRecord(bot, rec) {
    bot.state = rec.state || null;
    bot.metrics = Object.assign({}, rec.metrics || {});
    bot.states = Object.assign({}, rec.states || {});
    bot.alerts = alertCounts(rec.alerts);
    const seen = parseTime(rec.lastSeen);
    // Live messages may already have shown a newer sighting than this snapshot.
    if (seen !== null && (bot.lastSeen === null || seen > bot.lastSeen)) bot.lastSeen = seen;
    bot.emergencySince = rec.emergencySince || null;
    bot.allowLiquidation = rec.allowLiquidation === true;
    bot.connectedHub = rec.connectedHub || null;
    bot.agentVersion = rec.agentVersion || null;
    bot.profile = rec.profile || null;
    return bot;
  }

  /** Merges live metric values (numbers → metrics, strings → states). */
  function applyLiveMetrics(bot, values, timestamp) {
    Object.keys(values || {}).forEach(function (key) {
      const value = values[key];
      if (typeof value === 'number') bot.metrics[key] = value;
      else bot.states[key] = value;
    });
    const ts = parseTime(timestamp);
    if (ts !== null && (bot.lastSeen === null || ts > bot.lastSeen)) bot.lastSeen = ts;
  }

  /** Copies one FleetStatus.status[] entry into a bot model object. */
  function applyBotStatus(bot, entry) {
    if (entry.state) bot.state = entry.state;
    const seen = parseTime(entry.lastSeen);
    if (seen !== null) bot.lastSeen = seen;
    bot.emergencySince = entry.emergencySince || null;
    if ('connectedHub' in entry) bot.connectedHub = entry.connectedHub;
    bot.alerts = {
      critical: toNumber(entry.alertsCritical) || 0,
      warning: toNumber(entry.alertsWarning) || 0,
      info: toNumber(entry.alertsInfo) || 0
    };
  }

  /** Adjusts open-alert counts from alert events (used when no system_status came along). */
  function applyAlertEventCounts(bot, event) {
    const key = String(event.level || '').toLowerCase();
    if (!(key in bot.alerts)) return;
    if (event.kind === 'fired') bot.alerts[key] += 1;
    else if (event.kind === 'resolved') bot.alerts[key] = Math.max(0, bot.alerts[key] - 1);
  }

  function fieldValue(bot, field) {
    switch (field) {
      case 'name': return bot.id;
      case 'state': return bot.state;
      case 'alerts': return bot.alerts;
      case 'last_seen': return bot.lastSeen;
      default:
        if (bot.metrics[field] !== undefined) return bot.metrics[field];
        return bot.states[field];
    }
  }

  /** Renders one field of a bot into a cell/element (fleet row or bot summary). */
  function renderField(node, bot, field) {
    switch (field) {
      case 'name': return; // static link/heading built once
      case 'state':
        setText(node, bot.state || DASH);
        setDynClass(node, [bot.state ? 'state-' + classToken(bot.state) : null]);
        return;
      case 'alerts':
        setText(node, alertsText(bot.alerts));
        setDynClass(node, [topLevel(bot.alerts) ? 'level-' + topLevel(bot.alerts) : null]);
        return;
      case 'last_seen':
        setText(node, fmtAgo(bot.lastSeen));
        if (bot.lastSeen !== null && node.getAttribute('title') !== fmtDateTime(bot.lastSeen)) {
          node.setAttribute('title', fmtDateTime(bot.lastSeen));
        }
        return;
      default:
        setValue(node, FIELD_KINDS[field] || 'decimal', fieldValue(bot, field));
    }
  }

  // ---------------------------------------------------------------------------
  // Live WebSocket
  // ---------------------------------------------------------------------------

  const live = { ws: null, path: null, attempt: 0, retryTimer: null };

  function setConnected(connected) {
    const node = byId('connection-status');
    if (!node) return;
    setText(node, connected ? 'Live' : 'Disconnected');
    node.classList.toggle('connected', connected);
    node.classList.toggle('disconnected', !connected);
  }

  function connectLive(path) {
    if (live.path === path && (live.ws || live.retryTimer)) return;
    stopLive();
    live.path = path;
    live.attempt = 0;
    openSocket();
  }

  function stopLive() {
    clearTimeout(live.retryTimer);
    live.retryTimer = null;
    const ws = live.ws;
    live.ws = null;
    live.path = null;
    if (ws) {
      try { ws.close(); } catch (ignored) { /* already closed */ }
    }
    setConnected(false);
  }

  function openSocket() {
    live.retryTimer = null;
    const url = (window.location.protocol === 'https:' ? 'wss://' : 'ws://') + window.location.host + live.path;
    let ws;
    try {
      ws = new WebSocket(url);
    } catch (err) {
      scheduleReconnect();
      return;
    }
    live.ws = ws;
    ws.addEventListener('open', function () {
      if (live.ws !== ws) return;
      live.attempt = 0;
      setConnected(true);
    });
    ws.addEventListener('message', function (event) { if (live.ws === ws) onSocketMessage(ws, event.data); });
    ws.addEventListener('close', function () {
      if (live.ws !== ws) return;
      live.ws = null;
      setConnected(false);
      scheduleReconnect();
    });
  }

  function scheduleReconnect() {
    if (app.redirecting || live.path === null) return;
    const delay = Math.min(10000, 1000 * Math.pow(2, live.attempt));
    live.attempt += 1;
    // A failing handshake may mean the session expired: api() redirects on 401.
    if (live.attempt >= 2) api('/api/session').catch(function () { /* handled by api() */ });
    live.retryTimer = setTimeout(openSocket, delay);
  }

  function onSocketMessage(ws, raw) {
    let msg;
    try { msg = JSON.parse(raw); } catch (ignored) { return; }
    if (!msg || typeof msg !== 'object') return;
    if (msg.type === 'ping') {
      try { ws.send(JSON.stringify({ type: 'pong' })); } catch (ignored) { /* closing */ }
      return;
    }
    if (app.view && app.view.onMessage) {
      try { app.view.onMessage(msg); } catch (err) { console.error('live message handling failed', err); }
    }
  }

  // ---------------------------------------------------------------------------
  // Alert list (alerts feed and per-bot alerts)
  // ---------------------------------------------------------------------------

  function alertEventToRecord(ev) {
    const rec = {
      id: ev.alertID, bot: ev.bot, rule: ev.ruleID, metric: ev.metric, level: ev.level,
      summary: ev.summary, limit: ev.limit, firedAt: ev.firedAt, lastNotifiedAt: ev.at,
      state: ev.kind === 'resolved' ? 'resolved' : 'firing'
    };
    if (ev.value !== undefined && ev.value !== null) { rec.value = ev.value; rec.lastValue = ev.value; }
    if (ev.state !== undefined && ev.state !== null) rec.stateValue = ev.state;
    if (ev.kind === 'resolved') rec.resolvedAt = ev.at;
    return rec;
  }

  function mergeDefined(base, update) {
    const out = Object.assign({}, base);
    Object.keys(update).forEach(function (k) { if (update[k] !== undefined) out[k] = update[k]; });
    return out;
  }

  function alertSortKey(rec) { return (parseTime(rec.firedAt) || 0) * 1e3 + (toNumber(rec.id) || 0) % 1e3; }

  function alertValueText(rec) {
    const value = rec.stateValue !== undefined && rec.stateValue !== null ? rec.stateValue
      : rec.lastValue !== undefined && rec.lastValue !== null ? rec.lastValue : rec.value;
    const v = toNumber(value) !== null ? String(Math.round(toNumber(value) * 100) / 100) : value;
    return 'value ' + (v === null || v === undefined ? DASH : v) + ' / limit ' +
      (rec.limit === null || rec.limit === undefined ? DASH : rec.limit);
  }

  function fillAlertEntry(node, rec) {
    const level = String(rec.level || 'INFO');
    const state = String(rec.state || 'firing');
    node.className = 'alert-entry level-' + classToken(level) + (state === 'resolved' ? ' alert-resolved' : '');
    const acked = rec.acknowledgedBy || rec.acknowledgedAt;
    const children = [
      el('time', { className: 'alert-time', datetime: rec.firedAt || null, text: fmtDateTime(parseTime(rec.firedAt)) }),
      el('span', { className: 'badge alert-level', 'data-field': 'level', text: level }),
      el('a', { className: 'bot-link', href: botHref(String(rec.bot || '')), text: String(rec.bot || DASH) }),
      el('span', { className: 'alert-metric', 'data-field': 'metric', text: String(rec.metric || DASH) }),
      el('span', { className: 'alert-summary', 'data-field': 'summary', text: String(rec.summary || '') }),
      el('span', { className: 'alert-value', 'data-field': 'value', text: alertValueText(rec) }),
      el('span', { className: 'badge alert-state alert-state-' + classToken(state), 'data-field': 'state', text: state }),
      el('span', {
        className: 'alert-ack', 'data-field': 'acknowledged',
        text: acked ? 'acknowledged by ' + (rec.acknowledgedBy || 'someone') : ''
      })
    ];
    if (isOperator()) {
      const actions = el('span', { className: 'alert-actions' });
      if (!acked) actions.append(operatorButton({ className: 'ack button-small' }, 'Acknowledge'));
      actions.append(operatorButton({ className: 'silence button-small' }, 'Silence 1 h'));
      children.push(actions);
    }
    node.replaceChildren.apply(node, children);
  }

  function createAlertList(container, emptyText) {
    const entries = new Map(); // id → { node, rec }
    const empty = el('p', { className: 'empty muted', text: emptyText });
    let filter = function () { return true; };
    if (container.parentNode) container.after(empty);
    container.addEventListener('click', onClick);

    function updateEmpty() {
      let visible = 0;
      entries.forEach(function (e) { if (!e.node.hidden) visible += 1; });
      empty.hidden = visible > 0;
    }

    function insertSorted(node, rec) {
      const key = alertSortKey(rec);
      let before = null;
      for (const child of container.children) {
        const other = entries.get(child.dataset.alertId);
        if (other && alertSortKey(other.rec) < key) { before = child; break; }
      }
      if (before) container.insertBefore(node, before);
      else container.append(node);
    }

    function trim() {
      while (entries.size > MAX_FEED_ENTRIES) {
        const last = container.lastElementChild;
        if (!last) break;
        entries.delete(last.dataset.alertId);
        last.remove();
      }
    }

    function upsert(rec) {
      if (rec.id === undefined || rec.id === null) return;
      const id = String(rec.id);
      const existing = entries.get(id);
      const merged = existing ? mergeDefined(existing.rec, rec) : rec;
      const node = existing ? existing.node : el('li', { 'data-alert-id': id });
      fillAlertEntry(node, merged);
      node.hidden = !filter(merged);
      entries.set(id, { node: node, rec: merged });
      if (!existing) { insertSorted(node, merged); trim(); }
      updateEmpty();
    }

    function replaceAll(records) {
      entries.forEach(function (e) { e.node.remove(); });
      entries.clear();
      asArray(records).forEach(upsert);
      updateEmpty();
    }

    function setFilter(fn) {
      filter = fn;
      entries.forEach(function (e) { e.node.hidden = !filter(e.rec); });
      updateEmpty();
    }

    async function onClick(event) {
      const button = event.target.closest('button');
      const item = button && button.closest('[data-alert-id]');
      if (!item || !entries.has(item.dataset.alertId)) return;
      const rec = entries.get(item.dataset.alertId).rec;
      button.disabled = true;
      try {
        if (button.classList.contains('ack')) await acknowledge(rec);
        else if (button.classList.contains('silence')) await silence(rec);
      } catch (err) {
        toastError(err);
      } finally {
        button.disabled = false;
      }
    }

    async function acknowledge(rec) {
      const updated = await api('/api/alerts/' + encodeURIComponent(String(rec.id)) + '/acknowledge', { method: 'POST' });
      const next = mergeDefined(rec, updated && typeof updated === 'object' ? updated : {});
      if (!next.acknowledgedBy) next.acknowledgedBy = app.session.user;
      upsert(next);
      toast('Alert ' + rec.id + ' acknowledged');
    }

    async function silence(rec) {
      const until = new Date(Date.now() + 3600 * 1000).toISOString();
      await api('/api/silences', {
        method: 'POST',
        body: { bot: rec.bot, metric: rec.metric || null, until: until, reason: 'silenced from dashboard' }
      });
      toast('Silenced ' + rec.bot + ' / ' + (rec.metric || 'all metrics') + ' for 1 hour');
    }

    return {
      upsert: upsert,
      replaceAll: replaceAll,
      setFilter: setFilter,
      applyEvent: function (ev) { if (ev && ev.alertID !== undefined) upsert(alertEventToRecord(ev)); }
    };
  }

  // ---------------------------------------------------------------------------
  // Fleet view (#/)
  // ---------------------------------------------------------------------------

  function buildTotals() {
    const values = {};
    const tiles = TOTALS.map(function (t) {
      const value = el('span', { className: 'total-value', 'data-total': t[0], text: DASH });
      values[t[0]] = value;
      return el('div', { className: 'total-tile' }, [el('span', { className: 'total-label', text: t[1] }), value]);
    });
    return { node: el('div', { id: 'fleet-totals', className: 'totals' }, tiles), values: values };
  }

  function renderTotals(values, status) {
    const totals = status.totals || {};
    const by = status.byState || {};
    const raw = {
      total_pnl: totals.totalPnl, daily_pnl: totals.dailyPnl, trades_executed: totals.tradesExecuted,
      success_rate: totals.successRate, bots_online: by.online || 0, bots_stale: by.stale || 0,
      bots_offline: by.offline || 0, bots_emergency: by.emergency || 0,
      alerts_critical: status.alertsCritical, alerts_warning: status.alertsWarning, alerts_info: status.alertsInfo
    };
    TOTALS.forEach(function (t) { setValue(values[t[0]], t[2], raw[t[0]]); });
    [['bots_online', 'state-online'], ['bots_stale', 'state-stale'], ['bots_offline', 'state-offline'],
      ['bots_emergency', 'state-emergency'], ['alerts_critical', 'level-CRITICAL'],
      ['alerts_warning', 'level-WARNING'], ['alerts_info', 'level-INFO']].forEach(function (pair) {
      setDynClass(values[pair[0]], [toNumber(raw[pair[0]]) > 0 ? pair[1] : null]);
    });
  }

  function selectControl(id, label, options) {
    const select = el('select', { id: id }, options.map(function (o) {
      return el('option', { value: o[0], text: o[1] });
    }));
    return { select: select, node: el('label', { className: 'filter' }, [el('span', { text: label }), select]) };
  }

  function sortKey(bot, field) {
    if (field === 'name') return bot.id.toLowerCase();
    if (field === 'alerts') return bot.alerts.critical * 1e6 + bot.alerts.warning * 1e3 + bot.alerts.info;
    const value = fieldValue(bot, field);
    if (value === null || value === undefined || value === '') return null;
    if (typeof value === 'number') return value;
    return String(value).toLowerCase();
  }

  function compareKeys(a, b) {
    if (a === b) return 0;
    if (typeof a === 'number' && typeof b === 'number') return a - b;
    if (typeof a === 'number') return -1;
    if (typeof b === 'number') return 1;
    return a < b ? -1 : 1;
  }

  function createFleetView(root) {
    const v = {
      alive: true, bots: new Map(), rows: new Map(),
      sortField: 'name', sortDir: 1, lastSort: 0, sortTimer: null
    };
    const totals = buildTotals();
    const text = el('input', { id: 'filter-text', type: 'search', placeholder: 'Filter by name', 'aria-label': 'Filter by name' });
    const state = selectControl('filter-state', 'State', [['all', 'All states']].concat(STATES.map(function (s) { return [s, s]; })));
    const level = selectControl('filter-level', 'Alerts', [['all', 'Any alerts']].concat(LEVELS.map(function (l) { return [l, l]; })));
    const count = el('span', { id: 'fleet-count', className: 'muted' });
    const headers = FLEET_FIELDS.map(function (f) {
      return el('th', { 'data-sort': f, scope: 'col', tabindex: '0', title: 'Sort by ' + FIELD_LABELS[f], text: FIELD_LABELS[f] });
    });
    const tbody = el('tbody');
    const table = el('table', { id: 'fleet-table', className: 'data-table' }, [el('thead', null, [el('tr', null, headers)]), tbody]);

    root.append(el('section', { id: 'fleet-view', className: 'fleet-view' }, [
      totals.node,
      el('div', { className: 'filters' }, [text, state.node, level.node, count]),
      el('div', { className: 'table-scroll' }, [table])
    ]));

    text.addEventListener('input', applyFilters);
    state.select.addEventListener('change', applyFilters);
    level.select.addEventListener('change', applyFilters);
    headers.forEach(function (th) {
      th.addEventListener('click', function () { onSortClick(th.dataset.sort); });
      th.addEventListener('keydown', function (e) {
        if (e.key === 'Enter' || e.key === ' ') { e.preventDefault(); onSortClick(th.dataset.sort); }
      });
    });
    markSortHeaders();

    function matches(bot) {
      const needle = text.value.trim().toLowerCase();
      if (needle && bot.id.toLowerCase().indexOf(needle) < 0) return false;
      if (state.select.value !== 'all' && bot.state !== state.select.value) return false;
      if (level.select.value !== 'all' && !(bot.alerts[level.select.value.toLowerCase()] > 0)) return false;
      return true;
    }

    function applyFilters() {
      let shown = 0;
      v.rows.forEach(function (row, name) {
        const visible = matches(v.bots.get(name));
        row.tr.hidden = !visible;
        if (visible) shown += 1;
      });
      setText(count, 'Showing ' + shown + ' of ' + v.rows.size + ' bots');
    }

    function buildRow(bot) {
      const cells = {};
      const tr = el('tr', { 'data-bot': bot.id }, FLEET_FIELDS.map(function (f) {
        const td = el('td', { 'data-field': f });
        if (f === 'name') td.append(el('a', { className: 'bot-link', href: botHref(bot.id), text: bot.id }));
        cells[f] = td;
        return td;
      }));
      return { tr: tr, cells: cells };
    }

    function ensureRow(name) {
      let bot = v.bots.get(name);
      if (!bot) {
        bot = newBot(name);
        v.bots.set(name, bot);
        const row = buildRow(bot);
        v.rows.set(name, row);
        tbody.append(row.tr);
      }
      return bot;
    }

    function updateRow(name) {
      const bot = v.bots.get(name);
      const row = v.rows.get(name);
      if (!bot || !row) return;
      FLEET_FIELDS.forEach(function (f) { renderField(row.cells[f], bot, f); });
      setDynClass(row.tr, [bot.state ? 'row-state-' + classToken(bot.state) : null]);
      row.tr.hidden = !matches(bot);
    }

    function sortRows() {
      clearTimeout(v.sortTimer);
      v.sortTimer = null;
      v.lastSort = Date.now();
      const names = Array.from(v.rows.keys());
      const keys = new Map(names.map(function (n) { return [n, sortKey(v.bots.get(n), v.sortField)]; }));
      names.sort(function (a, b) {
        const ka = keys.get(a), kb = keys.get(b);
        if (ka === null && kb !== null) return 1; // missing values always last
        if (kb === null && ka !== null) return -1;
        return (compareKeys(ka, kb) * v.sortDir) || compareKeys(a.toLowerCase(), b.toLowerCase());
      });
      const current = tbody.children;
      const unchanged = names.length === current.length && names.every(function (n, i) {
        return current[i] === v.rows.get(n).tr;
      });
      if (unchanged) return;
      const frag = document.createDocumentFragment();
      names.forEach(function (n) { frag.append(v.rows.get(n).tr); });
      tbody.append(frag);
    }

    /** Re-sorting after data changes happens at most once per second. */
    function scheduleSort() {
      if (v.sortTimer) return;
      v.sortTimer = setTimeout(sortRows, Math.max(0, v.lastSort + 1000 - Date.now()));
    }

    function markSortHeaders() {
      headers.forEach(function (th) {
        const active = th.dataset.sort === v.sortField;
        setDynClass(th, [active ? (v.sortDir > 0 ? 'sort-asc' : 'sort-desc') : null]);
        th.setAttribute('aria-sort', active ? (v.sortDir > 0 ? 'ascending' : 'descending') : 'none');
      });
    }

    function onSortClick(field) {
      if (v.sortField === field) v.sortDir = -v.sortDir;
      else { v.sortField = field; v.sortDir = 1; }
      markSortHeaders();
      sortRows();
    }

    function applyStatus(status) {
      if (!status || typeof status !== 'object') return;
      renderTotals(totals.values, status);
      asArray(status.status).forEach(function (entry) {
        if (!entry || !entry.bot) return;
        applyBotStatus(ensureRow(String(entry.bot)), entry);
        updateRow(String(entry.bot));
      });
    }

    async function load() {
      try {
        const results = await Promise.all([api('/api/bots'), api('/api/status')]);
        if (!v.alive) return;
        const seen = new Set();
        asArray(results[0]).forEach(function (rec) {
          if (!rec || rec.id === undefined) return;
          const name = String(rec.id);
          seen.add(name);
          applyBotRecord(ensureRow(name), rec);
        });
        v.rows.forEach(function (row, name) {
          if (!seen.has(name)) { row.tr.remove(); v.rows.delete(name); v.bots.delete(name); }
        });
        applyStatus(results[1]);
        v.rows.forEach(function (row, name) { updateRow(name); });
        sortRows();
        applyFilters();
      } catch (err) {
        if (v.alive && err.status !== 401) toastError(err);
      }
    }

    function onMessage(msg) {
      if (msg.type !== 'metrics_update' || msg.scope === 'bot') return;
      const changed = new Set();
      const metrics = msg.metrics && typeof msg.metrics === 'object' ? msg.metrics : {};
      Object.keys(metrics).forEach(function (name) {
        applyLiveMetrics(ensureRow(name), metrics[name], msg.timestamp);
        changed.add(name);
      });
      if (!msg.system_status) {
        asArray(msg.alerts).forEach(function (ev) {
          if (!ev || !ev.bot || !v.bots.has(String(ev.bot))) return;
          applyAlertEventCounts(v.bots.get(String(ev.bot)), ev);
          changed.add(String(ev.bot));
        });
      }
      changed.forEach(updateRow);
      applyStatus(msg.system_status);
      if (changed.size || msg.system_status) {
        scheduleSort();
        setText(count, 'Showing ' + tbody.querySelectorAll('tr:not([hidden])').length + ' of ' + v.rows.size + ' bots');
      }
    }

    function tick() {
      v.rows.forEach(function (row, name) { renderField(row.cells.last_seen, v.bots.get(name), 'last_seen'); });
    }

    const refreshTimer = setInterval(load, REFRESH_MS);
    load();

    return {
      onMessage: onMessage,
      tick: tick,
      destroy: function () { v.alive = false; clearInterval(refreshTimer); clearTimeout(v.sortTimer); }
    };
  }

  // ---------------------------------------------------------------------------
  // Bot view (#/bot/<name>) — charts
  // ---------------------------------------------------------------------------

  let chartDefaultsSet = false;
  function chartAvailable() {
    if (typeof window.Chart !== 'function') return false;
    if (!chartDefaultsSet) {
      chartDefaultsSet = true;
      try {
        window.Chart.defaults.color = '#9aa4b2';
        window.Chart.defaults.borderColor = 'rgba(154, 164, 178, 0.18)';
      } catch (ignored) { /* older API */ }
    }
    return true;
  }

  function buildChartCard(metric, title) {
    const canvas = el('canvas', { 'data-chart': metric, role: 'img', 'aria-label': title + ' chart' });
    const note = el('p', { className: 'chart-note muted', hidden: true });
    const card = el('section', { className: 'card chart-card', 'data-chart-card': metric }, [
      el('h3', { text: title }), el('div', { className: 'chart-box' }, [canvas]), note
    ]);
    return { metric: metric, title: title, canvas: canvas, note: note, card: card, chart: null };
  }

  function chartConfig(entry, points, getRange) {
    return {
      type: 'line',
      data: {
        datasets: [{
          label: entry.title, data: points, borderColor: '#58a6ff', backgroundColor: 'rgba(88, 166, 255, 0.15)',
          borderWidth: 1.5, pointRadius: 0, pointHitRadius: 6, tension: 0, fill: false
        }]
      },
      options: {
        responsive: true, maintainAspectRatio: false, animation: false, normalized: true,
        interaction: { mode: 'nearest', axis: 'x', intersect: false },
        plugins: {
          legend: { display: false },
          tooltip: {
            callbacks: {
              title: function (items) { return items.length ? fmtDateTime(items[0].parsed.x) : ''; }
            }
          }
        },
        scales: {
          x: {
            type: 'linear',
            bounds: 'data',
            ticks: {
              maxTicksLimit: 8, maxRotation: 0, stepSize: TICK_STEP_MS[getRange()],
              callback: function (value) { return fmtTick(value, getRange()); }
            }
          },
          y: { beginAtZero: false, ticks: { maxTicksLimit: 6 } }
        }
      }
    };
  }

  function historyPoints(series, metric) {
    const list = asArray(series);
    const one = list.find(function (s) { return s && s.metric === metric; }) || list[0];
    const useLast = COUNTER_METRICS.indexOf(metric) >= 0;
    const points = [];
    asArray(one && one.points).forEach(function (p) {
      const x = parseTime(p && p.t);
      const y = toNumber(useLast ? (p.last !== undefined && p.last !== null ? p.last : p.avg) : p.avg);
      if (x !== null && y !== null) points.push({ x: x, y: y });
    });
    points.sort(function (a, b) { return a.x - b.x; });
    return points;
  }

  function showChartNote(entry, text) {
    entry.note.textContent = text;
    entry.note.hidden = !text;
  }

  function setChartPoints(entry, points, getRange) {
    if (!chartAvailable()) { showChartNote(entry, CHART_MISSING_TEXT); return; }
    if (!entry.chart) {
      try {
        entry.chart = new window.Chart(entry.canvas, chartConfig(entry, points, getRange));
      } catch (err) {
        showChartNote(entry, 'Chart could not be drawn: ' + err.message);
        return;
      }
      entry.canvas.setAttribute('data-drawn', 'true');
    } else {
      entry.chart.data.datasets[0].data = points;
      entry.chart.options.scales.x.ticks.stepSize = TICK_STEP_MS[getRange()];
      entry.chart.update('none');
    }
    entry.canvas.setAttribute('data-points', String(points.length));
    showChartNote(entry, points.length ? '' : 'No data in this range');
  }

  function appendChartPoint(entry, x, y) {
    if (!entry.chart) return;
    const data = entry.chart.data.datasets[0].data;
    const last = data[data.length - 1];
    if (last && last.x > x) return;
    if (last && last.x === x) last.y = y;
    else data.push({ x: x, y: y });
    if (data.length > MAX_LIVE_POINTS) data.splice(0, data.length - MAX_LIVE_POINTS);
    entry.chart.update('none');
    entry.canvas.setAttribute('data-points', String(data.length));
    showChartNote(entry, '');
  }

  // ---------------------------------------------------------------------------
  // Bot view — command history
  // ---------------------------------------------------------------------------

  function metaItem(label, field, value) {
    return el('span', { className: 'meta-item' }, [
      el('span', { className: 'meta-label', text: label + ' ' }),
      el('span', { 'data-field': field, text: value === null || value === undefined || value === '' ? DASH : String(value) })
    ]);
  }

  function fillCommand(node, cmd) {
    const state = cmd.state ? String(cmd.state) : 'unknown';
    const actions = cmd.kind === 'emergency_stop'
      ? ['stop trading', 'cancel orders'].concat(cmd.liquidate ? ['liquidate'] : []).concat(['latch emergency mode']) : [];
    const steps = asArray(cmd.steps).map(function (s) {
      const step = s && s.step ? String(s.step) : 'step';
      const status = s && s.status ? String(s.status) : 'pending';
      return el('li', { className: 'step', 'data-step': step }, [
        el('span', { className: 'step-name', text: step }),
        el('span', { className: 'badge step-status step-' + classToken(status), 'data-field': 'status', text: status }),
        el('span', { className: 'step-detail', 'data-field': 'detail', text: s && s.detail ? String(s.detail) : '' }),
        s && s.at ? el('time', { className: 'step-at muted', text: fmtDateTime(parseTime(s.at)) }) : null
      ]);
    });
    const finishedAt = cmd.completedAt || cmd.failedAt || null;
    node.replaceChildren.apply(node, [
      el('div', { className: 'command-head' }, [
        el('span', { className: 'command-id', text: String(cmd.id).slice(0, 8) }),
        el('span', { className: 'command-kind', 'data-field': 'kind', text: String(cmd.kind || DASH) }),
        el('span', { className: 'badge command-state cmd-' + classToken(state), 'data-field': 'state', text: state })
      ]),
      el('div', { className: 'command-meta' }, [
        metaItem('origin', 'origin', cmd.origin),
        metaItem('issued by', 'issuedBy', cmd.issuedBy),
        metaItem('requested', 'createdAt', cmd.createdAt ? fmtDateTime(parseTime(cmd.createdAt)) : null),
        finishedAt ? metaItem('finished', 'finishedAt', fmtDateTime(parseTime(finishedAt))) : null,
        actions.length ? metaItem('actions', 'actions', actions.join(', ')) : null
      ]),
      el('p', { className: 'command-reason', 'data-field': 'reason', text: cmd.reason ? String(cmd.reason) : DASH }),
      cmd.detail ? el('p', { className: 'command-error' + (cmd.state === 'failed' ? ' neg' : ' muted'), text: String(cmd.detail) }) : null,
      steps.length ? el('ol', { className: 'steps' }, steps) : null
    ].filter(Boolean));
  }

  function commandIsOpen(cmd) { return TERMINAL_COMMAND_STATES.indexOf(cmd.state) < 0; }

  // ---------------------------------------------------------------------------
  // Bot view — dialogs
  // ---------------------------------------------------------------------------

  function buildDialog(prefix, title, extra, confirmText) {
    const reason = el('textarea', { id: prefix + '-reason', rows: '3', required: true, placeholder: 'Why? (required)' });
    const error = el('p', { id: prefix + '-error', className: 'form-error', role: 'alert', hidden: true });
    const cancel = el('button', { id: prefix + '-cancel', type: 'button', className: 'button-secondary', text: 'Cancel' });
    const confirm = el('button', { id: prefix + '-confirm', type: 'button', className: prefix === 'stop' ? 'button-danger' : 'button-primary', text: confirmText });
    const dialog = el('dialog', { id: prefix + '-dialog', className: 'dialog', 'aria-labelledby': prefix + '-title' }, [
      el('h3', { id: prefix + '-title', text: title })
    ].concat(extra, [
      el('label', { for: prefix + '-reason', text: 'Reason' }), reason, error,
      el('div', { className: 'dialog-buttons' }, [cancel, confirm])
    ]));
    cancel.addEventListener('click', function () { dialog.close(); });
    return { dialog: dialog, reason: reason, error: error, confirm: confirm };
  }

  function openDialog(dialog) {
    if (typeof dialog.showModal === 'function') dialog.showModal();
    else dialog.setAttribute('open', '');
  }

  // ---------------------------------------------------------------------------
  // Bot view
  // ---------------------------------------------------------------------------

  function createBotView(root, name) {
    const v = {
      alive: true, bot: newBot(name), range: '1h', chartSeq: 0, commandSeq: 0,
      commandTimer: null, commandNodes: new Map(), commandStates: new Map(), commandErrorShown: false,
      stopKey: null, resumeKey: null, thresholdProfile: null
    };
    const enc = encodeURIComponent(name);
    const getRange = function () { return v.range; };

    // Summary / header
    const stateBadge = el('span', { id: 'bot-state', className: 'badge', 'data-field': 'state', text: DASH });
    const stopButton = operatorButton({ id: 'emergency-stop-button', className: 'button-danger' }, 'Emergency stop');
    const resumeButton = operatorButton({ id: 'resume-button', className: 'button-primary', hidden: true }, 'Resume');
    const meta = el('p', { className: 'bot-meta muted' });
    const summaryCells = {};
    const tiles = FLEET_FIELDS.filter(function (f) { return f !== 'name' && f !== 'state'; }).map(function (f) {
      summaryCells[f] = el('span', { className: 'tile-value', 'data-field': f, text: DASH });
      return el('div', { className: 'tile' }, [el('span', { className: 'tile-label', text: FIELD_LABELS[f] }), summaryCells[f]]);
    });
    summaryCells.state = stateBadge;
    const summary = el('div', { id: 'bot-summary', className: 'card bot-summary' }, [
      el('div', { className: 'bot-header' }, [
        el('div', { className: 'bot-title' }, [
          el('a', { className: 'back-link', href: '#/', text: '← Fleet' }),
          el('h2', { 'data-field': 'name', text: name }), stateBadge
        ]),
        el('div', { className: 'bot-actions' }, [resumeButton, stopButton])
      ]),
      meta,
      el('div', { className: 'summary-grid' }, tiles)
    ]);

    // Charts
    const rangeButtons = ['1h', '24h', '7d'].map(function (r) {
      return el('button', { type: 'button', className: 'range-button', 'data-range': r, text: r });
    });
    const charts = CHART_METRICS.map(function (m) { return buildChartCard(m[0], m[1]); });

    // Thresholds, alerts, commands
    const thresholdsBody = el('tbody');
    const thresholdsInfo = el('p', { className: 'muted thresholds-info' });
    const saveButton = operatorButton({ id: 'save-thresholds', className: 'button-primary' }, 'Save thresholds');
    const alertsList = el('ul', { id: 'bot-alerts', className: 'alert-list' });
    const commandList = el('ol', { id: 'command-history', className: 'command-list' });
    const commandsEmpty = el('p', { className: 'muted', text: 'No commands yet.' });

    // Dialogs
    const liquidate = el('input', { id: 'stop-liquidate', type: 'checkbox' });
    const stopSummary = el('p', { id: 'stop-summary', className: 'dialog-summary' });
    const liquidateNote = el('p', { className: 'muted', id: 'stop-liquidate-note', text: 'Liquidation is not allowed for this bot (allowLiquidation is off).', hidden: true });
    const stopDialog = buildDialog('stop', 'Emergency stop', [
      stopSummary,
      el('label', { className: 'checkbox' }, [liquidate, el('span', { text: 'Also liquidate all open positions' })]),
      liquidateNote
    ], 'Stop bot');
    const resumeDialog = buildDialog('resume', 'Resume bot', [
      el('p', { className: 'dialog-summary', text: 'Bot ' + name + ' will leave emergency mode and may trade again.' })
    ], 'Resume');

    root.append(el('section', { id: 'bot-view', className: 'bot-view', 'data-bot': name }, [
      summary,
      el('div', { className: 'range-bar', role: 'group', 'aria-label': 'Chart range' }, [el('span', { className: 'muted', text: 'Range' })].concat(rangeButtons)),
      el('div', { className: 'charts-grid' }, charts.map(function (c) { return c.card; })),
      el('div', { className: 'panels' }, [
        el('section', { className: 'card panel' }, [
          el('div', { className: 'panel-head' }, [el('h3', { text: 'Thresholds' }), saveButton]),
          thresholdsInfo,
          el('div', { className: 'table-scroll' }, [el('table', { id: 'thresholds', className: 'data-table' }, [
            el('thead', null, [el('tr', null, ['Rule', 'Metric', 'Level', 'Limit', 'Summary'].map(function (h) {
              return el('th', { scope: 'col', text: h });
            }))]),
            thresholdsBody
          ])])
        ]),
        el('section', { className: 'card panel' }, [el('h3', { text: 'Alerts' }), alertsList]),
        el('section', { className: 'card panel' }, [el('h3', { text: 'Command history' }), commandsEmpty, commandList])
      ]),
      stopDialog.dialog, resumeDialog.dialog
    ]));

    const alerts = createAlertList(alertsList, 'No alerts for this bot.');

    // ---- summary ----
    function renderSummary() {
      const bot = v.bot;
      Object.keys(summaryCells).forEach(function (f) { renderField(summaryCells[f], bot, f); });
      const parts = [];
      if (bot.profile) parts.push('profile ' + bot.profile);
      if (bot.connectedHub) parts.push('hub ' + bot.connectedHub);
      if (bot.agentVersion) parts.push('agent ' + bot.agentVersion);
      if (bot.emergencySince) parts.push('emergency since ' + fmtDateTime(parseTime(bot.emergencySince)));
      setText(meta, parts.join(' · '));
      resumeButton.hidden = !(bot.state === 'emergency' || bot.emergencySince);
    }

    async function loadBot() {
      try {
        const list = await api('/api/bots');
        if (!v.alive) return;
        const rec = asArray(list).find(function (b) { return b && String(b.id) === name; });
        if (rec) applyBotRecord(v.bot, rec);
        renderSummary();
        if (!rec) setText(meta, 'This bot is not known to the hub.');
      } catch (err) {
        if (v.alive && err.status !== 401) toastError(err);
      }
    }

    // ---- charts ----
    function selectRange(range) {
      v.range = range;
      rangeButtons.forEach(function (b) { b.classList.toggle('active', b.dataset.range === range); });
      loadCharts();
    }

    function loadCharts() {
      if (!chartAvailable()) {
        charts.forEach(function (c) {
          c.canvas.parentNode.hidden = true;
          showChartNote(c, CHART_MISSING_TEXT);
        });
        return;
      }
      const seq = ++v.chartSeq;
      const range = v.range;
      charts.forEach(function (entry) {
        const url = '/api/metrics/history?bot=' + enc + '&metric=' + encodeURIComponent(entry.metric) + '&range=' + range;
        api(url).then(function (series) {
          if (v.alive && seq === v.chartSeq) setChartPoints(entry, historyPoints(series, entry.metric), getRange);
        }).catch(function (err) {
          if (v.alive && seq === v.chartSeq && err.status !== 401) showChartNote(entry, 'History unavailable: ' + err.message);
        });
      });
    }

    function appendLive(values, timestamp) {
      if (v.range !== '1h') return;
      const x = parseTime(timestamp) || Date.now();
      charts.forEach(function (entry) {
        const y = toNumber(values[entry.metric]);
        if (y !== null && typeof values[entry.metric] === 'number') appendChartPoint(entry, x, y);
      });
    }

    // ---- thresholds ----
    function renderThresholds(profile) {
      v.thresholdProfile = profile || null;
      const rules = asArray(profile && profile.rules);
      setText(thresholdsInfo, profile
        ? 'Profile ' + (profile.name || DASH) + ' · emergency shutdown ' + (profile.enableEmergencyShutdown ? 'enabled' : 'disabled')
        : 'No threshold profile.');
      thresholdsBody.replaceChildren.apply(thresholdsBody, rules.map(function (rule) {
        const id = String(rule.id);
        const input = el('input', {
          type: 'number', step: 'any', 'data-rule': id, 'aria-label': 'Limit for ' + id,
          value: rule.limit === null || rule.limit === undefined ? '' : String(rule.limit)
        });
        input.dataset.original = input.value;
        if (!isOperator()) input.disabled = true;
        return el('tr', { 'data-rule-id': id }, [
          el('td', { text: id }), el('td', { text: String(rule.metric || DASH) }),
          el('td', { className: 'level-' + classToken(rule.level || 'INFO'), text: String(rule.level || DASH) }),
          el('td', null, [input]), el('td', { text: String(rule.summary || '') })
        ]);
      }));
      if (!rules.length) {
        thresholdsBody.append(el('tr', null, [el('td', { colspan: '5', className: 'muted', text: 'No rules.' })]));
      }
    }

    async function loadThresholds() {
      try {
        const profiles = await api('/api/thresholds?bot=' + enc);
        if (v.alive) renderThresholds(Array.isArray(profiles) ? profiles[0] : profiles);
      } catch (err) {
        if (v.alive && err.status !== 401) toastError(err);
      }
    }

    async function saveThresholds() {
      const changes = {};
      let invalid = null;
      thresholdsBody.querySelectorAll('input[data-rule]').forEach(function (input) {
        const raw = input.value.trim();
        if (raw === '' || raw === input.dataset.original) return;
        const n = Number(raw);
        if (!Number.isFinite(n)) invalid = input.dataset.rule;
        else if (n !== Number(input.dataset.original)) changes[input.dataset.rule] = n;
      });
      if (invalid) { toast('Invalid limit for ' + invalid, 'error'); return; }
      const count = Object.keys(changes).length;
      if (!count) { toast('No threshold changes to save'); return; }
      saveButton.disabled = true;
      try {
        await api(botPath(name) + '/thresholds', { method: 'PUT', body: changes });
        toast('Thresholds saved (' + count + ' changed)', 'success');
        await loadThresholds();
      } catch (err) {
        toastError(err);
      } finally {
        saveButton.disabled = !isOperator();
      }
    }

    // ---- alerts ----
    async function loadAlerts() {
      try {
        const list = await api('/api/alerts?bot=' + enc + '&limit=50');
        if (v.alive) asArray(list).forEach(alerts.upsert);
      } catch (err) {
        if (v.alive && err.status !== 401) toastError(err);
      }
    }

    // ---- commands ----
    function renderCommands(list) {
      const sorted = asArray(list).filter(function (c) { return c && c.id !== undefined && c.id !== null; })
        .sort(function (a, b) { return (toNumber(b.id) || 0) - (toNumber(a.id) || 0); });
      let finished = false;
      const nodes = sorted.map(function (cmd) {
        const id = String(cmd.id);
        const signature = JSON.stringify(cmd);
        let node = v.commandNodes.get(id);
        if (!node) {
          node = el('li', { className: 'command', 'data-command-id': id });
          v.commandNodes.set(id, node);
        }
        if (node.dataset.signature !== signature) {
          fillCommand(node, cmd);
          node.dataset.signature = signature;
        }
        const before = v.commandStates.get(id);
        if (before && !TERMINAL_COMMAND_STATES.includes(before) && !commandIsOpen(cmd)) finished = true;
        v.commandStates.set(id, cmd.state);
        return node;
      });
      commandList.replaceChildren.apply(commandList, nodes);
      commandsEmpty.hidden = nodes.length > 0;
      if (finished) loadBot();
      return sorted.some(commandIsOpen);
    }

    async function pollCommands() {
      clearTimeout(v.commandTimer);
      const seq = ++v.commandSeq;
      let delay = 5000;
      try {
        const list = await api(botPath(name) + '/commands');
        if (!v.alive || seq !== v.commandSeq) return;
        if (renderCommands(list)) delay = 1000;
        v.commandErrorShown = false;
      } catch (err) {
        if (!v.alive || seq !== v.commandSeq) return;
        if (!v.commandErrorShown && err.status !== 401) { toastError(err); v.commandErrorShown = true; }
      }
      v.commandTimer = setTimeout(pollCommands, delay);
    }

    // ---- emergency stop / resume ----
    function updateStopSummary() {
      let text = 'Bot ' + name + ' will stop trading, cancel all open orders, and latch emergency mode until resumed.';
      if (liquidate.checked) text += ' Liquidation is checked: it will also close out and liquidate all open positions.';
      stopSummary.textContent = text;
    }

    function openStopDialog() {
      if (!isOperator()) return;
      v.stopKey = uuid();
      stopDialog.reason.value = '';
      showInlineError(stopDialog.error, '');
      liquidate.checked = false;
      liquidate.disabled = !v.bot.allowLiquidation;
      liquidateNote.hidden = !!v.bot.allowLiquidation;
      stopDialog.confirm.disabled = false;
      updateStopSummary();
      openDialog(stopDialog.dialog);
      stopDialog.reason.focus();
    }

    async function confirmStop() {
      const reason = stopDialog.reason.value.trim();
      if (!reason) {
        showInlineError(stopDialog.error, 'A reason is required.');
        stopDialog.reason.focus();
        return;
      }
      showInlineError(stopDialog.error, '');
      stopDialog.confirm.disabled = true;
      try {
        const cmd = await api(botPath(name) + '/emergency-stop', {
          method: 'POST',
          headers: { 'Idempotency-Key': v.stopKey },
          body: { reason: reason, liquidate: liquidate.checked && !liquidate.disabled }
        });
        stopDialog.dialog.close();
        toast('Stop sent (command ' + (cmd && cmd.id !== undefined ? cmd.id : '?') + ')', 'success');
        pollCommands();
        loadBot();
      } catch (err) {
        showInlineError(stopDialog.error, err.message);
        toastError(err);
      } finally {
        stopDialog.confirm.disabled = false;
      }
    }

    function openResumeDialog() {
      if (!isOperator()) return;
      v.resumeKey = uuid();
      resumeDialog.reason.value = '';
      showInlineError(resumeDialog.error, '');
      resumeDialog.confirm.disabled = false;
      openDialog(resumeDialog.dialog);
      resumeDialog.reason.focus();
    }

    async function confirmResume() {
      const reason = resumeDialog.reason.value.trim();
      if (!reason) {
        showInlineError(resumeDialog.error, 'A reason is required.');
        resumeDialog.reason.focus();
        return;
      }
      showInlineError(resumeDialog.error, '');
      resumeDialog.confirm.disabled = true;
      try {
        const cmd = await api(botPath(name) + '/resume', {
          method: 'POST', headers: { 'Idempotency-Key': v.resumeKey }, body: { reason: reason }
        });
        resumeDialog.dialog.close();
        toast('Resume sent (command ' + (cmd && cmd.id !== undefined ? cmd.id : '?') + ')', 'success');
        pollCommands();
        loadBot();
      } catch (err) {
        showInlineError(resumeDialog.error, err.message);
        toastError(err);
      } finally {
        resumeDialog.confirm.disabled = false;
      }
    }

    // ---- live ----
    function onMessage(msg) {
      if (msg.type !== 'metrics_update') return;
      if (msg.scope === 'bot' && msg.bot !== undefined && String(msg.bot) !== name) return;
      const metrics = msg.scope === 'bot' ? msg.metrics : (msg.metrics || {})[name];
      if (metrics && typeof metrics === 'object') {
        applyLiveMetrics(v.bot, metrics, msg.timestamp);
        appendLive(metrics, msg.timestamp);
      }
      const events = asArray(msg.alerts).filter(function (ev) { return ev && String(ev.bot) === name; });
      events.forEach(alerts.applyEvent);
      const status = msg.system_status;
      const entry = status && asArray(status.status).find(function (s) { return s && String(s.bot) === name; });
      if (entry) applyBotStatus(v.bot, entry);
      else events.forEach(function (ev) { applyAlertEventCounts(v.bot, ev); });
      renderSummary();
    }

    function tick() { renderField(summaryCells.last_seen, v.bot, 'last_seen'); }

    // ---- wiring ----
    rangeButtons.forEach(function (b) { b.addEventListener('click', function () { selectRange(b.dataset.range); }); });
    saveButton.addEventListener('click', saveThresholds);
    stopButton.addEventListener('click', openStopDialog);
    resumeButton.addEventListener('click', openResumeDialog);
    liquidate.addEventListener('change', updateStopSummary);
    stopDialog.confirm.addEventListener('click', confirmStop);
    resumeDialog.confirm.addEventListener('click', confirmResume);

    renderSummary();
    renderThresholds(null);
    commandsEmpty.hidden = false;
    selectRange('1h');
    loadBot();
    loadThresholds();
    loadAlerts();
    pollCommands();
    const refreshTimer = setInterval(function () { loadBot(); loadAlerts(); loadCharts(); }, REFRESH_MS);

    return {
      onMessage: onMessage,
      tick: tick,
      destroy: function () {
        v.alive = false;
        clearInterval(refreshTimer);
        clearTimeout(v.commandTimer);
        [stopDialog.dialog, resumeDialog.dialog].forEach(function (d) { if (d.open) d.close(); });
        charts.forEach(function (c) { if (c.chart) c.chart.destroy(); });
      }
    };
  }

  // ---------------------------------------------------------------------------
  // Alerts view (#/alerts)
  // ---------------------------------------------------------------------------

  function createAlertsView(root) {
    const v = { alive: true, loadSeq: 0 };
    const level = selectControl('alerts-level', 'Level', [['all', 'All levels']].concat(LEVELS.map(function (l) { return [l, l]; })));
    const state = selectControl('alerts-state', 'State', [['all', 'All states'], ['firing', 'firing'], ['resolved', 'resolved']]);
    const feed = el('ul', { id: 'alerts-feed', className: 'alert-list' });
    root.append(el('section', { id: 'alerts-view', className: 'alerts-view' }, [
      el('div', { className: 'filters' }, [el('h2', { text: 'Alerts' }), level.node, state.node]),
      el('div', { className: 'card' }, [feed])
    ]));
    const list = createAlertList(feed, 'No alerts.');

    function matches(rec) {
      if (level.select.value !== 'all' && rec.level !== level.select.value) return false;
      if (state.select.value !== 'all' && (rec.state || 'firing') !== state.select.value) return false;
      return true;
    }

    function query() {
      let q = '/api/alerts?limit=200';
      if (level.select.value !== 'all') q += '&level=' + encodeURIComponent(level.select.value);
      if (state.select.value !== 'all') q += '&state=' + encodeURIComponent(state.select.value);
      return q;
    }

    /** replace=true after a filter change; otherwise merge (periodic refresh). */
    async function load(replace) {
      const seq = ++v.loadSeq;
      try {
        const records = await api(query());
        if (!v.alive || seq !== v.loadSeq) return;
        if (replace) list.replaceAll(records);
        else asArray(records).forEach(list.upsert);
      } catch (err) {
        if (v.alive && err.status !== 401) toastError(err);
      }
    }

    function onFilterChange() {
      list.setFilter(matches);
      load(true);
    }

    function onMessage(msg) {
      if (msg.type !== 'metrics_update') return;
      asArray(msg.alerts).forEach(list.applyEvent);
    }

    list.setFilter(matches);
    level.select.addEventListener('change', onFilterChange);
    state.select.addEventListener('change', onFilterChange);
    load(true);
    const refreshTimer = setInterval(function () { load(false); }, REFRESH_MS);

    return {
      onMessage: onMessage,
      tick: function () {},
      destroy: function () { v.alive = false; clearInterval(refreshTimer); }
    };
  }

  // ---------------------------------------------------------------------------
  // Router and start-up
  // ---------------------------------------------------------------------------

  function parseRoute() {
    const hash = window.location.hash || '';
    if (hash.indexOf('#/bot/') === 0) {
      let name = hash.slice('#/bot/'.length);
      try { name = decodeURIComponent(name); } catch (ignored) { /* keep raw */ }
      if (name) return { name: 'bot', bot: name };
    }
    if (hash === '#/alerts' || hash.indexOf('#/alerts?') === 0) return { name: 'alerts' };
    return { name: 'fleet' };
  }

  function route() {
    if (app.redirecting) return;
    const r = parseRoute();
    if (app.view) app.view.destroy();
    app.view = null;
    const root = byId('view');
    root.replaceChildren();
    byId('nav-fleet').classList.toggle('active', r.name === 'fleet');
    byId('nav-alerts').classList.toggle('active', r.name === 'alerts');
    document.title = r.name === 'bot' ? r.bot + ' · fleetwatch' : r.name === 'alerts' ? 'Alerts · fleetwatch' : 'fleetwatch';
    if (r.name === 'bot') app.view = createBotView(root, r.bot);
    else if (r.name === 'alerts') app.view = createAlertsView(root);
    else app.view = createFleetView(root);
    connectLive(r.name === 'bot' ? '/ws?bot=' + encodeURIComponent(r.bot) : '/ws');
  }

  async function logout() {
    const button = byId('logout-button');
    button.disabled = true;
    stopLive();
    app.redirecting = true;
    try {
      await api('/auth/logout', { method: 'POST' });
    } catch (ignored) { /* go to the sign-in page anyway */ }
    window.location.href = '/login';
  }

  function applySession(session) {
    app.session = session;
    const role = String(session.role || 'viewer');
    setText(byId('signed-in-user'), String(session.user || '?') + ' (' + role + ')');
    document.body.classList.add(isOperator() ? 'role-operator' : 'role-viewer');
  }

  async function start() {
    setConnected(false);
    byId('logout-button').addEventListener('click', logout);
    let session;
    try {
      session = await api('/api/session');
    } catch (err) {
      if (err.status === 401) return;
      const root = byId('view');
      const retry = el('button', { type: 'button', className: 'button-primary', text: 'Retry' });
      retry.addEventListener('click', function () { window.location.reload(); });
      root.replaceChildren(el('p', { className: 'form-error', text: 'Cannot load the session: ' + err.message }), retry);
      return;
    }
    applySession(session || {});
    window.addEventListener('hashchange', route);
    setInterval(function () { if (app.view) app.view.tick(); }, 1000);
    route();
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start);
  else start();
})();
