// The receiving side of t/074-ebd-signing.t: an HTTP server on 127.0.0.1
// that checks the signature of every request the way a consumer would,
// with the standardwebhooks library (v1) and node's crypto where the
// library has nothing (v1a, which it does not verify: crypto.verify with
// the Ed25519 public key; the generic HMAC), and logs each request.
//
//   node receive.mjs CONFIG.json
//
// CONFIG: { dir, paths: { "/p": { answers: [500, 200], checks: [CHECK] } } }
// The n-th request to a path gets answers[n] (the last one from then on;
// 200 without answers). Once listening it writes its port to DIR/port.
//
// CHECK, each run on every request to its path:
//   { name, scheme: "v1", secret: "whsec_..." }   Webhook(secret).verify
//   { name, scheme: "v1a", public: "whpk_..." }   a v1a signature of
//       "{id}.{ts}.{body}" that crypto.verify('ed25519') accepts, and a
//       timestamp within 5 minutes (what the library checks for v1)
//   { name, scheme: "hmac", header, secret, algorithm, encoding, prefix,
//     timestamp_header }   one of the header's comma-separated values is
//       PREFIX + HMAC of the body (or of "{ts}.{body}")
//
// DIR/requests.jsonl, one line per request: { path, n, status, headers
// (node's, lower-case), raw (every header line as sent: [name, value]),
// body, checks: { NAME: "ok" or why not } }.

import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import { Webhook } from 'standardwebhooks';

const conf = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
const log = `${conf.dir}/requests.jsonl`;
const counts = {};
const TOLERANCE = 300;

function fresh(ts) {
    const t = Number(ts);
    return Number.isInteger(t)
           && Math.abs(Math.floor(Date.now() / 1000) - t) <= TOLERANCE;
}

function checkV1(c, h, body) {
    new Webhook(c.secret).verify(body.toString('utf8'), h);
}

function checkV1a(c, h, body) {
    const raw = Buffer.from(c.public.replace(/^whpk_/, ''), 'base64');
    const key = crypto.createPublicKey({
        key: { kty: 'OKP', crv: 'Ed25519', x: raw.toString('base64url') },
        format: 'jwk' });
    const id = h['webhook-id'], ts = h['webhook-timestamp'];
    if (!id || !ts || !h['webhook-signature']) {
        throw new Error('missing headers');
    }
    if (!fresh(ts)) {
        throw new Error(`timestamp ${ts} out of tolerance`);
    }
    const msg = Buffer.concat([Buffer.from(`${id}.${ts}.`), body]);
    for (const s of h['webhook-signature'].split(' ')) {
        const [v, sig] = s.split(',');
        if (v === 'v1a'
            && crypto.verify(null, msg, key, Buffer.from(sig, 'base64'))) {
            return;
        }
    }
    throw new Error('no v1a signature verifies');
}

function checkHmac(c, h, body) {
    const value = h[c.header.toLowerCase()];
    if (value === undefined) {
        throw new Error(`missing ${c.header}`);
    }
    let msg = body;
    if (c.timestamp_header) {
        const ts = h[c.timestamp_header.toLowerCase()];
        if (!fresh(ts)) {
            throw new Error(`timestamp ${ts} missing or out of tolerance`);
        }
        msg = Buffer.concat([Buffer.from(`${ts}.`), body]);
    }
    const want = Buffer.from((c.prefix ?? '') + crypto
        .createHmac(c.algorithm ?? 'sha256', c.secret).update(msg)
        .digest(c.encoding ?? 'hex'));
    for (const got of value.split(',').map(v => Buffer.from(v))) {
        if (got.length === want.length && crypto.timingSafeEqual(got, want)) {
            return;
        }
    }
    throw new Error(`no ${c.header} value matches`);
}

const checkers = { v1: checkV1, v1a: checkV1a, hmac: checkHmac };

const server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', c => chunks.push(c));
    req.on('end', () => {
        const body = Buffer.concat(chunks);
        const path = req.url.split('?')[0];
        const p = conf.paths[path] ?? {};
        const n = counts[path] = (counts[path] ?? 0) + 1;
        const answers = p.answers ?? [200];
        const status = answers[Math.min(n, answers.length) - 1];
        const checks = {};
        for (const c of p.checks ?? []) {
            try {
                checkers[c.scheme](c, req.headers, body);
                checks[c.name] = 'ok';
            } catch (e) {
                checks[c.name] = String(e.message ?? e);
            }
        }
        const raw = [];
        for (let i = 0; i < req.rawHeaders.length; i += 2) {
            raw.push([req.rawHeaders[i], req.rawHeaders[i + 1]]);
        }
        fs.appendFileSync(log, JSON.stringify({
            path, n, status, headers: req.headers, raw,
            body: body.toString('utf8'), checks }) + '\n');
        res.writeHead(status, { 'Content-Type': 'text/plain' });
        res.end(status < 300 ? 'ok\n' : 'no\n');
    });
});

server.listen(0, '127.0.0.1', () => {
    fs.writeFileSync(`${conf.dir}/port.tmp`, String(server.address().port));
    fs.renameSync(`${conf.dir}/port.tmp`, `${conf.dir}/port`);
});

process.on('SIGTERM', () => process.exit(0));
