/*
 * fleetwatch dashboard — fleet view (#/): totals, filters and the sortable table of all bots.
 *
 * A plain script (no build step) loaded in order with `defer` by index.html: it reads what it needs from,
 * and adds its functions to, the one global `window.fleetwatch` (see core.js).
 */
(function (fw) {
  'use strict';

  const { DASH, REFRESH_MS, FLEET_FIELDS, FIELD_LABELS, TOTALS, STATES, LEVELS, el, setText, setDynClass,
    classToken, toastError, selectControl, toNumber, setValue, api, botHref, asArray, newBot, applyBotRecord,
    applyLiveMetrics, applyBotStatus, applyAlertEventCounts, fieldValue, renderField } = fw;

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

    // The reference system's overall status: a word and a sentence, for the whole fleet.
    const healthWord = el('span', { id: 'fleet-health-status', className: 'badge health', text: DASH });
    const healthMessage = el('span', { id: 'fleet-health-message', className: 'health-message', text: '' });
    const healthCheck = el('span', { id: 'fleet-health-check', className: 'muted health-check', text: '' });
    const health = el('div', { id: 'fleet-health', className: 'card fleet-health', role: 'status' },
      [el('span', { className: 'total-label', text: 'Fleet status ' }), healthWord, healthMessage, healthCheck]);
    root.append(el('section', { id: 'fleet-view', className: 'fleet-view' }, [
      health,
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
      if (status.status) {
        setText(healthWord, String(status.status));
        setDynClass(healthWord, ['health-' + classToken(String(status.status))]);
        setText(healthMessage, status.message ? ' ' + String(status.message) : '');
        setText(healthCheck, status.lastHealthCheck ? ' · last health check ' + fw.fmtDateTime(fw.parseTime(status.lastHealthCheck)) : '');
      }
      asArray(status.botStatuses).forEach(function (entry) {
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

  Object.assign(fw, { createFleetView });
})(window.fleetwatch = window.fleetwatch || {});
