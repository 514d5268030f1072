/*
 * ebd's dingtalk target driver: a DingTalk custom robot (the group
 * chat's "custom robot" webhook), as the seed's notification scenario
 * uses it.
 *
 *   url        the robot's webhook, ".../robot/send?access_token=..."
 *              (the token is a secret: logs show no query)
 *   secret     the robot's signing secret ("SEC..."), or secret_env /
 *              secret_file (ebd_secret.c):
 *              each request then gets "&timestamp=T&sign=S" on its URL,
 *              T the time in ms, S = urlencode(base64(HMAC-SHA256(secret,
 *              T "\n" secret))), as DingTalk documents
 *   msgtype    text, markdown or actionCard; "title", "text",
 *              "single_title", "single_url" are templates over the
 *              event's "variables" (JSONPaths), as a TEMPLATE transform's
 *              (eb_transform.h); "at" goes as is
 *   limit, window   at most limit messages per window per robot URL
 *              (default 20 per 60 s, DingTalk's limit): the others wait
 *
 * DingTalk answers 200 with {"errcode":N,"errmsg":"..."}: errcode 0 is
 * delivered; 130101 (sent too fast) and -1 (busy) are retried (the first
 * after the window), any other is rejected with DingTalk's message (a
 * keyword, signature or IP check failed: sending again cannot help).
 * Transport errors, 429 and 5xx are retried, other statuses rejected.
 *
 * The request goes through the libcurl multi handle of the http drivers
 * (ebd_http_multi.c); crypto is OpenSSL's.
 */

#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include <time.h>

#include <curl/curl.h>
#include <event2/event.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <yajl/yajl_gen.h>
#include <yajl/yajl_tree.h>

#include "eb_buf.h"
#include "eb_transform.h"
#include "ebd_log.h"
#include "ebd_secret.h"
#include "ebd_target.h"
#include "ebd_http.h"


#define EBD_DT_ANSWER_MAX    (16 * 1024)    /* DingTalk answers are small */
#define EBD_DT_LIMIT         20
#define EBD_DT_WINDOW_MS     60000


typedef struct ebd_dt_req_s  ebd_dt_req_t;

/* The send times of one robot (by URL), shared by its targets. */
typedef struct ebd_dt_robot_s {
    struct ebd_dt_robot_s  *next;
    char                   *url;
    unsigned                refs;
    unsigned                limit;
    uint64_t                window_ms;
    uint64_t               *sent;         /* ring of limit send times */
    unsigned                head, n;
    ebd_dt_req_t           *wait_head, *wait_tail;
    struct event           *timer;
} ebd_dt_robot_t;


typedef struct {
    ebd_target_t           *target;
    ebd_dt_robot_t         *robot;
    char                   *secret;       /* NULL: no signing */
    eb_transform_t         *message;      /* the body, a JSON template */
    char                    safe_url[512];
    struct curl_slist      *headers;
} ebd_dt_target_t;


struct ebd_dt_req_s {
    ebd_http_xfer_t         xfer;         /* first: the done callback's */
    ebd_dt_target_t        *dt;
    ebd_delivery_t         *d;
    ebd_dt_req_t           *next;         /* the robot's wait queue */
    char                   *url;
    eb_buf_t                body;
    eb_buf_t                answer;
    char                    errbuf[CURL_ERROR_SIZE];
};


static ebd_dt_robot_t  *ebd_dt_robots;

static void ebd_dt_pump(ebd_dt_robot_t *rb);
static void ebd_dt_finish(ebd_dt_req_t *r, const ebd_result_t *res);


static const char *
ebd_dt_str(yajl_val obj, const char *key)
{
    yajl_val  v = yajl_tree_get(obj, (const char *[]) { key, NULL },
                                yajl_t_string);

    return v != NULL ? YAJL_GET_STRING(v) : NULL;
}


/* ---- the message template ------------------------------------------ */

static int
ebd_dt_gen_str(yajl_gen g, const char *s)
{
    return yajl_gen_string(g, (const unsigned char *) s, strlen(s))
           != yajl_gen_status_ok;
}


