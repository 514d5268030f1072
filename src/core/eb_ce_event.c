/*
 * The CloudEvent builder: each attribute checked against its type and
 * written to the output, duplicates and required attributes checked,
 * the bus's attributes and the data added.
 */

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "eb_ce_int.h"
#include "eb_json.h"
#include "eb_trace_context.h"


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
    eb_ce_attr("traceparent", EB_CE_TRACEPARENT, EB_CE_T_TRACEPARENT),
    eb_ce_attr("tracestate", EB_CE_TRACESTATE, EB_CE_T_TRACESTATE),
    eb_ce_attr("aliyunpublishtime", 0, EB_CE_T_SERVER),
    eb_ce_attr("aliyuneventbusname", 0, EB_CE_T_SERVER),
    eb_ce_attr("aliyunregionid", 0, EB_CE_T_SERVER),
    eb_ce_attr("aliyunaccountid", 0, EB_CE_T_SERVER),
    eb_ce_attr("aliyunpublishaddr", 0, EB_CE_T_SERVER)
};


/* errors */

int
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
const char *
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


int
eb_ce_nomem(eb_ce_event_t *ev)
{
    return ev->out->failed || ev->scratch.failed || ev->names.failed;
}


/* the event */

void
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


void
eb_ce_event_free(eb_ce_event_t *ev)
{
    eb_buf_free(&ev->scratch);
    eb_buf_free(&ev->names);
}


void
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


int
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

    if (a == NULL) {
        return 0;
    }

    /* an empty tracestate is a list without members */
    if (len == 0 && a->type != EB_CE_T_SPEC && a->type != EB_CE_T_SERVER
        && a->type != EB_CE_T_TRACESTATE)
    {
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

    case EB_CE_T_TRACEPARENT:
        if (!eb_traceparent_valid(p, len)) {
            return eb_ce_fail(ev->err, EB_CE_INVALID_ATTRIBUTE_VALUE,
                              "attribute \"traceparent\" is not a W3C "
                              "traceparent (version-traceid-parentid-flags "
                              "in lower-case hex)");
        }

        break;

    case EB_CE_T_TRACESTATE:
        if (eb_tracestate_normalize(NULL, 0, p, len) < 0) {
            return eb_ce_fail(ev->err, EB_CE_INVALID_ATTRIBUTE_VALUE,
                              "attribute \"tracestate\" is not a W3C "
                              "tracestate (up to 32 key=value members, "
                              "each key once)");
        }

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
int
eb_ce_attribute(eb_ce_event_t *ev, const unsigned char *name, size_t nlen,
    eb_ce_value_t vt, const unsigned char *v, size_t vlen)
{
    char                 n[EB_CE_NAME_MAX + 1];
    unsigned char        slot[EB_CE_NAME_SLOT];
    const eb_ce_attr_t  *a;

    memcpy(n, name, nlen);
    n[nlen] = '\0';

    a = eb_ce_attr_find(name, nlen);

    if (a && (a->bit & (EB_CE_TRACEPARENT | EB_CE_TRACESTATE))
        && !ev->ctx->trace)
    {
        a = NULL;       /* an extension like any other */
    }

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
int
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

    /* the extension's traceparent is required when it is used */
    if (ctx->trace && (ev->present & EB_CE_TRACESTATE)
        && !(ev->present & EB_CE_TRACEPARENT))
    {
        return eb_ce_fail(ev->err, EB_CE_INVALID_ATTRIBUTE_VALUE,
                          "attribute \"tracestate\" without \"traceparent\"");
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

    /* the request's trace context, or a new one: after the sender's
     * attributes, as if it had sent them */
    if (ctx->trace && !(ev->present & EB_CE_TRACEPARENT)
        && ctx->traceparent.len)
    {
        eb_ce_put_server(ev, "traceparent", ctx->traceparent);

        if (ctx->tracestate.len) {
            eb_ce_put_server(ev, "tracestate", ctx->tracestate);
        }
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
eb_ce_rc_t
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


void
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
