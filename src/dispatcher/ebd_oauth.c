/*
 * The OAuth2 client-credentials token cache of ebd's http and
 * cloudevents targets (see ebd_oauth.h): the token request (RFC 6749
 * 4.4: grant_type, scope and the connection's extra params, form-encoded;
 * the client's id and secret in the form, client_secret_post, or as HTTP
 * Basic, client_secret_basic, which GET and DELETE always use: the form
 * is then the URL's query, and a secret never goes in a URL), its JSON
 * answer, the cache per connection and the queue of attempts waiting
 * for a fetch.
 */

#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <stdio.h>
#include <ctype.h>

#include <curl/curl.h>
#include <openssl/evp.h>
#include <yajl/yajl_tree.h>

#include "eb_buf.h"
#include "ebd_log.h"
#include "ebd_target.h"
#include "ebd_http.h"
#include "ebd_metrics.h"
#include "ebd_oauth.h"
#include "ebd_secret.h"


/* The token is renewed this long before the server says it expires
 * (at most; a tenth of its lifetime for short-lived tokens). */
#define EBD_OAUTH_MARGIN_MS     30000
/* When the answer has no expires_in. */
#define EBD_OAUTH_DEFAULT_TTL   3600
/* Token answers larger than this are refused. */
#define EBD_OAUTH_MAX_ANSWER    (64 * 1024)
/* After a failed fetch the next one waits this long, doubling up to the
 * maximum: a failing token endpoint is not asked once per attempt. */
#define EBD_OAUTH_BACKOFF_MS      1000
#define EBD_OAUTH_BACKOFF_MAX_MS  60000


struct ebd_oauth_s {
    ebd_oauth_t                   *next;       /* all caches */
    const eb_config_connection_t  *conn;
    unsigned                       refs;
    unsigned                       metrics;    /* the connection's slot */

    char                          *url;        /* token_url (+ query) */
    char                          *form;       /* the request's form body */
    int                            get;        /* method GET: form in url */
    int                            basic;      /* client_secret_basic */
    const char                    *method;
    char                           safe_url[512];

    char                          *authorization;  /* "Authorization: ..." */
    uint64_t                       expires_ms;     /* monotonic */
    uint64_t                       generation;

    /* after a failed fetch: no other before retry_ms (monotonic) */
    uint64_t                       backoff_ms;     /* 0: none */
    uint64_t                       retry_ms;
    char                           last_err[512];

    /* the fetch */
    ebd_http_xfer_t                xfer;
    struct curl_slist             *headers;
    eb_buf_t                       answer;
    char                           errbuf[CURL_ERROR_SIZE];
    ebd_oauth_wait_t               waiting;    /* queue sentinel */
};


static ebd_oauth_t  *ebd_oauths;


static void ebd_oauth_fetched(ebd_http_xfer_t *x, CURLcode rc);


static void
ebd_oauth_queue_init(ebd_oauth_wait_t *q)
{
    q->prev = q;
    q->next = q;
}


static void
ebd_oauth_queue_remove(ebd_oauth_wait_t *w)
{
    w->prev->next = w->next;
    w->next->prev = w->prev;
    w->prev = w->next = NULL;
}


static void
ebd_oauth_queue_append(ebd_oauth_wait_t *q, ebd_oauth_wait_t *w)
{
    w->prev = q->prev;
    w->next = q;
    q->prev->next = w;
    q->prev = w;
}


/* appends "&name=value" (no "&" first), both URL-encoded */
static int
ebd_oauth_form_add(eb_buf_t *b, const char *name, const char *value)
{
    char  *n, *v;
    int    rc;

    n = curl_easy_escape(NULL, name, 0);
    v = curl_easy_escape(NULL, value, 0);
    rc = -1;

    if (n != NULL && v != NULL) {
        rc = 0;
        if (b->len) {
            rc |= eb_buf_append_str(b, "&");
        }
        rc |= eb_buf_append_str(b, n);
        rc |= eb_buf_append_str(b, "=");
        rc |= eb_buf_append_str(b, v);
    }

    curl_free(n);
    curl_free(v);
    return rc;
}


static const char *
ebd_oauth_str(yajl_val obj, const char *key)
{
    return YAJL_GET_STRING(eb_config_get(obj, key));
}


/* "Authorization: Basic base64(urlencode(id):urlencode(secret))", RFC
 * 6749 2.3.1, appended to the request's headers */