/* Copies a parsed value (the "at" object) into g. */
static int
ebd_dt_gen_val(yajl_gen g, yajl_val v)
{
    size_t  i;

    if (YAJL_IS_STRING(v)) {
        return ebd_dt_gen_str(g, YAJL_GET_STRING(v));
    }
    if (YAJL_IS_NUMBER(v)) {
        return yajl_gen_number(g, YAJL_GET_NUMBER(v),
                               strlen(YAJL_GET_NUMBER(v)))
               != yajl_gen_status_ok;
    }
    if (YAJL_IS_TRUE(v) || YAJL_IS_FALSE(v)) {
        return yajl_gen_bool(g, YAJL_IS_TRUE(v)) != yajl_gen_status_ok;
    }
    if (YAJL_IS_ARRAY(v)) {
        yajl_gen_array_open(g);
        for (i = 0; i < v->u.array.len; i++) {
            if (ebd_dt_gen_val(g, v->u.array.values[i]) != 0) {
                return -1;
            }
        }
        return yajl_gen_array_close(g) != yajl_gen_status_ok;
    }
    if (YAJL_IS_OBJECT(v)) {
        yajl_gen_map_open(g);
        for (i = 0; i < v->u.object.len; i++) {
            if (ebd_dt_gen_str(g, v->u.object.keys[i]) != 0
                || ebd_dt_gen_val(g, v->u.object.values[i]) != 0)
            {
                return -1;
            }
        }
        return yajl_gen_map_close(g) != yajl_gen_status_ok;
    }

    return yajl_gen_null(g) != yajl_gen_status_ok;
}


/* {"msgtype":M, M:{fields}, "at":...} as the text of a JSON TEMPLATE:
 * the fields' ${name}s stay inside their strings, so a value goes in as
 * escaped text. */
static eb_transform_t *
ebd_dt_message(yajl_val spec, char *err, size_t errlen)
{
    int              text_only;
    size_t           len, i;
    yajl_gen         g;
    yajl_val         at, vars;
    const char      *msgtype, *s;
    eb_transform_t  *tr;
    const unsigned char  *text;
    struct yajl_val_s     tmpl;

    static const char *const  fields[][2] = {
        { "title", "title" }, { "text", "text" },
        { "single_title", "singleTitle" }, { "single_url", "singleURL" }
    };

    msgtype = ebd_dt_str(spec, "msgtype");

    g = yajl_gen_alloc(NULL);
    if (g == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }

    yajl_gen_map_open(g);
    ebd_dt_gen_str(g, "msgtype");
    ebd_dt_gen_str(g, msgtype);
    ebd_dt_gen_str(g, msgtype);
    yajl_gen_map_open(g);

    for (i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
        s = ebd_dt_str(spec, fields[i][0]);
        text_only = strcmp(msgtype, "text") == 0;
        if (s == NULL || (text_only && strcmp(fields[i][0], "text") != 0)) {
            continue;
        }
        /* a text message has only its content */
        ebd_dt_gen_str(g, text_only ? "content" : fields[i][1]);
        ebd_dt_gen_str(g, s);
    }

    yajl_gen_map_close(g);

    at = yajl_tree_get(spec, (const char *[]) { "at", NULL }, yajl_t_object);
    if (at != NULL) {
        ebd_dt_gen_str(g, "at");
        ebd_dt_gen_val(g, at);
    }

    yajl_gen_map_close(g);
    yajl_gen_get_buf(g, &text, &len);

    tmpl.type = yajl_t_string;
    tmpl.u.string = (char *) text;
    vars = yajl_tree_get(spec, (const char *[]) { "variables", NULL },
                         yajl_t_object);

    tr = eb_transform_compile_tree("TEMPLATE", vars, &tmpl, err, errlen);

    yajl_gen_free(g);
    return tr;
}


/* ---- robots: the rate limit ---------------------------------------- */

static void
ebd_dt_robot_timer(evutil_socket_t fd, short what, void *arg)
{
    ebd_dt_pump(arg);
}


static ebd_dt_robot_t *
ebd_dt_robot_get(ebd_target_t *t, const char *url, unsigned limit,
    uint64_t window_ms)
{
    ebd_dt_robot_t  *rb;

    for (rb = ebd_dt_robots; rb != NULL; rb = rb->next) {
        if (strcmp(rb->url, url) == 0) {
            /* targets of one robot share its window: the first one's
             * limit holds (DingTalk counts per robot) */
            rb->refs++;
            return rb;
        }
    }

    rb = calloc(1, sizeof(ebd_dt_robot_t));
    if (rb == NULL) {
        return NULL;
    }

    rb->url = strdup(url);
    rb->sent = calloc(limit, sizeof(uint64_t));
    rb->timer = evtimer_new(t->base, ebd_dt_robot_timer, rb);

    if (rb->url == NULL || rb->sent == NULL || rb->timer == NULL) {
        free(rb->url);
        free(rb->sent);
        if (rb->timer != NULL) {
            event_free(rb->timer);
        }
        free(rb);
        return NULL;
    }

    rb->refs = 1;
    rb->limit = limit;
    rb->window_ms = window_ms;
    rb->next = ebd_dt_robots;
    ebd_dt_robots = rb;

    return rb;
}


