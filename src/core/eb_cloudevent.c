#include <arpa/inet.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "eb_cloudevent.h"
#include "eb_json.h"
#include "eb_utf8.h"


/* members of an event, as bits */
#define EB_CE_SPECVERSION      0x0001
#define EB_CE_ID               0x0002
#define EB_CE_SOURCE           0x0004
#define EB_CE_TYPE             0x0008
#define EB_CE_DATACONTENTTYPE  0x0010
#define EB_CE_DATASCHEMA       0x0020
#define EB_CE_SUBJECT          0x0040
#define EB_CE_TIME             0x0080
#define EB_CE_DATA             0x0100
#define EB_CE_DATA_BASE64      0x0200

#define EB_CE_REQUIRED                                                        \
    (EB_CE_SPECVERSION | EB_CE_ID | EB_CE_SOURCE | EB_CE_TYPE)

/* an extension name as a sort key: its length, then the name, 0-padded */
#define EB_CE_NAME_SLOT        (EB_CE_NAME_MAX + 1)

/* longest piece of sender text quoted in an error message */
#define EB_CE_QUOTE_MAX        40


typedef enum {
    EB_CE_T_SPEC,               /* the string "1.0" */
    EB_CE_T_STRING,             /* a non-empty string */
    EB_CE_T_URI_REF,            /* a non-empty URI-reference */
    EB_CE_T_URI,                /* an absolute URI */
    EB_CE_T_TIMESTAMP,
    EB_CE_T_MEDIA_TYPE,
    EB_CE_T_SERVER              /* an extension the bus sets itself */
} eb_ce_type_t;


typedef struct {
    const char    *name;
    size_t         len;
    unsigned       bit;
    eb_ce_type_t   type;
} eb_ce_attr_t;


#define eb_ce_attr(name, bit, type)  { name, sizeof(name) - 1, bit, type }

/* in the order "missing" is reported */
static const eb_ce_attr_t  eb_ce_attrs[] = {
    eb_ce_attr("specversion", EB_CE_SPECVERSION, EB_CE_T_SPEC),
    eb_ce_attr("id", EB_CE_ID, EB_CE_T_STRING),
    eb_ce_attr("source", EB_CE_SOURCE, EB_CE_T_URI_REF),
    eb_ce_attr("type", EB_CE_TYPE, EB_CE_T_STRING),
    eb_ce_attr("datacontenttype", EB_CE_DATACONTENTTYPE, EB_CE_T_MEDIA_TYPE),
    eb_ce_attr("dataschema", EB_CE_DATASCHEMA, EB_CE_T_URI),
    eb_ce_attr("subject", EB_CE_SUBJECT, EB_CE_T_STRING),
    eb_ce_attr("time", EB_CE_TIME, EB_CE_T_TIMESTAMP),
    eb_ce_attr("aliyunpublishtime", 0, EB_CE_T_SERVER),
    eb_ce_attr("aliyuneventbusname", 0, EB_CE_T_SERVER),
    eb_ce_attr("aliyunregionid", 0, EB_CE_T_SERVER),
    eb_ce_attr("aliyunaccountid", 0, EB_CE_T_SERVER),
    eb_ce_attr("aliyunpublishaddr", 0, EB_CE_T_SERVER)
};


typedef enum {
    EB_CE_V_NULL,
    EB_CE_V_STRING,             /* decoded text */
    EB_CE_V_NUMBER,             /* JSON number text */
    EB_CE_V_BOOLEAN,            /* "true" or "false" */
    EB_CE_V_OBJECT,
    EB_CE_V_ARRAY
} eb_ce_value_t;


typedef enum {
    EB_CE_DATA_NONE,
    EB_CE_DATA_JSON,            /* JSON text, copied without whitespace */
    EB_CE_DATA_TEXT,            /* UTF-8 bytes, written as a JSON string */
    EB_CE_DATA_ENCODE           /* bytes, written base64-encoded */
} eb_ce_data_t;


/* one event being built into out */
typedef struct {
    const eb_ce_ctx_t    *ctx;
    eb_buf_t             *out;
    eb_ce_error_t        *err;

    size_t                start;        /* out->len before the event */
    unsigned              seen;         /* members met, null or not */
    unsigned              present;      /* attributes that have a value */
    int                   ct_json;      /* datacontenttype declares JSON */
    size_t                id_off;       /* the id's JSON text in out */
    size_t                id_len;

    const char           *data_name;
    eb_ce_data_t          data_how;
    const unsigned char  *data;
    size_t                data_len;
    const unsigned char  *b64;          /* a structured data_base64 */
    size_t                b64_len;

    eb_buf_t              scratch;      /* a decoded string */
    int                   surrogate;    /* ... had an unpaired surrogate */
    eb_buf_t              names;        /* extension names, as slots */
} eb_ce_event_t;


static int eb_ce_fail(eb_ce_error_t *err, const char *code, const char *fmt,
    ...)
#ifdef __GNUC__
    __attribute__ ((format (printf, 3, 4)))
#endif
    ;


/* character classes */

static int
eb_ce_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}


static int
eb_ce_alpha(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}


static int
eb_ce_hex(unsigned char c)
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


static int
eb_ce_ows(unsigned char c)
{
    return c == ' ' || c == '\t';
}


static int
eb_ce_json_ws(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}


static int
eb_ce_eq(const unsigned char *p, size_t len, const char *s)
{
    size_t  n;

    n = strlen(s);

    return len == n && (n == 0 || memcmp(p, s, n) == 0);
}


