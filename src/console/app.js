// The console's router: #/PAGE[/ARG]?bus=B&..., one module per page.
// Each rendering goes into a fresh element; one that finishes after the
// user moved on writes into an element no longer shown.
import * as api from './api.js';
import { h, error } from './dom.js';
import * as overview from './overview.js';
import * as trace from './trace.js';
import * as dlq from './dlq.js';
import * as config from './config.js';
import * as replay from './replay.js';

const pages = {
    overview: overview.render,
    events: trace.renderSearch,
    event: trace.renderEvent,
    dlq: dlq.render,
    config: config.render,
    replays: replay.render,
};

const main = document.getElementById('main');
const busSelect = document.getElementById('bus');
let conf = null;

function parseHash() {
    const [path, query] = location.hash.replace(/^#\/?/, '').split('?');
    const parts = path.split('/');
    return {
        page: parts[0] || 'overview',
        arg: parts.length > 1 ? decodeURIComponent(parts.slice(1).join('/')) : null,
        params: new URLSearchParams(query || ''),
    };
}

export function link(page, arg, params) {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(params || {})) {
        if (v !== undefined && v !== null && v !== '') {
            q.set(k, v);
        }
    }
    const s = q.toString();
    return '#/' + page + (arg ? '/' + encodeURIComponent(arg) : '') + (s ? '?' + s : '');
}

async function route() {
    const { page, arg, params } = parseHash();
    const view = h('div', { class: 'view', 'data-page': page });
    // charts of the page left behind let go of their canvases
    for (const c of main.querySelectorAll('canvas')) {
        const chart = window.Chart && window.Chart.getChart(c);
        if (chart) {
            chart.destroy();
        }
    }
    main.replaceChildren(view);
    for (const a of document.querySelectorAll('nav a')) {
        a.toggleAttribute('aria-current', a.dataset.page === page
                          || (page === 'event' && a.dataset.page === 'events'));
    }
    try {
        if (!conf) {
            conf = await api.get('config');
            for (const b of conf.buses) {
                busSelect.append(h('option', { value: b.name }, b.name));
            }
        }
        const names = conf.buses.map((b) => b.name);
        if (!names.length) {
            view.append(h('p', null, 'No bus in eventbridge_config.'));
            view.setAttribute('data-ready', '');
            return;
        }
        const bus = names.includes(params.get('bus')) ? params.get('bus') : busSelect.value || names[0];
        busSelect.value = bus;
        const render = pages[page];
        if (!render) {
            view.append(h('p', { class: 'error' }, 'No such page.'));
            return;
        }
        await render(view, {
            bus, arg, params, config: conf, refresh: route,
            busConfig: conf.buses.find((b) => b.name === bus),
            link: (p, a, q) => link(p, a, Object.assign({ bus }, q)),
        });
        view.setAttribute('data-ready', '');
    } catch (e) {
        view.append(error(e));
        view.setAttribute('data-ready', 'error');
    }
}

busSelect.addEventListener('change', () => {
    const { page } = parseHash();
    location.hash = link(page === 'event' ? 'events' : page, null, { bus: busSelect.value });
});
window.addEventListener('hashchange', route);
route();