static struct curl_slist *
ebd_oauth_basic(struct curl_slist *h, const char *id, const char *secret)
{
    int                 n;
    char               *eid, *esecret;
    unsigned char      *b64;
    eb_buf_t            cred, line;
    struct curl_slist  *r = NULL;

    eid = curl_easy_escape(NULL, id, 0);
    esecret = curl_easy_escape(NULL, secret, 0);
    eb_buf_init(&cred);
    eb_buf_init(&line);

    if (eid == NULL || esecret == NULL) {
        goto done;
    }

    eb_buf_append_str(&cred, eid);
    eb_buf_append_str(&cred, ":");
    eb_buf_append_str(&cred, esecret);

    if (cred.failed
        || (b64 = malloc(4 * ((cred.len + 2) / 3) + 1)) == NULL)
    {
        goto done;
    }

    n = EVP_EncodeBlock(b64, cred.data, (int) cred.len);

    eb_buf_append_str(&line, "Authorization: Basic ");
    eb_buf_append(&line, b64, (size_t) n);
    eb_buf_append(&line, "", 1);
    explicit_bzero(b64, (size_t) n);
    free(b64);

    if (!line.failed) {
        r = curl_slist_append(h, (char *) line.data);
    }

done:

    /* the secret, clear: not left in freed memory */
    if (esecret != NULL) {
        explicit_bzero(esecret, strlen(esecret));
    }
    if (cred.data != NULL) {
        explicit_bzero(cred.data, cred.cap);
    }
    if (line.data != NULL) {
        explicit_bzero(line.data, line.cap);
    }
    curl_free(eid);
    curl_free(esecret);
    eb_buf_free(&cred);
    eb_buf_free(&line);
    return r;
}


/* the request's headers (with the Basic credentials) are secret too */
static void
ebd_oauth_headers_free(struct curl_slist *h)
{
    struct curl_slist  *l;

    for (l = h; l != NULL; l = l->next) {
        explicit_bzero(l->data, strlen(l->data));
    }

    curl_slist_free_all(h);
}


ebd_oauth_t *
ebd_oauth_acquire(const eb_config_connection_t *c, char *err, size_t errlen)
{
    size_t              i, len;
    char               *secret, e[300];
    const char         *s, *path[2] = { "params", NULL };
    yajl_val            params, v;
    eb_buf_t            form, url;
    ebd_oauth_t        *o;
    struct curl_slist  *h;

    for (o = ebd_oauths; o != NULL; o = o->next) {
        if (o->conn == c) {
            o->refs++;
            return o;
        }
    }

    if (ebd_secret_load(c->spec, "client_secret", &secret, &len, e,
                        sizeof(e)) != 0)
    {
        snprintf(err, errlen, "connection %s: %s", c->name, e);
        return NULL;
    }

    o = calloc(1, sizeof(ebd_oauth_t));
    if (o == NULL) {
        ebd_secret_free(secret);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }

    o->conn = c;
    o->refs = 1;
    o->metrics = ebd_metrics_oauth_slot(c->name);
    ebd_oauth_queue_init(&o->waiting);
    eb_buf_init(&o->answer);
    eb_buf_init(&form);
    eb_buf_init(&url);

    s = ebd_oauth_str(c->spec, "method");
    o->method = s != NULL ? s : "POST";
    o->get = strcmp(o->method, "GET") == 0 || strcmp(o->method, "DELETE") == 0;

    /* eb_config refuses "post" with GET or DELETE */
    s = ebd_oauth_str(c->spec, "client_auth");
    o->basic = s != NULL ? strcmp(s, "basic") == 0 : o->get;

    ebd_oauth_form_add(&form, "grant_type", "client_credentials");
    if (!o->basic) {
        if ((s = ebd_oauth_str(c->spec, "client_id")) != NULL) {
            ebd_oauth_form_add(&form, "client_id", s);
        }
        if (secret != NULL) {
            ebd_oauth_form_add(&form, "client_secret", secret);
        }
    }
    if ((s = ebd_oauth_str(c->spec, "scope")) != NULL) {
        ebd_oauth_form_add(&form, "scope", s);
    }
    params = yajl_tree_get(c->spec, path, yajl_t_object);
    for (i = 0; params != NULL && i < YAJL_GET_OBJECT(params)->len; i++) {
        v = YAJL_GET_OBJECT(params)->values[i];
        if (YAJL_IS_STRING(v)) {
            ebd_oauth_form_add(&form, YAJL_GET_OBJECT(params)->keys[i],
                               YAJL_GET_STRING(v));
        }
    }

    s = ebd_oauth_str(c->spec, "token_url");
    eb_buf_append_str(&url, s != NULL ? s : "");
    if (o->get) {
        eb_buf_append_str(&url, strchr(s != NULL ? s : "", '?') ? "&" : "?");
        eb_buf_append(&url, form.data, form.len);
    }
    eb_buf_append(&url, "", 1);
    eb_buf_append(&form, "", 1);

    ebd_http_safe_url(s != NULL ? s : "", o->safe_url, sizeof(o->safe_url));

    o->headers = curl_slist_append(NULL, "Accept: application/json");
    if (o->headers != NULL && !o->get) {
        o->headers = curl_slist_append(o->headers, "Content-Type: "
                                       "application/x-www-form-urlencoded");
    }
    if (o->headers != NULL) {
        o->headers = curl_slist_append(o->headers, "Expect:");
    }
    if (o->headers != NULL && o->basic) {
        h = ebd_oauth_basic(o->headers,
                            ebd_oauth_str(c->spec, "client_id") ?: "",
                            secret != NULL ? secret : "");
        if (h == NULL) {
            ebd_oauth_headers_free(o->headers);
        }
        o->headers = h;
    }

    ebd_secret_free(secret);

    if (form.failed || url.failed || o->headers == NULL) {
        ebd_oauth_headers_free(o->headers);
        eb_buf_free(&form);
        eb_buf_free(&url);
        free(o);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }

    o->form = (char *) form.data;
    o->url = (char *) url.data;
    o->next = ebd_oauths;
    ebd_oauths = o;

    return o;
}


