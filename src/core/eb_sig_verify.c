/*
 * Webhook signatures, the request path: the signature header parsed, the
 * timestamp checked, the signed string composed and every signature
 * compared with every key in constant time (see eb_signature.h).
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include "eb_sig_int.h"


/* one signature found in the header */
typedef struct {
    const unsigned char  *data;
    size_t                len;
    unsigned              ed25519:1;    /* Standard Webhooks v1a */
} eb_sig_token_t;


static int
eb_sig_blank(unsigned char c)
{
    return c == ' ' || c == '\t';
}


/*
 * Finds the signatures (and Stripe's t=) in the header. Returns 0, or
 * -1 with err naming the problem.
 */
static int
eb_sig_parse_header(const eb_sig_scheme_t *s, const eb_sig_input_t *in,
    eb_sig_token_t *sigs, size_t *nsigs, const unsigned char **ts,
    size_t *ts_len, char *err, size_t errlen)
{
    size_t                i, n, tlen, klen;
    const unsigned char  *p, *end, *t, *comma, *eq;

    p = in->sig;
    end = p + in->sig_len;
    n = 0;

    while (p < end) {

        /* the next item: up to a comma (Stripe, lists) or a blank */
        while (p < end && (eb_sig_blank(*p)
                           || (*p == ',' && s->format != EB_SIG_FMT_STANDARD)))
        {
            p++;
        }

        if (p == end) {
            break;
        }

        t = p;

        while (p < end && !eb_sig_blank(*p)
               && !(*p == ',' && s->format != EB_SIG_FMT_STANDARD))
        {
            p++;
        }

        tlen = (size_t) (p - t);

        switch (s->format) {

        case EB_SIG_FMT_STRIPE:
            eq = memchr(t, '=', tlen);
            if (eq == NULL) {
                eb_sig_err(err, errlen, "header %s: an item without \"=\"",
                           s->header);
                return -1;
            }

            klen = (size_t) (eq - t);

            if (klen == 1 && t[0] == 't') {
                if (*ts != NULL) {
                    eb_sig_err(err, errlen, "header %s: more than one "
                               "\"t=\"", s->header);
                    return -1;
                }

                *ts = eq + 1;
                *ts_len = tlen - 2;
                continue;
            }

            if (klen != 2 || t[0] != 'v' || t[1] != '1') {
                continue;               /* v0= and schemes to come */
            }

            t = eq + 1;
            tlen -= 3;
            break;

        case EB_SIG_FMT_STANDARD:
            comma = memchr(t, ',', tlen);
            if (comma == NULL) {
                eb_sig_err(err, errlen, "header %s: a signature without "
                           "\"VERSION,\"", s->header);
                return -1;
            }

            klen = (size_t) (comma - t);

            if (!(klen == 2 && t[0] == 'v' && t[1] == '1')
                && !(klen == 3 && memcmp(t, "v1a", 3) == 0))
            {
                continue;               /* versions to come */
            }

            if (n == EB_SIG_MAX_SIGNATURES) {
                goto too_many;
            }

            sigs[n].ed25519 = (klen == 3);
            t = comma + 1;
            tlen -= klen + 1;

            sigs[n].data = t;
            sigs[n].len = tlen;
            n++;
            continue;

        default: /* EB_SIG_FMT_LIST */
            if (tlen < s->prefix_len
                || memcmp(t, s->prefix, s->prefix_len) != 0)
            {
                eb_sig_err(err, errlen, "header %s: a signature without the "
                           "prefix \"%s\"", s->header, s->prefix);
                return -1;
            }

            t += s->prefix_len;
            tlen -= s->prefix_len;
            break;
        }

        if (n == EB_SIG_MAX_SIGNATURES) {
            goto too_many;
        }

        sigs[n].data = t;
        sigs[n].len = tlen;
        sigs[n].ed25519 = 0;
        n++;
    }

    if (s->format == EB_SIG_FMT_STRIPE && *ts == NULL) {
        eb_sig_err(err, errlen, "header %s: no \"t=\" timestamp", s->header);
        return -1;
    }

    if (n == 0) {
        eb_sig_err(err, errlen, "header %s: no %s signature", s->header,
                   s->format == EB_SIG_FMT_STRIPE ? "v1"
                   : s->format == EB_SIG_FMT_STANDARD ? "v1 or v1a" : "");
        return -1;
    }

    for (i = 0; i < n; i++) {
        if (sigs[i].len == 0) {
            eb_sig_err(err, errlen, "header %s: an empty signature",
                       s->header);
            return -1;
        }
    }

    *nsigs = n;
    return 0;

too_many:

    eb_sig_err(err, errlen, "header %s: more than %d signatures", s->header,
               EB_SIG_MAX_SIGNATURES);
    return -1;
}


