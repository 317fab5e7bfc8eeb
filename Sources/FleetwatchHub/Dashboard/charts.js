/*
 * fleetwatch dashboard — metric charts (Chart.js) on the bot page: history per range and live points.
 *
 * A plain script (no build step) loaded in order with `defer` by index.html: it reads what it needs from,
 * and adds its functions to, the one global `window.fleetwatch` (see core.js).
 */
(function (fw) {
  'use strict';

  const { MAX_LIVE_POINTS, CHART_MISSING_TEXT, CHART_METRICS, COUNTER_METRICS, TICK_STEP_MS, el, toNumber,
    parseTime, fmtDateTime, fmtTick, api, asArray } = fw;

  let chartDefaultsSet = false;
  function chartAvailable() {
    if (typeof window.Chart !== 'function') return false;
    if (!chartDefaultsSet) {
      chartDefaultsSet = true;
      try {
        window.Chart.defaults.color = '#9aa4b2';
        window.Chart.defaults.borderColor = 'rgba(154, 164, 178, 0.18)';
      } catch (ignored) { /* older API */ }
    }
    return true;
  }

  function buildChartCard(metric, title) {
    const canvas = el('canvas', { 'data-chart': metric, role: 'img', 'aria-label': title + ' chart' });
    const note = el('p', { className: 'chart-note muted', hidden: true });
    const card = el('section', { className: 'card chart-card', 'data-chart-card': metric }, [
      el('h3', { text: title }), el('div', { className: 'chart-box' }, [canvas]), note
    ]);
    return { metric: metric, title: title, canvas: canvas, note: note, card: card, chart: null };
  }

  function chartConfig(entry, points, getRange) {
    return {
      type: 'line',
      data: {
        datasets: [{
          label: entry.title, data: points, borderColor: '#58a6ff', backgroundColor: 'rgba(88, 166, 255, 0.15)',
          borderWidth: 1.5, pointRadius: 0, pointHitRadius: 6, tension: 0, fill: false
        }]
      },
      options: {
        responsive: true, maintainAspectRatio: false, animation: false, normalized: true,
        interaction: { mode: 'nearest', axis: 'x', intersect: false },
        plugins: {
          legend: { display: false },
          tooltip: {
            callbacks: {
              title: function (items) { return items.length ? fmtDateTime(items[0].parsed.x) : ''; }
            }
          }
        },
        scales: {
          x: {
            type: 'linear',
            bounds: 'data',
            ticks: {
              maxTicksLimit: 8, maxRotation: 0, stepSize: TICK_STEP_MS[getRange()],
              callback: function (value) { return fmtTick(value, getRange()); }
            }
          },
          y: { beginAtZero: false, ticks: { maxTicksLimit: 6 } }
        }
      }
    };
  }

  function historyPoints(series, metric) {
    const list = asArray(series);
    const one = list.find(function (s) { return s && s.metric === metric; }) || list[0];
    const useLast = COUNTER_METRICS.indexOf(metric) >= 0;
    const points = [];
    asArray(one && one.points).forEach(function (p) {
      const x = parseTime(p && p.t);
      const y = toNumber(useLast ? (p.last !== undefined && p.last !== null ? p.last : p.avg) : p.avg);
      if (x !== null && y !== null) points.push({ x: x, y: y });
    });
    points.sort(function (a, b) { return a.x - b.x; });
    return points;
  }

  function showChartNote(entry, text) {
    entry.note.textContent = text;
    entry.note.hidden = !text;
  }

  function setChartPoints(entry, points, getRange) {
    if (!chartAvailable()) { showChartNote(entry, CHART_MISSING_TEXT); return; }
    if (!entry.chart) {
      try {
        entry.chart = new window.Chart(entry.canvas, chartConfig(entry, points, getRange));
      } catch (err) {
        showChartNote(entry, 'Chart could not be drawn: ' + err.message);
        return;
      }
      entry.canvas.setAttribute('data-drawn', 'true');
    } else {
      entry.chart.data.datasets[0].data = points;
      entry.chart.options.scales.x.ticks.stepSize = TICK_STEP_MS[getRange()];
      entry.chart.update('none');
    }
    entry.canvas.setAttribute('data-points', String(points.length));
    showChartNote(entry, points.length ? '' : 'No data in this range');
  }

  function appendChartPoint(entry, x, y) {
    if (!entry.chart) return;
    const data = entry.chart.data.datasets[0].data;
    const last = data[data.length - 1];
    if (last && last.x > x) return;
    if (last && last.x === x) last.y = y;
    else data.push({ x: x, y: y });
    if (data.length > MAX_LIVE_POINTS) data.splice(0, data.length - MAX_LIVE_POINTS);
    entry.chart.update('none');
    entry.canvas.setAttribute('data-points', String(data.length));
    showChartNote(entry, '');
  }

  /**
   * The bot page's range buttons and chart cards: history of each metric for the selected range (1 h, 24 h,
   * 7 d), and live points appended in the 1 h range. `v.alive` is the owning view's liveness flag.
   */
  function createChartPanel(v, name) {
    const enc = encodeURIComponent(name);
    const state = { range: '1h', seq: 0 };
    const getRange = function () { return state.range; };
    const rangeButtons = ['1h', '24h', '7d'].map(function (r) {
      return el('button', { type: 'button', className: 'range-button', 'data-range': r, text: r });
    });
    const charts = CHART_METRICS.map(function (m) { return buildChartCard(m[0], m[1]); });
    // How old the history may be when a read replica serves it (hub.read_database_url).
    const dataAge = el('span', { className: 'muted data-age', 'data-role': 'data-age', hidden: true });
    const rangeBar = el('div', { className: 'range-bar', role: 'group', 'aria-label': 'Chart range' }, [el('span', { className: 'muted', text: 'Range' })].concat(rangeButtons, [dataAge]));

    // Any chart's answer that carries the replica's lag shows it (charts without points carry none).
    function showDataAge(seconds) {
      if (typeof seconds !== 'number') return;
      dataAge.hidden = false;
      dataAge.textContent = seconds < 1 ? 'History from a read replica, up to date'
        : 'History from a read replica, up to ' + Math.round(seconds) + ' s behind';
    }
    const grid = el('div', { className: 'charts-grid' }, charts.map(function (c) { return c.card; }));

    function selectRange(range) {
      state.range = range;
      rangeButtons.forEach(function (b) { b.classList.toggle('active', b.dataset.range === range); });
      loadCharts();
    }

    function loadCharts() {
      if (!chartAvailable()) {
        charts.forEach(function (c) {
          c.canvas.parentNode.hidden = true;
          showChartNote(c, CHART_MISSING_TEXT);
        });
        return;
      }
      const seq = ++state.seq;
      const range = state.range;
      dataAge.hidden = true;
      charts.forEach(function (entry) {
        const url = '/api/metrics/history?bot=' + enc + '&metric=' + encodeURIComponent(entry.metric) + '&range=' + range;
        api(url).then(function (series) {
          if (v.alive && seq === state.seq) {
            setChartPoints(entry, historyPoints(series, entry.metric), getRange);
            showDataAge(Array.isArray(series) ? (series[0] || {}).dataAgeSeconds : series && series.dataAgeSeconds);
          }
        }).catch(function (err) {
          if (v.alive && seq === state.seq && err.status !== 401) showChartNote(entry, 'History unavailable: ' + err.message);
        });
      });
    }

    function appendLive(values, timestamp) {
      if (state.range !== '1h') return;
      const x = parseTime(timestamp) || Date.now();
      charts.forEach(function (entry) {
        const y = toNumber(values[entry.metric]);
        if (y !== null && typeof values[entry.metric] === 'number') appendChartPoint(entry, x, y);
      });
    }

    rangeButtons.forEach(function (b) { b.addEventListener('click', function () { selectRange(b.dataset.range); }); });

    return {
      rangeBar: rangeBar,
      grid: grid,
      selectRange: selectRange,
      load: loadCharts,
      appendLive: appendLive,
      destroy: function () { charts.forEach(function (c) { if (c.chart) c.chart.destroy(); }); }
    };
  }

  Object.assign(fw, { createChartPanel });
})(window.fleetwatch = window.fleetwatch || {});