static int
eb_ce_caseeq(const unsigned char *p, size_t len, const char *s)
{
    size_t  n;

    n = strlen(s);

    return len == n && (n == 0 || strncasecmp((const char *) p, s, n) == 0);
}


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
            if (i + 2 >= len || eb_ce_hex(p[i + 1]) < 0
                || eb_ce_hex(p[i + 2]) < 0)
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
        for (i = 1; i < len && eb_ce_hex(p[i]) >= 0; i++) {
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
        if (eb_ce_hex(p[i]) < 0 && p[i] != ':' && p[i] != '.') {
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
static int
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


/* HTTP binding 3.1.3.2 */

ssize_t
eb_ce_header_decode(unsigned char *dst, const unsigned char *src,
    size_t len, size_t *bad)
{
    size_t         i, end, n, k;
    int            hi, lo;
    unsigned char  c;

    i = 0;
    end = len;

    while (i < end && eb_ce_ows(src[i])) {
        i++;
    }

    while (end > i && eb_ce_ows(src[end - 1])) {
        end--;
    }

    n = 0;

    if (i < end && src[i] == '"') {

        /* quoted-string = DQUOTE *( qdtext / quoted-pair ) DQUOTE */
        for (i++; ; i++) {
            if (i == end) {
                *bad = i;
                return -1;
            }

            c = src[i];

            if (c == '"') {
                break;
            }

            if (c == '\\') {
                if (++i == end) {
                    *bad = i;
                    return -1;
                }

                c = src[i];
            }

            if ((c < 0x20 && c != '\t') || c == 0x7F) {
                *bad = i;
                return -1;
            }

            dst[n++] = c;
        }

        if (i + 1 != end) {
            *bad = i + 1;
            return -1;
        }

    } else if (end > i) {
        n = end - i;
        memmove(dst, src + i, n);
    }

    /* one round of percent-decoding, in place */
    for (i = 0, k = 0; i < n; k++) {
        if (dst[i] != '%') {
            dst[k] = dst[i++];
            continue;
        }

        hi = (i + 2 < n) ? eb_ce_hex(dst[i + 1]) : -1;
        lo = (i + 2 < n) ? eb_ce_hex(dst[i + 2]) : -1;

        if (hi < 0 || lo < 0) {
            *bad = i;
            return -1;
        }

        dst[k] = (unsigned char) (hi << 4 | lo);
        i += 3;
    }

    return (ssize_t) k;
}


/* output */

static void
eb_ce_put(eb_buf_t *b, const char *s)
{
    (void) eb_buf_append(b, s, strlen(s));
}


static void
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

    (void) eb_buf_append(b, p + run, len - run);
    (void) eb_buf_append(b, "\"", 1);
}


static void
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


/* errors */

static int
eb_ce_fail(eb_ce_error_t *err, const char *code, const char *fmt, ...)
{
    va_list  args;

    err->code = code;

    va_start(args, fmt);
    vsnprintf(err->message, sizeof(err->message), fmt, args);
    va_end(args);

    return -1;
}


/* Sender text for a message: printable ASCII, others as '?', cut short. */
static const char *
eb_ce_quote(char *buf, const unsigned char *p, size_t len)
{
    size_t  i, n;

    n = len > EB_CE_QUOTE_MAX ? EB_CE_QUOTE_MAX : len;

    for (i = 0; i < n; i++) {
        buf[i] = (p[i] >= 0x20 && p[i] < 0x7F) ? (char) p[i] : '?';
    }

    strcpy(buf + n, len > n ? "..." : "");

    return buf;
}


#define EB_CE_QUOTE_BUF  (EB_CE_QUOTE_MAX + sizeof("..."))


static int
eb_ce_nomem(eb_ce_event_t *ev)
{
    return ev->out->failed || ev->scratch.failed || ev->names.failed;
}


/* the event */

static void
eb_ce_event_init(eb_ce_event_t *ev, const eb_ce_ctx_t *ctx, eb_buf_t *out,
    eb_ce_error_t *err)
{
    memset(ev, 0, sizeof(eb_ce_event_t));

    ev->ctx = ctx;
    ev->out = out;
    ev->err = err;

    eb_buf_init(&ev->scratch);
    eb_buf_init(&ev->names);
}


static void
eb_ce_event_free(eb_ce_event_t *ev)
{
    eb_buf_free(&ev->scratch);
    eb_buf_free(&ev->names);
}


static void
eb_ce_event_begin(eb_ce_event_t *ev)
{
    ev->start = ev->out->len;
    ev->seen = 0;
    ev->present = 0;
    ev->ct_json = 0;
    ev->id_off = 0;
    ev->id_len = 0;
    ev->data_name = NULL;
    ev->data_how = EB_CE_DATA_NONE;
    ev->data = NULL;
    ev->data_len = 0;
    ev->b64 = NULL;
    ev->b64_len = 0;
    ev->names.len = 0;

    (void) eb_buf_append(ev->out, "{", 1);
}


/* '"name":' after a comma if a member came before */
static void
eb_ce_put_key(eb_ce_event_t *ev, const char *name, size_t len)
{
    if (ev->out->len > ev->start + 1) {
        (void) eb_buf_append(ev->out, ",", 1);
    }

    (void) eb_buf_append(ev->out, "\"", 1);
    (void) eb_buf_append(ev->out, name, len);
    (void) eb_buf_append(ev->out, "\":", 2);
}


static const eb_ce_attr_t *
eb_ce_attr_find(const unsigned char *name, size_t len)
{
    size_t  i;

    for (i = 0; i < sizeof(eb_ce_attrs) / sizeof(eb_ce_attrs[0]); i++) {
        if (eb_ce_attrs[i].len == len
            && memcmp(eb_ce_attrs[i].name, name, len) == 0)
        {
            return &eb_ce_attrs[i];
        }
    }

    return NULL;
}


static int
eb_ce_name_error(eb_ce_event_t *ev, const unsigned char *name, size_t len)
{
    size_t  i;
    char    q[EB_CE_QUOTE_BUF];

    if (len == 0) {
        return eb_ce_fail(ev->err, EB_CE_INVALID_ATTRIBUTE_NAME,
                          "attribute name is empty");
    }

    for (i = 0; i < len; i++) {
        if (!(name[i] >= 'a' && name[i] <= 'z') && !eb_ce_digit(name[i])) {
            return eb_ce_fail(ev->err, EB_CE_INVALID_ATTRIBUTE_NAME,
                              "attribute name \"%s\" has a character other "
                              "than a-z and 0-9", eb_ce_quote(q, name, len));
        }
    }

    return eb_ce_fail(ev->err, EB_CE_INVALID_ATTRIBUTE_NAME,
                      "attribute name \"%s\" is longer than %d characters",
                      eb_ce_quote(q, name, len), EB_CE_NAME_MAX);
}


/* Integer: a JSON number without fraction or exponent, in 32 bits. */
static int
eb_ce_integer_check(eb_ce_event_t *ev, const char *name,
    const unsigned char *p, size_t len)
{
    size_t     i, neg;
    long long  v;
    char       q[EB_CE_QUOTE_BUF];

    for (i = 0; i < len; i++) {
        if (p[i] == '.' || p[i] == 'e' || p[i] == 'E') {
            return eb_ce_fail(ev->err, EB_CE_INVALID_ATTRIBUTE_VALUE,
                              "attribute \"%s\" is %s, not an integer",
                              name, eb_ce_quote(q, p, len));
        }
    }

    neg = (len > 0 && p[0] == '-');
    v = 0;

    for (i = neg; i < len && i - neg <= 10; i++) {
        v = v * 10 + (p[i] - '0');
    }

    if (i < len || v > 2147483647LL + (long long) neg) {
        return eb_ce_fail(ev->err, EB_CE_INVALID_ATTRIBUTE_VALUE,
                          "attribute \"%s\" is %s, outside the Integer range "
                          "-2147483648 to 2147483647", name,
                          eb_ce_quote(q, p, len));
    }

    return 0;
}


/* a decoded string value against its attribute's type */
static int
eb_ce_string_check(eb_ce_event_t *ev, const eb_ce_attr_t *a,
    const char *name, const unsigned char *p, size_t len)
{
    ssize_t      bad;
    const char  *why;
    char         q[EB_CE_QUOTE_BUF];

    bad = eb_ce_string_invalid_at(p, len, &why);
    if (bad >= 0) {
        return eb_ce_fail(ev->err, EB_CE_INVALID_ATTRIBUTE_VALUE,
                          "attribute \"%s\" has %s at byte %zd", name, why,
                          bad);
    }

    if (ev->surrogate) {
        return eb_ce_fail(ev->err, EB_CE_INVALID_ATTRIBUTE_VALUE,
                          "attribute \"%s\" has an unpaired surrogate "
                          "escape", name);
    }

    if (a == NULL) {
        return 0;
    }

    if (len == 0 && a->type != EB_CE_T_SPEC && a->type != EB_CE_T_SERVER) {
        return eb_ce_fail(ev->err, EB_CE_INVALID_ATTRIBUTE_VALUE,
                          "attribute \"%s\" is empty", name);
    }

    switch (a->type) {

    case EB_CE_T_SPEC:
        if (!eb_ce_eq(p, len, "1.0")) {
            return eb_ce_fail(ev->err, EB_CE_INVALID_SPEC_VERSION,
                              "attribute \"specversion\" is \"%s\"; only "
                              "\"1.0\" is supported", eb_ce_quote(q, p, len));
        }

        break;

    case EB_CE_T_URI_REF:
        if (!eb_ce_uri_reference_valid(p, len)) {
            return eb_ce_fail(ev->err, EB_CE_INVALID_ATTRIBUTE_VALUE,
                              "attribute \"%s\" is not a URI-reference "
                              "(RFC 3986)", name);
        }

        break;

    case EB_CE_T_URI:
        if (!eb_ce_uri_valid(p, len)) {
            return eb_ce_fail(ev->err, EB_CE_INVALID_ATTRIBUTE_VALUE,
                              "attribute \"%s\" is not an absolute URI "
                              "(RFC 3986)", name);
        }

        break;

    case EB_CE_T_TIMESTAMP:
        if (!eb_ce_timestamp_valid(p, len)) {
            return eb_ce_fail(ev->err, EB_CE_INVALID_ATTRIBUTE_VALUE,
                              "attribute \"%s\" is not an RFC 3339 "
                              "timestamp", name);
        }

        break;

    case EB_CE_T_MEDIA_TYPE:
        if (!eb_ce_media_type_valid(p, len)) {
            return eb_ce_fail(ev->err, EB_CE_INVALID_ATTRIBUTE_VALUE,
                              "attribute \"%s\" is not a media type "
                              "(RFC 2046)", name);
        }

        ev->ct_json = eb_json_content_type(p, len);
        break;

    default:
        break;
    }

    return 0;
}


/*
 * One attribute: name is valid (a-z, 0-9, at most EB_CE_NAME_MAX); v is
 * the decoded text of a string, the JSON text of a number or boolean.
 * Checked, then written to out unless it is null or the bus's own.
 */
static int
eb_ce_attribute(eb_ce_event_t *ev, const unsigned char *name, size_t nlen,
    eb_ce_value_t vt, const unsigned char *v, size_t vlen)
{
    char                 n[EB_CE_NAME_MAX + 1];
    unsigned char        slot[EB_CE_NAME_SLOT];
    const eb_ce_attr_t  *a;

    memcpy(n, name, nlen);
    n[nlen] = '\0';

    a = eb_ce_attr_find(name, nlen);

    if (a && a->bit) {
        if (ev->seen & a->bit) {
            return eb_ce_fail(ev->err, EB_CE_DUPLICATE_ATTRIBUTE,
                              "attribute \"%s\" appears more than once", n);
        }

        ev->seen |= a->bit;

    } else {
        /* checked for duplicates once all are known */
        memset(slot, 0, sizeof(slot));
        slot[0] = (unsigned char) nlen;
        memcpy(slot + 1, name, nlen);
        (void) eb_buf_append(&ev->names, slot, sizeof(slot));
    }

    switch (vt) {

    case EB_CE_V_NULL:
        /* unset */
        return 0;

    case EB_CE_V_OBJECT:
    case EB_CE_V_ARRAY:
        return eb_ce_fail(ev->err, EB_CE_INVALID_ATTRIBUTE_VALUE,
                          "attribute \"%s\" is %s; attribute values are "
                          "strings, integers or booleans", n,
                          vt == EB_CE_V_OBJECT ? "an object" : "an array");

    case EB_CE_V_NUMBER:
    case EB_CE_V_BOOLEAN:
        if (a && a->type != EB_CE_T_SERVER) {
            return eb_ce_fail(ev->err, EB_CE_INVALID_ATTRIBUTE_VALUE,
                              "attribute \"%s\" must be a string", n);
        }

        if (vt == EB_CE_V_NUMBER
            && eb_ce_integer_check(ev, n, v, vlen) != 0)
        {
            return -1;
        }

        break;

    case EB_CE_V_STRING:
        if (eb_ce_string_check(ev, a, n, v, vlen) != 0) {
            return -1;
        }

        break;
    }

    if (a && a->type == EB_CE_T_SERVER) {
        /* replaced by the bus's value */
        return 0;
    }

    if (a) {
        ev->present |= a->bit;
    }

    eb_ce_put_key(ev, n, nlen);

    if (vt != EB_CE_V_STRING) {
        (void) eb_buf_append(ev->out, v, vlen);
        return 0;
    }

    if (a && a->bit == EB_CE_ID) {
        ev->id_off = ev->out->len + 1;
    }

    eb_ce_put_string(ev->out, v, vlen);

    if (a && a->bit == EB_CE_ID) {
        ev->id_len = ev->out->len - 1 - ev->id_off;
    }

    return 0;
}


static int
eb_ce_slot_cmp(const void *a, const void *b)
{
    return memcmp(a, b, EB_CE_NAME_SLOT);
}


static void
eb_ce_put_server(eb_ce_event_t *ev, const char *name, eb_bytes_t value)
{
    eb_ce_put_key(ev, name, strlen(name));
    eb_ce_put_string(ev->out, value.data, value.len);
}


/* Checks what needs the whole event, then adds the bus's attributes and
 * the data, and closes the object. */
static int
eb_ce_event_end(eb_ce_event_t *ev)
{
    size_t               i, n, len, at;
    unsigned char       *s;
    const eb_ce_ctx_t   *ctx;
    const eb_ce_attr_t  *a;

    ctx = ev->ctx;

    if (eb_ce_nomem(ev)) {
        return -1;
    }

    n = ev->names.len / EB_CE_NAME_SLOT;

    if (n > 1) {
        qsort(ev->names.data, n, EB_CE_NAME_SLOT, eb_ce_slot_cmp);

        for (i = 1; i < n; i++) {
            s = ev->names.data + i * EB_CE_NAME_SLOT;

            if (memcmp(s - EB_CE_NAME_SLOT, s, EB_CE_NAME_SLOT) == 0) {
                return eb_ce_fail(ev->err, EB_CE_DUPLICATE_ATTRIBUTE,
                                  "attribute \"%.*s\" appears more than "
                                  "once", (int) s[0], (char *) s + 1);
            }
        }
    }

    for (a = eb_ce_attrs; a->bit; a++) {
        if ((EB_CE_REQUIRED & a->bit) && !(ev->present & a->bit)) {
            return eb_ce_fail(ev->err, EB_CE_MISSING_ATTRIBUTE,
                              "required attribute \"%s\" is missing",
                              a->name);
        }
    }

    if (ev->b64) {
        if (ev->data_how != EB_CE_DATA_NONE) {
            return eb_ce_fail(ev->err, EB_CE_INVALID_DATA,
                              "\"data\" and \"data_base64\" are mutually "
                              "exclusive");
        }

        ev->data_name = "data_base64";
        ev->data_how = EB_CE_DATA_JSON;
        ev->data = ev->b64;
        ev->data_len = ev->b64_len;

    } else if (ev->data_how == EB_CE_DATA_JSON
               && (ev->present & EB_CE_DATACONTENTTYPE) && !ev->ct_json
               && ev->data[0] != '"')
    {
        /* JSON format 3.1.2: MAY fail when the data is not a string */
        return eb_ce_fail(ev->err, EB_CE_INVALID_DATA,
                          "\"data\" must be a string: datacontenttype does "
                          "not declare JSON");
    }

    eb_ce_put_server(ev, "aliyunpublishtime", ctx->publish_time);
    eb_ce_put_server(ev, "aliyuneventbusname", ctx->bus);
    eb_ce_put_server(ev, "aliyunregionid", ctx->region);
    eb_ce_put_server(ev, "aliyunaccountid", ctx->account);
    eb_ce_put_server(ev, "aliyunpublishaddr", ctx->publish_addr);

    switch (ev->data_how) {

    case EB_CE_DATA_NONE:
        break;

    case EB_CE_DATA_JSON:
        eb_ce_put_key(ev, ev->data_name, strlen(ev->data_name));

        at = ev->out->len;

        if (eb_buf_append(ev->out, ev->data, ev->data_len) == 0) {
            len = eb_json_minify(ev->out->data + at, ev->data_len);
            ev->out->len = at + len;
        }

        break;

    case EB_CE_DATA_TEXT:
        eb_ce_put_key(ev, "data", 4);
        eb_ce_put_string(ev->out, ev->data, ev->data_len);
        break;

    case EB_CE_DATA_ENCODE:
        eb_ce_put_key(ev, "data_base64", 11);
        eb_ce_put_base64(ev->out, ev->data, ev->data_len);
        break;
    }

    (void) eb_buf_append(ev->out, "}", 1);

    if (eb_ce_nomem(ev)) {
        return -1;
    }

    len = ev->out->len - ev->start;

    if (ctx->max_event_size && len > ctx->max_event_size) {
        return eb_ce_fail(ev->err, EB_CE_EVENT_TOO_LARGE,
                          "event is %zu bytes as stored; at most %zu", len,
                          ctx->max_event_size);
    }

    return 0;
}


/* Sets entry from the outcome of one event, and out back on failure. */
static eb_ce_rc_t
eb_ce_event_done(eb_ce_event_t *ev, int rc, eb_ce_entry_t *entry)
{
    if (eb_ce_nomem(ev)) {
        ev->out->len = ev->start;
        eb_ce_fail(&entry->error, EB_CE_INTERNAL_ERROR, "out of memory");
        return EB_CE_NOMEM;
    }

    if (rc != 0) {
        ev->out->len = ev->start;
        return EB_CE_INVALID;
    }

    entry->event.data = ev->out->data + ev->start;
    entry->event.len = ev->out->len - ev->start;
    entry->id.data = ev->out->data + ev->id_off;
    entry->id.len = ev->id_len;

    return EB_CE_OK;
}


static void
eb_ce_entry_init(eb_ce_entry_t *entry, size_t index)
{
    entry->index = index;
    entry->event.data = NULL;
    entry->event.len = 0;
    entry->id.data = NULL;
    entry->id.len = 0;
    entry->error.code = NULL;
    entry->error.message[0] = '\0';
}


/* JSON texts eb_json_validate() accepted */

static size_t
eb_ce_ws(const unsigned char *p, size_t i, size_t end)
{
    while (i < end && eb_ce_json_ws(p[i])) {
        i++;
    }

    return i;
}


/* p[i] is '"': the offset past the closing quote */
static size_t
eb_ce_skip_string(const unsigned char *p, size_t i, size_t end)
{
    for (i++; i < end; i++) {
        if (p[i] == '\\') {
            i++;

        } else if (p[i] == '"') {
            return i + 1;
        }
    }

    return end;
}


/* the offset past the value that starts at p[i] */
static size_t
eb_ce_skip_value(const unsigned char *p, size_t i, size_t end)
{
    size_t  depth;

    depth = 0;

    while (i < end) {
        switch (p[i]) {

        case '"':
            i = eb_ce_skip_string(p, i, end);
            break;

        case '{':
        case '[':
            depth++;
            i++;
            break;

        case '}':
        case ']':
            if (depth == 0) {
                return i;
            }

            depth--;
            i++;
            break;

        default:
            if (depth > 0) {
                i++;
                break;
            }

            /* a number or literal runs to a delimiter */
            while (i < end && p[i] != ',' && p[i] != '}' && p[i] != ']'
                   && p[i] != ':' && !eb_ce_json_ws(p[i]))
            {
                i++;
            }

            return i;
        }

        if (depth == 0) {
            return i;
        }
    }

    return end;
}


static int
eb_ce_hex4(const unsigned char *p, size_t i, size_t end)
{
    int  v, k, h;

    if (end - i < 4) {
        return -1;
    }

    for (v = 0, k = 0; k < 4; k++) {
        h = eb_ce_hex(p[i + k]);
        if (h < 0) {
            return -1;
        }

        v = v << 4 | h;
    }

    return v;
}


static void
eb_ce_put_utf8(eb_buf_t *b, uint32_t cp)
{
    unsigned char  u[4];
    size_t         n;

    if (cp < 0x80) {
        u[0] = (unsigned char) cp;
        n = 1;

    } else if (cp < 0x800) {
        u[0] = (unsigned char) (0xC0 | cp >> 6);
        u[1] = (unsigned char) (0x80 | (cp & 0x3F));
        n = 2;

    } else if (cp < 0x10000) {
        u[0] = (unsigned char) (0xE0 | cp >> 12);
        u[1] = (unsigned char) (0x80 | ((cp >> 6) & 0x3F));
        u[2] = (unsigned char) (0x80 | (cp & 0x3F));
        n = 3;

    } else {
        u[0] = (unsigned char) (0xF0 | cp >> 18);
        u[1] = (unsigned char) (0x80 | ((cp >> 12) & 0x3F));
        u[2] = (unsigned char) (0x80 | ((cp >> 6) & 0x3F));
        u[3] = (unsigned char) (0x80 | (cp & 0x3F));
        n = 4;
    }

    (void) eb_buf_append(b, u, n);
}


/* Decodes the string at p[i] == '"' into ev->scratch; an unpaired
 * surrogate escape becomes U+FFFD and sets ev->surrogate. Returns the
 * offset past the closing quote. */
static size_t
eb_ce_decode_string(eb_ce_event_t *ev, const unsigned char *p, size_t i,
    size_t end)
{
    size_t          run;
    int             cp, lo;
    unsigned char   c;
    eb_buf_t       *b;

    b = &ev->scratch;
    b->len = 0;
    ev->surrogate = 0;

    for (i++; i < end && p[i] != '"'; ) {
        run = i;

        while (i < end && p[i] != '"' && p[i] != '\\') {
            i++;
        }

        (void) eb_buf_append(b, p + run, i - run);

        if (i >= end || p[i] == '"') {
            break;
        }

        if (i + 1 >= end) {
            return end;
        }

        c = p[i + 1];
        i += 2;

        switch (c) {
        case 'b':
            c = '\b';
            break;
        case 'f':
            c = '\f';
            break;
        case 'n':
            c = '\n';
            break;
        case 'r':
            c = '\r';
            break;
        case 't':
            c = '\t';
            break;
        case 'u':
            cp = eb_ce_hex4(p, i, end);
            if (cp < 0) {
                return end;
            }

            i += 4;

            if (cp >= 0xD800 && cp <= 0xDBFF) {
                lo = (end - i >= 6 && p[i] == '\\' && p[i + 1] == 'u')
                     ? eb_ce_hex4(p, i + 2, end) : -1;

                if (lo >= 0xDC00 && lo <= 0xDFFF) {
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                    i += 6;

                } else {
                    cp = 0xFFFD;
                    ev->surrogate = 1;
                }

            } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
                cp = 0xFFFD;
                ev->surrogate = 1;
            }

            eb_ce_put_utf8(b, (uint32_t) cp);
            continue;
        default:
            /* '"', '\\', '/' stand for themselves */
            break;
        }

        (void) eb_buf_append(b, &c, 1);
    }

    return (i < end) ? i + 1 : end;
}


