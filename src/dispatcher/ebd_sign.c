/*
 * Outbound signing of http and cloudevents requests (see ebd_sign.h):
 * the secrets read and keyed once, the signature headers per request.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/bio.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/pem.h>

#include "eb_signature.h"
#include "ebd_secret.h"
#include "ebd_sign.h"


#define EBD_SIGN_MAC_MAX       64        /* SHA-512 */
#define EBD_SIGN_ED25519_SIG   64
#define EBD_SIGN_ED25519_SEED  32
#define EBD_SIGN_WHSEC_MIN     24        /* Standard Webhooks: 192 bits */
#define EBD_SIGN_WHSEC_MAX     64        /* to 512 */


typedef struct {
    EVP_MAC_CTX         *mac;            /* keyed: HMAC */
    EVP_PKEY            *pkey;           /* or an Ed25519 private key */
} ebd_sign_key_t;


struct ebd_sign_s {
    unsigned             standard:1;     /* Standard Webhooks; else hmac */
    eb_sig_alg_t         alg;            /* hmac */
    eb_sig_enc_t         enc;
    char                *header;         /* hmac: the signature's header */
    char                *ts_header;      /* hmac: NULL, or the timestamp's */
    char                *prefix;         /* hmac: "" or "sha256=" ... */
    EVP_MAC             *evp_mac;
    ebd_sign_key_t       keys[EB_CONFIG_SIGNING_KEYS_MAX];
    size_t               nkeys;
};


/* where secrets come from, in the order they are read */
typedef enum {
    EBD_SIGN_INLINE = 0,
    EBD_SIGN_ENV,
    EBD_SIGN_FILE
} ebd_sign_source_t;


static const char  *ebd_sign_digests[] = { "SHA1", "SHA256", "SHA512" };

static const char  *ebd_sign_sources[] = {
    "secret", "secret_env", "secret_file"
};


/* a PEM key is never encrypted here: no prompt on a terminal */
static int
ebd_sign_no_passphrase(char *buf, int size, int rwflag, void *u)
{
    return -1;
}


static int
ebd_sign_hmac_key(ebd_sign_t *s, const unsigned char *key, size_t len,
    char *err, size_t errlen)
{
    OSSL_PARAM       params[2];
    ebd_sign_key_t  *k = &s->keys[s->nkeys];

    params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST,
                    (char *) ebd_sign_digests[s->standard ? EB_SIG_SHA256
                                                          : s->alg], 0);
    params[1] = OSSL_PARAM_construct_end();

    k->mac = EVP_MAC_CTX_new(s->evp_mac);

    if (k->mac == NULL || !EVP_MAC_init(k->mac, key, len, params)) {
        EVP_MAC_CTX_free(k->mac);
        k->mac = NULL;
        snprintf(err, errlen, "OpenSSL could not set up HMAC");
        return -1;
    }

    s->nkeys++;
    return 0;
}


/* whsk_: the base64 of a 32-byte Ed25519 seed, or of the seed and its
 * public key (64 bytes, libsodium's form: the public half is checked) */
static EVP_PKEY *
ebd_sign_whsk(const unsigned char *p, size_t len, char *err, size_t errlen)
{
    long            n;
    size_t          publen;
    EVP_PKEY       *pkey;
    unsigned char   raw[96], pub[EBD_SIGN_ED25519_SEED];

    n = eb_sig_base64_decode(raw, sizeof(raw), p, len);

    if (n != EBD_SIGN_ED25519_SEED && n != 2 * EBD_SIGN_ED25519_SEED) {
        OPENSSL_cleanse(raw, sizeof(raw));
        snprintf(err, errlen, "a \"whsk_\" key must be the base64 of a "
                 "32-byte Ed25519 seed (or of the seed and its public key, "
                 "64 bytes)");
        return NULL;
    }

    pkey = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, raw,
                                        EBD_SIGN_ED25519_SEED);
    publen = sizeof(pub);

    if (pkey != NULL && n == 2 * EBD_SIGN_ED25519_SEED
        && (EVP_PKEY_get_raw_public_key(pkey, pub, &publen) != 1
            || CRYPTO_memcmp(pub, raw + EBD_SIGN_ED25519_SEED, publen) != 0))
    {
        EVP_PKEY_free(pkey);
        OPENSSL_cleanse(raw, sizeof(raw));
        snprintf(err, errlen, "the \"whsk_\" key's second half is not the "
                 "public key of its first");
        return NULL;
    }

    OPENSSL_cleanse(raw, sizeof(raw));

    if (pkey == NULL) {
        snprintf(err, errlen, "OpenSSL refused the Ed25519 key");
    }

    return pkey;
}


