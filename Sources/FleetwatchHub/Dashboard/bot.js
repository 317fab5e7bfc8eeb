/*
 * fleetwatch dashboard — bot view (#/bot/<name>).
 *
 * A plain script (no build step) loaded in order with `defer` by index.html: it reads what it needs from,
 * and adds its functions to, the one global `window.fleetwatch` (see core.js).
 */
(function (fw) {
  'use strict';

  const { DASH, REFRESH_MS, FLEET_FIELDS, FIELD_LABELS, el, setText, operatorButton, toastError, parseTime,
    fmtDateTime, api, asArray, newBot, applyBotRecord, applyLiveMetrics, applyBotStatus,
    applyAlertEventCounts, renderField, createAlertList, createChartPanel, createThresholdsPanel,
    createCommandHistory, createCommandDialogs } = fw;

  /**
   * Bot view (#/bot/<name>): the summary with the emergency stop and resume buttons, the charts, the
   * thresholds, the bot's alerts and its command history, all kept live.
   */
  function createBotView(root, name) {
    const v = { alive: true, bot: newBot(name) };
    const enc = encodeURIComponent(name);

    // Summary / header
    const stateBadge = el('span', { id: 'bot-state', className: 'badge', 'data-field': 'state', text: DASH });
    const stopButton = operatorButton({ id: 'emergency-stop-button', className: 'button-danger' }, 'Emergency stop');
    const resumeButton = operatorButton({ id: 'resume-button', className: 'button-primary', hidden: true }, 'Resume');
    const meta = el('p', { className: 'bot-meta muted' });
    // The bot's overall status and its last periodic health check.
    const healthWord = el('span', { id: 'bot-health-status', className: 'badge health', text: DASH });
    const healthMessage = el('span', { id: 'bot-health-message', className: 'health-message', text: '' });
    const healthCheck = el('span', { id: 'bot-health-check', className: 'muted health-check', text: '' });
    const health = el('p', { className: 'bot-health', role: 'status' }, [healthWord, healthMessage, healthCheck]);
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
      health,
      el('div', { className: 'summary-grid' }, tiles)
    ]);

    // Charts, thresholds, alerts, commands, dialogs
    const charts = createChartPanel(v, name);
    const thresholds = createThresholdsPanel(v, name);
    const alertsList = el('ul', { id: 'bot-alerts', className: 'alert-list' });
    const commands = createCommandHistory(v, name, loadBot);
    const dialogs = createCommandDialogs(v, name, function () { commands.poll(); loadBot(); });

    root.append(el('section', { id: 'bot-view', className: 'bot-view', 'data-bot': name }, [
      summary,
      charts.rangeBar,
      charts.grid,
      el('div', { className: 'panels' }, [
        thresholds.node,
        el('section', { className: 'card panel' }, [el('h3', { text: 'Alerts' }), alertsList]),
        commands.node
      ])
    ].concat(dialogs.nodes)));

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

    function renderHealth(entry) {
      if (!entry || !entry.status) return;
      setText(healthWord, String(entry.status));
      fw.setDynClass(healthWord, ['health-' + fw.classToken(String(entry.status))]);
      setText(healthMessage, entry.message ? ' ' + String(entry.message) : '');
      const check = entry.lastCheck;
      setText(healthCheck, check ? ' · last health check ' + fmtDateTime(parseTime(check.at)) + ': ' + String(check.status) : '');
    }

    async function loadHealth() {
      try {
        const status = await api('/api/status?bot=' + enc);
        if (v.alive) renderHealth(asArray(status && status.botStatuses)[0]);
      } catch (err) {
        if (v.alive && err.status !== 401 && err.status !== 404) toastError(err);
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

    // ---- live ----
    function onMessage(msg) {
      if (msg.type !== 'metrics_update') return;
      if (msg.scope === 'bot' && msg.bot !== undefined && String(msg.bot) !== name) return;
      const metrics = msg.scope === 'bot' ? msg.metrics : (msg.metrics || {})[name];
      if (metrics && typeof metrics === 'object') {
        applyLiveMetrics(v.bot, metrics, msg.timestamp);
        charts.appendLive(metrics, msg.timestamp);
      }
      const events = asArray(msg.alerts).filter(function (ev) { return ev && String(ev.bot) === name; });
      events.forEach(alerts.applyEvent);
      const status = msg.system_status;
      const entry = status && asArray(status.botStatuses).find(function (s) { return s && String(s.bot) === name; });
      if (entry) { applyBotStatus(v.bot, entry); renderHealth(entry); }
      else events.forEach(function (ev) { applyAlertEventCounts(v.bot, ev); });
      renderSummary();
    }

    function tick() { renderField(summaryCells.last_seen, v.bot, 'last_seen'); }

    // ---- wiring ----
    stopButton.addEventListener('click', dialogs.openStop);
    resumeButton.addEventListener('click', dialogs.openResume);

    renderSummary();
    thresholds.render(null);
    commands.showEmpty();
    charts.selectRange('1h');
    loadBot();
    loadHealth();
    thresholds.load();
    loadAlerts();
    commands.poll();
    const refreshTimer = setInterval(function () { loadBot(); loadHealth(); loadAlerts(); charts.load(); }, REFRESH_MS);

    return {
      onMessage: onMessage,
      tick: tick,
      destroy: function () {
        v.alive = false;
        clearInterval(refreshTimer);
        commands.destroy();
        dialogs.destroy();
        charts.destroy();
      }
    };
  }

  Object.assign(fw, { createBotView });
})(window.fleetwatch = window.fleetwatch || {});
