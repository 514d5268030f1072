#include <strings.h>

#include "eb_str.h"


int
eb_hex(unsigned char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }

    c |= 0x20;

    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }

    return -1;
}


size_t
eb_form_decode(unsigned char *dst, const unsigned char *src, size_t len)
{
    size_t  i, n;
    int     h, l;

    for (i = 0, n = 0; i < len; i++) {

        if (src[i] == '+') {
            dst[n++] = ' ';
            continue;
        }

        if (src[i] == '%' && len - i > 2) {
            h = eb_hex(src[i + 1]);
            l = eb_hex(src[i + 2]);

            if (h >= 0 && l >= 0) {
                dst[n++] = (unsigned char) (h << 4 | l);
                i += 2;
                continue;
            }
        }

        dst[n++] = src[i];
    }

    return n;
}


int
eb_host_match(const unsigned char *pat, size_t plen,
    const unsigned char *host, size_t hlen)
{
    /* "*.example.com": strictly a sub-domain */
    if (plen > 2 && pat[0] == '*' && pat[1] == '.') {
        pat += 1;
        plen -= 1;

        return hlen > plen
               && strncasecmp((const char *) host + hlen - plen,
                              (const char *) pat, plen) == 0;
    }

    /* ".example.com": the domain itself or a sub-domain */
    if (plen > 1 && pat[0] == '.') {
        if (hlen == plen - 1
            && strncasecmp((const char *) host, (const char *) pat + 1,
                           hlen) == 0)
        {
            return 1;
        }

        return hlen > plen
               && strncasecmp((const char *) host + hlen - plen,
                              (const char *) pat, plen) == 0;
    }

    return hlen == plen
           && strncasecmp((const char *) host, (const char *) pat, hlen) == 0;
}


int
eb_ct_equal(const unsigned char *a, size_t alen,
    const unsigned char *b, size_t blen)
{
    size_t         i;
    unsigned char  diff;

    /* lengths are not secret; contents are */
    if (alen != blen) {
        return 0;
    }

    diff = 0;

    for (i = 0; i < alen; i++) {
        diff |= a[i] ^ b[i];
    }

    return diff == 0;
}


int
eb_name_valid(const unsigned char *p, size_t len)
{
    size_t         i;
    unsigned char  c;

    if (len == 0 || len > EB_NAME_MAX) {
        return -1;
    }

    for (i = 0; i < len; i++) {
        c = p[i];

        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
              || (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.'))
        {
            return -1;
        }
    }

    return 0;
}
