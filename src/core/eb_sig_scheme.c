/*
 * Webhook signatures, configuration: the presets, the options of the
 * generic scheme, keys made into OpenSSL objects once (see eb_signature.h).
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include "eb_sig_int.h"


typedef struct {
    const char  *name;
    const char  *header;
    const char  *ts_header;
    const char  *id_header;
    const char  *prefix;
    const char  *signed_str;
    int          format;
    int          alg;
    int          enc;
    int          ts_ms;
    int64_t      tolerance;
} eb_sig_preset_t;


static const eb_sig_preset_t  eb_sig_presets[] = {
    { "github", "x-hub-signature-256", "", "", "sha256=", "$body",
      EB_SIG_FMT_LIST, EB_SIG_SHA256, EB_SIG_HEX, 0, -1 },
    { "gitlab", "x-gitlab-token", "", "", "", "",
      EB_SIG_FMT_TOKEN, EB_SIG_SHA256, EB_SIG_HEX, 0, -1 },
    { "stripe", "stripe-signature", "", "", "", "$timestamp.$body",
      EB_SIG_FMT_STRIPE, EB_SIG_SHA256, EB_SIG_HEX, 0,
      EB_SIG_DEFAULT_TOLERANCE },
    { "shopify", "x-shopify-hmac-sha256", "", "", "", "$body",
      EB_SIG_FMT_LIST, EB_SIG_SHA256, EB_SIG_BASE64, 0, -1 },
    { "slack", "x-slack-signature", "x-slack-request-timestamp", "", "v0=",
      "v0:$timestamp:$body",
      EB_SIG_FMT_LIST, EB_SIG_SHA256, EB_SIG_HEX, 0,
      EB_SIG_DEFAULT_TOLERANCE },
    { "standard", "webhook-signature", "webhook-timestamp", "webhook-id", "",
      "$id.$timestamp.$body",
      EB_SIG_FMT_STANDARD, EB_SIG_SHA256, EB_SIG_BASE64, 0,
      EB_SIG_DEFAULT_TOLERANCE },
    /* DingTalk signs the timestamp and the secret, not the body */
    { "dingtalk", "sign", "timestamp", "", "", "$timestamp\n$secret",
      EB_SIG_FMT_LIST, EB_SIG_SHA256, EB_SIG_BASE64, 1, 3600 },
    { "hmac", "", "", "", "", "$body",
      EB_SIG_FMT_LIST, EB_SIG_SHA256, EB_SIG_HEX, 0,
      EB_SIG_DEFAULT_TOLERANCE },
    { NULL, NULL, NULL, NULL, NULL, NULL, 0, 0, 0, 0, 0 }
};


static const char  *eb_sig_reasons[EB_SIG_RC_MAX] = {
    "ok",
    "missing_header",
    "malformed_header",
    "timestamp_too_old",
    "timestamp_in_future",
    "bad_signature",
    "error"
};


static const char  *eb_sig_digests[] = { "SHA1", "SHA256", "SHA512" };
const size_t  eb_sig_mac_lens[] = { 20, 32, 64 };




const char *
eb_sig_reason(eb_sig_rc_t rc)
{
    return (unsigned) rc < EB_SIG_RC_MAX ? eb_sig_reasons[rc] : "error";
}


long
eb_sig_base64_decode(unsigned char *dst, size_t dstlen,
    const unsigned char *src, size_t len)
{
    int     n;
    size_t  i, pad;

    if (len == 0 || len % 4 || len / 4 * 3 > dstlen || len > 0x7fffffff) {
        return -1;
    }

    /* EVP_DecodeBlock skips blanks and counts padding as zero bytes:
     * only the alphabet is accepted here, the padding is subtracted */
    pad = 0;

    for (i = 0; i < len; i++) {
        if (src[i] == '=') {
            if (i < len - 2) {
                return -1;
            }
            pad++;

        } else if (pad || src[i] <= ' ') {
            return -1;
        }
    }

    n = EVP_DecodeBlock(dst, src, (int) len);
    if (n < 0 || (size_t) n < pad) {
        return -1;
    }

    return (long) ((size_t) n - pad);
}


