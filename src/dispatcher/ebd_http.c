/*
 * ebd's http and cloudevents target drivers: one HTTP request per
 * delivery attempt, made with libcurl's multi interface on ebd's
 * libevent loop (never a blocking call), over one multi handle shared by
 * all such targets so that keep-alive connections are reused.
 *
 * http         url (+ "query", URL-encoded), "method" (POST), "headers";
 *              the body is the rule's payload (the event, or what its
 *              transform made), Content-Type application/json when it is
 *              JSON, else text/plain; charset=utf-8; GET and DELETE send
 *              no body. Every request carries "ce-id" (the event id)
 *              and "Idempotency-Key" (EVENT-ID/RULE/TARGET: one per
 *              delivery, the same for every attempt), for de-duplication.
 *
 * cloudevents  The CloudEvents 1.0 HTTP binding.
 *              binary (default): the event's attributes as ce-* headers
 *                (percent-encoded), datacontenttype as Content-Type, the
 *                data as the body. Without a transform the body is the
 *                event's "data" (its JSON text when the data is JSON,
 *                the string itself otherwise, data_base64 decoded); with
 *                a transform it is the transform's output and the
 *                Content-Type says what that is (application/json or
 *                text/plain; charset=utf-8).
 *              structured: Content-Type application/cloudevents+json,
 *                the body the event as stored; with a transform, the
 *                event whose data (and datacontenttype) are replaced by
 *                the transform's output (JSON as JSON, text as a string).
 *              delivery sync (default) and async both take any 2xx as
 *                delivered (a 202 included); async also asks the sink
 *                with "Prefer: respond-async" to answer before it is done.
 *              The binding's headers and bodies: ebd_http_ce.c.
 *
 * Trace context: an event with a valid traceparent (the CloudEvents
 * distributed tracing extension) goes with the W3C Trace Context headers
 * traceparent, as the event has it, and tracestate (checked, cut to
 * EB_TRACESTATE_MAX): ebd passes the trace on, it records no spans. A
 * traceparent in the target's "headers" wins: ebd then sends neither of
 * its own (a tracestate belongs to its traceparent); a tracestate there
 * replaces ebd's.
 *
 * Signing ("signing", ebd_sign.c): the signature headers are made when
 * the request is handed to libcurl (after a rate limit's wait, a token,
 * for each send again), over the body as sent. webhook-id is the
 * Idempotency-Key's value, '.' percent-encoded too (the id is part of
 * the signed "{id}.{ts}.{body}"): the same for every attempt.
 *
 * Authentication by connection: basic (the Authorization header libcurl
 * makes), api_key (one header), oauth2 (ebd_oauth.c; a 401 invalidates
 * the token and the attempt is sent once more with a new one).
 *
 * Outcomes: 2xx delivered; transport errors, timeouts, 408, 429 and 5xx
 * retried (Retry-After in seconds or as an HTTP-date is passed on); any
 * other status, 3xx included (redirects are not followed), rejected.
 *
 * "rate" (attempts per second, fractional allowed): attempts are spaced
 * at least 1/rate apart (a token bucket holding one token); those that
 * wait do so on a libevent timer and count as in flight. That is this
 * process's own limit; the target's as a whole, across workers and
 * hosts, is the core's (ebd_limit.c) before an attempt gets here.
 */

#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <stdio.h>
#include <time.h>

#include <curl/curl.h>
#include <event2/event.h>
#include <yajl/yajl_tree.h>

#include "eb_buf.h"
#include "eb_trace_context.h"
#include "ebd_log.h"
#include "ebd_target.h"
#include "ebd_http.h"
#include "ebd_http_int.h"
#include "ebd_oauth.h"
#include "ebd_secret.h"
#include "ebd_sign.h"


/* ------------------------------------------------------------------------
 * Targets (their type and a request's: ebd_http_int.h)
 */

static void ebd_http_send(ebd_http_req_t *r);
static void ebd_http_close(ebd_target_t *t);
static void ebd_http_rate_event(evutil_socket_t fd, short what, void *arg);


static const char *
ebd_http_str(yajl_val obj, const char *key)
{
    return YAJL_GET_STRING(eb_config_get(obj, key));
}


/* whether s may go into a header line */
int
ebd_http_header_safe(const char *s, int name)
{
    if (name && *s == '\0') {
        return 0;
    }

    for ( /* void */ ; *s; s++) {
        if ((unsigned char) *s < 0x20 || *s == 0x7f
            || (name && (*s == ':' || *s == ' ' || *s == '\t')))
        {
            return 0;
        }
    }

    return 1;
}


