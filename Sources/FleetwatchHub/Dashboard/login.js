/* fleetwatch sign-in page. No framework, no inline code (strict CSP). */
(function () {
  'use strict';

  /** Only same-page hash routes are accepted as a return target (no open redirect). */
  function nextHash() {
    const next = new URLSearchParams(window.location.search).get('next') || '';
    return next.charAt(0) === '#' ? next : '';
  }

  function showError(message) {
    const box = document.getElementById('login-error');
    box.textContent = message || '';
    box.hidden = !message;
  }

  async function readErrorMessage(response) {
    try {
      const text = await response.text();
      try {
        const data = JSON.parse(text);
        if (data && data.error && typeof data.error.message === 'string') return data.error.message;
        if (data && typeof data.message === 'string') return data.message;
        if (data && typeof data.error === 'string') return data.error;
      } catch (ignored) {
        if (text && text.length < 300) return text;
      }
    } catch (ignored) { /* body unreadable */ }
    return '';
  }

  async function signIn(username, password) {
    let response;
    try {
      response = await fetch('/auth/login', {
        method: 'POST',
        credentials: 'same-origin',
        headers: { 'Content-Type': 'application/json', 'Accept': 'application/json' },
        body: JSON.stringify({ username: username, password: password })
      });
    } catch (err) {
      showError('Cannot reach the hub. Check your connection and try again.');
      return;
    }
    if (response.ok) {
      window.location.href = '/' + nextHash();
      return;
    }
    if (response.status === 401) {
      showError('Wrong user name or password');
      return;
    }
    const message = await readErrorMessage(response);
    if (response.status === 429) {
      showError(message || 'Too many sign-in attempts. Try again later.');
      return;
    }
    showError(message || ('Sign-in failed (HTTP ' + response.status + ')'));
  }

  function onSubmit(event) {
    event.preventDefault();
    const button = document.getElementById('login-button');
    const username = document.getElementById('username').value.trim();
    const password = document.getElementById('password').value;
    if (!username || !password) {
      showError('Enter your user name and password');
      return;
    }
    showError('');
    button.disabled = true;
    signIn(username, password).finally(function () { button.disabled = false; });
  }

  function init() {
    showError('');
    document.getElementById('login-form').addEventListener('submit', onSubmit);
  }

  if (document.readyState === 'loading') {
    document.addEventListener('DOMContentLoaded', init);
  } else {
    init();
  }
})();
