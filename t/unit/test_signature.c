/*
 * eb_signature: known-answer vectors (RFC 4231 and RFC 2202 HMAC, the
 * providers' own documented examples, values computed with node's crypto
 * and the standardwebhooks library), each preset's header format, every
 * failure reason, key rotation, and configuration errors.
 */

#include <stdlib.h>
#include <string.h>

#include "tap.h"
#include "eb_signature.h"


#define S(s)  (const unsigned char *) (s), sizeof(s) - 1
#define NOW   ((int64_t) 1700000000000LL)


static char  err[256];


/* A scheme from "preset opt opt ..." (options split at blanks) and keys;
 * NULL and a failed test if it does not build. */
static eb_sig_scheme_t *
scheme(const char *conf, const char **keys, size_t nkeys)
{
    char             *copy, *tok, *save;
    size_t            i;
    eb_sig_scheme_t  *s;

    s = calloc(1, sizeof(eb_sig_scheme_t));
    copy = strdup(conf);
    if (s == NULL || copy == NULL) {
        free(s);
        free(copy);
        return NULL;
    }

    tok = strtok_r(copy, " ", &save);

    if (eb_sig_preset(s, tok, strlen(tok)) != 0) {
        ok(0, "preset %s", tok);
        goto failed;
    }

    while ((tok = strtok_r(NULL, " ", &save)) != NULL) {
        if (eb_sig_option(s, tok, strlen(tok), err, sizeof(err)) != 0) {
            ok(0, "option %s: %s", tok, err);
            goto failed;
        }
    }

    for (i = 0; i < nkeys; i++) {
        if (eb_sig_add_key(s, (const unsigned char *) keys[i],
                           strlen(keys[i]), err, sizeof(err)) != 0)
        {
            ok(0, "key %zu: %s", i, err);
            goto failed;
        }
    }

    if (eb_sig_finish(s, err, sizeof(err)) != 0) {
        ok(0, "finish %s: %s", conf, err);
        goto failed;
    }

    free(copy);
    return s;

failed:

    eb_sig_free(s);
    free(s);
    free(copy);
    return NULL;
}


static void
done(eb_sig_scheme_t *s)
{
    if (s) {
        eb_sig_free(s);
        free(s);
    }
}


static eb_sig_rc_t
verify(eb_sig_scheme_t *s, const char *sig, const char *ts, const char *id,
    const char *body, size_t body_len, int64_t now)
{
    eb_sig_input_t  in;

    memset(&in, 0, sizeof(in));
    in.sig = (const unsigned char *) sig;
    in.sig_len = sig ? strlen(sig) : 0;
    in.ts = (const unsigned char *) ts;
    in.ts_len = ts ? strlen(ts) : 0;
    in.id = (const unsigned char *) id;
    in.id_len = id ? strlen(id) : 0;
    in.body = (const unsigned char *) body;
    in.body_len = body_len;
    in.now_ms = now;

    err[0] = '\0';

    return s ? eb_sig_verify(s, &in, err, sizeof(err)) : EB_SIG_ERROR;
}

#define V(s, sig, ts, id, body, now)                                          \
    verify(s, sig, ts, id, body, sizeof(body) - 1, now)


