/*
 * ebd_sign: the signature headers of one request against known answers
 * (the Standard Webhooks libraries' own test vector; HMAC-SHA256 of
 * "The quick brown fox..."), an Ed25519 key from RFC 8032's first seed
 * checked with its public key, and what the configuration refuses.
 */

#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "tap.h"
#include "eb_config.h"
#include "ebd_sign.h"


static char  err[512];


/* the signer of the only target of a file holding "targets": {T} */
static ebd_sign_t *
signer(const char *target, eb_config_t **cfp)
{
    char           text[2048];
    ebd_sign_t    *s;
    eb_config_t   *cf;

    snprintf(text, sizeof(text), "{\"targets\": {\"t\": %s}, "
             "\"buses\": {\"b\": {\"rules\": {}}}}", target);

    err[0] = '\0';
    cf = eb_config_parse("test.json", (const unsigned char *) text,
                         strlen(text), err, sizeof(err));
    *cfp = cf;

    if (cf == NULL || ebd_sign_open(&cf->targets[0], &s, err, sizeof(err))
                      != 0)
    {
        return NULL;
    }

    return s;
}


/* the header lines one request gets, "\n"-separated */
static const char *
sign(ebd_sign_t *s, const char *id, int64_t now, const char *body,
    unsigned *n)
{
    size_t           i;
    static eb_buf_t  b;

    eb_buf_free(&b);
    eb_buf_init(&b);
    *n = 0;

    if (ebd_sign_request(s, &b, n, id, now, (const unsigned char *) body,
                         strlen(body)) != 0)
    {
        return NULL;
    }

    for (i = 0; i + 1 < b.len; i++) {
        if (b.data[i] == '\0') {
            b.data[i] = '\n';
        }
    }

    return (const char *) b.data;
}


static void
test_standard_v1(void)
{
    unsigned      n;
    ebd_sign_t   *s;
    eb_config_t  *cf;

    s = signer("{\"type\": \"http\", \"url\": \"http://h/\", \"signing\": "
               "{\"scheme\": \"standard\", \"secret\": "
               "\"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\"}}", &cf);
    ok(s != NULL, "standard: a whsec_ secret (%s)", err);
    if (s == NULL) {
        eb_config_free(cf);
        return;
    }

    is_str(sign(s, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330,
                "{\"test\": 2432232314}", &n),
           "webhook-id: msg_p5jXN8AQM9LWM0D4loKWxJek\n"
           "webhook-timestamp: 1614265330\n"
           "webhook-signature: v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
           "standard: the libraries' test vector");
    is_int(n, 3, "standard: three header lines");

    ebd_sign_free(s);
    eb_config_free(cf);
}


static void
test_standard_v1a(void)
{
    int            rc;
    unsigned       n;
    const char    *h, *p;
    EVP_PKEY      *pub;
    EVP_MD_CTX    *ctx;
    ebd_sign_t    *s;
    eb_config_t   *cf;
    unsigned char  sig[80];
    const char    *msg = "id-1.1700000000.{\"a\":1}";

    /* RFC 8032, 7.1, TEST 1: the seed and its public key */
    static const unsigned char  pk[32] = {
        0xd7, 0x5a, 0x98, 0x01, 0x82, 0xb1, 0x0a, 0xb7, 0xd5, 0x4b, 0xfe,
        0xd3, 0xc9, 0x64, 0x07, 0x3a, 0x0e, 0xe1, 0x72, 0xf3, 0xda, 0xa6,
        0x23, 0x25, 0xaf, 0x02, 0x1a, 0x68, 0xf7, 0x07, 0x51, 0x1a
    };

    s = signer("{\"type\": \"cloudevents\", \"url\": \"http://h/\", "
               "\"signing\": {\"scheme\": \"standard\", \"secret\": "
               "\"whsk_nWGxne/9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A=\"}}", &cf);
    ok(s != NULL, "v1a: a whsk_ seed (%s)", err);
    if (s == NULL) {
        eb_config_free(cf);
        return;
    }

    h = sign(s, "id-1", 1700000000, "{\"a\":1}", &n);
    p = h ? strstr(h, "webhook-signature: v1a,") : NULL;
    ok(p != NULL, "v1a: a v1a signature");

    rc = 0;
    if (p != NULL) {
        p += sizeof("webhook-signature: v1a,") - 1;
        pub = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, pk, 32);
        ctx = EVP_MD_CTX_new();
        rc = EVP_DecodeBlock(sig, (const unsigned char *) p, 88) == 66
             && EVP_DigestVerifyInit(ctx, NULL, NULL, NULL, pub) == 1
             && EVP_DigestVerify(ctx, sig, 64, (const unsigned char *) msg,
                                 strlen(msg)) == 1;
        EVP_MD_CTX_free(ctx);
        EVP_PKEY_free(pub);
    }
    ok(rc, "v1a: RFC 8032's public key verifies \"{id}.{ts}.{body}\"");

    ebd_sign_free(s);
    eb_config_free(cf);

    /* the 64-byte form: the seed, then its public key */
    s = signer("{\"type\": \"http\", \"url\": \"http://h/\", \"signing\": "
               "{\"scheme\": \"standard\", \"secret\": \"whsk_nWGxne/9WmC6hEr0"
               "kuwsxERJxWl7MmkZcDusAxyuf2DXWpgBgrEKt9VL/tPJZAc6DuFy89qmIyWv"
               "Ahpo9wdRGg==\"}}", &cf);
    ok(s != NULL, "v1a: seed and public key (%s)", err);
    ebd_sign_free(s);
    eb_config_free(cf);

    s = signer("{\"type\": \"http\", \"url\": \"http://h/\", \"signing\": "
               "{\"scheme\": \"standard\", \"secret\": \"whsk_nWGxne/9WmC6hEr0"
               "kuwsxERJxWl7MmkZcDusAxyuf2DXWpgBgrEKt9VL/tPJZAc6DuFy89qmIyWv"
               "Ahpo9wdRGw==\"}}", &cf);
    ok(s == NULL && strstr(err, "not the public key") != NULL,
       "v1a: a public half that does not match is refused (%s)", err);
    eb_config_free(cf);
}