static struct curl_slist *
ebd_http_header_add(struct curl_slist *l, int *failed, const char *name,
    const char *value)
{
    eb_buf_t            b;
    struct curl_slist  *n;

    if (*failed) {
        return l;
    }

    eb_buf_init(&b);
    eb_buf_append_str(&b, name);
    /* "Name;" is libcurl's way to send a header with an empty value */
    eb_buf_append_str(&b, value[0] ? ": " : ";");
    eb_buf_append_str(&b, value);
    eb_buf_append(&b, "", 1);

    n = b.failed ? NULL : curl_slist_append(l, (char *) b.data);
    eb_buf_free(&b);

    if (n == NULL) {
        *failed = 1;
        return l;
    }

    return n;
}


/* A header line of this request, "Name: value" or "Name;" (libcurl's
 * way to send an empty value); one buffer for all, not a list node and
 * a copy per line. */
void
ebd_http_req_header(ebd_http_req_t *r, int *failed, const char *name,
    const char *value)
{
    eb_buf_append_str(&r->hdr, name);
    eb_buf_append_str(&r->hdr, value[0] ? ": " : ";");
    eb_buf_append_str(&r->hdr, value);
    eb_buf_append(&r->hdr, "", 1);
    r->nhdr++;

    if (r->hdr.failed) {
        *failed = 1;
    }
}


void
ebd_http_req_line(ebd_http_req_t *r, int *failed, const char *line)
{
    eb_buf_append_str(&r->hdr, line);
    eb_buf_append(&r->hdr, "", 1);
    r->nhdr++;

    if (r->hdr.failed) {
        *failed = 1;
    }
}


/* The CloudEvents HTTP binding (3.1.3.2): space, '"', '%' and everything
 * outside printable ASCII percent-encoded, UTF-8 byte by byte. */
int
ebd_http_pct_encode(eb_buf_t *b, const unsigned char *p, size_t len)
{
    static const char  hex[] = "0123456789ABCDEF";
    char               e[3];
    size_t             i, run;

    for (i = 0; i < len; i = run + 1) {
        /* the bytes that go as they are, in one append */
        for (run = i; run < len; run++) {
            if (p[run] <= 0x20 || p[run] >= 0x7f || p[run] == '"'
                || p[run] == '%')
            {
                break;
            }
        }

        eb_buf_append(b, p + i, run - i);

        if (run < len) {
            e[0] = '%';
            e[1] = hex[p[run] >> 4];
            e[2] = hex[p[run] & 0xf];
            eb_buf_append(b, e, 3);
        }
    }

    return b->failed ? -1 : 0;
}


/* a secret of the target's connection; "" when it has none */
static int
ebd_http_secret(ebd_target_t *t, const char *name, char **out, char *err,
    size_t errlen)
{
    size_t  len;
    char    e[300];

    if (ebd_secret_load(t->connection->spec, name, out, &len, e, sizeof(e))
        != 0)
    {
        snprintf(err, errlen, "connection %s: %s", t->connection->name, e);
        return -1;
    }

    if (*out == NULL && (*out = strdup("")) == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }

    return 0;
}


