/*
 * fleetwatch dashboard — bot model shared by the fleet and bot views, and rendering of its fields.
 *
 * A plain script (no build step) loaded in order with `defer` by index.html: it reads what it needs from,
 * and adds its functions to, the one global `window.fleetwatch` (see core.js).
 */
(function (fw) {
  'use strict';

  const { DASH, FIELD_KINDS, setText, setDynClass, classToken, toNumber, parseTime, fmtDateTime, fmtAgo,
    setValue, alertsText, topLevel } = fw;

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

  Object.assign(fw, { newBot, alertCounts, applyBotRecord, applyLiveMetrics, applyBotStatus,
    applyAlertEventCounts, fieldValue, renderField });
})(window.fleetwatch = window.fleetwatch || {});