static eb_sig_rc_t
eb_sig_check_time(const eb_sig_scheme_t *s, const unsigned char *ts,
    size_t len, int64_t now_ms, const char *where, char *err, size_t errlen)
{
    size_t   i;
    int64_t  t, now, tol;

    if (len == 0 || len > 18) {
        goto malformed;
    }

    t = 0;

    for (i = 0; i < len; i++) {
        if (ts[i] < '0' || ts[i] > '9') {
            goto malformed;
        }
        t = t * 10 + (ts[i] - '0');
    }

    if (s->tolerance < 0) {
        return EB_SIG_OK;
    }

    now = s->ts_ms ? now_ms : now_ms / 1000;
    tol = s->ts_ms ? s->tolerance * 1000 : s->tolerance;

    if (t < now - tol) {
        eb_sig_err(err, errlen, "timestamp %.*s is older than the tolerance "
                   "of %llds", (int) len, ts, (long long) s->tolerance);
        return EB_SIG_TIMESTAMP_OLD;
    }

    if (t > now + tol) {
        eb_sig_err(err, errlen, "timestamp %.*s is further in the future "
                   "than the tolerance of %llds", (int) len, ts,
                   (long long) s->tolerance);
        return EB_SIG_TIMESTAMP_FUTURE;
    }

    return EB_SIG_OK;

malformed:

    eb_sig_err(err, errlen, "%s: the timestamp is not a Unix time in %s",
               where, s->ts_ms ? "milliseconds" : "seconds");
    return EB_SIG_MALFORMED_HEADER;
}


/* the bytes of one part of the signed string */
static void
eb_sig_part(const eb_sig_scheme_t *s, const eb_sig_part_t *part,
    const eb_sig_input_t *in, const unsigned char *ts, size_t ts_len,
    const eb_sig_key_t *key, const unsigned char **data, size_t *len)
{
    switch (part->type) {

    case EB_SIG_PART_BODY:
        *data = in->body;
        *len = in->body_len;
        return;

    case EB_SIG_PART_TIMESTAMP:
        *data = ts;
        *len = ts_len;
        return;

    case EB_SIG_PART_ID:
        *data = in->id;
        *len = in->id_len;
        return;

    case EB_SIG_PART_SECRET:
        *data = key ? key->secret : NULL;
        *len = key ? key->secret_len : 0;
        return;

    default:
        *data = (const unsigned char *) s->literals + part->off;
        *len = part->len;
        return;
    }
}


static int
eb_sig_hmac(const eb_sig_scheme_t *s, const eb_sig_key_t *key,
    const eb_sig_input_t *in, const unsigned char *ts, size_t ts_len,
    unsigned char *out, size_t *outlen)
{
    int                   ok;
    size_t                i, len;
    EVP_MAC_CTX          *ctx;
    const unsigned char  *data;

    ctx = EVP_MAC_CTX_dup(key->mac);
    if (ctx == NULL) {
        return -1;
    }

    ok = 1;

    for (i = 0; ok && i < s->nparts; i++) {
        eb_sig_part(s, &s->parts[i], in, ts, ts_len, key, &data, &len);

        if (len) {
            ok = EVP_MAC_update(ctx, data, len);
        }
    }

    ok = ok && EVP_MAC_final(ctx, out, outlen, EB_SIG_MAC_MAX);

    EVP_MAC_CTX_free(ctx);

    return ok ? 0 : -1;
}