long
eb_sig_hex_decode(unsigned char *dst, size_t dstlen,
    const unsigned char *src, size_t len)
{
    char    text[2 * EB_SIG_MAC_MAX + 1];
    size_t  n;

    if (len == 0 || len % 2 || len / 2 > dstlen || len >= sizeof(text)) {
        return -1;
    }

    /* OpenSSL reads a C string */
    memcpy(text, src, len);
    text[len] = '\0';

    if (OPENSSL_hexstr2buf_ex(dst, dstlen, &n, text, '\0') != 1) {
        return -1;
    }

    return (long) n;
}


/* a header name: an HTTP token, stored lower-case */
static int
eb_sig_set_name(char *dst, const char *src, size_t len)
{
    size_t         i;
    unsigned char  c;

    if (len == 0 || len > EB_SIG_NAME_MAX) {
        return -1;
    }

    for (i = 0; i < len; i++) {
        c = (unsigned char) src[i];

        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
              || (c >= '0' && c <= '9') || c == '-' || c == '_'))
        {
            return -1;
        }
    }

    for (i = 0; i < len; i++) {
        c = (unsigned char) src[i];
        dst[i] = (char) ((c >= 'A' && c <= 'Z') ? (c | 0x20) : c);
    }

    dst[len] = '\0';

    return 0;
}


static int
eb_sig_set_signed(eb_sig_scheme_t *s, const char *p, size_t len,
    char *err, size_t errlen)
{
    size_t          i, n, v;
    eb_sig_part_t  *part;

    static const struct {
        const char          *name;
        size_t               len;
        eb_sig_part_type_t   type;
    } vars[] = {
        { "body", 4, EB_SIG_PART_BODY },
        { "timestamp", 9, EB_SIG_PART_TIMESTAMP },
        { "id", 2, EB_SIG_PART_ID },
        { "secret", 6, EB_SIG_PART_SECRET },
    };

    s->nparts = 0;
    s->literals_len = 0;

    if (len == 0) {
        eb_sig_err(err, errlen, "empty \"signed=\"");
        return -1;
    }

    i = 0;

    while (i < len) {
        if (s->nparts == EB_SIG_MAX_PARTS) {
            eb_sig_err(err, errlen, "\"signed=\" has more than %d parts",
                       EB_SIG_MAX_PARTS);
            return -1;
        }

        part = &s->parts[s->nparts];

        if (p[i] == '$' && i + 1 < len && p[i + 1] != '$') {
            for (n = i + 1; n < len && ((p[n] >= 'a' && p[n] <= 'z')
                                        || p[n] == '_'); n++)
            {
                /* void */
            }

            n -= i + 1;
            part->type = EB_SIG_PART_LITERAL;

            for (v = 0; v < sizeof(vars) / sizeof(vars[0]); v++) {
                if (vars[v].len == n && memcmp(vars[v].name, p + i + 1, n) == 0)
                {
                    part->type = vars[v].type;
                    break;
                }
            }

            if (part->type == EB_SIG_PART_LITERAL) {
                eb_sig_err(err, errlen, "unknown variable \"$%.*s\" in "
                           "\"signed=\": use $body, $timestamp, $id, $secret "
                           "or $$ for a dollar", (int) n, p + i + 1);
                return -1;
            }

            part->off = 0;
            part->len = 0;
            s->nparts++;
            i += n + 1;
            continue;
        }

        /* literal text up to the next variable; "$$" is one dollar */
        part->type = EB_SIG_PART_LITERAL;
        part->off = s->literals_len;
        part->len = 0;

        while (i < len && !(p[i] == '$' && i + 1 < len && p[i + 1] != '$')) {
            if (s->literals_len == EB_SIG_LITERAL_MAX) {
                eb_sig_err(err, errlen, "\"signed=\" has more than %d "
                           "literal bytes", EB_SIG_LITERAL_MAX);
                return -1;
            }

            s->literals[s->literals_len++] = p[i];
            part->len++;
            i += (p[i] == '$') ? 2 : 1;
        }

        s->nparts++;
    }

    return 0;
}