static int
eb_ce_unexpected(eb_ce_event_t *ev, size_t at)
{
    return eb_ce_fail(ev->err, EB_CE_INVALID_JSON,
                      "invalid JSON at byte %zu", at);
}


/* One member of an event object in the JSON format. */
static int
eb_ce_member(eb_ce_event_t *ev, const unsigned char *name, size_t nlen,
    const unsigned char *p, size_t vs, size_t ve)
{
    unsigned       bit;
    eb_ce_value_t  vt;

    if (eb_ce_eq(name, nlen, "data") || eb_ce_eq(name, nlen, "data_base64")) {
        bit = (nlen == 4) ? EB_CE_DATA : EB_CE_DATA_BASE64;

        if (ev->seen & bit) {
            return eb_ce_fail(ev->err, EB_CE_DUPLICATE_ATTRIBUTE,
                              "\"%s\" appears more than once",
                              bit == EB_CE_DATA ? "data" : "data_base64");
        }

        ev->seen |= bit;

        if (bit == EB_CE_DATA) {
            /* null too: an explicit null payload */
            ev->data_name = "data";
            ev->data_how = EB_CE_DATA_JSON;
            ev->data = p + vs;
            ev->data_len = ve - vs;
            return 0;
        }

        if (p[vs] == 'n') {
            return 0;
        }

        if (p[vs] != '"') {
            return eb_ce_fail(ev->err, EB_CE_INVALID_DATA,
                              "\"data_base64\" must be a string");
        }

        (void) eb_ce_decode_string(ev, p, vs, ve);

        if (!eb_ce_base64_valid(ev->scratch.data, ev->scratch.len)) {
            return eb_ce_fail(ev->err, EB_CE_INVALID_DATA,
                              "\"data_base64\" is not valid base64 "
                              "(RFC 4648)");
        }

        ev->b64 = p + vs;
        ev->b64_len = ve - vs;
        return 0;
    }

    switch (p[vs]) {
    case '"':
        vt = EB_CE_V_STRING;
        (void) eb_ce_decode_string(ev, p, vs, ve);
        return eb_ce_attribute(ev, name, nlen, vt, ev->scratch.data,
                               ev->scratch.len);
    case '{':
        vt = EB_CE_V_OBJECT;
        break;
    case '[':
        vt = EB_CE_V_ARRAY;
        break;
    case 'n':
        vt = EB_CE_V_NULL;
        break;
    case 't':
    case 'f':
        vt = EB_CE_V_BOOLEAN;
        break;
    default:
        vt = EB_CE_V_NUMBER;
    }

    return eb_ce_attribute(ev, name, nlen, vt, p + vs, ve - vs);
}


