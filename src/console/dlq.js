// Dead letters of one target: the list (oldest first), one letter's
// event, and redrive of one, a selection or all through
// POST api/dlq/redrive, with the result per letter.
import * as api from './api.js';
import { h, put, table, text, time, jsonTree, error } from './dom.js';

const PAGE = 100;
const MAX_ALL_ROUNDS = 1000;            // "all": 100 letters per request

function targetsOf(ctx) {
    const names = new Set();
    for (const r of ctx.busConfig.rules) {
        for (const t of r.targets) {
            names.add(t.target);
        }
    }
    return [...names].sort();
}

function showResults(box, results, moved, remaining) {
    box.replaceChildren(
        h('p', null, moved + ' redriven' + (remaining !== undefined ? ', ' + remaining + ' left' : '')),
        h('ul', null, results.map((r) =>
            h('li', { 'data-result': r.id, 'data-ok': r.ok ? 'true' : 'false', class: r.ok ? 'ok' : 'failed' },
              h('code', null, r.id), r.ok ? ' redriven: entry ' + r.entry + ' of the target stream'
                                         : ': ' + text(r.error)))));
}

export async function render(view, ctx) {
    const targets = targetsOf(ctx);
    const target = targets.includes(ctx.params.get('target')) ? ctx.params.get('target') : targets[0];
    const picker = h('select', { name: 'target' }, targets.map((t) => h('option', { value: t, selected: t === target }, t)));
    picker.addEventListener('change', () => { location.hash = ctx.link('dlq', null, { target: picker.value }); });
    put(view, h('h2', null, 'Dead letters of bus ', h('code', null, ctx.bus)),
              h('label', { class: 'field' }, h('span', null, 'Target'), picker));
    if (!target) {
        put(view, h('p', null, 'No rule of this bus sends anywhere.'));
        return;
    }
    const results = h('div', { class: 'results', role: 'status', 'aria-live': 'polite' });
    const inspect = h('section', { class: 'inspect', 'aria-label': 'Dead letter' });
    const body = h('tbody', null);
    const list = table('Dead letters of ' + target + ', oldest first',
        ['', 'dead-lettered', 'event id', 'rule', 'attempts', 'status', 'error', ''], [], { class: 'letters' });
    list.querySelector('tbody').replaceWith(body);
    const count = h('p', { class: 'note' });
    const more = h('button', { type: 'button', hidden: true }, 'More');
    let inspected = null;

    const redrive = async (req) => {
        results.replaceChildren(h('p', null, 'Redriving…'));
        try {
            if (req.all) {
                let all = [], moved = 0, r;
                for (let i = 0; i < MAX_ALL_ROUNDS; i++) {
                    r = await api.post('dlq/redrive', { bus: ctx.bus, target, all: true });
                    all = all.concat(r.results);
                    moved += r.moved;
                    if (!r.remaining || !r.moved) {
                        break;
                    }
                }
                showResults(results, all, moved, r.remaining);
                inspect.replaceChildren();
            } else {
                let all = [], moved = 0, r;
                for (let i = 0; i < req.ids.length; i += PAGE) {
                    r = await api.post('dlq/redrive', { bus: ctx.bus, target, ids: req.ids.slice(i, i + PAGE) });
                    all = all.concat(r.results);
                    moved += r.moved;
                }
                showResults(results, all, moved, r.remaining);
                // the letter shown is gone once redriven
                if (all.some((x) => x.ok && x.id === inspected)) {
                    inspect.replaceChildren();
                }
            }
        } catch (e) {
            results.replaceChildren(error(e));
        }
        try {
            await load(null, true);
        } catch (e) {
            results.append(error(e));
        }
    };

    const row = (l) => {
        const box = h('input', { type: 'checkbox', value: l.entry, 'aria-label': 'select ' + l.entry });
        return h('tr', { 'data-entry': l.entry },
            h('td', null, box),
            h('td', null, time(l.failed_ms || l.time)),
            h('td', null, l.event_id ? h('a', { href: ctx.link('event', l.event_id) }, l.event_id) : '—'),
            h('td', null, text(l.rule)), h('td', null, text(l.attempts)), h('td', null, text(l.status)),
            h('td', null, text(l.error)),
            h('td', { class: 'actions' },
              h('button', { type: 'button', 'data-action': 'inspect', onclick: () => show(l.entry) }, 'Inspect'),
              h('button', { type: 'button', 'data-action': 'redrive', onclick: () => redrive({ ids: [l.entry] }) },
                'Redrive')));
    };

    const show = async (entry) => {
        inspected = entry;
        inspect.replaceChildren(h('p', null, 'Loading…'));
        try {
            const r = await api.get('dlq/' + encodeURIComponent(entry), { bus: ctx.bus, target });
            const ev = api.parseEvent(r.letter.event);
            const meta = Object.assign({}, r.letter);
            delete meta.event;
            inspect.replaceChildren(h('h3', null, 'Dead letter ', h('code', null, entry)),
                                    jsonTree(meta), h('h4', null, 'Event'),
                                    ev.ok ? jsonTree(ev.value) : h('pre', { class: 'code' }, ev.value));
        } catch (e) {
            inspect.replaceChildren(error(e));
        }
    };

    const load = async (cursor, fresh) => {
        const r = await api.get('dlq', { bus: ctx.bus, target, limit: PAGE, cursor });
        if (fresh || !cursor) {
            body.replaceChildren();
        }
        r.items.forEach((l) => body.append(row(l)));
        count.textContent = r.total + ' dead letter' + (r.total === 1 ? '' : 's')
            + (r.total > body.children.length ? ', ' + body.children.length + ' shown' : '');
        more.hidden = !r.next;
        more.onclick = () => load(r.next).catch((e) => results.replaceChildren(error(e)));
    };

    const selected = () => [...body.querySelectorAll('input[type=checkbox]:checked')].map((c) => c.value);
    const actions = h('div', { class: 'actions' },
        h('button', { type: 'button', 'data-action': 'redrive-selected', onclick: () => {
            const ids = selected();
            if (ids.length) {
                redrive({ ids });
            }
        } }, 'Redrive selected'),
        h('button', { type: 'button', 'data-action': 'redrive-all', onclick: () => redrive({ all: true }) },
          'Redrive all'));
    put(view, count, actions, list, more, results, inspect);
    await load(null);
}