void
ebd_oauth_release(ebd_oauth_t *o)
{
    ebd_oauth_t  **pp;

    if (--o->refs > 0) {
        return;
    }

    for (pp = &ebd_oauths; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == o) {
            *pp = o->next;
            break;
        }
    }

    if (o->xfer.easy != NULL) {
        ebd_http_xfer_stop(&o->xfer);
        curl_easy_cleanup(o->xfer.easy);
    }

    ebd_oauth_headers_free(o->headers);
    eb_buf_free(&o->answer);

    /* the form and the token are secrets: not left in freed memory */
    if (o->form != NULL) {
        explicit_bzero(o->form, strlen(o->form));
    }
    if (o->url != NULL) {
        explicit_bzero(o->url, strlen(o->url));
    }
    if (o->authorization != NULL) {
        explicit_bzero(o->authorization, strlen(o->authorization));
    }
    free(o->form);
    free(o->url);
    free(o->authorization);
    free(o);
}


static void
ebd_oauth_forget(ebd_oauth_t *o)
{
    if (o->authorization != NULL) {
        explicit_bzero(o->authorization, strlen(o->authorization));
        free(o->authorization);
        o->authorization = NULL;
    }
}


static size_t
ebd_oauth_write(char *p, size_t size, size_t n, void *data)
{
    ebd_oauth_t  *o = data;

    if (o->answer.len + n > EBD_OAUTH_MAX_ANSWER
        || eb_buf_append(&o->answer, p, n) != 0)
    {
        return 0;   /* fails the transfer (CURLE_WRITE_ERROR) */
    }

    return n;
}


static int
ebd_oauth_start(ebd_oauth_t *o, uint64_t timeout_ms)
{
    CURL  *easy;

    if (o->xfer.easy == NULL) {
        o->xfer.easy = curl_easy_init();
        if (o->xfer.easy == NULL) {
            return -1;
        }
        o->xfer.done = ebd_oauth_fetched;
    }

    easy = o->xfer.easy;
    curl_easy_reset(easy);
    ebd_http_easy_setup(easy, timeout_ms, o->errbuf);
    curl_easy_setopt(easy, CURLOPT_URL, o->url);
    curl_easy_setopt(easy, CURLOPT_HTTPHEADER, o->headers);
    curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, ebd_oauth_write);
    curl_easy_setopt(easy, CURLOPT_WRITEDATA, o);

    if (o->get) {
        curl_easy_setopt(easy, CURLOPT_HTTPGET, 1L);
        if (strcmp(o->method, "GET") != 0) {
            curl_easy_setopt(easy, CURLOPT_CUSTOMREQUEST, o->method);
        }

    } else {
        curl_easy_setopt(easy, CURLOPT_POSTFIELDS, o->form);
        curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE, (long) strlen(o->form));
        if (strcmp(o->method, "POST") != 0) {
            curl_easy_setopt(easy, CURLOPT_CUSTOMREQUEST, o->method);
        }
    }

    eb_buf_reset(&o->answer);
    o->errbuf[0] = '\0';

    ebd_log_debug("oauth2 connection %s: requesting a token from %s",
                  o->conn->name, o->safe_url);

    return ebd_http_xfer_start(&o->xfer);
}


