/*
 * fleetwatch dashboard — single-page app, vanilla JS, no build step.
 *
 * The code is split into plain scripts loaded in order with `defer` by index.html (core, dom, format,
 * api, model, live, alert-list, fleet, charts, bot-thresholds, bot-commands, bot-dialogs, bot, alerts,
 * app). Each is a strict-mode IIFE that reads what it needs from, and adds its functions to, the one
 * global `window.fleetwatch`; this file creates it with the constants and the shared app state.
 *
 * Security: every piece of server data is inserted with textContent /
 * setAttribute only (never as HTML). All non-GET requests carry the CSRF
 * token from GET /api/session.
 */
(function (fw) {
  'use strict';

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

  Object.assign(fw, { DASH, REFRESH_MS, MAX_LIVE_POINTS, MAX_FEED_ENTRIES, TERMINAL_COMMAND_STATES,
    CHART_MISSING_TEXT, FLEET_FIELDS, FIELD_LABELS, FIELD_KINDS, GOOD_STATUS_TEXT, TOTALS, CHART_METRICS,
    COUNTER_METRICS, TICK_STEP_MS, STATES, LEVELS, app });
})(window.fleetwatch = window.fleetwatch || {});