/* The object at p[i] == '{', up to end. */
static int
eb_ce_object(eb_ce_event_t *ev, const unsigned char *p, size_t i,
    size_t end)
{
    size_t         vs, ve, nlen;
    unsigned char  name[EB_CE_NAME_MAX];

    for (i++; ; ) {
        i = eb_ce_ws(p, i, end);

        if (i >= end) {
            return eb_ce_unexpected(ev, i);
        }

        if (p[i] == '}') {
            return 0;
        }

        if (p[i] == ',') {
            i++;
            continue;
        }

        if (p[i] != '"') {
            return eb_ce_unexpected(ev, i);
        }

        i = eb_ce_decode_string(ev, p, i, end);
        nlen = ev->scratch.len;

        if (eb_ce_eq(ev->scratch.data, nlen, "data_base64")) {
            memcpy(name, "data_base64", nlen);

        } else if (eb_ce_name_valid(ev->scratch.data, nlen)) {
            memcpy(name, ev->scratch.data, nlen);

        } else {
            return eb_ce_name_error(ev, ev->scratch.data, nlen);
        }

        i = eb_ce_ws(p, i, end);

        if (i >= end || p[i] != ':') {
            return eb_ce_unexpected(ev, i);
        }

        vs = eb_ce_ws(p, i + 1, end);
        ve = eb_ce_skip_value(p, vs, end);

        if (vs >= ve) {
            return eb_ce_unexpected(ev, vs);
        }

        if (eb_ce_member(ev, name, nlen, p, vs, ve) != 0) {
            return -1;
        }

        if (eb_ce_nomem(ev)) {
            return -1;
        }

        i = ve;
    }
}