/* Calls every waiter of the fetch that just ended. A callback may start
 * a new fetch (its waiters are then in the new queue) or drop the last
 * reference of another target: o is kept alive meanwhile. */
static void
ebd_oauth_dispatch(ebd_oauth_t *o, const char *err)
{
    ebd_oauth_wait_t   q, *w;

    ebd_oauth_queue_init(&q);
    if (o->waiting.next != &o->waiting) {
        q.next = o->waiting.next;
        q.prev = o->waiting.prev;
        q.next->prev = &q;
        q.prev->next = &q;
        ebd_oauth_queue_init(&o->waiting);
    }

    o->refs++;

    while (q.next != &q) {
        w = q.next;
        ebd_oauth_queue_remove(w);

        if (err == NULL && o->authorization != NULL) {
            w->retry_after_ms = -1;
            w->cb(w, o->authorization, o->generation, NULL);

        } else {
            w->retry_after_ms = (int64_t) o->backoff_ms;
            w->cb(w, NULL, 0, err != NULL ? err : "no token");
        }
    }

    ebd_oauth_release(o);
}


/* the token's lifetime from "expires_in": a number, or a numeric string
 * (some servers send one) */
static long long
ebd_oauth_ttl(yajl_val root)
{
    const char  *path[2] = { "expires_in", NULL };
    yajl_val     v;
    char        *end;
    long long    n;

    v = yajl_tree_get(root, path, yajl_t_any);

    if (v != NULL && YAJL_IS_INTEGER(v)) {
        n = YAJL_GET_INTEGER(v);

    } else if (v != NULL && YAJL_IS_DOUBLE(v)) {
        n = (long long) YAJL_GET_DOUBLE(v);

    } else if (v != NULL && YAJL_IS_STRING(v)) {
        n = strtoll(v->u.string, &end, 10);
        if (end == v->u.string || *end != '\0') {
            n = EBD_OAUTH_DEFAULT_TTL;
        }

    } else {
        n = EBD_OAUTH_DEFAULT_TTL;
    }

    return n > 0 ? n : 0;
}


/* a token or a type that could break a header line is refused */
static int
ebd_oauth_header_safe(const char *s)
{
    for ( /* void */ ; *s; s++) {
        if ((unsigned char) *s < 0x20 || *s == 0x7f) {
            return 0;
        }
    }

    return 1;
}


static void
ebd_oauth_fetched(ebd_http_xfer_t *x, CURLcode rc)
{
    ebd_oauth_t  *o = (ebd_oauth_t *) ((char *) x
                                       - offsetof(ebd_oauth_t, xfer));
    long          status = 0;
    long long     ttl;
    uint64_t      margin;
    char          err[512];
    const char   *token, *type, *code;
    yajl_val      root = NULL;
    eb_buf_t      h;

    err[0] = '\0';

    if (rc != CURLE_OK) {
        snprintf(err, sizeof(err), "oauth2 connection %.64s: token endpoint %.100s: "
                 "%.200s", o->conn->name, o->safe_url,
                 o->errbuf[0] ? o->errbuf : curl_easy_strerror(rc));
        goto done;
    }

    curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &status);

    if (eb_buf_append(&o->answer, "", 1) == 0) {
        /* yajl's error text quotes the input: it is not used */
        root = yajl_tree_parse((const char *) o->answer.data, NULL, 0);
    }

    if (status < 200 || status > 299) {
        /* RFC 6749 5.2: "error" is a short ASCII code, never a secret */
        code = root != NULL ? ebd_oauth_str(root, "error") : NULL;
        if (code != NULL && (strlen(code) > 40 || !ebd_oauth_header_safe(code)))
        {
            code = NULL;
        }
        snprintf(err, sizeof(err), "oauth2 connection %.64s: token endpoint %.100s: "
                 "HTTP %ld%s%s", o->conn->name, o->safe_url, status,
                 code ? " " : "", code ? code : "");
        goto done;
    }

    token = root != NULL ? ebd_oauth_str(root, "access_token") : NULL;
    type = root != NULL ? ebd_oauth_str(root, "token_type") : NULL;

    if (token == NULL || token[0] == '\0' || !ebd_oauth_header_safe(token)
        || (type != NULL && (!ebd_oauth_header_safe(type) || type[0] == '\0')))
    {
        snprintf(err, sizeof(err), "oauth2 connection %.64s: token endpoint %.100s: "
                 "HTTP %ld without a usable access_token", o->conn->name,
                 o->safe_url, status);
        goto done;
    }

    /* RFC 6750: the type is case-insensitive, "Bearer" is its usual
     * spelling in the header */
    if (type == NULL || strcasecmp(type, "bearer") == 0) {
        type = "Bearer";
    }

    eb_buf_init(&h);
    eb_buf_append_str(&h, "Authorization: ");
    eb_buf_append_str(&h, type);
    eb_buf_append_str(&h, " ");
    eb_buf_append_str(&h, token);
    eb_buf_append(&h, "", 1);

    if (h.failed) {
        eb_buf_free(&h);
        snprintf(err, sizeof(err), "oauth2 connection %s: out of memory",
                 o->conn->name);
        goto done;
    }

    ebd_oauth_forget(o);
    o->authorization = (char *) h.data;
    o->generation++;

    ttl = ebd_oauth_ttl(root);
    margin = (uint64_t) ttl * 100;        /* a tenth, in ms */
    if (margin > EBD_OAUTH_MARGIN_MS) {
        margin = EBD_OAUTH_MARGIN_MS;
    }
    o->expires_ms = (ebd_mono_us() / 1000) + (uint64_t) ttl * 1000 - margin;

    ebd_log(EBD_LOG_INFO, "oauth2 connection %s: got a token for %lld s",
            o->conn->name, ttl);

