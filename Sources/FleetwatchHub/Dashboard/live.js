/*
 * fleetwatch dashboard — live WebSocket: connect, reconnect with backoff, answer pings, hand messages
 * to the current view.
 *
 * A plain script (no build step) loaded in order with `defer` by index.html: it reads what it needs from,
 * and adds its functions to, the one global `window.fleetwatch` (see core.js).
 */
(function (fw) {
  'use strict';

  const { app, byId, setText, api } = fw;

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

  Object.assign(fw, { setConnected, connectLive, stopLive });
})(window.fleetwatch = window.fleetwatch || {});