static int
ebd_http_open(ebd_target_t *t, char *err, size_t errlen)
{
    size_t               i;
    int                  failed = 0;
    double               rate;
    char                *k, *v;
    const char          *s, *url, *qpath[2] = { "query", NULL },
                        *hpath[2] = { "headers", NULL },
                        *rpath[2] = { "rate", NULL };
    yajl_val             obj, val, spec = t->conf->spec;
    eb_buf_t             q;
    CURLU               *u;
    ebd_http_target_t   *ht;

    ht = calloc(1, sizeof(ebd_http_target_t));
    if (ht == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }

    ht->target = t;
    ht->auth = -1;
    ht->ce = (t->conf->type == EB_TARGET_CLOUDEVENTS);
    t->data = ht;

    if (ebd_http_multi_ref(t->base) != 0) {
        free(ht);
        t->data = NULL;
        snprintf(err, errlen, "libcurl could not be set up");
        return -1;
    }

    s = ebd_http_str(spec, "method");
    ht->method = (!ht->ce && s != NULL) ? s : "POST";
    ht->has_body = strcmp(ht->method, "GET") != 0
                   && strcmp(ht->method, "DELETE") != 0;

    s = ebd_http_str(spec, "mode");
    ht->structured = ht->ce && s != NULL && strcmp(s, "structured") == 0;
    s = ebd_http_str(spec, "delivery");
    ht->async = ht->ce && s != NULL && strcmp(s, "async") == 0;

    /* the URL with the query appended, each name and value encoded */
    url = ebd_http_str(spec, "url");
    ebd_http_safe_url(url != NULL ? url : "", ht->safe_url,
                      sizeof(ht->safe_url));

    u = curl_url();
    if (u == NULL || url == NULL
        || curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK)
    {
        curl_url_cleanup(u);
        snprintf(err, errlen, "invalid url %s", ht->safe_url);
        goto failed;
    }

    obj = yajl_tree_get(spec, qpath, yajl_t_object);
    for (i = 0; obj != NULL && i < YAJL_GET_OBJECT(obj)->len; i++) {
        val = YAJL_GET_OBJECT(obj)->values[i];
        if (!YAJL_IS_STRING(val)) {
            continue;
        }
        k = curl_easy_escape(NULL, YAJL_GET_OBJECT(obj)->keys[i], 0);
        v = curl_easy_escape(NULL, YAJL_GET_STRING(val), 0);
        eb_buf_init(&q);
        eb_buf_append_str(&q, k ? k : "");
        eb_buf_append_str(&q, "=");
        eb_buf_append_str(&q, v ? v : "");
        eb_buf_append(&q, "", 1);
        if (k == NULL || v == NULL || q.failed
            || curl_url_set(u, CURLUPART_QUERY, (char *) q.data,
                            CURLU_APPENDQUERY) != CURLUE_OK)
        {
            failed = 1;
        }
        curl_free(k);
        curl_free(v);
        eb_buf_free(&q);
    }

    if (failed || curl_url_get(u, CURLUPART_URL, &k, 0) != CURLUE_OK) {
        curl_url_cleanup(u);
        snprintf(err, errlen, "url %s: the query could not be added",
                 ht->safe_url);
        goto failed;
    }

    ht->url = strdup(k);
    curl_free(k);

    /* what an error message of libcurl must not repeat */
    if (curl_url_get(u, CURLUPART_QUERY, &k, 0) == CURLUE_OK) {
        ht->url_secret = strdup(k);
        curl_free(k);
    } else if (curl_url_get(u, CURLUPART_USER, &k, 0) == CURLUE_OK) {
        ht->url_secret = strdup(k);
        curl_free(k);
    }

    curl_url_cleanup(u);

    if (ht->url == NULL) {
        snprintf(err, errlen, "out of memory");
        goto failed;
    }

    /* "headers" */
    obj = yajl_tree_get(spec, hpath, yajl_t_object);
    for (i = 0; obj != NULL && i < YAJL_GET_OBJECT(obj)->len; i++) {
        val = YAJL_GET_OBJECT(obj)->values[i];
        k = (char *) YAJL_GET_OBJECT(obj)->keys[i];
        if (!YAJL_IS_STRING(val)) {
            continue;
        }
        if (!ebd_http_header_safe(k, 1)
            || !ebd_http_header_safe(YAJL_GET_STRING(val), 0))
        {
            /* the value is not shown: it may be a secret */
            snprintf(err, errlen, "headers: \"%.64s\" is not a valid header "
                     "name or has a control character in its value", k);
            goto failed;
        }
        if (strcasecmp(k, "Content-Type") == 0) {
            ht->has_ct = 1;
        }
        if (strcasecmp(k, "traceparent") == 0) {
            ht->has_tp = 1;
        }
        if (strcasecmp(k, "tracestate") == 0) {
            ht->has_ts = 1;
        }
        ht->headers = ebd_http_header_add(ht->headers, &failed, k,
                                          YAJL_GET_STRING(val));
    }

    if (failed) {
        snprintf(err, errlen, "out of memory");
        goto failed;
    }

    if (ebd_sign_open(t->conf, &ht->sign, err, errlen) != 0) {
        goto failed;
    }

    /* "rate" */
    val = yajl_tree_get(spec, rpath, yajl_t_number);
    if (val != NULL) {
        rate = YAJL_IS_DOUBLE(val) ? YAJL_GET_DOUBLE(val)
                                   : (double) YAJL_GET_INTEGER(val);
        if (!(rate > 0)) {
            snprintf(err, errlen, "rate must be more than 0");
            goto failed;
        }
        ht->interval_us = (uint64_t) (1e6 / rate);
        ht->rate_ev = evtimer_new(t->base, ebd_http_rate_event, ht);
        if (ht->rate_ev == NULL) {
            snprintf(err, errlen, "out of memory");
            goto failed;
        }
    }

    /* the connection */
    if (t->connection != NULL) {
        ht->auth = (int) t->connection->type;

        switch (t->connection->type) {

        case EB_CONNECTION_BASIC:
            ht->username = ebd_http_str(t->connection->spec, "username");
            if (ht->username == NULL) {
                ht->username = "";
            }
            if (ebd_http_secret(t, "password", &ht->password, err, errlen)
                != 0)
            {
                goto failed;
            }
            break;

        case EB_CONNECTION_API_KEY:
            s = ebd_http_str(t->connection->spec, "header");
            if (ebd_http_secret(t, "value", &v, err, errlen) != 0) {
                goto failed;
            }
            if (s == NULL || !ebd_http_header_safe(s, 1)
                || !ebd_http_header_safe(v, 0))
            {
                ebd_secret_free(v);
                snprintf(err, errlen, "connection %s: invalid header name "
                         "or value", t->connection->name);
                goto failed;
            }
            ht->api_key = (char *) ebd_http_header_add(NULL, &failed, s, v);
            ebd_secret_free(v);
            if (failed) {
                snprintf(err, errlen, "out of memory");
                goto failed;
            }
            break;

        case EB_CONNECTION_OAUTH2:
            ht->oauth = ebd_oauth_acquire(t->connection, err, errlen);
            if (ht->oauth == NULL) {
                goto failed;
            }
            break;
        }
    }

    s = ebd_http_str(spec, "http_version");
    if (s != NULL && strcmp(s, "2") == 0) {
        ht->h2 = ebd_h2_open(t->base, ht->url, ht->method, err, errlen);
        if (ht->h2 == NULL) {
            goto failed;
        }
        if (ebd_http_h2_fields(ht) != 0) {
            snprintf(err, errlen, "out of memory");
            goto failed;
        }
    }

    ebd_log_debug("target %s: %s %s %s%s", t->name,
                  ht->ce ? (ht->structured ? "cloudevents structured"
                                           : "cloudevents binary")
                         : "http",
                  ht->method, ht->safe_url,
                  ht->interval_us ? " (rate limited)" : "");

    return 0;

failed:

    ebd_http_close(t);
    return -1;
}


