'use strict';
/*
 * bench/dispatch-peer/consumer.js: ebd's peer in bench/dispatch, what an
 * experienced Node.js engineer writes instead of ebd for one cloudevents
 * target. Each worker process is a consumer of the group "ebd" of the
 * target stream: XREADGROUP COUNT/BLOCK (its own pending entries first),
 * each entry's "event" POSTed in binary mode (ce-* headers, datacontenttype
 * as Content-Type, data as body) over an undici Pool of keep-alive
 * connections, at most PEER_CONCURRENCY requests in flight, the delivered
 * ids acknowledged with one XACK per turn of the event loop.
 *
 * Environment: PEER_REDIS host:port, PEER_STREAM the target stream,
 * PEER_URL the sink; PEER_WORKERS (2), PEER_CONCURRENCY (64, per worker),
 * PEER_CONNECTIONS (64, per worker), PEER_BLOCK_MS (2000); PEER_HTTP2=1:
 * HTTP/2 with prior knowledge instead, one session per worker through
 * Node's own http2 module (the requests as streams of it).
 * SIGTERM: stop reading, finish what is in flight, send the last XACKs,
 * exit; what was read but not delivered stays pending.
 */
const cluster = require('node:cluster');

const env = process.env;
const GROUP = 'ebd';

if (cluster.isPrimary) {
    primary(Number(env.PEER_WORKERS || 2));
} else {
    worker();
}

function primary(n) {
    const names = new Map();       // a restarted worker keeps its name
    let stopping = false;
    const fork = (name) => names.set(cluster.fork({ PEER_CONSUMER: name }), name);

    for (let i = 1; i <= n; i++) fork(`peer-${i}`);
    cluster.on('exit', (w, code, signal) => {
        const name = names.get(w);
        names.delete(w);
        if (!stopping) {
            console.error(`peer: ${name} exited (${signal || code}), started again`);
            fork(name);
        } else if (names.size === 0) {
            process.exit(0);
        }
    });
    process.on('SIGTERM', () => {
        stopping = true;
        for (const w of names.keys()) w.process.kill('SIGTERM');
    });
}