static void
test_rfc_vectors(void)
{
    eb_sig_scheme_t  *s;
    const char       *k1[] = { "\x0b\x0b\x0b\x0b\x0b\x0b\x0b\x0b\x0b\x0b"
                               "\x0b\x0b\x0b\x0b\x0b\x0b\x0b\x0b\x0b\x0b" };
    const char       *k2[] = { "Jefe" };

    s = scheme("hmac header=X-Sig", k1, 1);
    is_int(V(s, "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32"
             "cff7", NULL, NULL, "Hi There", NOW), EB_SIG_OK,
           "RFC 4231 case 1, HMAC-SHA-256");
    is_int(V(s, "B0344C61D8DB38535CA8AFCEAF0BF12B881DC200C9833DA726E9376C2E32"
             "CFF7", NULL, NULL, "Hi There", NOW), EB_SIG_OK,
           "upper-case hex accepted");
    is_int(V(s, "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32"
             "cff8", NULL, NULL, "Hi There", NOW), EB_SIG_MISMATCH,
           "last bit changed: mismatch");
    done(s);

    s = scheme("hmac header=X-Sig algorithm=sha512", k1, 1);
    is_int(V(s, "87aa7cdea5ef619d4ff0b4241a1d6cb02379f4e2ce4ec2787ad0b30545e1"
             "7cdedaa833b7d6b8a702038b274eaea3f4e4be9d914eeb61f1702e696c203a"
             "126854", NULL, NULL, "Hi There", NOW), EB_SIG_OK,
           "RFC 4231 case 1, HMAC-SHA-512");
    done(s);

    s = scheme("hmac header=X-Sig", k2, 1);
    is_int(V(s, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec"
             "3843", NULL, NULL, "what do ya want for nothing?", NOW),
           EB_SIG_OK, "RFC 4231 case 2, HMAC-SHA-256");
    done(s);

    s = scheme("hmac header=X-Sig algorithm=sha512", k2, 1);
    is_int(V(s, "164b7a7bfcf819e2e395fbe73b56e0a387bd64222e831fd610270cd7ea25"
             "05549758bf75c05a994a6d034f65f8f0e6fdcaeab1a34d4a6b4b636e070a38"
             "bce737", NULL, NULL, "what do ya want for nothing?", NOW),
           EB_SIG_OK, "RFC 4231 case 2, HMAC-SHA-512");
    done(s);

    s = scheme("hmac header=X-Sig algorithm=sha1 prefix=sha1=", k2, 1);
    is_int(V(s, "sha1=effcdf6ae5eb2fa2d27416d5f184df9c259a7c79", NULL, NULL,
             "what do ya want for nothing?", NOW), EB_SIG_OK,
           "RFC 2202 case 2, HMAC-SHA-1 with a prefix");
    is_int(V(s, "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79", NULL, NULL,
             "what do ya want for nothing?", NOW), EB_SIG_MALFORMED_HEADER,
           "prefix missing: malformed");
    is_int(V(s, "sha1=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b9"
             "64ec3843", NULL, NULL, "what do ya want for nothing?", NOW),
           EB_SIG_MALFORMED_HEADER, "SHA-256 length for SHA-1: malformed");
    done(s);
}


static void
test_github(void)
{
    eb_sig_scheme_t  *s;
    const char       *keys[] = { "old secret", "It's a Secret to Everybody" };
    const char       *good = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d"
                             "7586c22c46f4379c8b043e17";

    /* the example of GitHub's documentation */
    s = scheme("github", keys + 1, 1);
    is_int(V(s, good, NULL, NULL, "Hello, World!", NOW), EB_SIG_OK,
           "github: documented example");
    is_int(V(s, good, NULL, NULL, "Hello, World?", NOW), EB_SIG_MISMATCH,
           "github: tampered body");
    is_int(V(s, NULL, NULL, NULL, "Hello, World!", NOW),
           EB_SIG_MISSING_HEADER, "github: missing header");
    ok(strstr(err, "x-hub-signature-256") != NULL,
       "github: the message names the header (%s)", err);
    is_int(V(s, "sha256=zz", NULL, NULL, "Hello, World!", NOW),
           EB_SIG_MALFORMED_HEADER, "github: not hex");
    is_int(V(s, "sha1=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f437"
             "9c8b043e17", NULL, NULL, "Hello, World!", NOW),
           EB_SIG_MALFORMED_HEADER, "github: wrong prefix");
    is_int(V(s, "", NULL, NULL, "Hello, World!", NOW),
           EB_SIG_MALFORMED_HEADER, "github: empty header");
    done(s);

    s = scheme("github", keys, 2);
    is_int(V(s, good, NULL, NULL, "Hello, World!", NOW), EB_SIG_OK,
           "github: second of two keys (rotation)");
    done(s);

    s = scheme("github", keys, 1);
    is_int(V(s, good, NULL, NULL, "Hello, World!", NOW), EB_SIG_MISMATCH,
           "github: wrong key");
    done(s);
}