static void
ebd_http_close(ebd_target_t *t)
{
    ebd_http_target_t  *ht = t->data;

    if (ht == NULL) {
        return;
    }

    if (ht->rate_ev != NULL) {
        event_free(ht->rate_ev);
    }
    if (ht->oauth != NULL) {
        ebd_oauth_release(ht->oauth);
    }

    /* api_key is a one-element curl_slist */
    curl_slist_free_all((struct curl_slist *) ht->api_key);
    ebd_secret_free(ht->password);
    curl_slist_free_all(ht->headers);
    ebd_sign_free(ht->sign);
    ebd_h2_close(ht->h2);
    free(ht->h2_nv);
    ebd_secret_free(ht->h2_basic);
    free(ht->url);
    free(ht->url_secret);
    free(ht);
    t->data = NULL;

    ebd_http_multi_unref();
}


/* W3C Trace Context headers from the event's tracing extension: a
 * valid traceparent as it is, its tracestate checked and cut to
 * EB_TRACESTATE_MAX */
static void
ebd_http_trace_headers(ebd_http_req_t *r, int *failed)
{
    ssize_t         n;
    const char     *tp = r->d->traceparent, *ts = r->d->tracestate;
    unsigned char   st[EB_TRACESTATE_MAX + 1];

    /* the target's own traceparent wins, and ebd's tracestate, which
     * belongs to ebd's traceparent, goes with it */
    if (tp == NULL || r->ht->has_tp) {
        return;
    }

    ebd_http_req_header(r, failed, "traceparent", tp);

    if (ts == NULL || r->ht->has_ts) {
        return;
    }

    n = eb_tracestate_normalize(st, EB_TRACESTATE_MAX,
                                (const unsigned char *) ts, strlen(ts));

    if (n > 0) {
        st[n] = '\0';
        ebd_http_req_header(r, failed, "tracestate",
                                     (char *) st);
    }
}


/* webhook-id: the delivery's id as Idempotency-Key sends it (event id,
 * rule, target), '.' encoded too; the target stream's entry id for an
 * event without one (both stay the same across attempts) */