/* one event in the JSON format, at p[i] == '{' */
static eb_ce_rc_t
eb_ce_json_event(eb_ce_event_t *ev, const unsigned char *p, size_t i,
    size_t end, eb_ce_entry_t *entry)
{
    int  rc;

    ev->err = &entry->error;

    eb_ce_event_begin(ev);

    rc = eb_ce_object(ev, p, i, end);

    if (rc == 0) {
        rc = eb_ce_event_end(ev);
    }

    return eb_ce_event_done(ev, rc, entry);
}


/* The next element of the array whose elements start at or after p[*i]:
 * its bounds in *vs and *ve, *i moved past it. Returns 0 at the end. */
static int
eb_ce_element(const unsigned char *p, size_t *i, size_t end, size_t *vs,
    size_t *ve)
{
    size_t  k;

    for (k = *i; ; k++) {
        k = eb_ce_ws(p, k, end);

        if (k >= end || p[k] == ']') {
            return 0;
        }

        if (p[k] != ',') {
            break;
        }
    }

    *vs = k;
    *ve = eb_ce_skip_value(p, k, end);
    *i = *ve;

    return *ve > k;
}


static eb_ce_rc_t
eb_ce_validate(const eb_ce_ctx_t *ctx, const unsigned char *p, size_t len,
    unsigned depth, const char *what, eb_ce_error_t *err)
{
    char          msg[EB_CE_MESSAGE_MAX - 32];
    eb_json_rc_t  jrc;

    jrc = eb_json_validate(p, len, depth, ctx->afs, msg, sizeof(msg));

    switch (jrc) {

    case EB_JSON_OK:
        return EB_CE_OK;

    case EB_JSON_SYNTAX:
        eb_ce_fail(err, EB_CE_INVALID_JSON, "%s: %s", what, msg);
        return EB_CE_INVALID;

    case EB_JSON_TOO_DEEP:
        eb_ce_fail(err, EB_CE_JSON_TOO_DEEP, "event nested deeper than %u "
                   "levels", ctx->max_depth);
        return EB_CE_INVALID;

    default:
        eb_ce_fail(err, EB_CE_INTERNAL_ERROR, "out of memory");
        return EB_CE_NOMEM;
    }
}


