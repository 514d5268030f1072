// Event trace: search (by id; or by time range with source, type, rule,
// target, outcome) and one event's page: the CloudEvent, the rules it
// matched and, per target, every delivery attempt as a timeline.
import * as api from './api.js';
import { h, put, table, text, time, latency, jsonTree, error } from './dom.js';
import * as replay from './replay.js';

const OUTCOMES = ['delivered', 'retry', 'dead-lettered', 'discarded'];
const EVENT_FILTERS = ['source', 'type', 'rule'];
const ATTEMPT_FILTERS = ['target', 'outcome'];

function busTargets(ctx) {
    const names = new Set();
    for (const r of ctx.busConfig.rules) {
        for (const t of r.targets) {
            names.add(t.target);
        }
    }
    return [...names].sort();
}

// datetime-local <-> ms since the epoch (the API's from/to)
function toMs(v) {
    const t = v ? new Date(v).getTime() : NaN;
    return Number.isNaN(t) ? '' : String(t);
}

function toLocal(ms) {
    if (!ms) {
        return '';
    }
    const d = new Date(Number(ms) - new Date().getTimezoneOffset() * 60000);
    return d.toISOString().slice(0, 19);
}

function field(label, input) {
    return h('label', { class: 'field' }, h('span', null, label), input);
}

function select(name, value, options) {
    return h('select', { name }, h('option', { value: '' }, 'any'),
             options.map((o) => h('option', { value: o, selected: o === value }, o)));
}

function searchForm(ctx) {
    const p = ctx.params;
    const byId = h('form', { class: 'search', role: 'search', 'aria-label': 'Find an event by id' },
        field('Event id', h('input', { name: 'id', required: true, size: 40, value: p.get('id') || '' })),
        h('button', { type: 'submit' }, 'Open'));
    byId.addEventListener('submit', (e) => {
        e.preventDefault();
        location.hash = ctx.link('event', byId.elements.id.value.trim());
    });
    const rules = ctx.busConfig.rules.map((r) => r.name);
    const filters = h('form', { class: 'search', role: 'search', 'aria-label': 'Search events' },
        field('From', h('input', { type: 'datetime-local', step: 1, name: 'from', value: toLocal(p.get('from')) })),
        field('To', h('input', { type: 'datetime-local', step: 1, name: 'to', value: toLocal(p.get('to')) })),
        field('Source', h('input', { name: 'source', value: p.get('source') || '' })),
        field('Type', h('input', { name: 'type', value: p.get('type') || '' })),
        field('Rule', select('rule', p.get('rule'), rules)),
        field('Target', select('target', p.get('target'), busTargets(ctx))),
        field('Outcome', select('outcome', p.get('outcome'), OUTCOMES)),
        h('button', { type: 'submit' }, 'Search'));
    filters.addEventListener('submit', (e) => {
        e.preventDefault();
        const f = filters.elements;
        const q = { from: toMs(f.from.value), to: toMs(f.to.value) };
        for (const k of [...EVENT_FILTERS, ...ATTEMPT_FILTERS]) {
            q[k] = f[k].value.trim();
        }
        location.hash = ctx.link('events', null, q);
    });
    return [byId, filters];
}

function eventRow(ctx, e) {
    return h('tr', { 'data-event': text(e.id) },
        h('td', null, time(e.time)),
        h('td', null, e.id ? h('a', { href: ctx.link('event', e.id) }, e.id) : '—'),
        h('td', null, text(e.source)), h('td', null, text(e.type)),
        h('td', null, (e.rules || []).join(', ') || 'none'));
}

function attemptRow(ctx, a) {
    return h('tr', { 'data-event': text(a.event) },
        h('td', null, time(a.time)),
        h('td', null, a.event ? h('a', { href: ctx.link('event', a.event) }, a.event) : '—'),
        h('td', null, text(a.target)), h('td', null, text(a.rule)),
        h('td', null, text(a.attempt)), h('td', null, text(a.status)),
        h('td', null, h('span', { class: 'outcome ' + text(a.outcome) }, text(a.outcome))),
        h('td', null, text(a.error)));
}

// Events filters are the events stream's, target and outcome the trace's:
// with both, the attempts found are kept when their event matches too.
async function search(ctx, q, cursor) {
    const byAttempt = ATTEMPT_FILTERS.some((k) => q[k]);
    const common = { bus: ctx.bus, from: q.from, to: q.to, limit: 50, cursor };
    if (!byAttempt) {
        const r = await api.get('events', Object.assign(common, { source: q.source, type: q.type, rule: q.rule }));
        return { attempts: false, items: r.items, next: r.next, scanned: r.scanned };
    }
    const r = await api.get('attempts', Object.assign(common, { target: q.target, outcome: q.outcome }));
    let items = r.items;
    if (EVENT_FILTERS.some((k) => q[k])) {
        const ids = [...new Set(items.map((a) => a.event).filter(Boolean))];
        const events = await Promise.all(ids.map((id) =>
            api.get('events/' + encodeURIComponent(id), { bus: ctx.bus }).catch(() => null)));
        const keep = new Set();
        events.forEach((ev, i) => {
            if (!ev) {
                return;
            }
            const ce = api.parseEvent(ev.event).value || {};
            if ((!q.source || ce.source === q.source) && (!q.type || ce.type === q.type)
                && (!q.rule || ev.rules.includes(q.rule))) {
                keep.add(ids[i]);
            }
        });
        items = items.filter((a) => keep.has(a.event));
    }
    return { attempts: true, items, next: r.next, scanned: r.scanned };
}

