#include "eb_json_string.h"


static int
eb_json_hex4(const unsigned char *p, uint32_t *v)
{
    int            k;
    unsigned char  c;

    *v = 0;

    for (k = 0; k < 4; k++) {
        c = p[k];

        if (c >= '0' && c <= '9') {
            *v = *v << 4 | (uint32_t) (c - '0');

        } else if ((c | 0x20) >= 'a' && (c | 0x20) <= 'f') {
            *v = *v << 4 | (uint32_t) ((c | 0x20) - 'a' + 10);

        } else {
            return -1;
        }
    }

    return 0;
}


size_t
eb_json_escape(const unsigned char *p, size_t len, uint32_t *cp,
    const char **why)
{
    uint32_t  lo;

    if (len < 2) {
        *why = "an escape cut short";
        return 0;
    }

    switch (p[1]) {
    case '"':
    case '\\':
    case '/':
        *cp = p[1];
        return 2;
    case 'b':
        *cp = '\b';
        return 2;
    case 'f':
        *cp = '\f';
        return 2;
    case 'n':
        *cp = '\n';
        return 2;
    case 'r':
        *cp = '\r';
        return 2;
    case 't':
        *cp = '\t';
        return 2;
    case 'u':
        break;
    default:
        *why = "invalid escape";
        return 0;
    }

    if (len < 6 || eb_json_hex4(p + 2, cp) != 0) {
        *why = "\\u needs four hexadecimal digits";
        return 0;
    }

    if (*cp >= 0xdc00 && *cp <= 0xdfff) {
        *why = "a lone low surrogate";
        return 0;
    }

    if (*cp < 0xd800 || *cp > 0xdbff) {
        return 6;
    }

    if (len < 12 || p[6] != '\\' || p[7] != 'u'
        || eb_json_hex4(p + 8, &lo) != 0 || lo < 0xdc00 || lo > 0xdfff)
    {
        *why = "a high surrogate without a low surrogate";
        return 0;
    }

    *cp = 0x10000 + ((*cp - 0xd800) << 10) + (lo - 0xdc00);

    return 12;
}


size_t
eb_json_surrogates_replace(unsigned char *p, size_t len)
{
    size_t       i, n, k;
    uint32_t     cp;
    int          in_string;
    const char  *why;

    in_string = 0;
    n = 0;

    for (i = 0; i < len; i++) {
        if (!in_string) {
            in_string = (p[i] == '"');
            continue;
        }

        if (p[i] == '"') {
            in_string = 0;
            continue;
        }

        if (p[i] != '\\') {
            continue;
        }

        k = eb_json_escape(p + i, len - i, &cp, &why);

        if (k == 0 && len - i >= 6 && p[i + 1] == 'u'
            && eb_json_hex4(p + i + 2, &cp) == 0)
        {
            /* a well-formed \u escape refused: an unpaired surrogate */
            p[i + 2] = 'f';
            p[i + 3] = 'f';
            p[i + 4] = 'f';
            p[i + 5] = 'd';
            k = 6;
            n++;
        }

        /* the loop's i++ steps over the last byte */
        i += k ? k - 1 : 1;
    }

    return n;
}
