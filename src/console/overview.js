// Overview of one bus: events/s accepted, matched, delivered and failed
// over the last hour (minute buckets) and the last day (hour buckets),
// from ebd's counters; per target the counts, the backlog (lag, pending)
// and the dead letters now, and both over the hour and the day (ebd's
// samples, every 15 s). Charts by Chart.js (window.Chart).
import * as api from './api.js';
import { h, put, table, text } from './dom.js';

const SERIES = [
    ['accepted', '#1f77b4'],
    ['matched', '#9467bd'],
    ['delivered', '#2ca02c'],
    ['retried', '#ff7f0e'],
    ['failed', '#d62728'],
];
const RATES = ['accepted', 'matched', 'delivered', 'failed'];

const pad = (n) => String(n).padStart(2, '0');

function label(t, step) {
    const d = new Date(t * 1000);
    const hm = pad(d.getHours()) + ':' + pad(d.getMinutes());
    return step >= 3600 ? pad(d.getDate()) + ' ' + hm : hm;
}

function chart(title, ov) {
    const canvas = h('canvas', { role: 'img', 'aria-label': title + ': events per second' });
    const box = h('figure', { class: 'chart' }, h('figcaption', null, title), h('div', { class: 'chart-box' }, canvas));
    if (!window.Chart) {
        box.append(h('p', { class: 'note' },
                     'Charts need Chart.js (Debian: libjs-chart.js) under vendor/chart.js.'));
        canvas.remove();
        return box;
    }
    new window.Chart(canvas, {
        type: 'line',
        data: {
            labels: ov.series.map((b) => label(b.t, ov.step)),
            datasets: SERIES.filter(([k]) => RATES.includes(k)).map(([k, color]) => ({
                label: k,
                data: ov.series.map((b) => b[k] / ov.step),
                borderColor: color,
                backgroundColor: color,
                pointRadius: 0,
                borderWidth: 2,
                tension: 0.2,
            })),
        },
        options: {
            animation: false,
            maintainAspectRatio: false,
            interaction: { mode: 'index', intersect: false },
            scales: { y: { beginAtZero: true, title: { display: true, text: 'events/s' } } },
        },
    });
    return box;
}

function backlogChart(ov) {
    const canvas = h('canvas', { role: 'img', 'aria-label': 'Backlog and dead letters per target' });
    const box = h('figure', { class: 'chart' }, h('figcaption', null, 'Backlog and dead letters per target, now'),
                  h('div', { class: 'chart-box' }, canvas));
    if (!window.Chart) {
        canvas.remove();
        return box;
    }
    new window.Chart(canvas, {
        type: 'bar',
        data: {
            labels: ov.targets.map((t) => t.name),
            datasets: [
                ['lag', 'lag (not read yet)', '#1f77b4'],
                ['pending', 'pending (not acknowledged)', '#ff7f0e'],
                ['dead_letters', 'dead letters', '#d62728'],
            ].map(([k, l, color]) => ({ label: l, data: ov.targets.map((t) => t[k] || 0), backgroundColor: color })),
        },
        options: { animation: false, maintainAspectRatio: false,
                   scales: { y: { beginAtZero: true, ticks: { precision: 0 } } } },
    });
    return box;
}

const PALETTE = ['#1f77b4', '#2ca02c', '#9467bd', '#8c564b', '#e377c2', '#17becf', '#bcbd22', '#7f7f7f'];

// per target: its backlog (solid) and dead letters (dashed) as ebd
// sampled them; gaps where no sample was taken
function backlogOverTime(title, ov) {
    const canvas = h('canvas', { role: 'img', 'aria-label': title + ': backlog and dead letters per target' });
    const box = h('figure', { class: 'chart' }, h('figcaption', null, title + ': backlog and dead letters'),
                  h('div', { class: 'chart-box' }, canvas));
    if (!window.Chart) {
        canvas.remove();
        return box;
    }
    const datasets = [];
    ov.targets.forEach((t, i) => {
        const color = PALETTE[i % PALETTE.length];
        const series = t.series || [];
        datasets.push({ label: t.name + ' backlog', data: series.map((b) => b.backlog),
                        borderColor: color, backgroundColor: color, pointRadius: 0, borderWidth: 2 });
        datasets.push({ label: t.name + ' dead letters', data: series.map((b) => b.dead_letters),
                        borderColor: color, backgroundColor: color, pointRadius: 0, borderWidth: 2,
                        borderDash: [6, 4] });
    });
    new window.Chart(canvas, {
        type: 'line',
        data: { labels: ov.series.map((b) => label(b.t, ov.step)), datasets },
        options: {
            animation: false,
            maintainAspectRatio: false,
            spanGaps: false,
            interaction: { mode: 'index', intersect: false },
            scales: { y: { beginAtZero: true, ticks: { precision: 0 }, title: { display: true, text: 'entries' } } },
        },
    });
    return box;
}

// three significant digits: the rates of a quiet bus are small
function rate(v) {
    return v ? String(Number(v.toPrecision(3))) : '0';
}

function totals(hour, day) {
    const row = ([k]) => h('tr', { 'data-stat': k },
        h('th', { scope: 'row' }, k),
        h('td', { 'data-range': 'hour' }, hour.totals[k]),
        h('td', null, rate(hour.per_second[k])),
        h('td', { 'data-range': 'day' }, day.totals[k]),
        h('td', null, rate(day.per_second[k])));
    return table('Events', ['', 'last hour', 'per second', 'last day', 'per second'],
                 SERIES.map(row), { class: 'totals' });
}

function targets(ctx, hour) {
    const rows = hour.targets.map((t) => h('tr', { 'data-target': t.name },
        h('th', { scope: 'row' }, t.name),
        h('td', { 'data-col': 'delivered' }, t.delivered),
        h('td', { 'data-col': 'retried' }, t.retried),
        h('td', { 'data-col': 'failed' }, t.failed),
        h('td', { 'data-col': 'lag' }, text(t.lag)),
        h('td', { 'data-col': 'pending' }, text(t.pending)),
        h('td', { 'data-col': 'dead_letters' },
          t.dead_letters ? h('a', { href: ctx.link('dlq', null, { target: t.name }) }, t.dead_letters) : '0')));
    return table('Targets (counts: last hour)',
                 ['target', 'delivered', 'retried', 'failed', 'lag', 'pending', 'dead letters'],
                 rows, { class: 'targets' });
}

export async function render(view, ctx) {
    const [hour, day] = await Promise.all([
        api.get('overview', { bus: ctx.bus, range: 'hour' }),
        api.get('overview', { bus: ctx.bus, range: 'day' }),
    ]);
    put(view,
        h('div', { class: 'title' }, h('h2', null, 'Bus ', h('code', null, ctx.bus)),
          h('button', { type: 'button', onclick: ctx.refresh }, 'Refresh')),
        totals(hour, day),
        h('div', { class: 'charts' }, chart('Last hour', hour), chart('Last day', day)),
        targets(ctx, hour),
        hour.targets.length
            ? h('div', { class: 'charts' }, backlogOverTime('Last hour', hour), backlogOverTime('Last day', day))
            : null,
        hour.targets.length ? h('div', { class: 'charts' }, backlogChart(hour)) : null);
}