/* The signed string in one piece, for Ed25519 (malloc'ed). */
static unsigned char *
eb_sig_message(const eb_sig_scheme_t *s, const eb_sig_input_t *in,
    const unsigned char *ts, size_t ts_len, size_t *msg_len)
{
    size_t                i, len, total;
    unsigned char        *msg, *p;
    const unsigned char  *data;

    total = 0;

    for (i = 0; i < s->nparts; i++) {
        eb_sig_part(s, &s->parts[i], in, ts, ts_len, NULL, &data, &len);

        if (len > (size_t) -1 - total) {
            return NULL;
        }

        total += len;
    }

    msg = malloc(total ? total : 1);
    if (msg == NULL) {
        return NULL;
    }

    p = msg;

    for (i = 0; i < s->nparts; i++) {
        eb_sig_part(s, &s->parts[i], in, ts, ts_len, NULL, &data, &len);

        if (len) {
            memcpy(p, data, len);
            p += len;
        }
    }

    *msg_len = total;
    return msg;
}


static int
eb_sig_ed25519(EVP_PKEY *pkey, const unsigned char *sig,
    const unsigned char *msg, size_t len)
{
    int          rc;
    EVP_MD_CTX  *ctx;

    ctx = EVP_MD_CTX_new();
    if (ctx == NULL) {
        return -1;
    }

    rc = -1;

    if (EVP_DigestVerifyInit(ctx, NULL, NULL, NULL, pkey) == 1) {
        rc = EVP_DigestVerify(ctx, sig, EB_SIG_ED25519_LEN, msg, len) == 1
             ? 1 : 0;
    }

    EVP_MD_CTX_free(ctx);

    return rc;
}


/* GitLab: the header is the secret; both are hashed first, so that the
 * compare takes the same time whatever their lengths */
static eb_sig_rc_t
eb_sig_token(const eb_sig_scheme_t *s, const eb_sig_input_t *in,
    char *err, size_t errlen)
{
    size_t         i;
    int            match;
    unsigned char  got[32], want[32];

    if (!EVP_Digest(in->sig, in->sig_len, got, NULL, EVP_sha256(), NULL)) {
        return EB_SIG_ERROR;
    }

    match = 0;

    for (i = 0; i < s->nkeys; i++) {
        if (!EVP_Digest(s->keys[i].secret, s->keys[i].secret_len, want, NULL,
                        EVP_sha256(), NULL))
        {
            return EB_SIG_ERROR;
        }

        match |= (CRYPTO_memcmp(got, want, sizeof(got)) == 0);
    }

    if (match) {
        return EB_SIG_OK;
    }

    eb_sig_err(err, errlen, "header %s does not match", s->header);
    return EB_SIG_MISMATCH;
}