static EVP_PKEY *
ebd_sign_pem(const char *text, size_t len, char *err, size_t errlen)
{
    BIO       *bio;
    EVP_PKEY  *pkey;

    bio = BIO_new_mem_buf(text, (int) len);
    pkey = bio ? PEM_read_bio_PrivateKey(bio, NULL, ebd_sign_no_passphrase,
                                         NULL)
               : NULL;
    BIO_free(bio);

    if (pkey == NULL) {
        snprintf(err, errlen, "not a PEM private key (an unencrypted "
                 "\"BEGIN PRIVATE KEY\")");
        return NULL;
    }

    if (!EVP_PKEY_is_a(pkey, "ED25519")) {
        EVP_PKEY_free(pkey);
        snprintf(err, errlen, "the PEM key is not an Ed25519 key");
        return NULL;
    }

    return pkey;
}


/* One secret as text: a key of the scheme. */
static int
ebd_sign_add(ebd_sign_t *s, const char *text, size_t len, char *err,
    size_t errlen)
{
    long            n;
    int             rc;
    EVP_PKEY       *pkey;
    unsigned char  *buf;

    if (len == 0) {
        snprintf(err, errlen, "the secret is empty");
        return -1;
    }

    if (!s->standard) {
        /* the generic scheme keys HMAC with the bytes as they are */
        return ebd_sign_hmac_key(s, (const unsigned char *) text, len, err,
                                 errlen);
    }

    pkey = NULL;

    if (len > 10 && memcmp(text, "-----BEGIN", 10) == 0) {
        pkey = ebd_sign_pem(text, len, err, errlen);
        if (pkey == NULL) {
            return -1;
        }

    } else if (len > 5 && memcmp(text, "whsk_", 5) == 0) {
        pkey = ebd_sign_whsk((const unsigned char *) text + 5, len - 5, err,
                             errlen);
        if (pkey == NULL) {
            return -1;
        }

    } else if (len > 5 && memcmp(text, "whpk_", 5) == 0) {
        snprintf(err, errlen, "a \"whpk_\" key is a public key: signing "
                 "needs the private key (\"whsk_\")");
        return -1;
    }

    if (pkey != NULL) {
        s->keys[s->nkeys++].pkey = pkey;
        return 0;
    }

    /* v1: whsec_ and the base64 of 24 to 64 random bytes */
    if (len > 6 && memcmp(text, "whsec_", 6) == 0) {
        text += 6;
        len -= 6;
    }

    buf = malloc(len);
    if (buf == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }

    n = eb_sig_base64_decode(buf, len, (const unsigned char *) text, len);

    if (n < 0) {
        snprintf(err, errlen, "a Standard Webhooks secret must be "
                 "\"whsec_\" and base64 (v1), \"whsk_\" and base64 or a PEM "
                 "private key (v1a)");
        rc = -1;

    } else if (n < EBD_SIGN_WHSEC_MIN || n > EBD_SIGN_WHSEC_MAX) {
        snprintf(err, errlen, "a \"whsec_\" secret must decode to %d to %d "
                 "bytes, not %ld", EBD_SIGN_WHSEC_MIN, EBD_SIGN_WHSEC_MAX, n);
        rc = -1;

    } else {
        rc = ebd_sign_hmac_key(s, buf, (size_t) n, err, errlen);
    }

    OPENSSL_cleanse(buf, len);
    free(buf);

    return rc;
}


/* The secrets of one field ("secret", "secret_env", "secret_file"): a
 * string or an array of them. err gets "signing.FIELD[i]: ...". */
