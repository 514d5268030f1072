/*
 * CloudEvents output: strings escaped canonically, bytes as base64.
 */

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


void
eb_ce_put_base64(eb_buf_t *b, const unsigned char *p, size_t len)
{
    size_t    i, n;
    uint32_t  v;
    char      chunk[4096];

    static const char  b64[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

    (void) eb_buf_append(b, "\"", 1);

    n = 0;

    for (i = 0; i + 2 < len; i += 3) {
        v = (uint32_t) p[i] << 16 | (uint32_t) p[i + 1] << 8 | p[i + 2];

        chunk[n++] = b64[v >> 18];
        chunk[n++] = b64[(v >> 12) & 0x3F];
        chunk[n++] = b64[(v >> 6) & 0x3F];
        chunk[n++] = b64[v & 0x3F];

        if (n == sizeof(chunk)) {
            (void) eb_buf_append(b, chunk, n);
            n = 0;
        }
    }

    if (i < len) {
        v = (uint32_t) p[i] << 16;

        if (i + 1 < len) {
            v |= (uint32_t) p[i + 1] << 8;
        }

        chunk[n++] = b64[v >> 18];
        chunk[n++] = b64[(v >> 12) & 0x3F];
        chunk[n++] = (i + 1 < len) ? b64[(v >> 6) & 0x3F] : '=';
        chunk[n++] = '=';
    }

    (void) eb_buf_append(b, chunk, n);
    (void) eb_buf_append(b, "\"", 1);
}
