// Replays: "replay this window" on the events search (POST api/replay,
// run by ebd with the same engine as `ebd replay`) and the bus's replays
// with where they are (GET api/replays).
import * as api from './api.js';
import { h, put, table, text, time, error } from './dom.js';

function field(label, input) {
    return h('label', { class: 'field' }, h('span', null, label), input);
}

function choose(name, options) {
    return h('select', { name }, h('option', { value: '' }, 'all'),
             options.map((o) => h('option', { value: o }, o)));
}

// the window [from, to] (ms) of a search: its events again through
// today's rules, all or one rule / target
export function panel(ctx, from, to, targets) {
    const status = h('p', { class: 'note', role: 'status' });
    const form = h('form', { class: 'search replay', 'aria-label': 'Replay this window' },
        h('span', null, 'Replay this window through the current rules:'),
        field('Rule', choose('rule', ctx.busConfig.rules.filter((r) => r.enabled !== false).map((r) => r.name))),
        field('Target', choose('target', targets)),
        field('Rate (events/s)', h('input', { name: 'rate', type: 'number', min: 1, size: 7 })),
        field('Name', h('input', { name: 'name', size: 20, placeholder: 'from the window' })),
        h('button', { type: 'submit' }, 'Replay'));
    form.addEventListener('submit', async (e) => {
        e.preventDefault();
        const f = form.elements;
        const body = { bus: ctx.bus, from: Number(from), to: Number(to) };
        if (f.rule.value) {
            body.rules = [f.rule.value];
        }
        if (f.target.value) {
            body.targets = [f.target.value];
        }
        if (f.rate.value) {
            body.rate = Number(f.rate.value);
        }
        if (f.name.value.trim()) {
            body.name = f.name.value.trim();
        }
        form.querySelector('button').disabled = true;
        try {
            const r = await api.post('replay', body);
            status.replaceChildren('Replay ', h('code', null, r.name), r.created
                ? ' requested: ebd runs it. ' : ' exists already (' + r.state + '): nothing sent twice. ',
                h('a', { href: ctx.link('replays') }, 'Replays'));
            status.dataset.replay = r.name;
        } catch (err) {
            status.replaceChildren(error(err));
        }
        form.querySelector('button').disabled = false;
    });
    return h('div', { class: 'replay-panel' }, form, status);
}

const sel = (v) => (Array.isArray(v) ? v.join(', ') : v) || 'all';

export async function render(view, ctx) {
    const r = await api.get('replays', { bus: ctx.bus, limit: 100 });
    const rows = r.replays.map((x) => h('tr', { 'data-replay': x.name, 'data-state': text(x.state) },
        h('th', { scope: 'row' }, x.name),
        h('td', null, h('span', { class: 'outcome ' + text(x.state) }, text(x.state))),
        h('td', null, time(x.from), ' – ', time(x.to)),
        h('td', null, sel(x.rules) + ' / ' + sel(x.targets)),
        h('td', { 'data-col': 'progress' }, x.progress === null ? '—' : Math.round(x.progress * 100) + ' %'),
        h('td', { 'data-col': 'events' }, text(x.events)),
        h('td', { 'data-col': 'deliveries' }, text(x.deliveries)),
        h('td', null, time(x.updated)),
        h('td', null, text(x.error))));
    put(view,
        h('div', { class: 'title' }, h('h2', null, 'Replays of bus ', h('code', null, ctx.bus)),
          h('button', { type: 'button', onclick: ctx.refresh }, 'Refresh')),
        h('p', { class: 'note' }, 'Start one from a time range on the Events page; ebd runs it.'),
        table('Replays, newest first', ['name', 'state', 'window', 'rules / targets', 'progress',
                                        'events', 'deliveries', 'updated', 'error'], rows, { class: 'replays' }));
}
