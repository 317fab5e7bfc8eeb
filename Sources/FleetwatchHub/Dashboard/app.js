/*
 * fleetwatch dashboard — router and start-up: loads the session, then shows the view for the URL
 * hash (fleet, bot or alerts) and follows it live.
 *
 * A plain script (no build step) loaded in order with `defer` by index.html: it reads what it needs from,
 * and adds its functions to, the one global `window.fleetwatch` (see core.js).
 */
(function (fw) {
  'use strict';

  const { app, el, byId, setText, isOperator, api, setConnected, connectLive, stopLive, createFleetView,
    createBotView, createAlertsView } = fw;

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
})(window.fleetwatch = window.fleetwatch || {});
