/*
 * fleetwatch dashboard — formatting of numbers, times and alert counts.
 *
 * A plain script (no build step) loaded in order with `defer` by index.html: it reads what it needs from,
 * and adds its functions to, the one global `window.fleetwatch` (see core.js).
 */
(function (fw) {
  'use strict';

  const { DASH, GOOD_STATUS_TEXT, setText, setDynClass } = fw;

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

  Object.assign(fw, { toNumber, parseTime, fmtDateTime, fmtTick, fmtAgo, formatValue, setValue, alertsText,
    topLevel });
})(window.fleetwatch = window.fleetwatch || {});
