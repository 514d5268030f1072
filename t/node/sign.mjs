// The sender's side of t/013-signatures.t: prints, as JSON, the headers
// a provider would send with a body, signed by the provider's own library
// where it has one (@octokit/webhooks-methods, stripe, standardwebhooks)
// and by node's crypto otherwise (GitLab, Shopify, Slack, DingTalk, and
// Standard Webhooks' v1a, which the library does not sign).
//
//   node sign.mjs '{"scheme":"github","secrets":["s"],"body":"{}"}'
//   -> {"X-Hub-Signature-256":"sha256=..."}
//
// Fields: scheme, secrets (one signature each, all in one header), body,
// ts (Unix seconds; DingTalk: milliseconds), id (Standard Webhooks),
// keys (whsk_ private keys: v1a signatures). {"scheme":"keygen"} prints
// an Ed25519 pair {"public":"whpk_...","private":"whsk_..."}.

import crypto from 'node:crypto';
import { sign as githubSign } from '@octokit/webhooks-methods';
import Stripe from 'stripe';
import { Webhook } from 'standardwebhooks';

const o = JSON.parse(process.argv[2]);
const body = o.body ?? '';
const secrets = o.secrets ?? [];
const ts = o.ts ?? Math.floor(Date.now() / 1000);
const hmac = (alg, key, msg, enc) =>
    crypto.createHmac(alg, key).update(msg).digest(enc);

let h;

switch (o.scheme) {

case 'keygen': {
    const kp = crypto.generateKeyPairSync('ed25519');
    const raw = Buffer.from(kp.publicKey.export({ format: 'jwk' }).x,
                            'base64url');
    const der = kp.privateKey.export({ format: 'der', type: 'pkcs8' });
    h = { public: 'whpk_' + raw.toString('base64'),
          private: 'whsk_' + der.toString('base64') };
    break;
}

case 'github': {
    const sigs = [];
    for (const s of secrets) {
        sigs.push(await githubSign(s, body));
    }
    h = { 'X-Hub-Signature-256': sigs.join(',') };
    break;
}

case 'gitlab':
    h = { 'X-Gitlab-Token': secrets[0] };
    break;

case 'stripe': {
    const stripe = new Stripe('sk_test_unused');
    const parts = secrets.map(secret =>
        stripe.webhooks.generateTestHeaderString({
            payload: body, secret, timestamp: ts }));
    // t=TS,v1=A and t=TS,v1=B: one header t=TS,v1=A,v1=B
    h = { 'Stripe-Signature': parts[0] + parts.slice(1)
              .map(p => p.replace(/^t=\d+/, '')).join('') };
    break;
}

case 'shopify':
    h = { 'X-Shopify-Hmac-Sha256': secrets.map(s =>
              hmac('sha256', s, body, 'base64')).join(',') };
    break;

case 'slack':
    h = { 'X-Slack-Request-Timestamp': String(ts),
          'X-Slack-Signature': secrets.map(s =>
              'v0=' + hmac('sha256', s, `v0:${ts}:${body}`, 'hex')).join(',') };
    break;

case 'standard': {
    const id = o.id ?? 'msg_' + crypto.randomUUID();
    const sigs = secrets.map(s =>
        new Webhook(s).sign(id, new Date(ts * 1000), body));
    for (const k of o.keys ?? []) {
        const key = crypto.createPrivateKey({
            key: Buffer.from(k.replace(/^whsk_/, ''), 'base64'),
            format: 'der', type: 'pkcs8' });
        sigs.push('v1a,' + crypto.sign(null,
            Buffer.from(`${id}.${ts}.${body}`), key).toString('base64'));
    }
    h = { 'webhook-id': id, 'webhook-timestamp': String(ts),
          'webhook-signature': sigs.join(' ') };
    break;
}

case 'dingtalk':
    h = { timestamp: String(ts),
          sign: hmac('sha256', secrets[0], `${ts}\n${secrets[0]}`, 'base64') };
    break;

default:
    console.error(`sign.mjs: unknown scheme ${o.scheme}`);
    process.exit(2);
}

process.stdout.write(JSON.stringify(h) + '\n');
