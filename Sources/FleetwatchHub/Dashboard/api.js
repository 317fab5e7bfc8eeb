/*
 * fleetwatch dashboard — HTTP API: fetch wrapper with the session's CSRF token, 401 → sign-in page.
 *
 * A plain script (no build step) loaded in order with `defer` by index.html: it reads what it needs from,
 * and adds its functions to, the one global `window.fleetwatch` (see core.js).
 */
(function (fw) {
  'use strict';

  const { app } = fw;

  function redirectToLogin() {
    if (app.redirecting) return;
    app.redirecting = true;
    fw.stopLive(); // live.js, loaded later
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

  Object.assign(fw, { redirectToLogin, api, botPath, botHref, asArray });
})(window.fleetwatch = window.fleetwatch || {});
