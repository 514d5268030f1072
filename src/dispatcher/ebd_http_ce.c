/*
 * The CloudEvents HTTP binding of the cloudevents driver (ebd_http.c
 * says what each mode sends): binary mode's ce-* headers, Content-Type
 * and data as the body (data_base64 decoded); structured mode's event as
 * the body, its data replaced by a transform's output and a replayed
 * event marked.
 */

#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <openssl/evp.h>

#include "eb_buf.h"
#include "eb_event_scan.h"
#include "eb_json.h"
#include "eb_jsonpath.h"
#include "ebd_http_int.h"


/* data_base64, checked at the edge (RFC 4648, padded); OpenSSL's
 * decoder counts the padding as zero bytes, taken off here */
static int
ebd_http_b64_decode(eb_buf_t *b, const char *s)
{
    int     n;
    size_t  len = strlen(s), pad;

    if (len % 4 != 0 || len / 4 * 3 > INT_MAX) {
        return -1;
    }

    pad = (len && s[len - 1] == '=') + (len > 1 && s[len - 2] == '=');

    if (eb_buf_reserve(b, len / 4 * 3) != 0) {
        return -1;
    }

    n = EVP_DecodeBlock(b->data + b->len, (const unsigned char *) s,
                        (int) len);
    if (n < 0 || (size_t) n < pad) {
        return -1;
    }

    b->len += (size_t) n - pad;
    return 0;
}


/* whether the payload is the event itself (no transform, or ORIGINAL) */
static int
ebd_http_untransformed(ebd_delivery_t *d)
{
    return d->payload == d->event
           || (d->payload_len == d->event_len
               && memcmp(d->payload, d->event, d->event_len) == 0);
}


/* whether the payload really is JSON: it becomes part of a JSON text */
static int
ebd_http_payload_json(ebd_delivery_t *d)
{
    char  err[8];

    return d->payload_is_json
           && eb_json_validate(d->payload, d->payload_len, 512, NULL, err,
                               sizeof(err)) == EB_JSON_OK;
}


/* attribute names as the specification has them: a-z, 0-9 (A-Z too:
 * HTTP header names are case-insensitive anyway) */
static int
ebd_http_attr_name(const char *s)
{
    if (*s == '\0') {
        return 0;
    }

    for ( /* void */ ; *s; s++) {
        if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9')
              || (*s >= 'A' && *s <= 'Z')))
        {
            return 0;
        }
    }

    return 1;
}


/* binary mode: ce-* headers, Content-Type, the data as body */
int
ebd_http_ce_binary(ebd_http_req_t *r, int *failed, char *err, size_t errlen)
{
    size_t                    i;
    int                       plain;
    const char               *ct = NULL;
    eb_buf_t                 *h = &r->hdr;
    ebd_delivery_t           *d = r->d;
    const eb_event_scan_t    *s = d->scan;
    const eb_event_member_t  *m, *data, *b64;

    if (s == NULL) {
        snprintf(err, errlen, "the event is not a JSON object");
        return -1;
    }

    for (i = 0; i < s->n; i++) {
        m = &s->members[i];

        if (strcmp(m->name, "data") == 0
            || strcmp(m->name, "data_base64") == 0
            || (d->replay != NULL && strcmp(m->name, "replay") == 0))
        {
            continue;
        }

        if (strcmp(m->name, "datacontenttype") == 0) {
            if (m->kind == EB_EV_STRING && m->text_len == strlen(m->text)
                && ebd_http_header_safe(m->text, 0))
            {
                ct = m->text;
            }
            continue;
        }

        /* null, objects and arrays are not attributes */
        if (m->text == NULL || m->name_len != strlen(m->name)
            || !ebd_http_attr_name(m->name))
        {
            continue;
        }

        /* "ce-NAME: VALUE", percent-encoded (a string's NUL too);
         * "ce-NAME;" is libcurl's way to send an empty value */
        eb_buf_append_str(h, "ce-");
        eb_buf_append(h, m->name, m->name_len);
        eb_buf_append_str(h, m->text_len ? ": " : ";");
        if (m->kind == EB_EV_STRING) {
            ebd_http_pct_encode(h, (const unsigned char *) m->text,
                                m->text_len);
        } else {
            eb_buf_append(h, m->text, m->text_len);
        }
        eb_buf_append(h, "", 1);
        r->nhdr++;

        if (h->failed) {
            *failed = 1;
            break;
        }
    }

    if (!ebd_http_untransformed(d)) {
        /* the transform's output is the data */
        r->bp = d->payload;
        r->blen = d->payload_len;
        ebd_http_req_header(r, failed, "Content-Type",
                                     d->payload_is_json
                                     ? "application/json"
                                     : "text/plain; charset=utf-8");
        return 0;
    }

    data = eb_event_scan_get(s, "data");
    b64 = eb_event_scan_get(s, "data_base64");

    if (b64 != NULL && b64->kind == EB_EV_STRING) {
        if (ebd_http_b64_decode(&r->body, b64->text) != 0) {
            if (r->body.failed) {
                *failed = 1;
                return 0;
            }
            snprintf(err, errlen, "data_base64 is not base64");
            return -1;
        }
        r->bp = r->body.data != NULL ? r->body.data
                                     : (const unsigned char *) "";
        r->blen = r->body.len;

    } else if (data != NULL) {
        plain = data->kind == EB_EV_STRING && ct != NULL
                && !eb_json_content_type((const unsigned char *) ct,
                                         strlen(ct));
        if (plain) {
            r->bp = (const unsigned char *) data->text;
            r->blen = data->text_len;
        } else {
            /* the data's JSON text as stored */
            r->bp = d->event + data->start;
            r->blen = data->end - data->start;
        }
        if (ct == NULL) {
            ct = "application/json";   /* the JSON format's default */
        }

    } else {
        ct = NULL;      /* no data: no body, no Content-Type */
        r->bp = (const unsigned char *) "";
        r->blen = 0;
    }

    if (ct != NULL) {
        ebd_http_req_header(r, failed, "Content-Type", ct);

    } else if (!*failed) {
        /* not libcurl's default for a POST either */
        ebd_http_req_line(r, failed, "Content-Type:");
    }

    return 0;
}


