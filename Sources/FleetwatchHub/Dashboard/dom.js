/*
 * fleetwatch dashboard — DOM helpers: safe element building, classes, toasts, operator-only buttons.
 *
 * A plain script (no build step) loaded in order with `defer` by index.html: it reads what it needs from,
 * and adds its functions to, the one global `window.fleetwatch` (see core.js).
 */
(function (fw) {
  'use strict';

  const { app } = fw;

  /** createElement with safe props: `text` → textContent, other keys → attributes. */
  function el(tag, props, children) {
    const node = document.createElement(tag);
    if (props) {
      Object.keys(props).forEach(function (key) {
        const value = props[key];
        if (value === undefined || value === null || value === false) return;
        if (key === 'text') node.textContent = String(value);
        else if (key === 'className') node.className = value;
        else if (typeof value === 'function') node.addEventListener(key.replace(/^on/, ''), value);
        else node.setAttribute(key, value === true ? '' : String(value));
      });
    }
    (children || []).forEach(function (child) {
      if (child !== null && child !== undefined && child !== false) node.append(child);
    });
    return node;
  }

  function byId(id) { return document.getElementById(id); }

  function setText(node, text) {
    const value = String(text);
    if (node.textContent !== value) node.textContent = value;
  }

  /** Classes managed from data; static classes of the element are untouched. */
  const dynamicClasses = new WeakMap();
  function setDynClass(node, classes) {
    const next = classes.filter(Boolean);
    (dynamicClasses.get(node) || []).forEach(function (c) {
      if (next.indexOf(c) < 0) node.classList.remove(c);
    });
    next.forEach(function (c) { node.classList.add(c); });
    dynamicClasses.set(node, next);
  }

  function classToken(value) { return String(value).replace(/[^A-Za-z0-9_-]/g, '_'); }

  function isOperator() { return !!app.session && app.session.role !== 'viewer'; }

  /** Button only operators may use: hidden via CSS and disabled for viewers. */
  function operatorButton(props, text) {
    const button = el('button', Object.assign({ type: 'button', text: text }, props));
    button.classList.add('operator-only');
    if (!isOperator()) button.disabled = true;
    return button;
  }

  let toastTimer = null;
  function toast(message, kind) {
    const box = byId('toast');
    if (!box) return;
    box.textContent = String(message);
    setDynClass(box, ['toast-' + (kind || 'info')]);
    box.hidden = false;
    clearTimeout(toastTimer);
    toastTimer = setTimeout(function () { box.hidden = true; }, kind === 'error' ? 8000 : 4000);
  }

  function toastError(err) { toast(err && err.message ? err.message : String(err), 'error'); }

  function showInlineError(node, message) {
    node.textContent = message || '';
    node.hidden = !message;
  }

  function uuid() {
    if (window.crypto && typeof window.crypto.randomUUID === 'function') {
      try { return window.crypto.randomUUID(); } catch (ignored) { /* insecure context */ }
    }
    const b = window.crypto.getRandomValues(new Uint8Array(16));
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    const h = Array.prototype.map.call(b, function (x) { return x.toString(16).padStart(2, '0'); }).join('');
    return h.slice(0, 8) + '-' + h.slice(8, 12) + '-' + h.slice(12, 16) + '-' + h.slice(16, 20) + '-' + h.slice(20);
  }

  function selectControl(id, label, options) {
    const select = el('select', { id: id }, options.map(function (o) {
      return el('option', { value: o[0], text: o[1] });
    }));
    return { select: select, node: el('label', { className: 'filter' }, [el('span', { text: label }), select]) };
  }

  Object.assign(fw, { el, byId, setText, setDynClass, classToken, isOperator, operatorButton, toast,
    toastError, showInlineError, uuid, selectControl });
})(window.fleetwatch = window.fleetwatch || {});
