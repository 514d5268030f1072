/*
 * CloudEvents attribute values: names, Strings, URIs and URI-references
 * (RFC 3986), timestamps (RFC 3339), media types (RFC 2046), base64
 * (RFC 4648).
 */

#include <arpa/inet.h>

#include "eb_ce_int.h"
#include "eb_utf8.h"


/* names and strings */

int
eb_ce_name_valid(const unsigned char *p, size_t len)
{
    size_t  i;

    if (len == 0 || len > EB_CE_NAME_MAX) {
        return 0;
    }

    for (i = 0; i < len; i++) {
        if (!(p[i] >= 'a' && p[i] <= 'z') && !eb_ce_digit(p[i])) {
            return 0;
        }
    }

    return 1;
}


ssize_t
eb_ce_string_invalid_at(const unsigned char *p, size_t len,
    const char **why)
{
    size_t    i, n;
    ssize_t   bad;
    uint32_t  cp;

    bad = eb_utf8_invalid_at(p, len);
    if (bad >= 0) {
        *why = "invalid UTF-8";
        return bad;
    }

    for (i = 0; i < len; i += n) {
        cp = p[i];

        if (cp < 0x80) {
            n = 1;

        } else if (cp < 0xE0) {
            n = 2;
            cp = ((cp & 0x1F) << 6) | (p[i + 1] & 0x3F);

        } else if (cp < 0xF0) {
            n = 3;
            cp = ((cp & 0x0F) << 12) | ((p[i + 1] & 0x3F) << 6)
                 | (p[i + 2] & 0x3F);

        } else {
            n = 4;
            cp = ((cp & 0x07) << 18) | ((p[i + 1] & 0x3F) << 12)
                 | ((p[i + 2] & 0x3F) << 6) | (p[i + 3] & 0x3F);
        }

        if (cp < 0x20 || (cp >= 0x7F && cp <= 0x9F)) {
            *why = "a control character";
            return (ssize_t) i;
        }

        if ((cp >= 0xFDD0 && cp <= 0xFDEF) || (cp & 0xFFFE) == 0xFFFE) {
            *why = "a Unicode noncharacter";
            return (ssize_t) i;
        }
    }

    return -1;
}


/* RFC 3986 */

static int
eb_ce_unreserved(unsigned char c)
{
    return eb_ce_alpha(c) || eb_ce_digit(c) || c == '-' || c == '.'
           || c == '_' || c == '~';
}


static int
eb_ce_sub_delim(unsigned char c)
{
    return c != '\0' && strchr("!$&'()*+,;=", c) != NULL;
}


/* unreserved, sub-delims, "%" HEXDIG HEXDIG, and the characters of extra */
static int
eb_ce_uri_chars(const unsigned char *p, size_t len, const char *extra)
{
    size_t         i;
    unsigned char  c;

    for (i = 0; i < len; i++) {
        c = p[i];

        if (c == '%') {
            if (i + 2 >= len || eb_hex(p[i + 1]) < 0
                || eb_hex(p[i + 2]) < 0)
            {
                return 0;
            }

            i += 2;
            continue;
        }

        if (eb_ce_unreserved(c) || eb_ce_sub_delim(c)
            || (c != '\0' && strchr(extra, c) != NULL))
        {
            continue;
        }

        return 0;
    }

    return 1;
}


/* IP-literal without its brackets: IPv6address or IPvFuture */
static int
eb_ce_ip_literal(const unsigned char *p, size_t len)
{
    char             buf[INET6_ADDRSTRLEN + 1];
    size_t           i;
    struct in6_addr  a;

    if (len > 0 && (p[0] == 'v' || p[0] == 'V')) {
        for (i = 1; i < len && eb_hex(p[i]) >= 0; i++) {
            /* void */
        }

        if (i == 1 || i >= len - 1 || p[i] != '.') {
            return 0;
        }

        return eb_ce_uri_chars(p + i + 1, len - i - 1, ":")
               && memchr(p + i + 1, '%', len - i - 1) == NULL;
    }

    if (len == 0 || len >= sizeof(buf)) {
        return 0;
    }

    for (i = 0; i < len; i++) {
        if (eb_hex(p[i]) < 0 && p[i] != ':' && p[i] != '.') {
            return 0;
        }
    }

    memcpy(buf, p, len);
    buf[len] = '\0';

    return inet_pton(AF_INET6, buf, &a) == 1;
}