static void
ebd_dt_robot_release(ebd_dt_robot_t *rb)
{
    ebd_dt_robot_t  **pp;

    if (--rb->refs > 0) {
        return;
    }

    for (pp = &ebd_dt_robots; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == rb) {
            *pp = rb->next;
            break;
        }
    }

    event_free(rb->timer);
    free(rb->sent);
    free(rb->url);
    free(rb);
}


/* A send slot now, or 0 and *wait_ms until the oldest send leaves the
 * window. */
static int
ebd_dt_robot_take(ebd_dt_robot_t *rb, uint64_t now, uint64_t *wait_ms)
{
    uint64_t  oldest;

    while (rb->n > 0) {
        oldest = rb->sent[rb->head];
        if (now < oldest + rb->window_ms) {
            break;
        }
        rb->head = (rb->head + 1) % rb->limit;
        rb->n--;
    }

    if (rb->n >= rb->limit) {
        *wait_ms = rb->sent[rb->head] + rb->window_ms - now;
        return 0;
    }

    rb->sent[(rb->head + rb->n) % rb->limit] = now;
    rb->n++;
    return 1;
}


/* ---- one attempt --------------------------------------------------- */

static size_t
ebd_dt_write(char *p, size_t size, size_t n, void *data)
{
    ebd_dt_req_t  *r = data;

    if (r->answer.len + size * n > EBD_DT_ANSWER_MAX) {
        return 0;               /* too large for a DingTalk answer */
    }

    eb_buf_append(&r->answer, p, size * n);
    return r->answer.failed ? 0 : size * n;
}


/* DingTalk's answer to a 200: errcode 0, or why not. */
static void
ebd_dt_errcode(ebd_dt_req_t *r, ebd_result_t *res)
{
    long long  code;
    yajl_val   root, v;
    const char *msg;
    char       ebuf[128];

    eb_buf_append(&r->answer, "", 1);
    root = r->answer.failed ? NULL
                            : yajl_tree_parse((char *) r->answer.data, ebuf,
                                              sizeof(ebuf));

    v = yajl_tree_get(root, (const char *[]) { "errcode", NULL },
                      yajl_t_number);
    if (v == NULL || !YAJL_IS_INTEGER(v)) {
        ebd_result_set(res, EBD_RETRY, 200, "DingTalk answered 200 without "
                       "an errcode");
        yajl_tree_free(root);
        return;
    }

    code = YAJL_GET_INTEGER(v);
    msg = ebd_dt_str(root, "errmsg");

    if (code == 0) {
        ebd_result_set(res, EBD_DELIVERED, 200, "%s", "");

    } else if (code == 130101 || code == -1) {
        ebd_result_set(res, EBD_RETRY, 200, "DingTalk errcode %lld: %.160s",
                       code, msg ? msg : "");
        res->retry_after_ms = code == 130101
                              ? (int64_t) r->dt->robot->window_ms : -1;

    } else {
        ebd_result_set(res, EBD_REJECTED, 200, "DingTalk errcode %lld: "
                       "%.160s", code, msg ? msg : "");
    }

    yajl_tree_free(root);
}


static void
ebd_dt_done(ebd_http_xfer_t *x, CURLcode rc)
{
    long           status = 0;
    ebd_result_t   res;
    ebd_dt_req_t  *r = (ebd_dt_req_t *) x;

    if (rc != CURLE_OK) {
        /* libcurl names host and port, never the query (the token) */
        ebd_result_set(&res, EBD_RETRY, 0, "%s",
                       curl_easy_strerror(rc));
        ebd_dt_finish(r, &res);
        return;
    }

    curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &status);

    if (status == 200) {
        ebd_dt_errcode(r, &res);

    } else if (status == 408 || status == 429 || status >= 500) {
        ebd_result_set(&res, EBD_RETRY, (int) status, "HTTP %ld", status);

    } else {
        ebd_result_set(&res, EBD_REJECTED, (int) status, "HTTP %ld", status);
    }

    ebd_dt_finish(r, &res);
}