eb_ce_rc_t
eb_ce_structured(const eb_ce_ctx_t *ctx, const unsigned char *json,
    size_t len, eb_buf_t *out, eb_ce_entry_t *entry)
{
    size_t         i;
    eb_ce_rc_t     rc;
    eb_ce_event_t  ev;

    eb_ce_entry_init(entry, 0);

    rc = eb_ce_validate(ctx, json, len, ctx->max_depth, "event",
                        &entry->error);
    if (rc != EB_CE_OK) {
        return rc;
    }

    i = eb_ce_ws(json, 0, len);

    if (i >= len || json[i] != '{') {
        eb_ce_fail(&entry->error, EB_CE_INVALID_EVENT,
                   "an event must be a JSON object");
        return EB_CE_INVALID;
    }

    eb_ce_event_init(&ev, ctx, out, &entry->error);

    rc = eb_ce_json_event(&ev, json, i, len, entry);

    eb_ce_event_free(&ev);

    return rc;
}


eb_ce_rc_t
eb_ce_batch(const eb_ce_ctx_t *ctx, const unsigned char *json, size_t len,
    eb_buf_t *out, eb_ce_entry_pt handler, void *data, eb_ce_error_t *err)
{
    size_t         i, n, start, vs, ve, mark, index;
    eb_ce_rc_t     rc;
    eb_ce_event_t  ev;
    eb_ce_entry_t  entry;

    err->code = NULL;
    err->message[0] = '\0';

    if (ctx->max_batch_size && len > ctx->max_batch_size) {
        eb_ce_fail(err, EB_CE_BATCH_TOO_LARGE,
                   "batch is %zu bytes; at most %zu", len,
                   ctx->max_batch_size);
        return EB_CE_INVALID;
    }

    /* the array is one level more than its events */
    rc = eb_ce_validate(ctx, json, len, ctx->max_depth + 1, "batch", err);
    if (rc != EB_CE_OK) {
        return rc;
    }

    i = eb_ce_ws(json, 0, len);

    if (i >= len || json[i] != '[') {
        eb_ce_fail(err, EB_CE_INVALID_BATCH, "a batch must be a JSON array");
        return EB_CE_INVALID;
    }

    /* count first: the callbacks run only for a batch within the limit */
    start = i + 1;

    for (n = 0, i = start; eb_ce_element(json, &i, len, &vs, &ve); n++) {
        /* void */
    }

    if (ctx->max_entries && n > ctx->max_entries) {
        eb_ce_fail(err, EB_CE_BATCH_TOO_LARGE,
                   "batch has %zu entries; at most %zu", n, ctx->max_entries);
        return EB_CE_INVALID;
    }

    eb_ce_event_init(&ev, ctx, out, err);

    mark = out->len;
    rc = EB_CE_OK;

    for (index = 0, i = start;
         eb_ce_element(json, &i, len, &vs, &ve);
         index++)
    {
        eb_ce_entry_init(&entry, index);

        if (json[vs] == '{') {
            rc = eb_ce_json_event(&ev, json, vs, ve, &entry);

        } else {
            eb_ce_fail(&entry.error, EB_CE_INVALID_EVENT,
                       "entry %zu is not a JSON object", index);
            rc = EB_CE_INVALID;
        }

        if (rc == EB_CE_NOMEM) {
            *err = entry.error;
            break;
        }

        rc = EB_CE_OK;

        if (handler(data, &entry) != 0) {
            out->len = mark;
            rc = EB_CE_ABORTED;
            break;
        }

        out->len = mark;
    }

    eb_ce_event_free(&ev);

    return rc;
}


