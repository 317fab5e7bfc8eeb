/*
 * fleetwatch dashboard — alert list (the alerts feed and a bot's alerts): sorted entries, live
 * events, acknowledge and silence.
 *
 * A plain script (no build step) loaded in order with `defer` by index.html: it reads what it needs from,
 * and adds its functions to, the one global `window.fleetwatch` (see core.js).
 */
(function (fw) {
  'use strict';

  const { DASH, MAX_FEED_ENTRIES, app, el, classToken, isOperator, operatorButton, toast, toastError,
    toNumber, parseTime, fmtDateTime, api, botHref, asArray } = fw;

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

  Object.assign(fw, { createAlertList });
})(window.fleetwatch = window.fleetwatch || {});
