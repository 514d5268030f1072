/*
 * libFuzzer harness: whatever a sender puts in the signature headers and
 * the body goes through each scheme's parser and checks
 * (src/core/eb_signature.c); the same bytes are also taken as
 * eventbridge_signature options, as nginx -t would see them.
 *
 * Input: one byte choosing the scheme, then the signature header, the
 * timestamp header, the id header and the body, separated by NUL bytes
 * (a field left out is a header that is absent).
 */

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "eb_signature.h"


static const char  *eb_fuzz_schemes[] = {
    "github", "gitlab", "stripe", "shopify", "slack", "standard",
    "dingtalk", "hmac header=x-sig timestamp=x-ts id=x-id "
                "signed=$id:$timestamp:$body encoding=base64 prefix=v9="
};

#define EB_FUZZ_N  (sizeof(eb_fuzz_schemes) / sizeof(eb_fuzz_schemes[0]))

static eb_sig_scheme_t  eb_fuzz_s[EB_FUZZ_N];
static int              eb_fuzz_ready;


static void
eb_fuzz_init(void)
{
    char         err[256], *p, *q;
    char         conf[256];
    size_t       i;
    const char  *name;

    static const char  *keys[] = {
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        "whpk_Obky/3cSvBd3fIXjZlGgKp5Hda3SUw8LucJzLNY+ir8=",
    };

    for (i = 0; i < EB_FUZZ_N; i++) {
        strcpy(conf, eb_fuzz_schemes[i]);
        p = strchr(conf, ' ');
        if (p) {
            *p++ = '\0';
        }

        name = conf;
        eb_sig_preset(&eb_fuzz_s[i], name, strlen(name));

        while (p && *p) {
            q = strchr(p, ' ');
            if (q) {
                *q++ = '\0';
            }
            eb_sig_option(&eb_fuzz_s[i], p, strlen(p), err, sizeof(err));
            p = q;
        }

        eb_sig_add_key(&eb_fuzz_s[i], (const unsigned char *) keys[0],
                       strlen(keys[0]), err, sizeof(err));

        if (eb_fuzz_s[i].standard_keys) {
            eb_sig_add_key(&eb_fuzz_s[i], (const unsigned char *) keys[1],
                           strlen(keys[1]), err, sizeof(err));
        }

        if (eb_sig_finish(&eb_fuzz_s[i], err, sizeof(err)) != 0) {
            __builtin_trap();
        }
    }

    eb_fuzz_ready = 1;
}


/* the next NUL-separated field; NULL when there is none left */
static const unsigned char *
eb_fuzz_field(const uint8_t **p, const uint8_t *end, size_t *len)
{
    const uint8_t  *start, *nul;

    if (*p > end) {
        *len = 0;
        return NULL;
    }

    start = *p;
    nul = memchr(start, '\0', end - start);

    if (nul == NULL) {
        *len = end - start;
        *p = end + 1;
        return start;
    }

    *len = nul - start;
    *p = nul + 1;
    return start;
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char             err[256];
    size_t           len;
    const uint8_t   *p, *end;
    eb_sig_input_t   in;
    eb_sig_scheme_t  s;

    if (!eb_fuzz_ready) {
        eb_fuzz_init();
    }

    if (size == 0) {
        return 0;
    }

    /* the same bytes as options of a fresh scheme */
    eb_sig_preset(&s, "hmac", 4);
    (void) eb_sig_option(&s, (const char *) data + 1, size - 1, err,
                         sizeof(err));
    (void) eb_sig_add_key(&s, data, size, err, sizeof(err));
    eb_sig_free(&s);

    memset(&in, 0, sizeof(in));
    p = data + 1;
    end = data + size;

    in.sig = eb_fuzz_field(&p, end, &in.sig_len);
    in.ts = eb_fuzz_field(&p, end, &in.ts_len);
    in.id = eb_fuzz_field(&p, end, &in.id_len);
    in.body = eb_fuzz_field(&p, end, &len);
    in.body_len = in.body ? (size_t) (end - in.body) : 0;
    in.now_ms = 1614265330000LL;

    (void) eb_sig_verify(&eb_fuzz_s[data[0] % EB_FUZZ_N], &in, err,
                         sizeof(err));

    return 0;
}
