/*
 * CloudEvents output: strings escaped canonically, bytes as base64.
 */

#include <openssl/evp.h>

#include "eb_ce_int.h"


void
eb_ce_put(eb_buf_t *b, const char *s)
{
    (void) eb_buf_append(b, s, strlen(s));
}


void
eb_ce_put_string(eb_buf_t *b, const unsigned char *p, size_t len)
{
    size_t         i, run;
    unsigned char  c;
    char           esc[8];

    static const char  hex[] = "0123456789abcdef";

    (void) eb_buf_append(b, "\"", 1);

    for (i = 0, run = 0; i < len; i++) {
        c = p[i];

        if (c >= 0x20 && c != '"' && c != '\\') {
            continue;
        }

        (void) eb_buf_append(b, p + run, i - run);
        run = i + 1;

        switch (c) {
        case '"':
            eb_ce_put(b, "\\\"");
            break;
        case '\\':
            eb_ce_put(b, "\\\\");
            break;
        case '\n':
            eb_ce_put(b, "\\n");
            break;
        case '\r':
            eb_ce_put(b, "\\r");
            break;
        case '\t':
            eb_ce_put(b, "\\t");
            break;
        default:
            memcpy(esc, "\\u00", 4);
            esc[4] = hex[c >> 4];
            esc[5] = hex[c & 0xF];
            (void) eb_buf_append(b, esc, 6);
        }
    }

    if (len) {
        /* p may be NULL when len is 0: no arithmetic on it */
        (void) eb_buf_append(b, p + run, len - run);
    }

    (void) eb_buf_append(b, "\"", 1);
}


/* RFC 4648 with padding, by OpenSSL, in chunks of 3 072 bytes (a
 * multiple of 3, so only the last chunk pads) */
void
eb_ce_put_base64(eb_buf_t *b, const unsigned char *p, size_t len)
{
    int            n;
    size_t         i, step;
    unsigned char  chunk[4097];

    (void) eb_buf_append(b, "\"", 1);

    for (i = 0; i < len; i += step) {
        step = len - i < 3072 ? len - i : 3072;
        n = EVP_EncodeBlock(chunk, p + i, (int) step);
        (void) eb_buf_append(b, chunk, (size_t) n);
    }

    (void) eb_buf_append(b, "\"", 1);
}
