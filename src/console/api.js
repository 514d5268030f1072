// The console's JSON API (docs/console.md), relative to the console's
// location. Errors become exceptions carrying the API's errorMessage.

const CSRF_HEADER = 'X-EB-CSRF';
let csrf = null;                        // {token, expires}

export class ApiError extends Error {
    constructor(status, code, message) {
        super(message || code || 'HTTP ' + status);
        this.status = status;
        this.code = code;
    }
}

function url(path, params) {
    const u = new URL('api/' + path, document.baseURI);
    for (const [k, v] of Object.entries(params || {})) {
        if (v !== undefined && v !== null && v !== '') {
            u.searchParams.set(k, v);
        }
    }
    return u;
}

async function answer(res) {
    let body = null;
    try {
        body = await res.json();
    } catch (e) {
        body = null;
    }
    if (!res.ok) {
        throw new ApiError(res.status, body && body.errorCode,
                           body && body.errorMessage);
    }
    return body;
}

export async function get(path, params) {
    return answer(await fetch(url(path, params), { cache: 'no-store' }));
}

async function token(fresh) {
    if (fresh || !csrf || csrf.expires * 1000 < Date.now() + 60000) {
        csrf = await get('csrf');
    }
    return csrf.token;
}

// A token is good until it expires or nginx reloads: on 403, fetch a new
// one and try once more.
export async function post(path, body) {
    for (let i = 0; ; i++) {
        const res = await fetch(url(path), {
            method: 'POST',
            headers: { 'Content-Type': 'application/json',
                       [CSRF_HEADER]: await token(i > 0) },
            body: JSON.stringify(body),
        });
        if (res.status !== 403 || i > 0) {
            return answer(res);
        }
    }
}

// `event` fields are the stored CloudEvent as JSON text.
export function parseEvent(text) {
    try {
        return { ok: true, value: JSON.parse(text) };
    } catch (e) {
        return { ok: false, value: text };
    }
}