/* structured mode: the event; with a transform, its data replaced; a
 * replayed one with the attribute "replay" (its own, if it had one,
 * replaced) */
int
ebd_http_ce_structured(ebd_http_req_t *r, int *failed, char *err,
    size_t errlen)
{
    size_t                    i;
    int                       first = 1, json, transformed;
    eb_buf_t                 *b = &r->body;
    ebd_delivery_t           *d = r->d;
    const eb_event_scan_t    *s = d->scan;
    const eb_event_member_t  *m;

    ebd_http_req_header(r, failed, "Content-Type",
                                 "application/cloudevents+json; "
                                 "charset=utf-8");

    transformed = !ebd_http_untransformed(d);

    if (!transformed && d->replay == NULL) {
        r->bp = d->event;
        r->blen = d->event_len;
        return 0;
    }

    if (s == NULL) {
        snprintf(err, errlen, "the event is not a JSON object");
        return -1;
    }

    json = transformed && ebd_http_payload_json(d);

    eb_buf_append_str(b, "{");

    /* the attributes as stored, key and value */
    for (i = 0; i < s->n; i++) {
        m = &s->members[i];

        if ((transformed
             && (strcmp(m->name, "data") == 0
                 || strcmp(m->name, "data_base64") == 0
                 || strcmp(m->name, "datacontenttype") == 0))
            || (d->replay != NULL && strcmp(m->name, "replay") == 0))
        {
            continue;
        }

        eb_buf_append_str(b, first ? "\"" : ",\"");
        eb_jsonpath_write_escaped(b, (const unsigned char *) m->name,
                                  m->name_len);
        eb_buf_append_str(b, "\":");
        eb_buf_append(b, d->event + m->start, m->end - m->start);
        first = 0;
    }

    if (d->replay != NULL) {
        eb_buf_append_str(b, first ? "\"replay\":\"" : ",\"replay\":\"");
        eb_jsonpath_write_escaped(b, (const unsigned char *) d->replay,
                                  strlen(d->replay));
        eb_buf_append_str(b, "\"");
        first = 0;
    }

    if (transformed) {
        eb_buf_append_str(b, first ? "" : ",");

        if (json) {
            eb_buf_append_str(b, "\"datacontenttype\":\"application/json\","
                              "\"data\":");
            eb_buf_append(b, d->payload, d->payload_len);

        } else {
            eb_buf_append_str(b, "\"datacontenttype\":\"text/plain; "
                              "charset=utf-8\",\"data\":\"");
            eb_jsonpath_write_escaped(b, d->payload, d->payload_len);
            eb_buf_append_str(b, "\"");
        }
    }

    eb_buf_append_str(b, "}");

    if (b->failed) {
        *failed = 1;
    }

    r->bp = b->data;
    r->blen = b->len;
    return 0;
}