/* authority = [ userinfo "@" ] host [ ":" port ] */
static int
eb_ce_uri_authority(const unsigned char *p, size_t len)
{
    const unsigned char  *at, *end, *close, *colon;

    end = p + len;

    at = memchr(p, '@', len);
    if (at) {
        if (!eb_ce_uri_chars(p, at - p, ":")) {
            return 0;
        }

        p = at + 1;
    }

    if (p < end && *p == '[') {
        close = memchr(p, ']', end - p);
        if (close == NULL || !eb_ce_ip_literal(p + 1, close - p - 1)) {
            return 0;
        }

        colon = close + 1;

        if (colon < end && *colon != ':') {
            return 0;
        }

    } else {
        colon = memchr(p, ':', end - p);
        if (colon == NULL) {
            colon = end;
        }

        if (!eb_ce_uri_chars(p, colon - p, "")) {
            return 0;
        }
    }

    if (colon < end) {
        for (p = colon + 1; p < end; p++) {
            if (!eb_ce_digit(*p)) {
                return 0;
            }
        }
    }

    return 1;
}


static const unsigned char *
eb_ce_find(const unsigned char *p, const unsigned char *end, unsigned char c)
{
    const unsigned char  *f;

    f = (p < end) ? memchr(p, c, end - p) : NULL;

    return f ? f : end;
}


static int
eb_ce_uri_parse(const unsigned char *p, size_t len, int need_scheme)
{
    const unsigned char  *s, *end, *q, *f, *a, *seg;
    int                   scheme;

    if (len == 0) {
        /* a relative reference; p may be NULL */
        return !need_scheme;
    }

    end = p + len;
    s = p;
    scheme = 0;

    /* scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ) ":" */
    if (len > 0 && eb_ce_alpha(p[0])) {
        for (a = p + 1; a < end; a++) {
            if (!eb_ce_alpha(*a) && !eb_ce_digit(*a) && *a != '+'
                && *a != '-' && *a != '.')
            {
                break;
            }
        }

        if (a < end && *a == ':') {
            scheme = 1;
            s = a + 1;
        }
    }

    if (need_scheme && !scheme) {
        return 0;
    }

    /* [ "?" query ] [ "#" fragment ] */
    f = eb_ce_find(s, end, '#');

    if (f < end && !eb_ce_uri_chars(f + 1, end - f - 1, ":@/?")) {
        return 0;
    }

    q = eb_ce_find(s, f, '?');

    if (q < f && !eb_ce_uri_chars(q + 1, f - q - 1, ":@/?")) {
        return 0;
    }

    /* "//" authority path-abempty */
    if (q - s >= 2 && s[0] == '/' && s[1] == '/') {
        a = s + 2;
        s = eb_ce_find(a, q, '/');

        if (!eb_ce_uri_authority(a, s - a)) {
            return 0;
        }

        return eb_ce_uri_chars(s, q - s, ":@/");
    }

    /* path-noscheme: a relative path's first segment has no ":" */
    if (!scheme) {
        for (seg = s; seg < q && *seg != '/'; seg++) {
            if (*seg == ':') {
                return 0;
            }
        }
    }

    return eb_ce_uri_chars(s, q - s, ":@/");
}


int
eb_ce_uri_reference_valid(const unsigned char *p, size_t len)
{
    return eb_ce_uri_parse(p, len, 0);
}


int
eb_ce_uri_valid(const unsigned char *p, size_t len)
{
    return eb_ce_uri_parse(p, len, 1);
}


/* RFC 3339 */

static int
eb_ce_num(const unsigned char *p, size_t n, unsigned *v)
{
    size_t  i;

    *v = 0;

    for (i = 0; i < n; i++) {
        if (!eb_ce_digit(p[i])) {
            return 0;
        }

        *v = *v * 10 + (p[i] - '0');
    }

    return 1;
}


int
eb_ce_timestamp_valid(const unsigned char *p, size_t len)
{
    size_t    i;
    unsigned  y, mo, d, h, mi, s, oh, om, mdays;

    static const unsigned char  days[] = {
        31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31
    };

    /* full-date "T" partial-time */
    if (len < 20
        || !eb_ce_num(p, 4, &y) || p[4] != '-'
        || !eb_ce_num(p + 5, 2, &mo) || p[7] != '-'
        || !eb_ce_num(p + 8, 2, &d)
        || (p[10] != 'T' && p[10] != 't')
        || !eb_ce_num(p + 11, 2, &h) || p[13] != ':'
        || !eb_ce_num(p + 14, 2, &mi) || p[16] != ':'
        || !eb_ce_num(p + 17, 2, &s))
    {
        return 0;
    }

    if (mo < 1 || mo > 12 || h > 23 || mi > 59 || s > 60) {
        return 0;
    }

    mdays = days[mo - 1];

    if (mo == 2 && y % 4 == 0 && (y % 100 != 0 || y % 400 == 0)) {
        mdays = 29;
    }

    if (d < 1 || d > mdays) {
        return 0;
    }

    i = 19;

    /* time-secfrac = "." 1*DIGIT */
    if (p[i] == '.') {
        for (i++; i < len && eb_ce_digit(p[i]); i++) {
            /* void */
        }

        if (i == 20) {
            return 0;
        }
    }

    /* time-offset = "Z" / ( "+" / "-" ) time-hour ":" time-minute */
    if (i < len && (p[i] == 'Z' || p[i] == 'z')) {
        return i + 1 == len;
    }

    if (i + 6 != len || (p[i] != '+' && p[i] != '-')
        || !eb_ce_num(p + i + 1, 2, &oh) || p[i + 3] != ':'
        || !eb_ce_num(p + i + 4, 2, &om))
    {
        return 0;
    }

    return oh <= 23 && om <= 59;
}


