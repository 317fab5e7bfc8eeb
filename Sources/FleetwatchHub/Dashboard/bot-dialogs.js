/*
 * fleetwatch dashboard — bot page: emergency stop and resume dialogs (reason required, idempotent).
 *
 * A plain script (no build step) loaded in order with `defer` by index.html: it reads what it needs from,
 * and adds its functions to, the one global `window.fleetwatch` (see core.js).
 */
(function (fw) {
  'use strict';

  const { el, isOperator, toast, toastError, showInlineError, uuid, api, botPath } = fw;

  function buildDialog(prefix, title, extra, confirmText) {
    const reason = el('textarea', { id: prefix + '-reason', rows: '3', required: true, placeholder: 'Why? (required)' });
    const error = el('p', { id: prefix + '-error', className: 'form-error', role: 'alert', hidden: true });
    const cancel = el('button', { id: prefix + '-cancel', type: 'button', className: 'button-secondary', text: 'Cancel' });
    const confirm = el('button', { id: prefix + '-confirm', type: 'button', className: prefix === 'stop' ? 'button-danger' : 'button-primary', text: confirmText });
    const dialog = el('dialog', { id: prefix + '-dialog', className: 'dialog', 'aria-labelledby': prefix + '-title' }, [
      el('h3', { id: prefix + '-title', text: title })
    ].concat(extra, [
      el('label', { for: prefix + '-reason', text: 'Reason' }), reason, error,
      el('div', { className: 'dialog-buttons' }, [cancel, confirm])
    ]));
    cancel.addEventListener('click', function () { dialog.close(); });
    return { dialog: dialog, reason: reason, error: error, confirm: confirm };
  }

  function openDialog(dialog) {
    if (typeof dialog.showModal === 'function') dialog.showModal();
    else dialog.setAttribute('open', '');
  }

  /**
   * The bot page's emergency stop and resume dialogs. Each confirmed command is sent once per opening of
   * its dialog (one Idempotency-Key), then `afterSend` runs. `v.bot` is the bot model (allowLiquidation).
   */
  function createCommandDialogs(v, name, afterSend) {
    const keys = { stop: null, resume: null };
    const liquidate = el('input', { id: 'stop-liquidate', type: 'checkbox' });
    const stopSummary = el('p', { id: 'stop-summary', className: 'dialog-summary' });
    const liquidateNote = el('p', { className: 'muted', id: 'stop-liquidate-note', text: 'Liquidation is not allowed for this bot (allowLiquidation is off).', hidden: true });
    const stopDialog = buildDialog('stop', 'Emergency stop', [
      stopSummary,
      el('label', { className: 'checkbox' }, [liquidate, el('span', { text: 'Also liquidate all open positions' })]),
      liquidateNote
    ], 'Stop bot');
    const resumeDialog = buildDialog('resume', 'Resume bot', [
      el('p', { className: 'dialog-summary', text: 'Bot ' + name + ' will leave emergency mode and may trade again.' })
    ], 'Resume');

    // ---- emergency stop ----
    function updateStopSummary() {
      let text = 'Bot ' + name + ' will stop trading, cancel all open orders, and latch emergency mode until resumed.';
      if (liquidate.checked) text += ' Liquidation is checked: it will also close out and liquidate all open positions.';
      stopSummary.textContent = text;
    }

    function openStopDialog() {
      if (!isOperator()) return;
      keys.stop = uuid();
      stopDialog.reason.value = '';
      showInlineError(stopDialog.error, '');
      liquidate.checked = false;
      liquidate.disabled = !v.bot.allowLiquidation;
      liquidateNote.hidden = !!v.bot.allowLiquidation;
      stopDialog.confirm.disabled = false;
      updateStopSummary();
      openDialog(stopDialog.dialog);
      stopDialog.reason.focus();
    }

    async function confirmStop() {
      const reason = stopDialog.reason.value.trim();
      if (!reason) {
        showInlineError(stopDialog.error, 'A reason is required.');
        stopDialog.reason.focus();
        return;
      }
      showInlineError(stopDialog.error, '');
      stopDialog.confirm.disabled = true;
      try {
        const cmd = await api(botPath(name) + '/emergency-stop', {
          method: 'POST',
          headers: { 'Idempotency-Key': keys.stop },
          body: { reason: reason, liquidate: liquidate.checked && !liquidate.disabled }
        });
        stopDialog.dialog.close();
        toast('Stop sent (command ' + (cmd && cmd.id !== undefined ? cmd.id : '?') + ')', 'success');
        afterSend();
      } catch (err) {
        showInlineError(stopDialog.error, err.message);
        toastError(err);
      } finally {
        stopDialog.confirm.disabled = false;
      }
    }

    // ---- resume ----
    function openResumeDialog() {
      if (!isOperator()) return;
      keys.resume = uuid();
      resumeDialog.reason.value = '';
      showInlineError(resumeDialog.error, '');
      resumeDialog.confirm.disabled = false;
      openDialog(resumeDialog.dialog);
      resumeDialog.reason.focus();
    }

    async function confirmResume() {
      const reason = resumeDialog.reason.value.trim();
      if (!reason) {
        showInlineError(resumeDialog.error, 'A reason is required.');
        resumeDialog.reason.focus();
        return;
      }
      showInlineError(resumeDialog.error, '');
      resumeDialog.confirm.disabled = true;
      try {
        const cmd = await api(botPath(name) + '/resume', {
          method: 'POST', headers: { 'Idempotency-Key': keys.resume }, body: { reason: reason }
        });
        resumeDialog.dialog.close();
        toast('Resume sent (command ' + (cmd && cmd.id !== undefined ? cmd.id : '?') + ')', 'success');
        afterSend();
      } catch (err) {
        showInlineError(resumeDialog.error, err.message);
        toastError(err);
      } finally {
        resumeDialog.confirm.disabled = false;
      }
    }

    liquidate.addEventListener('change', updateStopSummary);
    stopDialog.confirm.addEventListener('click', confirmStop);
    resumeDialog.confirm.addEventListener('click', confirmResume);

    return {
      nodes: [stopDialog.dialog, resumeDialog.dialog],
      openStop: openStopDialog,
      openResume: openResumeDialog,
      destroy: function () {
        [stopDialog.dialog, resumeDialog.dialog].forEach(function (d) { if (d.open) d.close(); });
      }
    };
  }

  Object.assign(fw, { createCommandDialogs });
})(window.fleetwatch = window.fleetwatch || {});