/* binary mode */

static int
eb_ce_header(eb_ce_event_t *ev, const eb_kv_t *h)
{
    size_t                i, nlen, at;
    ssize_t               n, bad;
    unsigned char         c;
    const unsigned char  *s;
    unsigned char         name[EB_CE_NAME_MAX];
    char                  q[EB_CE_QUOTE_BUF];

    /* ce-NAME: the attribute's name is NAME lower-cased */
    s = h->name.data + 3;
    nlen = h->name.len - 3;

    if (nlen == 0) {
        return eb_ce_fail(ev->err, EB_CE_INVALID_ATTRIBUTE_NAME,
                          "header \"%s\" names no attribute",
                          eb_ce_quote(q, h->name.data, h->name.len));
    }

    for (i = 0; i < nlen; i++) {
        c = (s[i] >= 'A' && s[i] <= 'Z') ? (s[i] | 0x20) : s[i];

        if (!(c >= 'a' && c <= 'z') && !eb_ce_digit(c)) {
            return eb_ce_fail(ev->err, EB_CE_INVALID_ATTRIBUTE_NAME,
                              "header \"%s\": an attribute name has only "
                              "a-z and 0-9",
                              eb_ce_quote(q, h->name.data, h->name.len));
        }

        if (i < EB_CE_NAME_MAX) {
            name[i] = c;
        }
    }

    if (nlen > EB_CE_NAME_MAX) {
        return eb_ce_fail(ev->err, EB_CE_INVALID_ATTRIBUTE_NAME,
                          "header \"%s\": attribute name longer than %d "
                          "characters",
                          eb_ce_quote(q, h->name.data, h->name.len),
                          EB_CE_NAME_MAX);
    }

    if (eb_ce_eq(name, nlen, "datacontenttype")) {
        return eb_ce_fail(ev->err, EB_CE_INVALID_ATTRIBUTE_NAME,
                          "header \"%s\" is not allowed in binary mode: "
                          "Content-Type is the datacontenttype",
                          eb_ce_quote(q, h->name.data, h->name.len));
    }

    if (eb_ce_eq(name, nlen, "data")) {
        return eb_ce_fail(ev->err, EB_CE_INVALID_ATTRIBUTE_NAME,
                          "header \"%s\": \"data\" is not an attribute name; "
                          "the body is the data",
                          eb_ce_quote(q, h->name.data, h->name.len));
    }

    ev->scratch.len = 0;

    if (eb_buf_append(&ev->scratch, h->value.data, h->value.len) != 0) {
        return -1;
    }

    n = eb_ce_header_decode(ev->scratch.data, ev->scratch.data,
                            ev->scratch.len, &at);
    if (n < 0) {
        return eb_ce_fail(ev->err, EB_CE_INVALID_ATTRIBUTE_VALUE,
                          "header \"%s\": malformed quoting or "
                          "percent-encoding at byte %zu",
                          eb_ce_quote(q, h->name.data, h->name.len), at);
    }

    ev->scratch.len = (size_t) n;
    ev->surrogate = 0;

    bad = eb_utf8_invalid_at(ev->scratch.data, ev->scratch.len);
    if (bad >= 0) {
        return eb_ce_fail(ev->err, EB_CE_INVALID_UTF8,
                          "header \"%s\": the percent-decoded value is not "
                          "valid UTF-8 (byte %zd)",
                          eb_ce_quote(q, h->name.data, h->name.len), bad);
    }

    return eb_ce_attribute(ev, name, nlen, EB_CE_V_STRING, ev->scratch.data,
                           ev->scratch.len);
}