/* RFC 2045 media types */

typedef struct {
    const unsigned char  *type;
    size_t                type_len;
    const unsigned char  *charset;      /* raw, quotes stripped */
    size_t                charset_len;
    int                   charset_quoted;
} eb_ce_media_t;


/* token: any CHAR except SPACE, CTLs and tspecials */
static size_t
eb_ce_token(const unsigned char *p, size_t i, size_t len)
{
    for ( ; i < len; i++) {
        if (p[i] <= 0x20 || p[i] >= 0x7F
            || strchr("()<>@,;:\\\"/[]?=", p[i]) != NULL)
        {
            break;
        }
    }

    return i;
}


static int
eb_ce_media_parse(const unsigned char *p, size_t len, eb_ce_media_t *m)
{
    size_t  i, j, a, v;

    memset(m, 0, sizeof(eb_ce_media_t));

    i = eb_ce_token(p, 0, len);
    if (i == 0 || i == len || p[i] != '/') {
        return 0;
    }

    m->type = p;
    m->type_len = i;

    j = eb_ce_token(p, i + 1, len);
    if (j == i + 1) {
        return 0;
    }

    i = j;

    /* *( OWS ";" OWS [ parameter ] ), parameter = token "=" value */
    for ( ;; ) {
        while (i < len && eb_ce_ows(p[i])) {
            i++;
        }

        if (i == len) {
            return i == j;      /* no whitespace after the last item */
        }

        if (p[i] != ';') {
            return 0;
        }

        i++;

        while (i < len && eb_ce_ows(p[i])) {
            i++;
        }

        if (i == len || p[i] == ';') {
            j = i;
            continue;
        }

        a = i;
        i = eb_ce_token(p, i, len);

        if (i == a || i == len || p[i] != '=') {
            return 0;
        }

        v = ++i;

        if (i < len && p[i] == '"') {
            for (i++; i < len && p[i] != '"'; i++) {
                if (p[i] == '\\') {
                    i++;
                }

                if (i == len
                    || (p[i] < 0x20 && p[i] != '\t') || p[i] >= 0x7F)
                {
                    return 0;
                }
            }

            if (i == len) {
                return 0;
            }

            i++;

        } else {
            i = eb_ce_token(p, i, len);

            if (i == v) {
                return 0;
            }
        }

        if (eb_ce_caseeq(p + a, v - 1 - a, "charset")) {
            m->charset_quoted = (p[v] == '"');
            m->charset = p + v + m->charset_quoted;
            m->charset_len = i - v - 2 * m->charset_quoted;
        }

        j = i;
    }
}


int
eb_ce_media_type_valid(const unsigned char *p, size_t len)
{
    eb_ce_media_t  m;

    return eb_ce_media_parse(p, len, &m);
}


/* text/... whose charset, if any, is UTF-8 or its subset US-ASCII */
int
eb_ce_media_utf8_text(const unsigned char *p, size_t len)
{
    eb_ce_media_t  m;

    if (!eb_ce_media_parse(p, len, &m) || !eb_ce_caseeq(m.type, m.type_len,
                                                        "text"))
    {
        return 0;
    }

    return m.charset == NULL
           || eb_ce_caseeq(m.charset, m.charset_len, "utf-8")
           || eb_ce_caseeq(m.charset, m.charset_len, "us-ascii");
}


/* RFC 4648 */

static int
eb_ce_b64_char(unsigned char c)
{
    return eb_ce_alpha(c) || eb_ce_digit(c) || c == '+' || c == '/';
}


int
eb_ce_base64_valid(const unsigned char *p, size_t len)
{
    size_t  i, n;

    if (len % 4 != 0) {
        return 0;
    }

    n = len;

    if (n > 0 && p[n - 1] == '=') {
        n--;

        if (p[n - 1] == '=') {
            n--;
        }
    }

    for (i = 0; i < n; i++) {
        if (!eb_ce_b64_char(p[i])) {
            return 0;
        }
    }

    return 1;
}
