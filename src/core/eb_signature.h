/*
 * Webhook signatures, verified on the raw body before an event is stored.
 *
 * One scheme descriptor covers every sender: where the signatures are
 * (a header, in one of four formats), how each is encoded, what string
 * was signed (literal text, the body, a timestamp, a delivery id, the
 * secret itself), and how old a timestamp may be. The presets (GitHub,
 * GitLab, Stripe, Shopify, Slack, Standard Webhooks, DingTalk) only fill
 * the descriptor; the generic "hmac" scheme fills it from options.
 *
 * A scheme is built at configuration time (eb_sig_preset, eb_sig_option,
 * eb_sig_add_key, eb_sig_finish) and read-only afterwards; keys become
 * OpenSSL objects once (an HMAC context holding the key schedule, an
 * Ed25519 public key). eb_sig_verify allocates only for Ed25519 (the
 * signed message in one piece) and never blocks.
 *
 * Crypto is OpenSSL's: EVP_MAC (HMAC), EVP_DigestVerify (Ed25519),
 * EVP_DecodeBlock (base64), EVP_Digest + CRYPTO_memcmp (compares).
 */

#ifndef EB_SIGNATURE_H
#define EB_SIGNATURE_H

#include <stddef.h>
#include <stdint.h>


/* limits on what a request may send (bytes); longer is malformed */
#define EB_SIG_HEADER_MAX      4096   /* the signature header */
#define EB_SIG_TIMESTAMP_MAX   32     /* the timestamp (header or t=) */
#define EB_SIG_ID_MAX          256    /* the delivery id header */
#define EB_SIG_MAX_SIGNATURES  16     /* signatures in one header */

/* limits on the configuration */
#define EB_SIG_NAME_MAX        64     /* a header name */
#define EB_SIG_PREFIX_MAX      32
#define EB_SIG_MAX_PARTS       8      /* of signed= */
#define EB_SIG_LITERAL_MAX     64     /* literal bytes of signed=, in all */
#define EB_SIG_MAX_KEYS        8
#define EB_SIG_KEY_MAX         4096   /* a key as configured */

#define EB_SIG_DEFAULT_TOLERANCE  300 /* seconds, both ways */


typedef enum {
    EB_SIG_FMT_LIST = 0,    /* PREFIX+SIG[,PREFIX+SIG...] (comma/space) */
    EB_SIG_FMT_TOKEN,       /* the header is the secret itself */
    EB_SIG_FMT_STRIPE,      /* t=TS,v1=SIG[,v1=SIG...] */
    EB_SIG_FMT_STANDARD     /* v1,SIG [v1,SIG ...] [v1a,SIG] */
} eb_sig_format_t;

typedef enum {
    EB_SIG_SHA1 = 0,
    EB_SIG_SHA256,
    EB_SIG_SHA512
} eb_sig_alg_t;

typedef enum {
    EB_SIG_HEX = 0,
    EB_SIG_BASE64
} eb_sig_enc_t;

typedef enum {
    EB_SIG_PART_LITERAL = 0,
    EB_SIG_PART_BODY,
    EB_SIG_PART_TIMESTAMP,
    EB_SIG_PART_ID,
    EB_SIG_PART_SECRET
} eb_sig_part_type_t;

typedef struct {
    eb_sig_part_type_t   type;
    size_t               off;       /* literal: in literals[] */
    size_t               len;
} eb_sig_part_t;

typedef enum {
    EB_SIG_KEY_HMAC = 0,
    EB_SIG_KEY_ED25519
} eb_sig_key_type_t;

typedef struct {
    eb_sig_key_type_t    type;
    unsigned char       *secret;    /* HMAC: the key bytes (decoded) */
    size_t               secret_len;
    void                *mac;       /* EVP_MAC_CTX initialised with it */
    void                *pkey;      /* Ed25519: EVP_PKEY */
} eb_sig_key_t;

