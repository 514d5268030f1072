// An HTTP/2 server for t/096-ebd-http2.t: node's own node:http2 (an
// implementation independent of ebd's nghttp2 client code) on 127.0.0.1,
// cleartext with prior knowledge (h2c) or TLS with ALPN h2 only; it
// answers each path as scripted and logs every request.
//
//   node h2-peer.mjs CONFIG.json
//
// CONFIG (every key but dir optional):
//   { dir,
//     tls: { key: FILE, cert: FILE },   TLS (allowHTTP1 false)
//     maxConcurrentStreams: N,          in the server's SETTINGS
//     goawayEvery: N,                   after the N-th request of a
//                                       session: GOAWAY (NO_ERROR, last
//                                       stream id: that request's), and
//                                       the session closed once its
//                                       streams are done
//     default: RESPONSE,                200 when absent
//     paths: { "/p": RESPONSE } }       by path, without the query
//
// RESPONSE: a status (503), or { status, retryAfter (text), delay (ms),
// headers: { name: value }, body, reset: true (RST_STREAM INTERNAL_ERROR
// instead of an answer), close: true (the connection closed instead) }, or { seq: [RESPONSE, ...] }: the n-th request
// to the path gets the n-th (the last one from then on), or { bodyHas:
// { TEXT: RESPONSE, ... }, else: RESPONSE }: by what the body contains.
//
// Once listening it writes its port to DIR/port. DIR/requests.jsonl, one
// line per request, written when it is answered (or was reset, or
// refused): { n, path, url (:path), query, method, scheme, authority,
// headers (node's, lowercase, the pseudo-headers too), raw ([name, value]
// as received), body, session (1, 2, ... in the order they came),
// stream (its id), alpn ("h2" with TLS, "h2c" without), open (the
// session's streams being processed when it came, itself included),
// time (arrival, s), done (s), status (0 when not answered), aborted
// (the client reset it first; rst: the code), reset, closed (as
// scripted: no answer), refused (a stream above
// our GOAWAY's last id, sent back REFUSED_STREAM: not processed) }.
// DIR/sessions.jsonl, one line per session when it ends: { session, alpn,
// requests, maxOpen, goaway (last stream id sent, or null), error }.
//
// It exits on SIGTERM or SIGINT, and on its own when its parent is gone.

import fs from 'node:fs';
import http2 from 'node:http2';

const conf = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
const dir = conf.dir;
const reqLog = `${dir}/requests.jsonl`;
const sessLog = `${dir}/sessions.jsonl`;
const { NGHTTP2_NO_ERROR, NGHTTP2_REFUSED_STREAM, NGHTTP2_INTERNAL_ERROR } =
    http2.constants;

const counts = {};      // path => requests so far
let nreq = 0;
let nsess = 0;

function now() {
    return Date.now() / 1000;
}

function pick(path, body) {
    const spec = (conf.paths ?? {})[path] ?? conf.default ?? 200;
    const n = counts[path] = (counts[path] ?? 0) + 1;
    let r = spec;
    if (r !== null && typeof r === 'object' && r.bodyHas) {
        const k = Object.keys(r.bodyHas).find(s => body.includes(s));
        r = k !== undefined ? r.bodyHas[k] : (r.else ?? 200);
    }
    if (r !== null && typeof r === 'object' && Array.isArray(r.seq)) {
        r = r.seq[Math.min(n, r.seq.length) - 1];
    }
    if (typeof r === 'number') {
        r = { status: r };
    }
    return r ?? { status: 200 };
}

function write(file, obj) {
    fs.appendFileSync(file, JSON.stringify(obj) + '\n');
}

function onSession(session) {
    const st = { id: ++nsess, requests: 0, open: 0, maxOpen: 0, goaway: null,
                 ended: false, error: null };
    session.eb = st;
    session.on('error', e => { st.error = String(e.message ?? e); });
    session.on('close', () => {
        if (!st.ended) {
            st.ended = true;
            write(sessLog, { session: st.id, alpn: session.alpnProtocol ?? null,
                             requests: st.requests, maxOpen: st.maxOpen,
                             goaway: st.goaway, error: st.error });
        }
    });
}

function maybeClose(session) {
    const st = session.eb;
    if (st.goaway !== null && st.open === 0 && !session.closed
        && !session.destroyed)
    {
        session.close();
    }
}

