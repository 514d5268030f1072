/*
 * The CloudEvents JSON event format (structured mode): a scanner over
 * text eb_json_validate() accepted, feeding members to the builder.
 */

#include "eb_ce_int.h"
#include "eb_json.h"
#include "eb_json_string.h"
#include "eb_utf8.h"


/* JSON texts eb_json_validate() accepted */

size_t
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


/* Decodes the string at p[i] == '"' into ev->scratch with the escape
 * decoder every scanner shares. Returns the offset past the closing
 * quote, or 0 for an escape it refuses (eb_json_validate() already did). */
static size_t
eb_ce_decode_string(eb_ce_event_t *ev, const unsigned char *p, size_t i,
    size_t end)
{
    size_t          run, k, n;
    uint32_t        cp;
    eb_buf_t       *b;
    const char     *why;
    unsigned char   u[4];

    b = &ev->scratch;
    b->len = 0;

    for (i++; i < end && p[i] != '"'; ) {
        run = i;

        while (i < end && p[i] != '"' && p[i] != '\\') {
            i++;
        }

        (void) eb_buf_append(b, p + run, i - run);

        if (i >= end || p[i] == '"') {
            break;
        }

        k = eb_json_escape(p + i, end - i, &cp, &why);
        if (k == 0) {
            return 0;
        }

        i += k;
        n = eb_utf8_encode(u, cp);
        (void) eb_buf_append(b, u, n);
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

        if (eb_ce_decode_string(ev, p, vs, ve) == 0) {
            return eb_ce_unexpected(ev, vs);
        }

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

        if (eb_ce_decode_string(ev, p, vs, ve) == 0) {
            return eb_ce_unexpected(ev, vs);
        }

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

        vs = i;
        i = eb_ce_decode_string(ev, p, i, end);

        if (i == 0) {
            return eb_ce_unexpected(ev, vs);
        }

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
eb_ce_rc_t
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
int
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


eb_ce_rc_t
eb_ce_validate(const eb_ce_ctx_t *ctx, const unsigned char *p, size_t len,
    unsigned depth, unsigned dup_level, const char *what, eb_ce_error_t *err)
{
    char          msg[EB_CE_MESSAGE_MAX - 32];
    eb_json_rc_t  jrc;

    jrc = eb_json_validate_keys(p, len, depth, dup_level, ctx->afs, msg,
                                sizeof(msg));

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

    /* the event's own members are checked by the builder: a repeated
     * attribute is DuplicateAttribute, not InvalidJSON */
    rc = eb_ce_validate(ctx, json, len, ctx->max_depth, 1, "event",
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
