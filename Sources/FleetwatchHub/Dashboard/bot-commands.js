/*
 * fleetwatch dashboard — bot page: command history (emergency stops and resumes, with their steps).
 *
 * A plain script (no build step) loaded in order with `defer` by index.html: it reads what it needs from,
 * and adds its functions to, the one global `window.fleetwatch` (see core.js).
 */
(function (fw) {
  'use strict';

  const { DASH, TERMINAL_COMMAND_STATES, el, classToken, toastError, toNumber, parseTime, fmtDateTime, api,
    botPath, asArray } = fw;

  function metaItem(label, field, value) {
    return el('span', { className: 'meta-item' }, [
      el('span', { className: 'meta-label', text: label + ' ' }),
      el('span', { 'data-field': field, text: value === null || value === undefined || value === '' ? DASH : String(value) })
    ]);
  }

  function fillCommand(node, cmd) {
    const state = cmd.state ? String(cmd.state) : 'unknown';
    const actions = cmd.kind === 'emergency_stop'
      ? ['stop trading', 'cancel orders'].concat(cmd.liquidate ? ['liquidate'] : []).concat(['latch emergency mode']) : [];
    const steps = asArray(cmd.steps).map(function (s) {
      const step = s && s.step ? String(s.step) : 'step';
      const status = s && s.status ? String(s.status) : 'pending';
      return el('li', { className: 'step', 'data-step': step }, [
        el('span', { className: 'step-name', text: step }),
        el('span', { className: 'badge step-status step-' + classToken(status), 'data-field': 'status', text: status }),
        el('span', { className: 'step-detail', 'data-field': 'detail', text: s && s.detail ? String(s.detail) : '' }),
        s && s.at ? el('time', { className: 'step-at muted', text: fmtDateTime(parseTime(s.at)) }) : null
      ]);
    });
    const finishedAt = cmd.completedAt || cmd.failedAt || null;
    node.replaceChildren.apply(node, [
      el('div', { className: 'command-head' }, [
        el('span', { className: 'command-id', text: String(cmd.id).slice(0, 8) }),
        el('span', { className: 'command-kind', 'data-field': 'kind', text: String(cmd.kind || DASH) }),
        el('span', { className: 'badge command-state cmd-' + classToken(state), 'data-field': 'state', text: state })
      ]),
      el('div', { className: 'command-meta' }, [
        metaItem('origin', 'origin', cmd.origin),
        metaItem('issued by', 'issuedBy', cmd.issuedBy),
        metaItem('requested', 'createdAt', cmd.createdAt ? fmtDateTime(parseTime(cmd.createdAt)) : null),
        finishedAt ? metaItem('finished', 'finishedAt', fmtDateTime(parseTime(finishedAt))) : null,
        actions.length ? metaItem('actions', 'actions', actions.join(', ')) : null
      ]),
      el('p', { className: 'command-reason', 'data-field': 'reason', text: cmd.reason ? String(cmd.reason) : DASH }),
      cmd.liquidationRefused
        ? el('p', { className: 'command-liquidation-refused neg', 'data-field': 'liquidationRefused',
          text: 'Liquidation was asked for and refused: ' + String(cmd.liquidationRefused) })
        : null,
      cmd.detail ? el('p', { className: 'command-error' + (cmd.state === 'failed' ? ' neg' : ' muted'), text: String(cmd.detail) }) : null,
      steps.length ? el('ol', { className: 'steps' }, steps) : null
    ].filter(Boolean));
  }

  function commandIsOpen(cmd) { return TERMINAL_COMMAND_STATES.indexOf(cmd.state) < 0; }

  /**
   * The bot page's command history panel: polls GET /api/bots/<name>/commands (every second while a command
   * is open, else every 5 s) and calls `onFinished` when a command it saw open has finished.
   */
  function createCommandHistory(v, name, onFinished) {
    const state = { seq: 0, timer: null, nodes: new Map(), states: new Map(), errorShown: false };
    const commandList = el('ol', { id: 'command-history', className: 'command-list' });
    const commandsEmpty = el('p', { className: 'muted', text: 'No commands yet.' });
    const panel = el('section', { className: 'card panel' }, [el('h3', { text: 'Command history' }), commandsEmpty, commandList]);

    function renderCommands(list) {
      const sorted = asArray(list).filter(function (c) { return c && c.id !== undefined && c.id !== null; })
        .sort(function (a, b) { return (toNumber(b.id) || 0) - (toNumber(a.id) || 0); });
      let finished = false;
      const nodes = sorted.map(function (cmd) {
        const id = String(cmd.id);
        const signature = JSON.stringify(cmd);
        let node = state.nodes.get(id);
        if (!node) {
          node = el('li', { className: 'command', 'data-command-id': id });
          state.nodes.set(id, node);
        }
        if (node.dataset.signature !== signature) {
          fillCommand(node, cmd);
          node.dataset.signature = signature;
        }
        const before = state.states.get(id);
        if (before && !TERMINAL_COMMAND_STATES.includes(before) && !commandIsOpen(cmd)) finished = true;
        state.states.set(id, cmd.state);
        return node;
      });
      commandList.replaceChildren.apply(commandList, nodes);
      commandsEmpty.hidden = nodes.length > 0;
      if (finished) onFinished();
      return sorted.some(commandIsOpen);
    }

    async function pollCommands() {
      clearTimeout(state.timer);
      const seq = ++state.seq;
      let delay = 5000;
      try {
        const list = await api(botPath(name) + '/commands');
        if (!v.alive || seq !== state.seq) return;
        if (renderCommands(list)) delay = 1000;
        state.errorShown = false;
      } catch (err) {
        if (!v.alive || seq !== state.seq) return;
        if (!state.errorShown && err.status !== 401) { toastError(err); state.errorShown = true; }
      }
      state.timer = setTimeout(pollCommands, delay);
    }

    return {
      node: panel,
      poll: pollCommands,
      showEmpty: function () { commandsEmpty.hidden = false; },
      destroy: function () { clearTimeout(state.timer); }
    };
  }

  Object.assign(fw, { createCommandHistory });
})(window.fleetwatch = window.fleetwatch || {});