static char *
ebd_http_webhook_id(ebd_delivery_t *d)
{
    size_t     i;
    char      *id;
    eb_buf_t   b, w;

    if (d->event_id == NULL || d->event_id[0] == '\0') {
        return strdup(d->entry_id);
    }

    eb_buf_init(&b);
    eb_buf_init(&w);
    ebd_http_pct_encode(&b, (const unsigned char *) d->event_id,
                        strlen(d->event_id));
    eb_buf_append_str(&b, "/");
    eb_buf_append_str(&b, d->rule);
    eb_buf_append_str(&b, "/");
    eb_buf_append_str(&b, d->target->name);

    for (i = 0; i < b.len; i++) {
        if (b.data[i] == '.') {
            eb_buf_append_str(&w, "%2E");
        } else {
            eb_buf_append(&w, &b.data[i], 1);
        }
    }

    eb_buf_append(&w, "", 1);

    id = (b.failed || w.failed) ? NULL : strdup((char *) w.data);

    eb_buf_free(&b);
    eb_buf_free(&w);
    return id;
}


/* ------------------------------------------------------------------------
 * Attempts
 */

static void
ebd_http_result(ebd_http_req_t *r, ebd_result_t *res, CURLcode rc)
{
    long                 status = 0;
    ebd_http_target_t   *ht = r->ht;
    const char          *e;

    if (rc != CURLE_OK) {
        e = r->errbuf[0] ? r->errbuf : curl_easy_strerror(rc);

        /* libcurl's messages name hosts and ports; never a query or user
         * info, but that is checked rather than trusted */
        if (ht->url_secret != NULL && ht->url_secret[0]
            && strstr(e, ht->url_secret) != NULL)
        {
            e = curl_easy_strerror(rc);
        }

        ebd_result_set(res, (rc == CURLE_URL_MALFORMAT
                             || rc == CURLE_UNSUPPORTED_PROTOCOL)
                            ? EBD_REJECTED : EBD_RETRY,
                       0, "%s", e);
        return;
    }

    curl_easy_getinfo(r->xfer.easy, CURLINFO_RESPONSE_CODE, &status);
    ebd_http_status(r, res, status);
}


void
ebd_http_status(ebd_http_req_t *r, ebd_result_t *res, long status)
{
    if (status >= 200 && status <= 299) {
        ebd_result_set(res, EBD_DELIVERED, (int) status, "%s", "");

    } else if (status == 408 || status == 429 || status >= 500) {
        ebd_result_set(res, EBD_RETRY, (int) status, "HTTP %ld", status);
        res->retry_after_ms = r->retry_after_ms;

    } else {
        ebd_result_set(res, EBD_REJECTED, (int) status, "HTTP %ld", status);
    }
}


/* A 401 to an oauth2 target: the token may have been revoked or have
 * expired early, so the attempt goes once more with a new one. 1 when
 * it was sent again. */
int
ebd_http_reauth(ebd_http_req_t *r, long status)
{
    ebd_http_target_t  *ht = r->ht;

    if (status != 401 || ht->oauth == NULL || r->reauth) {
        return 0;
    }

    r->reauth = 1;
    ebd_oauth_invalidate(ht->oauth, r->generation);
    ebd_http_send(r);

    return 1;
}


static void
ebd_http_done(ebd_http_xfer_t *x, CURLcode rc)
{
    long                 status = 0;
    ebd_result_t         res;
    ebd_http_req_t      *r = (ebd_http_req_t *) x;
    ebd_http_target_t   *ht = r->ht;

    if (rc == CURLE_OK) {
        curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &status);
    }

    ebd_log_debug("target %s: %s %s: %s%ld in %llu ms (event %s, "
                  "attempt %u)", ht->target->name, ht->method, ht->safe_url,
                  rc == CURLE_OK ? "HTTP " : "failed: ", status,
                  (unsigned long long) ((ebd_mono_us() / 1000) - r->start_ms),
                  r->d->event_id, r->d->attempt);

    if (rc == CURLE_OK && ebd_http_reauth(r, status)) {
        return;
    }

    ebd_http_result(r, &res, rc);
    ebd_http_finish(r, &res);
}


void
ebd_http_finish(ebd_http_req_t *r, ebd_result_t *res)
{
    ebd_delivery_t     *d = r->d;
    ebd_http_target_t  *ht = r->ht;

    if (r->xfer.easy != NULL) {
        ebd_http_xfer_stop(&r->xfer);
        ebd_http_easy_put(r->xfer.easy);
    }

    eb_buf_free(&r->hdr);
    free(r->all);
    free(r->nv);
    eb_buf_free(&r->body);
    free(r->sign_id);
    free(r);

    ht->in_flight--;
    d->driver_data = NULL;

    ebd_delivery_done(d, res);
}


