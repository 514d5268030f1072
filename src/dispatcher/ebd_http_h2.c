/*
 * The http and cloudevents drivers over HTTP/2 ("http_version": "2"):
 * the header lines libcurl would send, as nghttp2 fields with their
 * names lowercased (the target's own made once; an event's indexed by
 * HPACK only where many requests share them; credentials never), and the
 * request handed to ebd_h2.c, whose answer ends the attempt as libcurl's
 * would.
 */

#include <ctype.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/evp.h>

#include "ebd_log.h"
#include "ebd_http_int.h"
#include "ebd_secret.h"


#define EBD_H2_KEEP  (NGHTTP2_NV_FLAG_NO_COPY_NAME                        \
                      | NGHTTP2_NV_FLAG_NO_COPY_VALUE)


/* A header line ("Name: value", "Name;" for an empty value, "Name:" to
 * leave one out, libcurl's ways) as a field, its name lowercased into
 * names; 0 when it is not sent. */
static int
ebd_http_h2_field(const char *line, char *names, nghttp2_nv *nv,
    uint8_t flags)
{
    size_t       i, len;
    const char  *v;

    len = strcspn(line, ":;");
    if (line[len] == '\0' || len == 0) {
        return 0;
    }

    if (line[len] == ';') {
        v = line + len + 1;
        if (*v != '\0') {
            return 0;
        }

    } else {
        for (v = line + len + 1; *v == ' ' || *v == '\t'; v++) {
            /* void */
        }
        if (*v == '\0') {
            return 0;
        }
    }

    if (!ebd_h2_header_allowed(line, len)) {
        return 0;
    }

    for (i = 0; i < len; i++) {
        names[i] = (char) tolower((unsigned char) line[i]);
    }

    nv->name = (uint8_t *) names;
    nv->namelen = len;
    nv->value = (uint8_t *) v;
    nv->valuelen = strlen(v);
    nv->flags = flags;

    return 1;
}


/* Whether an event's own field is worth HPACK's table: the same for
 * many requests. The others (ce-id, ce-time, Idempotency-Key, trace
 * context, signatures, tokens) are sent literally, not indexed: they
 * would only push the others out of the table. */
static uint8_t
ebd_http_h2_index(const nghttp2_nv *nv)
{
    static const char *const  same[] = {
        "content-type", "ce-specversion", "ce-source", "ce-type",
        "ce-subject", "ce-dataschema", "prefer", "ce-replay", NULL
    };
    size_t                    i;

    for (i = 0; same[i] != NULL; i++) {
        if (strlen(same[i]) == nv->namelen
            && memcmp(same[i], nv->name, nv->namelen) == 0)
        {
            return NGHTTP2_NV_FLAG_NONE;
        }
    }

    return NGHTTP2_NV_FLAG_NO_INDEX;
}


/* The target's own fields, once: "headers", the api_key's, basic
 * authentication's, User-Agent. */
int
ebd_http_h2_fields(ebd_http_target_t *ht)
{
    size_t              n = 0, size = 0, len;
    char               *names, *up, *b64;
    struct curl_slist  *l, *key = (struct curl_slist *) ht->api_key;
    static const char   ua[] = "User-Agent: ebd";

    if (ht->auth == EB_CONNECTION_BASIC) {
        len = strlen(ht->username) + 1 + strlen(ht->password);
        up = malloc(len + 1);
        b64 = malloc(4 * ((len + 2) / 3) + 1);
        ht->h2_basic = malloc(4 * ((len + 2) / 3) + 22);
        if (up == NULL || b64 == NULL || ht->h2_basic == NULL) {
            ebd_secret_free(up);
            free(b64);
            return -1;
        }
        snprintf(up, len + 1, "%s:%s", ht->username, ht->password);
        EVP_EncodeBlock((unsigned char *) b64, (unsigned char *) up,
                        (int) len);
        sprintf(ht->h2_basic, "Authorization: Basic %s", b64);
        ebd_secret_free(up);
        ebd_secret_free(b64);
    }

    for (l = ht->headers; l != NULL; l = l->next) {
        n++;
        size += strlen(l->data);
    }
    if (key != NULL) {
        n++;
        size += strlen(key->data);
    }
    if (ht->h2_basic != NULL) {
        n++;
        size += strlen(ht->h2_basic);
    }
    n++;
    size += sizeof(ua);

    ht->h2_nv = malloc(n * sizeof(nghttp2_nv) + size);
    if (ht->h2_nv == NULL) {
        return -1;
    }

    names = (char *) (ht->h2_nv + n);
    n = 0;

    /* these live as long as the target: nghttp2 need not copy them;
     * credentials are never indexed (RFC 7541 7.1.3) */
    for (l = ht->headers; l != NULL; l = l->next) {
        if (ebd_http_h2_field(l->data, names, &ht->h2_nv[n], EBD_H2_KEEP)) {
            names += ht->h2_nv[n++].namelen;
        }
    }
    if (key != NULL
        && ebd_http_h2_field(key->data, names, &ht->h2_nv[n],
                             EBD_H2_KEEP | NGHTTP2_NV_FLAG_NO_INDEX))
    {
        names += ht->h2_nv[n++].namelen;
    }
    if (ht->h2_basic != NULL
        && ebd_http_h2_field(ht->h2_basic, names, &ht->h2_nv[n],
                             EBD_H2_KEEP | NGHTTP2_NV_FLAG_NO_INDEX))
    {
        names += ht->h2_nv[n++].namelen;
    }
    if (ebd_http_h2_field(ua, names, &ht->h2_nv[n], EBD_H2_KEEP)) {
        n++;
    }

    ht->h2_nvn = n;
    return 0;
}


