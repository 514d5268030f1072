/*
 * CloudEvents HTTP binary mode: ce-* headers decoded into attributes,
 * Content-Type and body into datacontenttype and data; and the mode a
 * Content-Type selects.
 */

#include "eb_ce_int.h"
#include "eb_utf8.h"


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

        hi = (i + 2 < n) ? eb_hex(dst[i + 1]) : -1;
        lo = (i + 2 < n) ? eb_hex(dst[i + 2]) : -1;

        if (hi < 0 || lo < 0) {
            *bad = i;
            return -1;
        }

        dst[k] = (unsigned char) (hi << 4 | lo);
        i += 3;
    }

    return (ssize_t) k;
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
                                 0, "body", &entry->error);

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
