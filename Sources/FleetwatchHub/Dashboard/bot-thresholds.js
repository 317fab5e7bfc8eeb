/*
 * fleetwatch dashboard — bot page: thresholds panel (view and, for operators, edit limits).
 *
 * A plain script (no build step) loaded in order with `defer` by index.html: it reads what it needs from,
 * and adds its functions to, the one global `window.fleetwatch` (see core.js).
 */
(function (fw) {
  'use strict';

  const { DASH, el, setText, classToken, isOperator, operatorButton, toast, toastError, api, botPath, asArray } = fw;

  /** The bot page's thresholds panel: the bot's profile and rules, with editable limits for operators. */
  function createThresholdsPanel(v, name) {
    const enc = encodeURIComponent(name);
    const state = { profile: null };
    const thresholdsBody = el('tbody');
    const thresholdsInfo = el('p', { className: 'muted thresholds-info' });
    const blindList = el('ul', { id: 'thresholds-cannot-fire', className: 'thresholds-blind neg' });
    const saveButton = operatorButton({ id: 'save-thresholds', className: 'button-primary' }, 'Save thresholds');
    const node = el('section', { className: 'card panel' }, [
      el('div', { className: 'panel-head' }, [el('h3', { text: 'Thresholds' }), saveButton]),
      thresholdsInfo,
      blindList,
      el('div', { className: 'table-scroll' }, [el('table', { id: 'thresholds', className: 'data-table' }, [
        el('thead', null, [el('tr', null, ['Rule', 'Metric', 'Level', 'Limit', 'Limit from', 'Summary'].map(function (h) {
          return el('th', { scope: 'col', text: h });
        }))]),
        thresholdsBody
      ])])
    ]);

    function renderThresholds(profile) {
      state.profile = profile || null;
      const rules = asArray(profile && profile.rules);
      setText(thresholdsInfo, profile
        ? 'Profile ' + (profile.name || DASH) + (profile.followsFleetDefault ? ' (the fleet default)' : '')
          + ' · emergency shutdown ' + (profile.enableEmergencyShutdown ? 'enabled' : 'disabled')
        : 'No threshold profile.');
      const blind = asArray(profile && profile.cannotFire);
      blindList.replaceChildren.apply(blindList, blind.map(function (line) {
        return el('li', { text: 'Cannot fire: ' + String(line) });
      }));
      blindList.hidden = blind.length === 0;
      thresholdsBody.replaceChildren.apply(thresholdsBody, rules.map(function (rule) {
        const id = String(rule.id);
        const input = el('input', {
          type: 'number', step: 'any', 'data-rule': id, 'aria-label': 'Limit for ' + id,
          value: rule.limit === null || rule.limit === undefined ? '' : String(rule.limit)
        });
        input.dataset.original = input.value;
        if (!isOperator()) input.disabled = true;
        const source = rule.source ? String(rule.source) : DASH;
        const levelNote = rule.levelSource === 'bot override' ? ' (bot override)' : '';
        return el('tr', { 'data-rule-id': id }, [
          el('td', { text: id }), el('td', { text: String(rule.metric || DASH) }),
          el('td', { className: 'level-' + classToken(rule.level || 'INFO'), 'data-field': 'level',
            text: String(rule.level || DASH) + levelNote }),
          el('td', null, [input]),
          el('td', { className: source === 'bot override' ? 'source-override' : '', 'data-field': 'source', text: source }),
          el('td', { text: String(rule.summary || '') })
        ]);
      }));
      if (!rules.length) {
        thresholdsBody.append(el('tr', null, [el('td', { colspan: '6', className: 'muted', text: 'No rules.' })]));
      }
    }

    async function loadThresholds() {
      try {
        const profiles = await api('/api/thresholds?bot=' + enc);
        if (v.alive) renderThresholds(Array.isArray(profiles) ? profiles[0] : profiles);
      } catch (err) {
        if (v.alive && err.status !== 401) toastError(err);
      }
    }

    async function saveThresholds() {
      const changes = {};
      let invalid = null;
      thresholdsBody.querySelectorAll('input[data-rule]').forEach(function (input) {
        const raw = input.value.trim();
        if (raw === '' || raw === input.dataset.original) return;
        const n = Number(raw);
        if (!Number.isFinite(n)) invalid = input.dataset.rule;
        else if (n !== Number(input.dataset.original)) changes[input.dataset.rule] = n;
      });
      if (invalid) { toast('Invalid limit for ' + invalid, 'error'); return; }
      const count = Object.keys(changes).length;
      if (!count) { toast('No threshold changes to save'); return; }
      saveButton.disabled = true;
      try {
        await api(botPath(name) + '/thresholds', { method: 'PUT', body: changes });
        toast('Thresholds saved (' + count + ' changed)', 'success');
        await loadThresholds();
      } catch (err) {
        toastError(err);
      } finally {
        saveButton.disabled = !isOperator();
      }
    }

    saveButton.addEventListener('click', saveThresholds);

    return { node: node, render: renderThresholds, load: loadThresholds };
  }

  Object.assign(fw, { createThresholdsPanel });
})(window.fleetwatch = window.fleetwatch || {});
