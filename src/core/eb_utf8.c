#include "eb_utf8.h"


ssize_t
eb_utf8_invalid_at(const unsigned char *p, size_t len)
{
    size_t         i, n, k;
    unsigned char  c, lo, hi;

    i = 0;

    while (i < len) {
        c = p[i];

        if (c < 0x80) {
            i++;
            continue;
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
            return (ssize_t) i;
        }

        if (len - i <= n) {
            return (ssize_t) i;
        }

        if (p[i + 1] < lo || p[i + 1] > hi) {
            return (ssize_t) i;
        }

        for (k = 2; k <= n; k++) {
            if ((p[i + k] & 0xC0) != 0x80) {
                return (ssize_t) i;
            }
        }

        i += n + 1;
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