eb_ce_rc_t
eb_ce_binary(const eb_ce_ctx_t *ctx, const eb_kv_t *headers,
    size_t nheaders, const unsigned char *ctype, size_t ctype_len,
    const unsigned char *body, size_t body_len, eb_buf_t *out,
    eb_ce_entry_t *entry)
{
    int            rc;
    size_t         k;
    eb_ce_rc_t     vrc;
    eb_ce_event_t  ev;

    eb_ce_entry_init(entry, 0);
    eb_ce_event_init(&ev, ctx, out, &entry->error);
    eb_ce_event_begin(&ev);

    rc = 0;

    for (k = 0; k < nheaders && rc == 0; k++) {
        if (headers[k].name.len >= 3
            && strncasecmp((const char *) headers[k].name.data, "ce-", 3)
               == 0)
        {
            rc = eb_ce_header(&ev, &headers[k]);
        }
    }

    while (ctype_len && eb_ce_ows(ctype[0])) {
        ctype++;
        ctype_len--;
    }

    while (ctype_len && eb_ce_ows(ctype[ctype_len - 1])) {
        ctype_len--;
    }

    if (rc == 0 && ctype_len) {
        ev.surrogate = 0;
        rc = eb_ce_attribute(&ev, (const unsigned char *) "datacontenttype",
                             15, EB_CE_V_STRING, ctype, ctype_len);
    }

    if (rc == 0 && body_len) {
        ev.data = body;
        ev.data_len = body_len;

        if (ev.ct_json) {
            /* the body is one level below the event */
            vrc = eb_ce_validate(ctx, body, body_len,
                                 ctx->max_depth ? ctx->max_depth - 1 : 0,
                                 "body", &entry->error);

            if (vrc == EB_CE_NOMEM) {
                out->len = ev.start;
                eb_ce_event_free(&ev);
                return vrc;
            }

            rc = (vrc == EB_CE_OK) ? 0 : -1;
            ev.data_name = "data";
            ev.data_how = EB_CE_DATA_JSON;

        } else if (ctype_len && eb_ce_media_utf8_text(ctype, ctype_len)
                   && eb_utf8_invalid_at(body, body_len) < 0)
        {
            ev.data_how = EB_CE_DATA_TEXT;

        } else {
            ev.data_how = EB_CE_DATA_ENCODE;
        }
    }

    if (rc == 0) {
        rc = eb_ce_event_end(&ev);
    }

    vrc = eb_ce_event_done(&ev, rc, entry);

    eb_ce_event_free(&ev);

    return vrc;
}


eb_ce_mode_t
eb_ce_mode(const unsigned char *p, size_t len)
{
    size_t  n;

    static const char  ce[] = "application/cloudevents";

    if (p == NULL) {
        return EB_CE_MODE_BINARY;
    }

    while (len && eb_ce_ows(*p)) {
        p++;
        len--;
    }

    for (n = 0; n < len; n++) {
        if (p[n] == ';' || eb_ce_ows(p[n])) {
            break;
        }
    }

    if (n < sizeof(ce) - 1 || strncasecmp((const char *) p, ce,
                                          sizeof(ce) - 1) != 0)
    {
        return EB_CE_MODE_BINARY;
    }

    p += sizeof(ce) - 1;
    n -= sizeof(ce) - 1;

    if (eb_ce_caseeq(p, n, "+json")) {
        return EB_CE_MODE_STRUCTURED;
    }

    if (eb_ce_caseeq(p, n, "-batch+json")) {
        return EB_CE_MODE_BATCH;
    }

    return EB_CE_MODE_UNSUPPORTED;
}


/* the answer */

void
eb_ce_answer_init(eb_ce_answer_t *a)
{
    eb_buf_init(&a->entries);
    a->count = 0;
    a->failed = 0;
}


void
eb_ce_answer_free(eb_ce_answer_t *a)
{
    eb_buf_free(&a->entries);
    a->count = 0;
    a->failed = 0;
}


int
eb_ce_answer_add(eb_ce_answer_t *a, const eb_ce_entry_t *entry)
{
    eb_buf_t  *b;

    b = &a->entries;

    if (a->count) {
        (void) eb_buf_append(b, ",", 1);
    }

    if (entry->error.code == NULL) {
        eb_ce_put(b, "{\"eventId\":\"");
        (void) eb_buf_append(b, entry->id.data, entry->id.len);
        eb_ce_put(b, "\"}");

    } else {
        eb_ce_put(b, "{\"errorCode\":");
        eb_ce_put_string(b, (const unsigned char *) entry->error.code,
                         strlen(entry->error.code));
        eb_ce_put(b, ",\"errorMessage\":");
        eb_ce_put_string(b, (const unsigned char *) entry->error.message,
                         strlen(entry->error.message));
        eb_ce_put(b, "}");
        a->failed++;
    }

    a->count++;

    return b->failed ? -1 : 0;
}


int
eb_ce_answer_finish(eb_ce_answer_t *a, eb_buf_t *out)
{
    char  head[64];
    int   n;

    if (a->entries.failed) {
        return -1;
    }

    n = snprintf(head, sizeof(head), "{\"failedEntryCount\":%zu,"
                 "\"entries\":[", a->failed);

    (void) eb_buf_append(out, head, (size_t) n);
    (void) eb_buf_append(out, a->entries.data, a->entries.len);
    (void) eb_buf_append(out, "]}", 2);

    return out->failed ? -1 : 0;
}