export async function renderSearch(view, ctx) {
    put(view, h('h2', null, 'Events of bus ', h('code', null, ctx.bus)), searchForm(ctx));
    const q = {};
    for (const k of ['from', 'to', ...EVENT_FILTERS, ...ATTEMPT_FILTERS]) {
        q[k] = ctx.params.get(k) || '';
    }
    const first = await search(ctx, q, null);
    const cols = first.attempts
        ? ['time', 'event', 'target', 'rule', 'attempt', 'status', 'outcome', 'error']
        : ['time', 'event id', 'source', 'type', 'rules'];
    const body = h('tbody', null);
    const results = table(first.attempts ? 'Delivery attempts, newest first' : 'Events, newest first',
                          cols, [], { class: 'results' });
    results.querySelector('tbody').replaceWith(body);
    const more = h('button', { type: 'button' }, 'More');
    const status = h('p', { class: 'note', role: 'status' });
    const show = (page) => {
        for (const it of page.items) {
            body.append(page.attempts ? attemptRow(ctx, it) : eventRow(ctx, it));
        }
        status.textContent = body.children.length + ' shown' + (page.next ? '; more may follow' : '');
        more.hidden = !page.next;
        more.onclick = async () => {
            more.disabled = true;
            try {
                show(await search(ctx, q, page.next));
            } catch (e) {
                status.replaceChildren(error(e));
            }
            more.disabled = false;
        };
    };
    put(view, results, status, more);
    if (q.from && q.to) {
        // the same window again, through today's rules (ebd runs it)
        put(view, replay.panel(ctx, q.from, q.to, busTargets(ctx)));
    }
    show(first);
}

function timeline(target, attempts) {
    return h('section', { class: 'deliveries', 'data-target': target },
        h('h4', null, 'Target ', h('code', null, target)),
        h('ol', { class: 'timeline' }, attempts.map((a) =>
            h('li', { class: 'attempt ' + text(a.outcome), 'data-attempt': text(a.attempt),
                      'data-status': text(a.status), 'data-outcome': text(a.outcome) },
              h('time', null, time(a.time)),
              h('span', { class: 'n' }, 'attempt ' + text(a.attempt)),
              h('span', { class: 'outcome ' + text(a.outcome) }, text(a.outcome)),
              h('span', null, 'status ' + text(a.status)),
              h('span', null, latency(a.latency_us)),
              a.rule ? h('span', null, 'rule ' + a.rule) : null,
              a.error ? h('span', { class: 'err' }, a.error) : null))));
}

export async function renderEvent(view, ctx) {
    const ev = await api.get('events/' + encodeURIComponent(ctx.arg || ''), { bus: ctx.bus });
    const ce = api.parseEvent(ev.event);
    const byTarget = new Map();
    for (const a of ev.attempts) {
        const t = a.target || '?';
        byTarget.set(t, (byTarget.get(t) || []).concat([a]));
    }
    put(view,
        h('div', { class: 'title' }, h('h2', null, 'Event ', h('code', { class: 'event-id' }, ev.id)),
          h('button', { type: 'button', onclick: ctx.refresh }, 'Refresh')),
        h('p', null, 'Stored ', time(ev.time), ' as entry ', h('code', null, ev.entry), ' of bus ',
          h('code', null, ev.bus), ev.indexed ? '' : ' (not indexed yet: attempts will follow)'),
        h('div', { class: 'event-grid' },
          h('section', { class: 'cloudevent' }, h('h3', null, 'CloudEvent'),
            ce.ok ? jsonTree(ce.value) : h('pre', { class: 'code' }, ce.value)),
          h('div', null,
            h('section', { class: 'rules' }, h('h3', null, 'Rules matched'),
              ev.rules.length ? h('ul', null, ev.rules.map((r) => h('li', { 'data-rule': r }, r)))
                              : h('p', null, 'None: the event was stored only.')),
            h('section', { class: 'attempts' }, h('h3', null, 'Deliveries'),
              byTarget.size ? [...byTarget].map(([t, list]) => timeline(t, list))
                            : h('p', null, 'No attempt yet.')))));
}