/* &timestamp=T&sign=S on the robot's URL */
static char *
ebd_dt_signed_url(ebd_dt_target_t *dt, uint64_t now_ms)
{
    int             n;
    char            ts[32], *sign, *url;
    size_t          len;
    unsigned int    maclen;
    unsigned char   mac[EVP_MAX_MD_SIZE], b64[4 * EVP_MAX_MD_SIZE / 3 + 4];
    eb_buf_t        msg;
    const char     *base = dt->robot->url;

    if (dt->secret == NULL) {
        return strdup(base);
    }

    snprintf(ts, sizeof(ts), "%llu", (unsigned long long) now_ms);

    eb_buf_init(&msg);
    eb_buf_append_str(&msg, ts);
    eb_buf_append_str(&msg, "\n");
    eb_buf_append_str(&msg, dt->secret);
    if (msg.failed
        || HMAC(EVP_sha256(), dt->secret, (int) strlen(dt->secret),
                msg.data, msg.len, mac, &maclen) == NULL)
    {
        eb_buf_free(&msg);
        return NULL;
    }
    eb_buf_free(&msg);

    EVP_EncodeBlock(b64, mac, (int) maclen);

    sign = curl_easy_escape(NULL, (char *) b64, 0);
    if (sign == NULL) {
        return NULL;
    }

    len = strlen(base) + strlen(ts) + strlen(sign) + 32;
    url = malloc(len);
    if (url != NULL) {
        n = snprintf(url, len, "%s%stimestamp=%s&sign=%s", base,
                     strchr(base, '?') ? "&" : "?", ts, sign);
        if (n < 0 || (size_t) n >= len) {
            free(url);
            url = NULL;
        }
    }

    curl_free(sign);
    return url;
}


static void
ebd_dt_start(ebd_dt_req_t *r)
{
    CURL             *easy;
    ebd_result_t      res;
    struct timespec   now;
    ebd_dt_target_t  *dt = r->dt;

    clock_gettime(CLOCK_REALTIME, &now);
    r->url = ebd_dt_signed_url(dt, (uint64_t) now.tv_sec * 1000
                                   + (uint64_t) now.tv_nsec / 1000000);
    easy = ebd_http_easy_get();

    if (r->url == NULL || easy == NULL) {
        if (easy != NULL) {
            ebd_http_easy_put(easy);
        }
        ebd_dt_finish(r, ebd_result_set(&res, EBD_RETRY, 0,
                                        "out of memory"));
        return;
    }

    ebd_http_easy_setup(easy, dt->target->timeout_ms, r->errbuf);
    curl_easy_setopt(easy, CURLOPT_URL, r->url);
    curl_easy_setopt(easy, CURLOPT_HTTPHEADER, dt->headers);
    curl_easy_setopt(easy, CURLOPT_POSTFIELDS, r->body.data);
    curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE, (long) r->body.len);
    curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, ebd_dt_write);
    curl_easy_setopt(easy, CURLOPT_WRITEDATA, r);

    r->xfer.easy = easy;
    r->xfer.done = ebd_dt_done;

    if (ebd_http_xfer_start(&r->xfer) != 0) {
        ebd_dt_finish(r, ebd_result_set(&res, EBD_RETRY, 0,
                                        "libcurl refused the transfer"));
    }
}


/* Sends what the robot's window allows, in order; arms the timer for
 * the rest. */
static void
ebd_dt_pump(ebd_dt_robot_t *rb)
{
    uint64_t       wait_ms;
    ebd_dt_req_t  *r;
    struct timeval tv;

    while ((r = rb->wait_head) != NULL) {
        if (!ebd_dt_robot_take(rb, ebd_mono_us() / 1000, &wait_ms)) {
            if (!evtimer_pending(rb->timer, NULL)) {
                tv.tv_sec = wait_ms / 1000;
                tv.tv_usec = (wait_ms % 1000) * 1000 + 1000;
                evtimer_add(rb->timer, &tv);
            }
            return;
        }

        rb->wait_head = r->next;
        if (rb->wait_head == NULL) {
            rb->wait_tail = NULL;
        }
        r->next = NULL;

        ebd_dt_start(r);
    }
}