done:

    if (root != NULL) {
        yajl_tree_free(root);
    }

    /* the answer holds the token */
    if (o->answer.data != NULL) {
        explicit_bzero(o->answer.data, o->answer.cap);
    }
    eb_buf_reset(&o->answer);

    if (err[0]) {
        o->backoff_ms = o->backoff_ms == 0 ? EBD_OAUTH_BACKOFF_MS
                        : o->backoff_ms * 2 > EBD_OAUTH_BACKOFF_MAX_MS
                          ? EBD_OAUTH_BACKOFF_MAX_MS : o->backoff_ms * 2;
        o->retry_ms = (ebd_mono_us() / 1000) + o->backoff_ms;
        snprintf(o->last_err, sizeof(o->last_err), "%s", err);
        ebd_log(EBD_LOG_WARN, "%s; next token request in %llu ms", err,
                (unsigned long long) o->backoff_ms);

    } else {
        o->backoff_ms = 0;
    }

    ebd_metrics_oauth(o->metrics, rc != CURLE_OK, status, err[0] == '\0');
    ebd_oauth_dispatch(o, err[0] ? err : NULL);
}


void
ebd_oauth_token(ebd_oauth_t *o, ebd_oauth_wait_t *w, uint64_t timeout_ms)
{
    char      err[sizeof(o->last_err) + 64];
    uint64_t  now = ebd_mono_us() / 1000;

    if (o->authorization != NULL && now < o->expires_ms) {
        w->retry_after_ms = -1;
        w->cb(w, o->authorization, o->generation, NULL);
        return;
    }

    ebd_oauth_forget(o);

    /* an attempt retried when told (retry_after_ms) may come a tick
     * early by this clock: it is due */
    if (!o->xfer.active && o->backoff_ms && now + 10 < o->retry_ms) {
        /* the endpoint failed a moment ago: not asked again yet */
        snprintf(err, sizeof(err), "%s; next token request in %llu ms",
                 o->last_err, (unsigned long long) (o->retry_ms - now));
        w->retry_after_ms = (int64_t) (o->retry_ms - now);
        w->cb(w, NULL, 0, err);
        return;
    }

    ebd_oauth_queue_append(&o->waiting, w);

    if (o->xfer.active) {
        return;     /* one fetch for all */
    }

    if (ebd_oauth_start(o, timeout_ms) != 0) {
        snprintf(err, sizeof(err), "oauth2 connection %s: could not start "
                 "the token request", o->conn->name);
        ebd_log(EBD_LOG_WARN, "%s", err);
        ebd_metrics_oauth(o->metrics, 1, 0, 0);
        ebd_oauth_dispatch(o, err);
    }
}


void
ebd_oauth_invalidate(ebd_oauth_t *o, uint64_t generation)
{
    if (o->authorization != NULL && o->generation == generation) {
        ebd_log(EBD_LOG_INFO, "oauth2 connection %s: the token was refused, "
                "getting a new one", o->conn->name);
        ebd_oauth_forget(o);
    }
}