void
ebd_http_fail(ebd_http_req_t *r, ebd_outcome_t outcome, const char *err)
{
    ebd_result_t  res;

    ebd_result_set(&res, outcome, 0, "%s", err);
    ebd_http_finish(r, &res);
}


/* Retry-After's value (delta-seconds or an HTTP-date) */
void
ebd_http_retry_after(ebd_http_req_t *r, const char *p, size_t len)
{
    size_t      i;
    char        v[128];
    time_t      when, now;
    long long   secs;
    char       *end;

    while (len && (*p == ' ' || *p == '\t')) {
        p++;
        len--;
    }
    while (len && (p[len - 1] == '\r' || p[len - 1] == '\n'
                   || p[len - 1] == ' ' || p[len - 1] == '\t'))
    {
        len--;
    }
    if (len == 0 || len >= sizeof(v)) {
        return;
    }

    memcpy(v, p, len);
    v[len] = '\0';

    for (i = 0; i < len && v[i] >= '0' && v[i] <= '9'; i++) {
        /* void */
    }

    if (i == len) {
        /* delta-seconds */
        secs = strtoll(v, &end, 10);
        if (secs > 86400 * 365) {
            secs = 86400 * 365;
        }
        r->retry_after_ms = secs * 1000;

    } else {
        /* an HTTP-date */
        when = curl_getdate(v, NULL);
        if (when != -1) {
            now = time(NULL);
            r->retry_after_ms = when > now ? (int64_t) (when - now) * 1000
                                           : 0;
        }
    }
}


static size_t
ebd_http_header_cb(char *p, size_t size, size_t n, void *data)
{
    ebd_http_req_t  *r = data;

    /* each response (a 100 Continue, then the real one) starts anew */
    if (n > 5 && strncmp(p, "HTTP/", 5) == 0) {
        r->retry_after_ms = -1;
        return n;
    }

    if (n >= 12 && strncasecmp(p, "Retry-After:", 12) == 0) {
        ebd_http_retry_after(r, p + 12, n - 12);
    }

    return n;
}


/* Hands the request to libcurl: the target's header lines and this
 * request's, linked in one array (libcurl only reads the list). */
static void
ebd_http_start(ebd_http_req_t *r)
{
    size_t               n, i;
    const char          *p;
    struct curl_slist   *l, *all;
    ebd_http_target_t   *ht = r->ht;

    /* signed now, over the body as sent: after any wait for the rate
     * or a token; ebd_http_send() drops these lines for a resend */
    if (ht->sign != NULL
        && ebd_sign_request(ht->sign, &r->hdr, &r->nhdr, r->sign_id,
                            (int64_t) time(NULL),
                            ht->has_body ? r->bp : NULL,
                            ht->has_body ? r->blen : 0) != 0)
    {
        ebd_http_fail(r, EBD_RETRY, "the request could not be signed");
        return;
    }

    if (ht->h2 != NULL) {
        ebd_http_h2_start(r);
        return;
    }

    n = r->nhdr + (ht->api_key != NULL);
    for (l = ht->headers; l != NULL; l = l->next) {
        n++;
    }

    free(r->all);
    r->all = NULL;

    all = n ? malloc(n * sizeof(struct curl_slist)) : NULL;
    if (n && all == NULL) {
        ebd_http_fail(r, EBD_RETRY, "out of memory");
        return;
    }

    i = 0;
    for (l = ht->headers; l != NULL; l = l->next) {
        all[i++].data = l->data;
    }
    for (p = (const char *) r->hdr.data; i < n - (ht->api_key != NULL);
         p += strlen(p) + 1)
    {
        all[i++].data = (char *) p;
    }
    if (ht->api_key != NULL) {
        all[i++].data = ((struct curl_slist *) ht->api_key)->data;
    }
    for (i = 0; i < n; i++) {
        all[i].next = i + 1 < n ? &all[i + 1] : NULL;
    }

    r->all = all;
    curl_easy_setopt(r->xfer.easy, CURLOPT_HTTPHEADER, r->all);

    if (ebd_http_xfer_start(&r->xfer) != 0) {
        ebd_http_fail(r, EBD_RETRY, "libcurl refused the request");
    }
}


