#include "eb_utf8.h"


size_t
eb_utf8_valid_len(const unsigned char *p, size_t len)
{
    size_t         n, k;
    unsigned char  c, lo, hi;

    c = p[0];

    if (c < 0x80) {
        return 1;
    }

    /* lo/hi bound the second byte: they exclude overlong forms,
     * surrogates (ED A0..BF) and code points above U+10FFFF. */
    lo = 0x80;
    hi = 0xBF;

    if (c >= 0xC2 && c <= 0xDF) {
        n = 1;

    } else if (c >= 0xE0 && c <= 0xEF) {
        n = 2;
        if (c == 0xE0) {
            lo = 0xA0;
        } else if (c == 0xED) {
            hi = 0x9F;
        }

    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 3;
        if (c == 0xF0) {
            lo = 0x90;
        } else if (c == 0xF4) {
            hi = 0x8F;
        }

    } else {
        return 0;
    }

    if (len <= n) {
        return 0;
    }

    if (p[1] < lo || p[1] > hi) {
        return 0;
    }

    for (k = 2; k <= n; k++) {
        if ((p[k] & 0xC0) != 0x80) {
            return 0;
        }
    }

    return n + 1;
}


ssize_t
eb_utf8_invalid_at(const unsigned char *p, size_t len)
{
    size_t  i, n;

    i = 0;

    while (i < len) {
        if (p[i] < 0x80) {
            i++;
            continue;
        }

        n = eb_utf8_valid_len(p + i, len - i);
        if (n == 0) {
            return (ssize_t) i;
        }

        i += n;
    }

    return -1;
}


size_t
eb_utf8_encode(unsigned char *u, uint32_t cp)
{
    if (cp < 0x80) {
        u[0] = (unsigned char) cp;
        return 1;
    }

    if (cp < 0x800) {
        u[0] = (unsigned char) (0xc0 | cp >> 6);
        u[1] = (unsigned char) (0x80 | (cp & 0x3f));
        return 2;
    }

    if (cp < 0x10000) {
        u[0] = (unsigned char) (0xe0 | cp >> 12);
        u[1] = (unsigned char) (0x80 | ((cp >> 6) & 0x3f));
        u[2] = (unsigned char) (0x80 | (cp & 0x3f));
        return 3;
    }

    u[0] = (unsigned char) (0xf0 | cp >> 18);
    u[1] = (unsigned char) (0x80 | ((cp >> 12) & 0x3f));
    u[2] = (unsigned char) (0x80 | ((cp >> 6) & 0x3f));
    u[3] = (unsigned char) (0x80 | (cp & 0x3f));
    return 4;
}