static int
ebd_sign_field(ebd_sign_t *s, yajl_val spec, ebd_sign_source_t from,
    char *err, size_t errlen)
{
    int          rc;
    char         e[256], where[64];
    char        *file;
    size_t       i, n, len;
    yajl_val     v, item;
    const char  *value, *text;

    v = eb_config_get(spec, ebd_sign_sources[from]);

    if (v == NULL) {
        return 0;
    }

    n = YAJL_IS_ARRAY(v) ? v->u.array.len : 1;

    for (i = 0; i < n; i++) {
        item = YAJL_IS_ARRAY(v) ? v->u.array.values[i] : v;
        value = YAJL_GET_STRING(item);
        file = NULL;
        e[0] = '\0';

        if (YAJL_IS_ARRAY(v)) {
            snprintf(where, sizeof(where), "signing.%s[%zu]",
                     ebd_sign_sources[from], i);
        } else {
            snprintf(where, sizeof(where), "signing.%s",
                     ebd_sign_sources[from]);
        }

        if (value == NULL) {
            snprintf(err, errlen, "%s: not a string", where);
            return -1;
        }

        if (s->nkeys == EB_CONFIG_SIGNING_KEYS_MAX) {
            snprintf(err, errlen, "%s: more than %d secrets", where,
                     EB_CONFIG_SIGNING_KEYS_MAX);
            return -1;
        }

        switch (from) {

        case EBD_SIGN_INLINE:
            text = value;
            len = strlen(text);
            break;

        case EBD_SIGN_ENV:
            text = getenv(value);
            if (text == NULL) {
                snprintf(err, errlen, "%s: the environment variable "
                         "\"%.64s\" is not set", where, value);
                return -1;
            }
            len = strlen(text);
            break;

        default:
            file = ebd_secret_read_file(value, &len, e, sizeof(e));
            if (file == NULL) {
                snprintf(err, errlen, "%s: %s", where, e);
                return -1;
            }
            text = file;
            break;
        }

        rc = ebd_sign_add(s, text, len, e, sizeof(e));

        if (file != NULL) {
            OPENSSL_cleanse(file, len);
            free(file);
        }

        if (rc != 0) {
            /* a variable's or a file's name, never an inline secret */
            if (from == EBD_SIGN_INLINE) {
                snprintf(err, errlen, "%s: %s", where, e);
            } else {
                snprintf(err, errlen, "%s: \"%.200s\": %s", where, value, e);
            }
            return -1;
        }
    }

    return 0;
}


static int
ebd_sign_sets(const ebd_sign_t *s, const char *name)
{
    if (s->standard) {
        return strcasecmp(name, "webhook-id") == 0
               || strcasecmp(name, "webhook-timestamp") == 0
               || strcasecmp(name, "webhook-signature") == 0;
    }

    return strcasecmp(name, s->header) == 0
           || (s->ts_header != NULL && strcasecmp(name, s->ts_header) == 0);
}


int
ebd_sign_open(const eb_config_target_t *t, ebd_sign_t **out, char *err,
    size_t errlen)
{
    size_t             i;
    yajl_val           spec, hdrs;
    ebd_sign_source_t  from;
    const char        *v;
    ebd_sign_t        *s;

    *out = NULL;

    spec = eb_config_get(t->spec, "signing");
    if (spec == NULL) {
        return 0;
    }

    s = calloc(1, sizeof(ebd_sign_t));
    if (s == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }

    /* eb_config.c checked the shape: scheme, and header for hmac */
    v = YAJL_GET_STRING(eb_config_get(spec, "scheme"));
    s->standard = (v == NULL || strcmp(v, "standard") == 0);
    s->alg = EB_SIG_SHA256;
    s->enc = EB_SIG_HEX;

    if (!s->standard) {
        v = YAJL_GET_STRING(eb_config_get(spec, "algorithm"));
        if (v != NULL) {
            s->alg = strcmp(v, "sha1") == 0 ? EB_SIG_SHA1
                     : strcmp(v, "sha512") == 0 ? EB_SIG_SHA512
                     : EB_SIG_SHA256;
        }

        v = YAJL_GET_STRING(eb_config_get(spec, "encoding"));
        if (v != NULL && strcmp(v, "base64") == 0) {
            s->enc = EB_SIG_BASE64;
        }

        v = YAJL_GET_STRING(eb_config_get(spec, "header"));
        s->header = strdup(v ? v : "X-Signature");
        v = YAJL_GET_STRING(eb_config_get(spec, "prefix"));
        s->prefix = strdup(v ? v : "");
        v = YAJL_GET_STRING(eb_config_get(spec, "timestamp_header"));
        s->ts_header = v ? strdup(v) : NULL;

        if (s->header == NULL || s->prefix == NULL
            || (v != NULL && s->ts_header == NULL))
        {
            snprintf(err, errlen, "out of memory");
            goto failed;
        }
    }

    /* a header of "headers" would be sent twice, the signature's and its */
    hdrs = eb_config_get(t->spec, "headers");
    for (i = 0; YAJL_IS_OBJECT(hdrs) && i < hdrs->u.object.len; i++) {
        if (ebd_sign_sets(s, hdrs->u.object.keys[i])) {
            snprintf(err, errlen, "headers: \"%.64s\" is the signature's "
                     "(signing)", hdrs->u.object.keys[i]);
            goto failed;
        }
    }

    s->evp_mac = EVP_MAC_fetch(NULL, OSSL_MAC_NAME_HMAC, NULL);
    if (s->evp_mac == NULL) {
        snprintf(err, errlen, "signing: OpenSSL has no HMAC");
        goto failed;
    }

    for (from = EBD_SIGN_INLINE; from <= EBD_SIGN_FILE; from++) {
        if (ebd_sign_field(s, spec, from, err, errlen) != 0) {
            goto failed;
        }
    }

    *out = s;
    return 0;

failed:

    ebd_sign_free(s);
    return -1;
}