/* the token for this attempt (or the reason there is none) */
static void
ebd_http_token(ebd_oauth_wait_t *w, const char *authorization,
    uint64_t generation, const char *err)
{
    int              failed = 0;
    ebd_result_t     res;
    ebd_http_req_t  *r = (ebd_http_req_t *) ((char *) w
                             - offsetof(ebd_http_req_t, wait));

    if (authorization == NULL) {
        /* not retried before the token endpoint is asked again */
        ebd_result_set(&res, EBD_RETRY, 0, "%s", err);
        res.retry_after_ms = w->retry_after_ms;
        ebd_http_finish(r, &res);
        return;
    }

    ebd_http_req_line(r, &failed, authorization);
    if (failed) {
        ebd_http_fail(r, EBD_RETRY, "out of memory");
        return;
    }

    r->generation = generation;
    ebd_http_start(r);
}


/* Sends the attempt (again, after a 401): the headers, then the token
 * when the connection is oauth2. */
static void
ebd_http_send(ebd_http_req_t *r)
{
    ebd_http_target_t  *ht = r->ht;

    /* a token sent before is not sent again */
    r->hdr.len = r->hdr_len;
    r->nhdr = r->hdr_n;

    r->errbuf[0] = '\0';
    r->retry_after_ms = -1;
    r->start_ms = (ebd_mono_us() / 1000);

    if (ht->oauth != NULL) {
        r->wait.cb = ebd_http_token;
        ebd_oauth_token(ht->oauth, &r->wait, ht->target->timeout_ms);
        return;
    }

    ebd_http_start(r);
}


/* Lets the waiting attempts go, one per interval. Once the last waiting
 * attempt is sent ht is not touched: that attempt may be over at once,
 * and the target closed from ebd_delivery_done(). */
static void
ebd_http_rate_pump(ebd_http_target_t *ht)
{
    int              more;
    uint64_t         now;
    struct timeval   tv;
    ebd_http_req_t  *r;

    while (ht->rate_head != NULL) {
        now = (ebd_mono_us() / 1000) * 1000;

        if (now < ht->next_us) {
            tv.tv_sec = (ht->next_us - now) / 1000000;
            tv.tv_usec = (ht->next_us - now) % 1000000;
            evtimer_add(ht->rate_ev, &tv);
            return;
        }

        r = ht->rate_head;
        ht->rate_head = r->rate_next;
        if (ht->rate_head == NULL) {
            ht->rate_tail = NULL;
        }
        more = (ht->rate_head != NULL);

        ht->next_us = now + ht->interval_us;

        ebd_http_send(r);

        if (!more) {
            return;
        }
    }
}


static void
ebd_http_rate_event(evutil_socket_t fd, short what, void *arg)
{
    ebd_http_rate_pump(arg);
}