function worker() {
    const Redis = require('ioredis');
    const { Pool } = require('undici');

    const [host, port] = (env.PEER_REDIS || '127.0.0.1:6379').split(':');
    const stream = env.PEER_STREAM, consumer = env.PEER_CONSUMER;
    const concurrency = Number(env.PEER_CONCURRENCY || 64);
    const blockMs = Number(env.PEER_BLOCK_MS || 2000);
    const url = new URL(env.PEER_URL);
    const pool = env.PEER_HTTP2 === '1' ? null : new Pool(url.origin, {
        connections: Number(env.PEER_CONNECTIONS || 64),
        pipelining: 1, keepAliveTimeout: 60000,
    });
    const h2 = pool ? null : require('node:http2');
    let session = null;                         // HTTP/2: made again once closed
    const reader = new Redis({ host, port });  // a blocked read holds its connection
    const cmd = new Redis({ host, port });     // XGROUP, XACK

    const queue = [];
    let inFlight = 0, reading = false, stopping = false;
    let cursor = '0';                          // own pending entries first, then '>'
    let acks = [], acking = 0;                 // ids to acknowledge, XACKs in flight

    async function read() {
        const room = 2 * concurrency - inFlight - queue.length;
        if (reading || stopping || room <= 0) return;
        reading = true;
        let reply = null;
        try {
            reply = cursor !== '>'
                ? await reader.xreadgroup('GROUP', GROUP, consumer, 'COUNT', room,
                                          'STREAMS', stream, cursor)
                : await reader.xreadgroup('GROUP', GROUP, consumer, 'COUNT', room,
                                          'BLOCK', blockMs, 'STREAMS', stream, '>');
        } catch (e) {
            if (!stopping) console.error(`peer: ${consumer}: XREADGROUP: ${e.message}`);
            await new Promise((r) => setTimeout(r, 100));
        }
        reading = false;
        const entries = reply ? reply[0][1] : [];
        if (cursor !== '>') cursor = entries.length ? entries[entries.length - 1][0] : '>';
        for (const [id, fields] of entries) {
            if (fields) queue.push({ id, fields, attempts: 0 });
            else ack(id);                       // pending, but deleted from the stream
        }
        pump();
        read();
    }

    function pump() {
        while (inFlight < concurrency && queue.length && !stopping) deliver(queue.shift());
    }

    async function deliver(item) {
        inFlight++;
        let ok = false, final = false;
        try {
            const statusCode = await send(request(item.fields));
            ok = statusCode >= 200 && statusCode < 300;
            final = !ok && statusCode !== 408 && statusCode !== 429 && statusCode < 500;
            if (!ok) console.error(`peer: ${item.id}: HTTP ${statusCode}`);
        } catch (e) {
            final = e instanceof SyntaxError;   // not JSON: no attempt can succeed
            console.error(`peer: ${item.id}: ${e.message}`);
        }
        inFlight--;
        if (ok || final) {
            ack(item.id);
        } else if (++item.attempts < 100) {
            setTimeout(() => { queue.unshift(item); pump(); }, 100);
        }                                       // else it stays pending
        pump();
        read();
    }

    // the request's status, its body read and thrown away
    async function send(req) {
        if (pool) {
            const { statusCode, body } = await pool.request(req);
            await body.dump();
            return statusCode;
        }
        if (!session || session.closed || session.destroyed) {
            session = h2.connect(url.origin);
            session.on('error', (e) => console.error(`peer: http2: ${e.message}`));
        }
        return new Promise((resolve, reject) => {
            const s = session.request({ ':method': req.method, ':path': req.path,
                                        ...req.headers });
            let status = 0;
            s.on('response', (h) => { status = h[':status']; });
            s.on('error', reject);
            s.on('data', () => {});
            s.on('end', () => resolve(status));
            s.end(req.body);
        });
    }

    // binary mode: the attributes as ce-* headers, data as the body
    function request(fields) {
        const ev = JSON.parse(fields[fields.indexOf('event') + 1]);
        const headers = {};
        let ct, body;
        for (const [k, v] of Object.entries(ev)) {
            if (k === 'data' || k === 'data_base64') continue;
            if (k === 'datacontenttype') ct = v;
            else if (v !== null && typeof v !== 'object') headers[`ce-${k}`] = pct(String(v));
        }
        if (typeof ev.data_base64 === 'string') {
            body = Buffer.from(ev.data_base64, 'base64');
        } else if (ev.data !== undefined) {
            const text = typeof ev.data === 'string' && ct && !/json/i.test(ct);
            body = text ? ev.data : JSON.stringify(ev.data);
            ct = ct || 'application/json';
        }
        if (body !== undefined && ct) headers['content-type'] = ct;
        return { path: url.pathname + url.search, method: 'POST', headers, body };
    }

    // percent-encodes a header value: space, '"', '%' and all but printable ASCII
    function pct(s) {
        if (/^[!#$&-~]*$/.test(s)) return s;
        let out = '';
        for (const b of Buffer.from(s)) {
            out += b > 0x20 && b < 0x7f && b !== 0x22 && b !== 0x25
                ? String.fromCharCode(b) : `%${b.toString(16).toUpperCase().padStart(2, '0')}`;
        }
        return out;
    }

    function ack(id) {
        if (acks.push(id) === 1) setImmediate(flush);
    }

    function flush() {                          // one XACK per turn of the loop
        const ids = acks;
        acks = [];
        acking++;
        cmd.xack(stream, GROUP, ...ids)
            .catch((e) => { console.error(`peer: XACK: ${e.message}`); ids.forEach(ack); })
            .finally(() => acking--);
    }

    async function stop() {
        if (stopping) return;
        stopping = true;
        reader.disconnect();
        while (inFlight > 0 || acks.length || acking) {
            await new Promise((r) => setTimeout(r, 10));
        }
        await cmd.quit();
        if (pool) await pool.close();
        if (session) session.close();
        process.exit(0);
    }

    process.on('SIGTERM', stop);
    process.on('disconnect', stop);            // the primary is gone

    cmd.xgroup('CREATE', stream, GROUP, '0', 'MKSTREAM')
        .catch((e) => { if (!/BUSYGROUP/.test(e.message)) throw e; })
        .then(read, (e) => { console.error(`peer: XGROUP: ${e.message}`); process.exit(1); });
}