int
ebd_sign_check(const eb_config_t *cf, char *err, size_t errlen)
{
    size_t                     i;
    char                       e[512];
    ebd_sign_t                *s;
    const eb_config_target_t  *t;

    for (i = 0; i < cf->ntargets; i++) {
        t = &cf->targets[i];

        if (t->type != EB_TARGET_HTTP && t->type != EB_TARGET_CLOUDEVENTS) {
            continue;
        }

        e[0] = '\0';

        if (ebd_sign_open(t, &s, e, sizeof(e)) != 0) {
            snprintf(err, errlen, "%s: targets.%s.%s", cf->file, t->name, e);
            return -1;
        }

        ebd_sign_free(s);
    }

    return 0;
}


void
ebd_sign_free(ebd_sign_t *s)
{
    size_t  i;

    if (s == NULL) {
        return;
    }

    for (i = 0; i < s->nkeys; i++) {
        EVP_MAC_CTX_free(s->keys[i].mac);
        EVP_PKEY_free(s->keys[i].pkey);
    }

    EVP_MAC_free(s->evp_mac);
    free(s->header);
    free(s->ts_header);
    free(s->prefix);
    free(s);
}


/* ------------------------------------------------------------------------
 * Requests
 */

static void
ebd_sign_append_enc(eb_buf_t *b, eb_sig_enc_t enc, const unsigned char *p,
    size_t len)
{
    size_t             i;
    unsigned char      out[2 * EBD_SIGN_MAC_MAX + 1];   /* hex or base64 */
    static const char  hex[] = "0123456789abcdef";

    if (enc == EB_SIG_BASE64) {
        eb_buf_append(b, out, (size_t) EVP_EncodeBlock(out, p, (int) len));
        return;
    }

    for (i = 0; i < len; i++) {
        out[2 * i] = hex[p[i] >> 4];
        out[2 * i + 1] = hex[p[i] & 0xf];
    }

    eb_buf_append(b, out, 2 * len);
}


/* HMAC of the parts (NULL-terminated pairs), keyed by k */
static int
ebd_sign_mac(const ebd_sign_key_t *k, const unsigned char *const *parts,
    const size_t *lens, unsigned char *mac, size_t *maclen)
{
    int           ok;
    EVP_MAC_CTX  *ctx;

    ctx = EVP_MAC_CTX_dup(k->mac);
    if (ctx == NULL) {
        return -1;
    }

    for (ok = 1; ok && *parts != NULL; parts++, lens++) {
        ok = *lens == 0 || EVP_MAC_update(ctx, *parts, *lens);
    }

    ok = ok && EVP_MAC_final(ctx, mac, maclen, EBD_SIGN_MAC_MAX);

    EVP_MAC_CTX_free(ctx);

    return ok ? 0 : -1;
}


static int
ebd_sign_ed25519(EVP_PKEY *pkey, const unsigned char *msg, size_t len,
    unsigned char *sig)
{
    int          ok;
    size_t       siglen = EBD_SIGN_ED25519_SIG;
    EVP_MD_CTX  *ctx;

    ctx = EVP_MD_CTX_new();
    if (ctx == NULL) {
        return -1;
    }

    ok = EVP_DigestSignInit(ctx, NULL, NULL, NULL, pkey) == 1
         && EVP_DigestSign(ctx, sig, &siglen, msg, len) == 1
         && siglen == EBD_SIGN_ED25519_SIG;

    EVP_MD_CTX_free(ctx);

    return ok ? 0 : -1;
}


