// The configuration as api/config shows it: buses and their rules
// (patterns pretty-printed), sources with the checks in force, targets
// and connections. The server has already masked every secret ("***").
import { h, put, table, text, pretty } from './dom.js';

function checks(c) {
    const items = [
        ['methods', c.methods],
        ['token', c.token ? 'required (' + c.token + ')' : null],
        ['addresses', c.ips && c.ips.join(', ')],
        ['referers', c.referers && [].concat(c.referers).join(', ')],
        ['signature', c.signature],
        ['dedupe', c.dedupe],
    ];
    return h('ul', { class: 'checks' },
        items.map(([k, v]) => h('li', null, h('span', { class: 'key' }, k + ': '), v ? String(v) : 'none')));
}

function rules(list) {
    return table('Rules', ['rule', 'pattern', 'targets'],
        list.map((r) => h('tr', { 'data-rule': r.name },
            h('th', { scope: 'row' }, h('span', { class: 'rule-name' }, r.name),
              r.enabled ? null : h('span', { class: 'badge off' }, 'disabled'),
              r.description ? h('p', { class: 'note' }, r.description) : null),
            h('td', null, pretty(r.pattern)),
            h('td', null, h('ul', { class: 'plain' }, r.targets.map((t) =>
                h('li', null, h('code', null, t.target), t.transform ? ' (transformed)' : '')))))),
        { class: 'rules' });
}

function bus(b) {
    const ret = b.retention || {};
    return h('section', { class: 'bus', 'data-bus': b.name },
        h('h3', null, 'Bus ', h('code', null, b.name)),
        h('p', null, 'Retention: ',
          ret.age_ms ? (ret.age_ms / 1000) + ' s' : 'no age limit', ', ',
          ret.length ? ret.length + ' entries' : 'no length limit'),
        b.rules.length ? rules(b.rules) : h('p', null, 'No rules: events are stored only.'));
}

function specs(caption, list) {
    return table(caption, ['name', 'type', 'specification'],
        list.map((t) => h('tr', { 'data-name': t.name },
            h('th', { scope: 'row' }, t.name),
            h('td', null, text(t.spec && t.spec.type)),
            h('td', null, pretty(t.spec)))), { class: 'specs' });
}

export async function render(view, ctx) {
    const c = ctx.config;
    put(view,
        h('h2', null, 'Configuration'),
        h('p', { class: 'note' }, 'Secrets are shown as *** (masked by nginx).'),
        c.buses.map(bus),
        h('h3', null, 'Sources'),
        table('Sources', ['location', 'kind', 'name', 'bus', 'checks'],
              c.sources.map((s) => h('tr', null,
                  h('td', null, h('code', null, s.location)),
                  h('td', null, s.kind), h('td', null, text(s.name)),
                  h('td', null, text(s.bus)), h('td', null, checks(s.checks || {})))),
              { class: 'sources' }),
        h('h3', null, 'Targets'),
        specs('Targets', c.targets),
        h('h3', null, 'Connections'),
        specs('Connections', c.connections));
}