/* "5m", "300", "1h30m", "90s": seconds, or -1 */
static int64_t
eb_sig_parse_time(const char *p, size_t len)
{
    size_t   i;
    int64_t  total, n, mul;
    int      digits;

    total = 0;
    i = 0;

    if (len == 0) {
        return -1;
    }

    while (i < len) {
        n = 0;
        digits = 0;

        while (i < len && p[i] >= '0' && p[i] <= '9') {
            n = n * 10 + (p[i++] - '0');
            if (++digits > 9) {
                return -1;
            }
        }

        if (digits == 0) {
            return -1;
        }

        mul = 1;

        if (i < len) {
            switch (p[i++]) {
            case 's': mul = 1; break;
            case 'm': mul = 60; break;
            case 'h': mul = 3600; break;
            case 'd': mul = 86400; break;
            default: return -1;
            }
        }

        total += n * mul;

        if (total > EB_SIG_TOLERANCE_MAX) {
            return -1;
        }
    }

    return total;
}


int
eb_sig_preset(eb_sig_scheme_t *s, const char *name, size_t len)
{
    char                   err[8];
    const eb_sig_preset_t  *p;

    for (p = eb_sig_presets; p->name; p++) {
        if (strlen(p->name) == len && memcmp(p->name, name, len) == 0) {
            break;
        }
    }

    if (p->name == NULL) {
        return -1;
    }

    memset(s, 0, sizeof(eb_sig_scheme_t));

    s->preset = p->name;
    s->format = p->format;
    s->alg = p->alg;
    s->enc = p->enc;
    s->ts_ms = p->ts_ms;
    s->tolerance = p->tolerance;
    s->standard_keys = (p->format == EB_SIG_FMT_STANDARD);

    if (p->header[0]) {
        (void) eb_sig_set_name(s->header, p->header, strlen(p->header));
    }

    if (p->ts_header[0]) {
        (void) eb_sig_set_name(s->ts_header, p->ts_header,
                               strlen(p->ts_header));
    }

    if (p->id_header[0]) {
        (void) eb_sig_set_name(s->id_header, p->id_header,
                               strlen(p->id_header));
    }

    s->prefix_len = strlen(p->prefix);
    memcpy(s->prefix, p->prefix, s->prefix_len + 1);

    if (p->signed_str[0]) {
        (void) eb_sig_set_signed(s, p->signed_str, strlen(p->signed_str),
                                 err, sizeof(err));
    }

    return 0;
}