typedef struct {
    const char          *preset;    /* "github", ..., "hmac" */
    eb_sig_format_t      format;
    eb_sig_alg_t         alg;
    eb_sig_enc_t         enc;

    /* header names, lower-case, NUL-terminated; "" when not used */
    char                 header[EB_SIG_NAME_MAX + 1];
    char                 ts_header[EB_SIG_NAME_MAX + 1];
    char                 id_header[EB_SIG_NAME_MAX + 1];

    char                 prefix[EB_SIG_PREFIX_MAX + 1];
    size_t               prefix_len;

    eb_sig_part_t        parts[EB_SIG_MAX_PARTS];
    size_t               nparts;
    char                 literals[EB_SIG_LITERAL_MAX];
    size_t               literals_len;

    unsigned             ts_ms:1;         /* timestamps in milliseconds */
    unsigned             standard_keys:1; /* whsec_ / whpk_ keys */
    int64_t              tolerance;       /* seconds; -1: not checked */

    eb_sig_key_t         keys[EB_SIG_MAX_KEYS];
    size_t               nkeys;
    void                *evp_mac;        /* EVP_MAC "HMAC", fetched once */
} eb_sig_scheme_t;


/* What a request brings; a NULL data means the header is absent. */
typedef struct {
    const unsigned char *sig;
    size_t               sig_len;
    const unsigned char *ts;
    size_t               ts_len;
    const unsigned char *id;
    size_t               id_len;
    const unsigned char *body;
    size_t               body_len;
    int64_t              now_ms;          /* the clock, Unix ms */
} eb_sig_input_t;


typedef enum {
    EB_SIG_OK = 0,
    EB_SIG_MISSING_HEADER,      /* a header the scheme needs is absent */
    EB_SIG_MALFORMED_HEADER,    /* present but not in the scheme's form */
    EB_SIG_TIMESTAMP_OLD,       /* older than the tolerance */
    EB_SIG_TIMESTAMP_FUTURE,    /* further ahead than the tolerance */
    EB_SIG_MISMATCH,            /* well-formed, no signature matches */
    EB_SIG_ERROR,               /* out of memory, OpenSSL failed */
    EB_SIG_RC_MAX
} eb_sig_rc_t;


/* Starts a scheme from a preset name ("github", "gitlab", "stripe",
 * "shopify", "slack", "standard", "dingtalk") or "hmac". 0, or -1 for
 * an unknown name. */
int eb_sig_preset(eb_sig_scheme_t *s, const char *name, size_t len);

/* Applies one NAME=VALUE option (header=, algorithm=, encoding=,
 * prefix=, signed=, timestamp=, timestamp_unit=, id=, tolerance=).
 * 0 applied; 1 not one of these (key= is the caller's); -1 invalid,
 * with the reason in err. */
int eb_sig_option(eb_sig_scheme_t *s, const char *arg, size_t len,
    char *err, size_t errlen);

/* Adds a key as configured (Standard Webhooks: "whsec_BASE64" or plain
 * base64 for v1, "whpk_BASE64" of a raw Ed25519 public key for v1a).
 * 0, or -1 with err (which never quotes the key). */
int eb_sig_add_key(eb_sig_scheme_t *s, const unsigned char *key, size_t len,
    char *err, size_t errlen);

/* Checks the scheme is complete and coherent. 0, or -1 with err. */
int eb_sig_finish(eb_sig_scheme_t *s, char *err, size_t errlen);

/* Frees the keys' OpenSSL objects and copies. */
void eb_sig_free(eb_sig_scheme_t *s);

/* Verifies a request. err (may be NULL) gets a message for the sender
 * naming the check that failed; it never holds secret material. */
eb_sig_rc_t eb_sig_verify(const eb_sig_scheme_t *s, const eb_sig_input_t *in,
    char *err, size_t errlen);

/* The metrics label of a result: "missing_header", ... */
const char *eb_sig_reason(eb_sig_rc_t rc);

/* Decodes standard base64 (with padding). Returns the length, or -1. */
long eb_sig_base64_decode(unsigned char *dst, size_t dstlen,
    const unsigned char *src, size_t len);

#endif /* EB_SIGNATURE_H */