static void
test_gitlab(void)
{
    eb_sig_scheme_t  *s;
    const char       *keys[] = { "tok-one", "tok-two" };

    s = scheme("gitlab", keys, 2);
    is_int(V(s, "tok-two", NULL, NULL, "{}", NOW), EB_SIG_OK,
           "gitlab: second token");
    is_int(V(s, "tok-one", NULL, NULL, "{}", NOW), EB_SIG_OK,
           "gitlab: first token");
    is_int(V(s, "tok-on", NULL, NULL, "{}", NOW), EB_SIG_MISMATCH,
           "gitlab: prefix of a token");
    is_int(V(s, "tok-one ", NULL, NULL, "{}", NOW), EB_SIG_MISMATCH,
           "gitlab: token and more");
    is_int(V(s, NULL, NULL, NULL, "{}", NOW), EB_SIG_MISSING_HEADER,
           "gitlab: missing header");
    done(s);
}


static void
test_stripe(void)
{
    eb_sig_scheme_t  *s;
    const char       *keys[] = { "whsec_test" };
    const char       *body = "{\"id\":\"evt_1\"}";
    const char       *good = "c89214b5b5da833daed6f0b8c5bb6bd58cea9022bd80cc"
                             "c78230f3942d632925";
    const char       *bad = "089214b5b5da833daed6f0b8c5bb6bd58cea9022bd80cc"
                            "c78230f3942d632925";
    char              hdr[512];
    size_t            blen = strlen(body);

    s = scheme("stripe", keys, 1);

    snprintf(hdr, sizeof(hdr), "t=1700000000,v1=%s", good);
    is_int(verify(s, hdr, NULL, NULL, body, blen, NOW), EB_SIG_OK,
           "stripe: t and v1");

    snprintf(hdr, sizeof(hdr), "t=1700000000,v1=%s,v1=%s,v0=%s", bad, good,
             bad);
    is_int(verify(s, hdr, NULL, NULL, body, blen, NOW), EB_SIG_OK,
           "stripe: the second of two v1 matches; v0 ignored");

    snprintf(hdr, sizeof(hdr), "t=1700000000,v1=%s", bad);
    is_int(verify(s, hdr, NULL, NULL, body, blen, NOW), EB_SIG_MISMATCH,
           "stripe: wrong signature");

    snprintf(hdr, sizeof(hdr), "t=1700000001,v1=%s", good);
    is_int(verify(s, hdr, NULL, NULL, body, blen, NOW), EB_SIG_MISMATCH,
           "stripe: timestamp changed");

    snprintf(hdr, sizeof(hdr), "t=1700000000,v1=%s", good);
    is_int(verify(s, hdr, NULL, NULL, body, blen, NOW + 301000),
           EB_SIG_TIMESTAMP_OLD, "stripe: 301 s old");
    ok(strstr(err, "tolerance") != NULL, "stripe: message (%s)", err);
    is_int(verify(s, hdr, NULL, NULL, body, blen, NOW + 300000), EB_SIG_OK,
           "stripe: 300 s old is within");
    is_int(verify(s, hdr, NULL, NULL, body, blen, NOW - 301000),
           EB_SIG_TIMESTAMP_FUTURE, "stripe: 301 s ahead");

    snprintf(hdr, sizeof(hdr), "v1=%s", good);
    is_int(verify(s, hdr, NULL, NULL, body, blen, NOW),
           EB_SIG_MALFORMED_HEADER, "stripe: no t=");
    is_int(verify(s, "t=1700000000", NULL, NULL, body, blen, NOW),
           EB_SIG_MALFORMED_HEADER, "stripe: no v1=");
    snprintf(hdr, sizeof(hdr), "t=1700000000,t=1700000000,v1=%s", good);
    is_int(verify(s, hdr, NULL, NULL, body, blen, NOW),
           EB_SIG_MALFORMED_HEADER, "stripe: two t=");
    snprintf(hdr, sizeof(hdr), "t=17000x0000,v1=%s", good);
    is_int(verify(s, hdr, NULL, NULL, body, blen, NOW),
           EB_SIG_MALFORMED_HEADER, "stripe: t= not a number");
    is_int(verify(s, "t=1700000000,junk", NULL, NULL, body, blen, NOW),
           EB_SIG_MALFORMED_HEADER, "stripe: an item without =");
    done(s);
}