int
eb_sig_option(eb_sig_scheme_t *s, const char *arg, size_t len,
    char *err, size_t errlen)
{
    size_t       i, n, vlen;
    int64_t      t;
    const char  *v;

    v = memchr(arg, '=', len);
    if (v == NULL) {
        return 1;
    }

    n = (size_t) (v - arg);
    v++;
    vlen = len - n - 1;

#define eb_sig_is(name)                                                       \
    (n == sizeof(name) - 1 && memcmp(arg, name, n) == 0)
#define eb_sig_val(name)                                                      \
    (vlen == sizeof(name) - 1 && memcmp(v, name, vlen) == 0)

    if (eb_sig_is("header")) {
        if (eb_sig_set_name(s->header, v, vlen) != 0) {
            goto bad_name;
        }
        return 0;
    }

    if (eb_sig_is("timestamp")) {
        if (eb_sig_set_name(s->ts_header, v, vlen) != 0) {
            goto bad_name;
        }
        return 0;
    }

    if (eb_sig_is("id")) {
        if (eb_sig_set_name(s->id_header, v, vlen) != 0) {
            goto bad_name;
        }
        return 0;
    }

    if (eb_sig_is("algorithm")) {
        if (eb_sig_val("sha1")) {
            s->alg = EB_SIG_SHA1;
        } else if (eb_sig_val("sha256")) {
            s->alg = EB_SIG_SHA256;
        } else if (eb_sig_val("sha512")) {
            s->alg = EB_SIG_SHA512;
        } else {
            eb_sig_err(err, errlen, "invalid \"algorithm=%.*s\": use sha1, "
                       "sha256 or sha512", (int) vlen, v);
            return -1;
        }
        return 0;
    }

    if (eb_sig_is("encoding")) {
        if (eb_sig_val("hex")) {
            s->enc = EB_SIG_HEX;
        } else if (eb_sig_val("base64")) {
            s->enc = EB_SIG_BASE64;
        } else {
            eb_sig_err(err, errlen, "invalid \"encoding=%.*s\": use hex or "
                       "base64", (int) vlen, v);
            return -1;
        }
        return 0;
    }

    if (eb_sig_is("timestamp_unit")) {
        if (eb_sig_val("s")) {
            s->ts_ms = 0;
        } else if (eb_sig_val("ms")) {
            s->ts_ms = 1;
        } else {
            eb_sig_err(err, errlen, "invalid \"timestamp_unit=%.*s\": use s "
                       "or ms", (int) vlen, v);
            return -1;
        }
        return 0;
    }

    if (eb_sig_is("prefix")) {
        if (vlen > EB_SIG_PREFIX_MAX) {
            eb_sig_err(err, errlen, "\"prefix=\" longer than %d bytes",
                       EB_SIG_PREFIX_MAX);
            return -1;
        }

        for (i = 0; i < vlen; i++) {
            if ((unsigned char) v[i] <= ' ' || v[i] == ',' || v[i] == 0x7f) {
                eb_sig_err(err, errlen, "invalid \"prefix=%.*s\": no blanks, "
                           "commas or control characters", (int) vlen, v);
                return -1;
            }
        }

        memcpy(s->prefix, v, vlen);
        s->prefix[vlen] = '\0';
        s->prefix_len = vlen;
        return 0;
    }

    if (eb_sig_is("signed")) {
        return eb_sig_set_signed(s, v, vlen, err, errlen);
    }

    if (eb_sig_is("tolerance")) {
        if (eb_sig_val("off")) {
            s->tolerance = -1;
            return 0;
        }

        t = eb_sig_parse_time(v, vlen);

        if (t <= 0) {
            eb_sig_err(err, errlen, "invalid \"tolerance=%.*s\": use a time "
                       "from 1s to 366d (\"90s\", \"5m\", \"1h\") or \"off\"",
                       (int) vlen, v);
            return -1;
        }

        s->tolerance = t;
        return 0;
    }

#undef eb_sig_is
#undef eb_sig_val

    return 1;

bad_name:

    eb_sig_err(err, errlen, "invalid header name in \"%.*s\": use 1 to %d "
               "letters, digits, \"-\" or \"_\"", (int) (n + 1 + vlen > 100
                                                         ? 100 : n + 1 + vlen),
               arg, EB_SIG_NAME_MAX);
    return -1;
}


int
eb_sig_add_key(eb_sig_scheme_t *s, const unsigned char *key, size_t len,
    char *err, size_t errlen)
{
    long           n;
    unsigned char  *buf;
    eb_sig_key_t   *k;

    if (s->nkeys == EB_SIG_MAX_KEYS) {
        eb_sig_err(err, errlen, "more than %d keys", EB_SIG_MAX_KEYS);
        return -1;
    }

    if (len == 0 || len > EB_SIG_KEY_MAX) {
        eb_sig_err(err, errlen, "a key must be 1 to %d bytes",
                   EB_SIG_KEY_MAX);
        return -1;
    }

    k = &s->keys[s->nkeys];
    memset(k, 0, sizeof(eb_sig_key_t));

    buf = malloc(len);
    if (buf == NULL) {
        eb_sig_err(err, errlen, "out of memory");
        return -1;
    }

    if (s->standard_keys && len > 5 && memcmp(key, "whpk_", 5) == 0) {
        n = eb_sig_base64_decode(buf, len, key + 5, len - 5);

        if (n != EB_SIG_ED25519_KEY) {
            free(buf);
            eb_sig_err(err, errlen, "a \"whpk_\" key must be the base64 of "
                       "a 32-byte Ed25519 public key");
            return -1;
        }

        k->type = EB_SIG_KEY_ED25519;
        k->pkey = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, buf,
                                              EB_SIG_ED25519_KEY);
        OPENSSL_cleanse(buf, len);
        free(buf);

        if (k->pkey == NULL) {
            eb_sig_err(err, errlen, "OpenSSL refused the Ed25519 key");
            return -1;
        }

        s->nkeys++;
        return 0;
    }

    if (s->standard_keys) {
        if (len > 6 && memcmp(key, "whsec_", 6) == 0) {
            key += 6;
            len -= 6;
        }

        n = eb_sig_base64_decode(buf, len, key, len);

        if (n <= 0) {
            OPENSSL_cleanse(buf, len);
            free(buf);
            eb_sig_err(err, errlen, "a Standard Webhooks secret must be "
                       "\"whsec_\" and base64 (or \"whpk_\" and base64 for "
                       "v1a)");
            return -1;
        }

        len = (size_t) n;

    } else {
        memcpy(buf, key, len);
    }

    k->type = EB_SIG_KEY_HMAC;
    k->secret = buf;
    k->secret_len = len;
    s->nkeys++;

    return 0;
}


