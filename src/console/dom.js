// DOM helpers. Everything that comes from events, Redis or the
// configuration is inserted as text nodes: never as markup.

export function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
        if (v === undefined || v === null || v === false) {
            continue;
        }
        if (k.startsWith('on')) {
            el.addEventListener(k.slice(2), v);
        } else if (k === 'class') {
            el.className = v;
        } else {
            el.setAttribute(k, v === true ? '' : String(v));
        }
    }
    append(el, children);
    return el;
}

// el.append() that also takes arrays (of arrays) and skips null
export function put(el, ...children) {
    append(el, children);
    return el;
}

function append(el, children) {
    for (const c of children) {
        if (c === undefined || c === null || c === false) {
            continue;
        }
        if (Array.isArray(c)) {
            append(el, c);
        } else {
            el.append(c instanceof Node ? c : document.createTextNode(String(c)));
        }
    }
}

export function text(v) {
    return v === null || v === undefined ? '—' : String(v);
}

const pad = (n, w = 2) => String(n).padStart(w, '0');

// local time, to the millisecond: attempts are often that close
export function time(ms) {
    if (ms === null || ms === undefined || ms === '') {
        return '—';
    }
    const d = new Date(Number(ms));
    return d.getFullYear() + '-' + pad(d.getMonth() + 1) + '-' + pad(d.getDate())
        + ' ' + pad(d.getHours()) + ':' + pad(d.getMinutes()) + ':'
        + pad(d.getSeconds()) + '.' + pad(d.getMilliseconds(), 3);
}

export function latency(us) {
    if (typeof us !== 'number') {
        return text(us);
    }
    return us >= 1000 ? (us / 1000).toFixed(1) + ' ms' : us + ' µs';
}

export function table(caption, columns, rows, attrs) {
    return h('table', attrs,
        h('caption', null, caption),
        h('thead', null, h('tr', null, columns.map((c) => h('th', { scope: 'col' }, c)))),
        h('tbody', null, rows));
}

export function error(e) {
    return h('p', { class: 'error', role: 'alert' }, 'Error: ' + (e && e.message || e));
}

// A collapsible JSON tree: objects and arrays are <details>, open for the
// first levels; leaves show the value as JSON text.
export function jsonTree(value, key, depth = 0) {
    const label = key === undefined ? null : h('span', { class: 'json-key' }, key + ': ');
    if (value !== null && typeof value === 'object') {
        const isArray = Array.isArray(value);
        const entries = isArray ? value.map((v, i) => [String(i), v]) : Object.entries(value);
        const d = h('details', { class: 'json', open: depth < 3 },
            h('summary', null, label,
              h('span', { class: 'json-type' },
                isArray ? '[' + entries.length + ']' : '{' + entries.length + '}')));
        const list = h('ul', null);
        for (const [k, v] of entries) {
            list.append(h('li', null, jsonTree(v, k, depth + 1)));
        }
        d.append(list);
        return d;
    }
    return h('span', { class: 'json-leaf' }, label,
             h('span', { class: 'json-' + (value === null ? 'null' : typeof value) },
               JSON.stringify(value)));
}

export function pretty(value) {
    return h('pre', { class: 'code' }, JSON.stringify(value, null, 2));
}