static void
ebd_http_h2_header(ebd_h2_req_t *q, const char *name, size_t nlen,
    const char *value, size_t vlen)
{
    ebd_http_req_t  *r = (ebd_http_req_t *) ((char *) q
                             - offsetof(ebd_http_req_t, q));

    if (name == NULL) {
        /* a new response */
        r->retry_after_ms = -1;

    } else if (nlen == 11 && memcmp(name, "retry-after", 11) == 0) {
        ebd_http_retry_after(r, value, vlen);
    }
}


static void
ebd_http_h2_done(ebd_h2_req_t *q, int status, const char *err)
{
    ebd_result_t         res;
    ebd_http_req_t      *r = (ebd_http_req_t *) ((char *) q
                                 - offsetof(ebd_http_req_t, q));
    ebd_http_target_t   *ht = r->ht;

    ebd_log_debug("target %s: %s %s (HTTP/2): %s%.0d%s in %llu ms (event "
                  "%s, attempt %u)", ht->target->name, ht->method,
                  ht->safe_url, err == NULL ? "HTTP " : "failed: ",
                  err == NULL ? status : 0, err != NULL ? err : "",
                  (unsigned long long) ((ebd_mono_us() / 1000) - r->start_ms),
                  r->d->event_id, r->d->attempt);

    if (err == NULL && ebd_http_reauth(r, status)) {
        return;
    }

    if (err != NULL) {
        ebd_result_set(&res, EBD_RETRY, 0, "%s", err);
    } else {
        ebd_http_status(r, &res, status);
    }

    ebd_http_finish(r, &res);
}


/* Hands the request to ebd_h2: the target's fields and this request's. */
void
ebd_http_h2_start(ebd_http_req_t *r)
{
    size_t               n, i, k;
    char                *names;
    const char          *p;
    nghttp2_nv          *nv;
    ebd_http_target_t   *ht = r->ht;

    n = ht->h2_nvn + r->nhdr;
    nv = realloc(r->nv, n * sizeof(nghttp2_nv) + r->hdr.len);
    if (nv == NULL) {
        ebd_http_fail(r, EBD_RETRY, "out of memory");
        return;
    }

    r->nv = nv;
    names = (char *) (nv + n);
    memcpy(nv, ht->h2_nv, ht->h2_nvn * sizeof(nghttp2_nv));
    i = ht->h2_nvn;

    for (p = (const char *) r->hdr.data, k = 0; k < r->nhdr;
         p += strlen(p) + 1, k++)
    {
        if (ebd_http_h2_field(p, names, &nv[i], NGHTTP2_NV_FLAG_NONE)) {
            nv[i].flags = ebd_http_h2_index(&nv[i]);
            names += nv[i++].namelen;
        }
    }

    r->q.nva = nv;
    r->q.nvlen = i;
    r->q.body = r->bp;
    r->q.blen = r->blen;
    r->q.has_body = ht->has_body;
    r->q.done = ebd_http_h2_done;
    r->q.header = ebd_http_h2_header;

    ebd_h2_submit(ht->h2, &r->q, ht->target->timeout_ms);
}