static void
test_shopify_slack_dingtalk(void)
{
    eb_sig_scheme_t   g;
    eb_sig_scheme_t  *s;
    const char       *shop[] = { "shpss_secret" };
    const char       *slack[] = { "8f742231b10e8888abcd99yyyzzz85a5" };
    const char       *ding[] = { "SECabc" };
    static const char  sbody[] = "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC"
        "2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=fooba"
        "r&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&t"
        "ext=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3"
        "J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.4"
        "7445629121.803a0bc887a14d10d2c447fce8b6703c";
    const char       *ssig = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10"
                             "bd27519666489c69b503";

    s = scheme("shopify", shop, 1);
    is_int(V(s, "xocA3LkeJ/RvNrkxep1EUtFHuj7rIoIqZYaLU26LyPQ=", NULL, NULL,
             "{\"id\":1}", NOW), EB_SIG_OK, "shopify: base64");
    is_int(V(s, "xocA3LkeJ/RvNrkxep1EUtFHuj7rIoIqZYaLU26LyPQ", NULL, NULL,
             "{\"id\":1}", NOW), EB_SIG_MALFORMED_HEADER,
           "shopify: padding missing");
    is_int(V(s, "xocA3LkeJ/RvNrkxep1EUtFHuj7rIoIqZYaLU26LyPQ=", NULL, NULL,
             "{\"id\":2}", NOW), EB_SIG_MISMATCH, "shopify: tampered body");
    done(s);

    /* the example of Slack's documentation */
    s = scheme("slack", slack, 1);
    is_int(verify(s, ssig, "1531420618", NULL, sbody, sizeof(sbody) - 1,
                  1531420618000LL), EB_SIG_OK, "slack: documented example");
    is_int(verify(s, ssig, "1531420619", NULL, sbody, sizeof(sbody) - 1,
                  1531420618000LL), EB_SIG_MISMATCH,
           "slack: another timestamp");
    is_int(verify(s, ssig, NULL, NULL, sbody, sizeof(sbody) - 1,
                  1531420618000LL), EB_SIG_MISSING_HEADER,
           "slack: missing timestamp header");
    ok(strstr(err, "x-slack-request-timestamp") != NULL,
       "slack: the message names it (%s)", err);
    is_int(verify(s, ssig, "1531420618", NULL, sbody, sizeof(sbody) - 1,
                  NOW), EB_SIG_TIMESTAMP_OLD, "slack: replayed years later");
    is_int(verify(s, ssig, "-5", NULL, sbody, sizeof(sbody) - 1,
                  NOW), EB_SIG_MALFORMED_HEADER, "slack: negative timestamp");
    done(s);

    s = scheme("dingtalk", ding, 1);
    is_int(V(s, "IqXBU/aLfwMA3S/tDcfRmHx5vWHw9Y1aOgFLBr1Ti9w=", "1700000000123",
             NULL, "{\"any\":\"body\"}", NOW), EB_SIG_OK,
           "dingtalk: sign of timestamp\\nsecret");
    is_int(V(s, "IqXBU/aLfwMA3S/tDcfRmHx5vWHw9Y1aOgFLBr1Ti9w=", "1700000000123",
             NULL, "{\"any\":\"body\"}", NOW + 3600000), EB_SIG_OK,
           "dingtalk: 1 h old (ms) is within");
    is_int(V(s, "IqXBU/aLfwMA3S/tDcfRmHx5vWHw9Y1aOgFLBr1Ti9w=", "1700000000123",
             NULL, "{\"any\":\"body\"}", NOW + 3600200), EB_SIG_TIMESTAMP_OLD,
           "dingtalk: over 1 h old");
    is_int(V(s, "IqXBU/aLfwMA3S/tDcfRmHx5vWHw9Y1aOgFLBr1Ti9w=", "1700000000124",
             NULL, "{\"any\":\"body\"}", NOW), EB_SIG_MISMATCH,
           "dingtalk: another timestamp");
    done(s);

    /* Slack's scheme spelled out with the generic one */
    s = scheme("hmac header=X-Slack-Signature prefix=v0= "
               "timestamp=X-Slack-Request-Timestamp signed=v0:$timestamp:$body",
               slack, 1);
    is_int(verify(s, ssig, "1531420618", NULL, sbody, sizeof(sbody) - 1,
                  1531420618000LL), EB_SIG_OK,
           "hmac: Slack's documented example with the generic scheme");
    done(s);

    /* the generic scheme must sign the body */
    eb_sig_preset(&g, "hmac", 4);
    eb_sig_option(&g, "header=sign", 11, err, sizeof(err));
    eb_sig_option(&g, "timestamp=timestamp", 19, err, sizeof(err));
    eb_sig_option(&g, "signed=$timestamp\n$secret", 26, err, sizeof(err));
    eb_sig_add_key(&g, S("SECabc"), err, sizeof(err));
    ok(eb_sig_finish(&g, err, sizeof(err)) == -1
       && strstr(err, "$body") != NULL,
       "hmac: a signed string without $body is refused (%s)", err);
    eb_sig_free(&g);
}


