/*
 * fleetwatch dashboard — alerts view (#/alerts): filters and the alerts feed.
 *
 * A plain script (no build step) loaded in order with `defer` by index.html: it reads what it needs from,
 * and adds its functions to, the one global `window.fleetwatch` (see core.js).
 */
(function (fw) {
  'use strict';

  const { REFRESH_MS, LEVELS, el, toastError, selectControl, api, asArray, createAlertList } = fw;

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

  Object.assign(fw, { createAlertsView });
})(window.fleetwatch = window.fleetwatch || {});