static void
ebd_http_deliver(ebd_target_t *t, ebd_delivery_t *d)
{
    int                  failed = 0, rc = 0;
    char                 err[256];
    CURL                *easy;
    eb_buf_t             id;
    ebd_http_req_t      *r;
    ebd_http_target_t   *ht = t->data;
    ebd_result_t         res;

    r = calloc(1, sizeof(ebd_http_req_t));
    easy = (r != NULL && ht->h2 == NULL) ? ebd_http_easy_get() : NULL;

    if (r == NULL || (easy == NULL && ht->h2 == NULL)) {
        free(r);
        ebd_delivery_done(d, ebd_result_set(&res, EBD_RETRY, 0,
                                            "out of memory"));
        return;
    }

    r->ht = ht;
    r->d = d;
    r->xfer.easy = easy;
    r->xfer.done = ebd_http_done;
    r->retry_after_ms = -1;
    eb_buf_init(&r->body);
    eb_buf_init(&r->hdr);
    d->driver_data = r;
    ht->in_flight++;

    err[0] = '\0';

    /* the body and the headers of this event */
    if (!ht->ce) {
        r->bp = d->payload;
        r->blen = d->payload_len;
        if (!ht->has_ct && ht->has_body) {
            ebd_http_req_header(r, &failed, "Content-Type",
                                         d->payload_is_json
                                         ? "application/json"
                                         : "text/plain; charset=utf-8");
        }

    } else if (ht->structured) {
        rc = ebd_http_ce_structured(r, &failed, err, sizeof(err));

    } else {
        rc = ebd_http_ce_binary(r, &failed, err, sizeof(err));
    }

    if (rc != 0) {
        ebd_http_fail(r, EBD_REJECTED, err);
        return;
    }

    /* a replayed delivery (ebd replay): the CloudEvents extension
     * attribute "replay", a header of binary mode (and of http targets,
     * beside ce-id); structured mode has it in the body */
    if (d->replay != NULL && !ht->structured) {
        if (!ebd_http_header_safe(d->replay, 0)) {
            ebd_http_fail(r, EBD_REJECTED, "the entry's replay name is not "
                          "a header value");
            return;
        }
        ebd_http_req_header(r, &failed, "ce-replay", d->replay);
    }

    if (d->event_id != NULL && d->event_id[0]) {
        eb_buf_init(&id);
        ebd_http_pct_encode(&id, (const unsigned char *) d->event_id,
                            strlen(d->event_id));
        eb_buf_append(&id, "", 1);
        if (!id.failed && !ht->ce) {
            /* the event's own id: a CloudEvent is the same event
             * whichever rule brought it */
            ebd_http_req_header(r, &failed, "ce-id", (char *) id.data);
        }

        /* one delivery: the event through one rule to one target, the
         * same for every attempt (names have no '/') */
        id.len--;
        eb_buf_append_str(&id, "/");
        eb_buf_append_str(&id, d->rule);
        eb_buf_append_str(&id, "/");
        eb_buf_append_str(&id, d->target->name);
        eb_buf_append(&id, "", 1);
        if (id.failed) {
            failed = 1;
        } else {
            ebd_http_req_header(r, &failed, "Idempotency-Key",
                                (char *) id.data);
        }
        eb_buf_free(&id);
    }

    if (ht->sign != NULL && !failed) {
        r->sign_id = ebd_http_webhook_id(d);
        failed = (r->sign_id == NULL);
    }

    ebd_http_trace_headers(r, &failed);

    if (ht->async) {
        ebd_http_req_header(r, &failed, "Prefer",
                                     "respond-async");
    }

    /* no "Expect: 100-continue" round trip for large bodies */
    if (!failed) {
        ebd_http_req_line(r, &failed, "Expect:");
    }

    r->hdr_len = r->hdr.len;
    r->hdr_n = r->nhdr;

    if (failed) {
        ebd_http_fail(r, EBD_RETRY, "out of memory");
        return;
    }

    /* the request */
    if (ht->h2 != NULL) {
        goto send;
    }

    ebd_http_easy_setup(easy, t->timeout_ms, r->errbuf);
    curl_easy_setopt(easy, CURLOPT_URL, ht->url);
    curl_easy_setopt(easy, CURLOPT_HEADERFUNCTION, ebd_http_header_cb);
    curl_easy_setopt(easy, CURLOPT_HEADERDATA, r);

    if (ht->has_body) {
        curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE_LARGE,
                         (curl_off_t) r->blen);
        curl_easy_setopt(easy, CURLOPT_POSTFIELDS,
                         r->bp != NULL ? (const char *) r->bp : "");
        if (strcmp(ht->method, "POST") != 0) {
            curl_easy_setopt(easy, CURLOPT_CUSTOMREQUEST, ht->method);
        }

    } else {
        curl_easy_setopt(easy, CURLOPT_HTTPGET, 1L);
        if (strcmp(ht->method, "GET") != 0) {
            curl_easy_setopt(easy, CURLOPT_CUSTOMREQUEST, ht->method);
        }
    }

    if (ht->auth == EB_CONNECTION_BASIC) {
        curl_easy_setopt(easy, CURLOPT_HTTPAUTH, (long) CURLAUTH_BASIC);
        curl_easy_setopt(easy, CURLOPT_USERNAME, ht->username);
        curl_easy_setopt(easy, CURLOPT_PASSWORD, ht->password);
    }

send:

    if (ht->interval_us == 0) {
        ebd_http_send(r);
        return;
    }

    /* the rate limit: in turn */
    if (ht->rate_tail != NULL) {
        ht->rate_tail->rate_next = r;
    } else {
        ht->rate_head = r;
    }
    ht->rate_tail = r;

    if (ht->rate_head == r) {
        ebd_http_rate_pump(ht);
    }
}


const ebd_driver_t  ebd_http_driver = {
    "http",
    ebd_http_open,
    ebd_http_deliver,
    ebd_http_close,
    0
};


const ebd_driver_t  ebd_cloudevents_driver = {
    "cloudevents",
    ebd_http_open,
    ebd_http_deliver,
    ebd_http_close,
    0
};