static void
test_standard(void)
{
    eb_sig_scheme_t  *s;
    const char       *keys[] = { "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw" };
    const char       *two[] = { "whsec_dGVzdA==",
                                "whpk_Obky/3cSvBd3fIXjZlGgKp5Hda3SUw8LucJzLNY+"
                                "ir8=" };
    const char       *id = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const char       *body = "{\"test\": 2432232314}";
    const char       *v1 = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";
    const char       *v1a = "v1a,xJGOV/712Yw0zhbJsAFx5VuiYTNipnIBOkozdiaFkEsIR"
                            "UGV6ST+Z1YL/YnTC5D2YqfSrPYHco1vkqjjkm16Dg==";
    int64_t           now = 1614265330000LL;
    size_t            blen = strlen(body);
    char              hdr[512];

    /* the example of the specification */
    s = scheme("standard", keys, 1);
    is_int(verify(s, v1, "1614265330", id, body, blen, now), EB_SIG_OK,
           "standard: v1, the specification's example");
    snprintf(hdr, sizeof(hdr), "v1,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
             "AAAAA= %s v2,abc", v1);
    is_int(verify(s, hdr, "1614265330", id, body, blen, now), EB_SIG_OK,
           "standard: second of two v1, unknown v2 ignored");
    is_int(verify(s, v1, "1614265330", "msg_other", body, blen, now),
           EB_SIG_MISMATCH, "standard: another id");
    is_int(verify(s, v1, "1614265330", NULL, body, blen, now),
           EB_SIG_MISSING_HEADER, "standard: missing webhook-id");
    is_int(verify(s, "g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
                  "1614265330", id, body, blen, now),
           EB_SIG_MALFORMED_HEADER, "standard: no version");
    is_int(verify(s, v1a, "1614265330", id, body, blen, now),
           EB_SIG_MISMATCH, "standard: v1a without a public key");
    done(s);

    s = scheme("standard", two, 2);
    is_int(verify(s, v1a, "1614265330", id, body, blen, now), EB_SIG_OK,
           "standard: v1a (Ed25519, whpk_ key)");
    snprintf(hdr, sizeof(hdr), "%s %s", v1, v1a);
    is_int(verify(s, hdr, "1614265330", id, body, blen, now), EB_SIG_OK,
           "standard: v1 (other secret) and v1a in one header");
    is_int(verify(s, v1a, "1614265330", id, "{\"test\": 2432232315}", blen,
                  now), EB_SIG_MISMATCH, "standard: v1a, tampered body");
    is_int(verify(s, "v1a,AAAA", "1614265330", id, body, blen, now),
           EB_SIG_MALFORMED_HEADER, "standard: v1a of 3 bytes");
    done(s);
}