static void
test_hmac(void)
{
    unsigned      n;
    ebd_sign_t   *s;
    eb_config_t  *cf;

    s = signer("{\"type\": \"http\", \"url\": \"http://h/\", \"signing\": "
               "{\"scheme\": \"hmac\", \"header\": \"X-Hub-Signature-256\", "
               "\"prefix\": \"sha256=\", \"secret\": \"key\"}}", &cf);
    ok(s != NULL, "hmac: sha256, hex (%s)", err);
    if (s != NULL) {
        is_str(sign(s, "id", 1, "The quick brown fox jumps over the lazy dog",
                    &n),
               "X-Hub-Signature-256: sha256=f7bc83f430538424b13298e6aa6fb143"
               "ef4d59a14946175997479dbc2d1a3cd8",
               "hmac: the known HMAC-SHA256, prefixed");
        is_int(n, 1, "hmac: one header line");
    }
    ebd_sign_free(s);
    eb_config_free(cf);

    /* "{ts}.{body}": the same MAC as of that text without a timestamp */
    s = signer("{\"type\": \"http\", \"url\": \"http://h/\", \"signing\": "
               "{\"scheme\": \"hmac\", \"header\": \"X-S\", \"secret\": "
               "[\"k1\", \"k2\"], \"encoding\": \"base64\", \"algorithm\": "
               "\"sha512\", \"timestamp_header\": \"X-T\"}}", &cf);
    ok(s != NULL, "hmac: two secrets, a timestamp (%s)", err);
    if (s != NULL) {
        char         h[512], want[512];
        const char  *p;
        eb_config_t *cf2;
        ebd_sign_t  *s2;

        p = sign(s, "id", 1700000000, "{}", &n);
        snprintf(h, sizeof(h), "%s", p ? p : "");
        s2 = signer("{\"type\": \"http\", \"url\": \"http://h/\", \"signing\":"
                    " {\"scheme\": \"hmac\", \"header\": \"X-S\", \"secret\": "
                    "[\"k1\", \"k2\"], \"encoding\": \"base64\", "
                    "\"algorithm\": \"sha512\"}}", &cf2);
        p = s2 ? sign(s2, "id", 0, "1700000000.{}", &n) : NULL;
        snprintf(want, sizeof(want), "%s\nX-T: 1700000000", p ? p : "");
        is_str(h, want, "hmac: \"{ts}.{body}\", two values, then X-T");
        ok(strchr(h, ',') != NULL, "hmac: comma-separated");
        ebd_sign_free(s2);
        eb_config_free(cf2);
    }
    ebd_sign_free(s);
    eb_config_free(cf);
}


static void
test_errors(void)
{
    size_t        i;
    ebd_sign_t   *s;
    eb_config_t  *cf;

    static const struct {
        const char  *signing;
        const char  *err;
    } bad[] = {
        { "{\"scheme\": \"standard\"}", "needs \"secret\"" },
        { "{\"scheme\": \"standard\", \"secret\": \"whsec_!!!!\"}",
          "\"whsec_\" and base64" },
        { "{\"scheme\": \"standard\", \"secret\": \"whsec_AAAA\"}",
          "24 to 64 bytes, not 3" },
        { "{\"scheme\": \"standard\", \"secret\": \"whsk_AAAA\"}",
          "32-byte Ed25519 seed" },
        { "{\"scheme\": \"standard\", \"secret\": \"-----BEGIN PRIVATE "
          "KEY-----\\nAAAA\\n-----END PRIVATE KEY-----\\n\"}",
          "not a PEM private key" },
        { "{\"scheme\": \"standard\", \"secret\": \"x\", \"prefix\": \"p\"}",
          "signing.prefix: only with" },
        { "{\"scheme\": \"hmac\", \"header\": \"a b\", \"secret\": \"x\"}",
          "signing.header: \"a b\" is not a header name" },
        { "{\"scheme\": \"hmac\", \"header\": \"X\", \"timestamp_header\": "
          "\"x\", \"secret\": \"x\"}", "must not be \"header\"" },
        { "{\"scheme\": \"hmac\", \"header\": \"X\", \"secret_env\": "
          "\"1X\"}", "is not an environment variable name" },
        { "{\"scheme\": \"hmac\", \"header\": \"X\", \"secret_file\": "
          "\"rel/path\"}", "is not an absolute path" },
        { "{\"scheme\": \"hmac\", \"header\": \"X\", \"secret\": []}",
          "a non-empty string or an array" },
        { "{\"scheme\": \"hmac\", \"header\": \"X\", \"secret\": [\"1\", "
          "\"2\", \"3\", \"4\", \"5\", \"6\", \"7\", \"8\", \"9\"]}",
          "more than 8 secrets" },
    };

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char  target[512];

        snprintf(target, sizeof(target), "{\"type\": \"http\", \"url\": "
                 "\"http://h/\", \"signing\": %s}", bad[i].signing);
        s = signer(target, &cf);
        ok(s == NULL && strstr(err, bad[i].err) != NULL,
           "refused: %s (%s)", bad[i].err, err);
        ebd_sign_free(s);
        eb_config_free(cf);
    }
}


int
main(void)
{
    test_standard_v1();
    test_standard_v1a();
    test_hmac();
    test_errors();

    return tap_done();
}