static void
ebd_dt_finish(ebd_dt_req_t *r, const ebd_result_t *res)
{
    ebd_delivery_t   *d = r->d;

    if (r->xfer.easy != NULL) {
        ebd_http_easy_put(r->xfer.easy);
    }

    free(r->url);
    eb_buf_free(&r->body);
    eb_buf_free(&r->answer);
    free(r);

    ebd_delivery_done(d, res);
}


static void
ebd_dt_deliver(ebd_target_t *t, ebd_delivery_t *d)
{
    int               rc;
    char              err[256];
    ebd_result_t      res;
    ebd_dt_req_t     *r;
    ebd_dt_target_t  *dt = t->data;
    ebd_dt_robot_t   *rb = dt->robot;

    r = calloc(1, sizeof(ebd_dt_req_t));
    if (r == NULL) {
        ebd_delivery_done(d, ebd_result_set(&res, EBD_RETRY, 0,
                                            "out of memory"));
        return;
    }

    r->dt = dt;
    r->d = d;
    eb_buf_init(&r->body);
    eb_buf_init(&r->answer);

    rc = eb_transform_apply_tree(dt->message, d->tree, d->event,
                                 d->event_len, &r->body, err, sizeof(err));
    if (rc == EB_TRANSFORM_ERROR || r->body.failed) {
        ebd_dt_finish(r, ebd_result_set(&res, EBD_REJECTED, 0,
                                        "the message template: %s",
                                        r->body.failed ? "out of memory"
                                                       : err));
        return;
    }

    if (rb->wait_tail != NULL) {
        rb->wait_tail->next = r;
    } else {
        rb->wait_head = r;
    }
    rb->wait_tail = r;

    ebd_dt_pump(rb);
}


/* ---- the target ---------------------------------------------------- */

static int
ebd_dt_open(ebd_target_t *t, char *err, size_t errlen)
{
    size_t            n;
    yajl_val          v;
    const char       *url;
    unsigned          limit;
    uint64_t          window_ms;
    ebd_dt_target_t  *dt;
    yajl_val          spec = t->conf->spec;

    dt = calloc(1, sizeof(ebd_dt_target_t));
    if (dt == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }

    dt->target = t;
    t->data = dt;

    url = ebd_dt_str(spec, "url");
    ebd_http_safe_url(url, dt->safe_url, sizeof(dt->safe_url));

    if (ebd_secret_load(spec, "secret", &dt->secret, &n, err, errlen) != 0) {
        goto failed;
    }
    if (dt->secret != NULL && dt->secret[0] == '\0') {
        snprintf(err, errlen, "secret: empty");
        goto failed;
    }

    dt->message = ebd_dt_message(spec, err, errlen);
    if (dt->message == NULL) {
        goto failed;
    }

    v = yajl_tree_get(spec, (const char *[]) { "limit", NULL },
                      yajl_t_number);
    limit = v != NULL ? (unsigned) YAJL_GET_INTEGER(v) : EBD_DT_LIMIT;
    if (eb_config_duration(eb_config_get(spec, "window"), &window_ms) != 0
        || window_ms == 0)
    {
        window_ms = EBD_DT_WINDOW_MS;
    }

    dt->robot = ebd_dt_robot_get(t, url, limit, window_ms);
    dt->headers = curl_slist_append(NULL, "Content-Type: application/json;"
                                    " charset=utf-8");
    if (dt->headers != NULL) {
        dt->headers = curl_slist_append(dt->headers, "Expect:");
    }

    if (dt->robot == NULL || dt->headers == NULL
        || ebd_http_multi_ref(t->base) != 0)
    {
        snprintf(err, errlen, "out of memory");
        goto failed;
    }

    return 0;

failed:

    if (dt->robot != NULL) {
        ebd_dt_robot_release(dt->robot);
    }
    curl_slist_free_all(dt->headers);
    eb_transform_free(dt->message);
    ebd_secret_free(dt->secret);
    free(dt);
    t->data = NULL;
    return -1;
}


static void
ebd_dt_close(ebd_target_t *t)
{
    ebd_dt_target_t  *dt = t->data;

    if (dt == NULL) {
        return;
    }

    ebd_dt_robot_release(dt->robot);
    curl_slist_free_all(dt->headers);
    eb_transform_free(dt->message);

    ebd_secret_free(dt->secret);

    free(dt);
    t->data = NULL;

    ebd_http_multi_unref();
}


const ebd_driver_t  ebd_dingtalk_driver = {
    "dingtalk", ebd_dt_open, ebd_dt_deliver, ebd_dt_close, 1
};