static void
test_config_errors(void)
{
    eb_sig_scheme_t  s;
    const char      *o;

    ok(eb_sig_preset(&s, "gitlub", 6) == -1, "unknown preset");

    eb_sig_preset(&s, "hmac", 4);

#define BAD(opt, what)                                                        \
    o = (opt);                                                                \
    ok(eb_sig_option(&s, o, strlen(o), err, sizeof(err)) == -1               \
       && strstr(err, what) != NULL, "option %s: %s", o, err)

    BAD("algorithm=md5", "algorithm");
    BAD("encoding=base32", "encoding");
    BAD("tolerance=5x", "tolerance");
    BAD("tolerance=0", "tolerance");
    BAD("tolerance=", "tolerance");
    BAD("tolerance=400d", "tolerance");
    BAD("timestamp_unit=us", "timestamp_unit");
    BAD("header=X Sig", "header name");
    BAD("header=", "header name");
    BAD("signed=$bdy", "$bdy");
    BAD("signed=", "signed");
    BAD("prefix=a,b", "prefix");

    o = "key=file:/x";
    is_int(eb_sig_option(&s, o, strlen(o), err, sizeof(err)), 1,
           "key= is left to the caller");
    o = "tolerance=1h30m";
    ok(eb_sig_option(&s, o, strlen(o), err, sizeof(err)) == 0
       && s.tolerance == 5400, "tolerance=1h30m is 5400 s");

    ok(eb_sig_finish(&s, err, sizeof(err)) == -1
       && strstr(err, "header=") != NULL, "hmac needs header= (%s)", err);

    eb_sig_preset(&s, "hmac", 4);
    o = "header=x";
    eb_sig_option(&s, o, strlen(o), err, sizeof(err));
    ok(eb_sig_finish(&s, err, sizeof(err)) == -1
       && strstr(err, "key") != NULL, "a key is needed (%s)", err);

    eb_sig_add_key(&s, S("k"), err, sizeof(err));
    o = "signed=$timestamp.$body";
    eb_sig_option(&s, o, strlen(o), err, sizeof(err));
    ok(eb_sig_finish(&s, err, sizeof(err)) == -1
       && strstr(err, "timestamp=") != NULL, "$timestamp needs timestamp= "
       "(%s)", err);
    eb_sig_free(&s);

    eb_sig_preset(&s, "standard", 8);
    ok(eb_sig_add_key(&s, S("whsec_not base64!"), err, sizeof(err)) == -1,
       "standard: a secret that is not base64 (%s)", err);
    ok(eb_sig_add_key(&s, S("whpk_AAAA"), err, sizeof(err)) == -1,
       "standard: a public key of 3 bytes (%s)", err);
    ok(strstr(err, "AAAA") == NULL, "the message does not quote the key");
    eb_sig_free(&s);
}


static void
test_limits(void)
{
    char             *big;
    eb_sig_scheme_t  *s;
    const char       *keys[] = { "k" };
    const char       *std[] = { "whsec_dGVzdA==" };
    size_t            i;
    char              hdr[2048];

    s = scheme("hmac header=x-sig encoding=base64", keys, 1);

    big = malloc(EB_SIG_HEADER_MAX + 2);
    if (big) {
        memset(big, 'A', EB_SIG_HEADER_MAX + 1);
        big[EB_SIG_HEADER_MAX + 1] = '\0';
        is_int(V(s, big, NULL, NULL, "x", NOW), EB_SIG_MALFORMED_HEADER,
               "a header over %d bytes", EB_SIG_HEADER_MAX);
        free(big);
    }

    hdr[0] = '\0';
    for (i = 0; i <= EB_SIG_MAX_SIGNATURES; i++) {
        strcat(hdr, "AAAA,");
    }
    is_int(V(s, hdr, NULL, NULL, "x", NOW), EB_SIG_MALFORMED_HEADER,
           "more than %d signatures", EB_SIG_MAX_SIGNATURES);

    is_int(V(s, "AA=A", NULL, NULL, "x", NOW), EB_SIG_MALFORMED_HEADER,
           "padding inside base64");
    done(s);

    /* found by fuzz/fuzz_signature.c: the 17th "v1a," was written past
     * the array before the count was checked */
    s = scheme("standard", std, 1);
    hdr[0] = '\0';
    for (i = 0; i <= EB_SIG_MAX_SIGNATURES; i++) {
        strcat(hdr, "v1a,AAAA ");
    }
    is_int(V(s, hdr, "1700000000", "msg_1", "x", NOW),
           EB_SIG_MALFORMED_HEADER, "standard: more than %d signatures",
           EB_SIG_MAX_SIGNATURES);
    is_int(eb_sig_base64_decode((unsigned char *) hdr, 3, S("QUJD")), 3,
           "base64 QUJD is 3 bytes");
    is_int(eb_sig_base64_decode((unsigned char *) hdr, 3, S("QUI=")), 2,
           "base64 QUI= is 2 bytes");
    is_int(eb_sig_base64_decode((unsigned char *) hdr, 3, S("Q U=")), -1,
           "base64 with a blank");
    done(s);

    is_str(eb_sig_reason(EB_SIG_TIMESTAMP_OLD), "timestamp_too_old",
           "reason label");
}


int
main(void)
{
    test_rfc_vectors();
    test_github();
    test_gitlab();
    test_stripe();
    test_shopify_slack_dingtalk();
    test_standard();
    test_config_errors();
    test_limits();

    return tap_done();
}