int
eb_sig_finish(eb_sig_scheme_t *s, char *err, size_t errlen)
{
    size_t         i;
    int            has_ts, has_id, has_body;
    OSSL_PARAM     params[2];
    eb_sig_key_t  *k;

    if (s->header[0] == '\0') {
        eb_sig_err(err, errlen, "\"%s\" needs \"header=NAME\"", s->preset);
        return -1;
    }

    if (s->nkeys == 0) {
        eb_sig_err(err, errlen, "needs at least one \"key=file:PATH\" or "
                   "\"key=env:NAME\"");
        return -1;
    }

    if (s->format == EB_SIG_FMT_TOKEN) {
        return 0;
    }

    has_ts = has_id = has_body = 0;

    for (i = 0; i < s->nparts; i++) {
        has_ts |= (s->parts[i].type == EB_SIG_PART_TIMESTAMP);
        has_id |= (s->parts[i].type == EB_SIG_PART_ID);
        has_body |= (s->parts[i].type == EB_SIG_PART_BODY);
    }

    if (has_ts && s->ts_header[0] == '\0' && s->format != EB_SIG_FMT_STRIPE) {
        eb_sig_err(err, errlen, "\"signed=\" uses $timestamp: name its "
                   "header with \"timestamp=NAME\"");
        return -1;
    }

    if (!has_ts && (s->ts_header[0] || s->format == EB_SIG_FMT_STRIPE)) {
        eb_sig_err(err, errlen, "the timestamp is not signed: add $timestamp "
                   "to \"signed=\"");
        return -1;
    }

    if (has_id && s->id_header[0] == '\0') {
        eb_sig_err(err, errlen, "\"signed=\" uses $id: name its header with "
                   "\"id=NAME\"");
        return -1;
    }

    if (!has_id && s->id_header[0]) {
        eb_sig_err(err, errlen, "the id header is not signed: add $id to "
                   "\"signed=\"");
        return -1;
    }

    if (!has_body && strcmp(s->preset, "hmac") == 0) {
        eb_sig_err(err, errlen, "\"signed=\" must contain $body");
        return -1;
    }

    s->evp_mac = EVP_MAC_fetch(NULL, OSSL_MAC_NAME_HMAC, NULL);
    if (s->evp_mac == NULL) {
        eb_sig_err(err, errlen, "OpenSSL has no HMAC");
        return -1;
    }

    params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST,
                                      (char *) eb_sig_digests[s->alg], 0);
    params[1] = OSSL_PARAM_construct_end();

    for (i = 0; i < s->nkeys; i++) {
        k = &s->keys[i];

        if (k->type != EB_SIG_KEY_HMAC) {
            continue;
        }

        k->mac = EVP_MAC_CTX_new(s->evp_mac);

        if (k->mac == NULL
            || !EVP_MAC_init(k->mac, k->secret, k->secret_len, params))
        {
            eb_sig_err(err, errlen, "OpenSSL could not set up HMAC-%s",
                       eb_sig_digests[s->alg]);
            return -1;
        }
    }

    return 0;
}


void
eb_sig_free(eb_sig_scheme_t *s)
{
    size_t         i;
    eb_sig_key_t  *k;

    for (i = 0; i < s->nkeys; i++) {
        k = &s->keys[i];

        if (k->secret) {
            OPENSSL_cleanse(k->secret, k->secret_len);
            free(k->secret);
        }

        EVP_MAC_CTX_free(k->mac);
        EVP_PKEY_free(k->pkey);
    }

    s->nkeys = 0;

    EVP_MAC_free(s->evp_mac);
    s->evp_mac = NULL;
}