function onStream(stream, headers, flags, rawHeaders) {
    const session = stream.session;
    const st = session.eb;
    const url = headers[':path'] ?? '';
    const q = url.indexOf('?');
    const rec = {
        n: ++nreq,
        path: q < 0 ? url : url.slice(0, q),
        url,
        query: q < 0 ? '' : url.slice(q + 1),
        method: headers[':method'],
        scheme: headers[':scheme'],
        authority: headers[':authority'],
        headers: { ...headers },
        raw: [],
        body: '',
        session: st.id,
        stream: stream.id,
        alpn: session.alpnProtocol ?? null,
        open: 0,
        time: now(),
        status: 0,
    };
    for (let i = 0; i + 1 < (rawHeaders ?? []).length; i += 2) {
        rec.raw.push([rawHeaders[i], rawHeaders[i + 1]]);
    }

    let logged = false;
    const log = () => {
        if (!logged) {
            logged = true;
            rec.done = now();
            write(reqLog, rec);
        }
    };

    stream.on('error', () => {});

    if (st.goaway !== null && stream.id > st.goaway) {
        // came after our GOAWAY, above its last id: not processed
        rec.refused = true;
        log();
        stream.close(NGHTTP2_REFUSED_STREAM);
        return;
    }

    st.requests++;
    st.open++;
    if (st.open > st.maxOpen) {
        st.maxOpen = st.open;
    }
    rec.open = st.open;

    let counted = true;
    const release = () => {
        if (counted) {
            counted = false;
            st.open--;
            maybeClose(session);
        }
    };

    stream.on('close', () => {
        if (!logged) {
            rec.aborted = true;
            rec.rst = stream.rstCode;
            log();
        }
        release();
    });

    if (conf.goawayEvery && st.requests % conf.goawayEvery === 0
        && st.goaway === null)
    {
        st.goaway = stream.id;
        session.goaway(NGHTTP2_NO_ERROR, stream.id);
    }

    const chunks = [];
    stream.on('data', c => chunks.push(c));
    stream.on('end', () => {
        rec.body = Buffer.concat(chunks).toString('utf8');
        const r = pick(rec.path, rec.body);
        const answer = () => {
            if (stream.destroyed || stream.closed) {
                return;
            }
            if (r.close) {
                // the whole connection, this stream's answer not sent
                rec.status = 0;
                rec.closed = true;
                log();
                session.destroy();
                return;
            }
            if (r.reset) {
                rec.status = 0;
                rec.reset = true;
                log();
                stream.close(NGHTTP2_INTERNAL_ERROR);
                return;
            }
            const h = { ':status': r.status ?? 200,
                        'content-type': 'text/plain', ...(r.headers ?? {}) };
            if (r.retryAfter !== undefined) {
                h['retry-after'] = String(r.retryAfter);
            }
            rec.status = h[':status'];
            log();
            stream.respond(h);
            stream.end(r.body ?? (rec.status < 300 ? 'ok\n' : 'no\n'));
            release();
        };
        if (r.delay) {
            setTimeout(answer, r.delay);
        } else {
            answer();
        }
    });
}

const settings = {};
if (conf.maxConcurrentStreams !== undefined) {
    settings.maxConcurrentStreams = conf.maxConcurrentStreams;
}

const server = conf.tls
    ? http2.createSecureServer({ key: fs.readFileSync(conf.tls.key),
                                 cert: fs.readFileSync(conf.tls.cert),
                                 allowHTTP1: false, settings })
    : http2.createServer({ settings });

server.on('session', onSession);
server.on('stream', onStream);
server.on('sessionError', () => {});
server.on('tlsClientError', () => {});
server.on('error', e => {
    process.stderr.write(`h2-peer: ${e.stack ?? e}\n`);
    process.exit(1);
});

server.listen(0, '127.0.0.1', () => {
    fs.writeFileSync(`${dir}/port.tmp`, String(server.address().port));
    fs.renameSync(`${dir}/port.tmp`, `${dir}/port`);
});

const parent = process.ppid;
setInterval(() => {
    if (process.ppid !== parent) {
        process.exit(0);
    }
}, 500).unref();

process.on('SIGTERM', () => process.exit(0));
process.on('SIGINT', () => process.exit(0));