eb_sig_rc_t
eb_sig_verify(const eb_sig_scheme_t *s, const eb_sig_input_t *in,
    char *err, size_t errlen)
{
    int                   match, rc;
    size_t                i, j, nsigs, ts_len, want, mac_len, msg_len;
    long                  n;
    eb_sig_rc_t           trc;
    unsigned char        *msg;
    unsigned char         mac[EB_SIG_MAC_MAX];
    unsigned char         dec[EB_SIG_MAX_SIGNATURES][EB_SIG_MAC_MAX + 3];
    size_t                dec_len[EB_SIG_MAX_SIGNATURES];
    eb_sig_token_t        sigs[EB_SIG_MAX_SIGNATURES];
    const unsigned char  *ts;

    if (in->sig == NULL) {
        eb_sig_err(err, errlen, "missing header %s", s->header);
        return EB_SIG_MISSING_HEADER;
    }

    if (in->sig_len > EB_SIG_HEADER_MAX) {
        eb_sig_err(err, errlen, "header %s is longer than %d bytes",
                   s->header, EB_SIG_HEADER_MAX);
        return EB_SIG_MALFORMED_HEADER;
    }

    if (s->format == EB_SIG_FMT_TOKEN) {
        return eb_sig_token(s, in, err, errlen);
    }

    ts = NULL;
    ts_len = 0;

    if (eb_sig_parse_header(s, in, sigs, &nsigs, &ts, &ts_len, err, errlen)
        != 0)
    {
        return EB_SIG_MALFORMED_HEADER;
    }

    if (s->ts_header[0]) {
        if (in->ts == NULL) {
            eb_sig_err(err, errlen, "missing header %s", s->ts_header);
            return EB_SIG_MISSING_HEADER;
        }

        ts = in->ts;
        ts_len = in->ts_len;
    }

    if (ts != NULL) {
        trc = eb_sig_check_time(s, ts, ts_len, in->now_ms,
                                s->ts_header[0] ? s->ts_header : s->header,
                                err, errlen);
        if (trc != EB_SIG_OK) {
            return trc;
        }
    }

    if (s->id_header[0]) {
        if (in->id == NULL) {
            eb_sig_err(err, errlen, "missing header %s", s->id_header);
            return EB_SIG_MISSING_HEADER;
        }

        if (in->id_len == 0 || in->id_len > EB_SIG_ID_MAX) {
            eb_sig_err(err, errlen, "header %s must be 1 to %d bytes",
                       s->id_header, EB_SIG_ID_MAX);
            return EB_SIG_MALFORMED_HEADER;
        }
    }

    /* every signature decoded first: a malformed one is reported as such,
     * whatever the keys */
    for (i = 0; i < nsigs; i++) {
        want = sigs[i].ed25519 ? EB_SIG_ED25519_LEN : eb_sig_mac_lens[s->alg];

        if (s->enc == EB_SIG_BASE64 || sigs[i].ed25519) {
            n = eb_sig_base64_decode(dec[i], sizeof(dec[i]), sigs[i].data,
                                     sigs[i].len);
        } else {
            n = eb_sig_hex_decode(dec[i], sizeof(dec[i]), sigs[i].data,
                                  sigs[i].len);
        }

        if (n < 0 || (size_t) n != want) {
            eb_sig_err(err, errlen, "header %s: a signature is not %zu bytes "
                       "of %s", s->header, want,
                       (s->enc == EB_SIG_BASE64 || sigs[i].ed25519)
                       ? "base64" : "hex");
            return EB_SIG_MALFORMED_HEADER;
        }

        dec_len[i] = (size_t) n;
    }

    match = 0;
    msg = NULL;
    msg_len = 0;

    for (j = 0; j < s->nkeys && !match; j++) {

        if (s->keys[j].type == EB_SIG_KEY_HMAC) {
            if (eb_sig_hmac(s, &s->keys[j], in, ts, ts_len, mac, &mac_len)
                != 0)
            {
                free(msg);
                return EB_SIG_ERROR;
            }

            for (i = 0; i < nsigs; i++) {
                if (!sigs[i].ed25519 && dec_len[i] == mac_len
                    && CRYPTO_memcmp(dec[i], mac, mac_len) == 0)
                {
                    match = 1;
                }
            }

            continue;
        }

        for (i = 0; i < nsigs && !match; i++) {
            if (!sigs[i].ed25519) {
                continue;
            }

            if (msg == NULL) {
                msg = eb_sig_message(s, in, ts, ts_len, &msg_len);
                if (msg == NULL) {
                    return EB_SIG_ERROR;
                }
            }

            rc = eb_sig_ed25519(s->keys[j].pkey, dec[i], msg, msg_len);
            if (rc < 0) {
                free(msg);
                return EB_SIG_ERROR;
            }

            match = rc;
        }
    }

    free(msg);

    if (match) {
        return EB_SIG_OK;
    }

    eb_sig_err(err, errlen, "no signature in header %s matches", s->header);
    return EB_SIG_MISMATCH;
}