static int
ebd_sign_standard(const ebd_sign_t *s, eb_buf_t *hdr, unsigned *n,
    const char *id, const char *ts, const unsigned char *body, size_t len)
{
    int                   rc = 0;
    size_t                i, maclen, idlen, tslen;
    eb_buf_t              msg;
    unsigned char         sig[EBD_SIGN_MAC_MAX];
    const unsigned char  *parts[6];
    size_t                lens[6];

    idlen = strlen(id);
    tslen = strlen(ts);

    /* "{id}.{ts}.{body}", streamed into each HMAC */
    parts[0] = (const unsigned char *) id;    lens[0] = idlen;
    parts[1] = (const unsigned char *) ".";   lens[1] = 1;
    parts[2] = (const unsigned char *) ts;    lens[2] = tslen;
    parts[3] = (const unsigned char *) ".";   lens[3] = 1;
    parts[4] = body;                          lens[4] = len;
    parts[5] = NULL;                          lens[5] = 0;

    if (len == 0) {
        parts[4] = NULL;
    }

    eb_buf_init(&msg);

    eb_buf_append_str(hdr, "webhook-id: ");
    eb_buf_append_str(hdr, id);
    eb_buf_append(hdr, "", 1);
    eb_buf_append_str(hdr, "webhook-timestamp: ");
    eb_buf_append_str(hdr, ts);
    eb_buf_append(hdr, "", 1);
    eb_buf_append_str(hdr, "webhook-signature:");

    for (i = 0; rc == 0 && i < s->nkeys; i++) {

        if (s->keys[i].mac != NULL) {
            rc = ebd_sign_mac(&s->keys[i], parts, lens, sig, &maclen);
            if (rc == 0) {
                eb_buf_append_str(hdr, " v1,");
                ebd_sign_append_enc(hdr, EB_SIG_BASE64, sig, maclen);
            }
            continue;
        }

        /* Ed25519 signs the message in one piece */
        if (msg.len == 0) {
            eb_buf_append(&msg, id, idlen);
            eb_buf_append(&msg, ".", 1);
            eb_buf_append(&msg, ts, tslen);
            eb_buf_append(&msg, ".", 1);
            eb_buf_append(&msg, body, len);
            if (msg.failed) {
                rc = -1;
                break;
            }
        }

        rc = ebd_sign_ed25519(s->keys[i].pkey, msg.data, msg.len, sig);
        if (rc == 0) {
            eb_buf_append_str(hdr, " v1a,");
            ebd_sign_append_enc(hdr, EB_SIG_BASE64, sig,
                                EBD_SIGN_ED25519_SIG);
        }
    }

    eb_buf_append(hdr, "", 1);
    eb_buf_free(&msg);

    *n += 3;

    return (rc == 0 && !hdr->failed) ? 0 : -1;
}


static int
ebd_sign_hmac(const ebd_sign_t *s, eb_buf_t *hdr, unsigned *n,
    const char *ts, const unsigned char *body, size_t len)
{
    size_t                i, maclen;
    unsigned char         mac[EBD_SIGN_MAC_MAX];
    const unsigned char  *parts[4], **p;
    size_t                lens[4], *l;

    /* "{ts}.{body}" with a timestamp header, else the body */
    p = parts;
    l = lens;

    if (s->ts_header != NULL) {
        *p++ = (const unsigned char *) ts;   *l++ = strlen(ts);
        *p++ = (const unsigned char *) ".";  *l++ = 1;
    }

    *p++ = len ? body : (const unsigned char *) "";  *l++ = len;
    *p = NULL;

    eb_buf_append_str(hdr, s->header);
    eb_buf_append_str(hdr, ": ");

    for (i = 0; i < s->nkeys; i++) {
        if (ebd_sign_mac(&s->keys[i], parts, lens, mac, &maclen) != 0) {
            return -1;
        }

        eb_buf_append_str(hdr, i ? "," : "");
        eb_buf_append_str(hdr, s->prefix);
        ebd_sign_append_enc(hdr, s->enc, mac, maclen);
    }

    eb_buf_append(hdr, "", 1);
    (*n)++;

    if (s->ts_header != NULL) {
        eb_buf_append_str(hdr, s->ts_header);
        eb_buf_append_str(hdr, ": ");
        eb_buf_append_str(hdr, ts);
        eb_buf_append(hdr, "", 1);
        (*n)++;
    }

    return hdr->failed ? -1 : 0;
}


int
ebd_sign_request(const ebd_sign_t *s, eb_buf_t *hdr, unsigned *n,
    const char *id, int64_t now, const unsigned char *body, size_t len)
{
    char  ts[24];

    snprintf(ts, sizeof(ts), "%lld", (long long) now);

    if (s->standard) {
        return ebd_sign_standard(s, hdr, n, id, ts, body, len);
    }

    return ebd_sign_hmac(s, hdr, n, ts, body, len);
}
