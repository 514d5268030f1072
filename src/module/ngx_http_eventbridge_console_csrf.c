/*
 * CSRF protection of the console's POSTs. GET api/csrf hands out a token,
 * TIME.MAC: MAC the HMAC-SHA256 of TIME under a key made when the
 * configuration is read (every worker has it; a reload makes another,
 * and the page fetches a new token on 403). A POST must carry it in
 * X-EB-CSRF, a header no other site can set without a CORS preflight
 * nginx never grants, and, when the browser says where the request
 * comes from (Origin, Sec-Fetch-Site), come from the console's own
 * origin. Nothing is stored; a token is good for EB_CONSOLE_CSRF_TTL.
 */

#include "ngx_http_eventbridge_console.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>


#define EB_CSRF_MAC_LEN  32
#define EB_CSRF_LEN      (16 + 1 + 2 * EB_CSRF_MAC_LEN)


ngx_int_t
ngx_http_eventbridge_console_csrf_init(ngx_conf_t *cf,
    ngx_http_eventbridge_main_conf_t *mcf)
{
    if (mcf->console_key_set) {
        return NGX_OK;
    }

    if (RAND_bytes(mcf->console_key, sizeof(mcf->console_key)) != 1) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "eventbridge_console: no random bytes for the CSRF "
                      "key");
        return NGX_ERROR;
    }

    mcf->console_key_set = 1;

    return NGX_OK;
}


/* TIME.MAC for time t into out (EB_CSRF_LEN bytes) */
static ngx_int_t
ngx_http_eventbridge_csrf_token(ngx_http_eventbridge_main_conf_t *mcf,
    time_t t, u_char *out)
{
    u_char  ts[16], mac[EB_CSRF_MAC_LEN];
    size_t  len;

    ngx_sprintf(ts, "%016xL", (uint64_t) t);

    if (EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, mcf->console_key,
                  sizeof(mcf->console_key), ts, sizeof(ts), mac, sizeof(mac),
                  &len)
        == NULL || len != sizeof(mac))
    {
        return NGX_ERROR;
    }

    ngx_memcpy(out, ts, sizeof(ts));
    out[sizeof(ts)] = '.';
    ngx_hex_dump(out + sizeof(ts) + 1, mac, sizeof(mac));

    return NGX_OK;
}


ngx_int_t
ngx_http_eventbridge_console_api_csrf(ngx_http_eventbridge_console_t *cn)
{
    u_char  token[EB_CSRF_LEN];

    if (ngx_http_eventbridge_csrf_token(cn->mcf, cn->now, token) != NGX_OK
        || ngx_http_eventbridge_console_gen(cn) != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    (void) yajl_gen_map_open(cn->g);
    ngx_http_eventbridge_console_str(cn->g, "token");
    ngx_http_eventbridge_console_strn(cn->g, token, sizeof(token));
    ngx_http_eventbridge_console_str(cn->g, "header");
    ngx_http_eventbridge_console_str(cn->g, "X-EB-CSRF");
    ngx_http_eventbridge_console_str(cn->g, "expires");
    ngx_http_eventbridge_console_int(cn->g, cn->now + EB_CONSOLE_CSRF_TTL);
    (void) yajl_gen_map_close(cn->g);

    if (ngx_http_eventbridge_console_finish(cn) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_http_eventbridge_console_send(cn);
}


static ngx_table_elt_t *
ngx_http_eventbridge_csrf_header(ngx_http_request_t *r, const char *name)
{
    size_t            len;
    ngx_uint_t        i;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h;

    len = ngx_strlen(name);
    part = &r->headers_in.headers.part;
    h = part->elts;

    for (i = 0; /* void */; i++) {
        if (i >= part->nelts) {
            if (part->next == NULL) {
                return NULL;
            }

            part = part->next;
            h = part->elts;
            i = 0;
        }

        if (h[i].key.len == len
            && ngx_strncasecmp(h[i].key.data, (u_char *) name, len) == 0)
        {
            return &h[i];
        }
    }
}


/* Origin, when sent, is this server: scheme://Host */
static ngx_uint_t
ngx_http_eventbridge_csrf_same_origin(ngx_http_request_t *r,
    ngx_str_t *origin)
{
    u_char     *p;
    ngx_str_t  *host;

    if (r->headers_in.host == NULL) {
        return 0;
    }

    host = &r->headers_in.host->value;

    p = ngx_strlchr(origin->data, origin->data + origin->len, ':');
    if (p == NULL || origin->data + origin->len - p < 3
        || p[1] != '/' || p[2] != '/')
    {
        return 0;
    }

    p += 3;

    return (size_t) (origin->data + origin->len - p) == host->len
           && ngx_strncasecmp(p, host->data, host->len) == 0;
}


ngx_int_t
ngx_http_eventbridge_console_csrf_check(ngx_http_request_t *r)
{
    u_char                            want[EB_CSRF_LEN];
    time_t                            t;
    ngx_int_t                         n;
    ngx_table_elt_t                  *h;
    ngx_http_eventbridge_main_conf_t *mcf;

    mcf = ngx_http_get_module_main_conf(r, ngx_http_eventbridge_module);

    h = ngx_http_eventbridge_csrf_header(r, "Sec-Fetch-Site");

    if (h && !(h->value.len == 11
               && ngx_strncmp(h->value.data, "same-origin", 11) == 0))
    {
        goto forbidden;
    }

    h = ngx_http_eventbridge_csrf_header(r, "Origin");

    if (h && !ngx_http_eventbridge_csrf_same_origin(r, &h->value)) {
        goto forbidden;
    }

    h = ngx_http_eventbridge_csrf_header(r, "X-EB-CSRF");

    if (h == NULL || h->value.len != EB_CSRF_LEN || h->value.data[16] != '.')
    {
        goto forbidden;
    }

    n = ngx_hextoi(h->value.data, 16);
    if (n == NGX_ERROR) {
        goto forbidden;
    }

    t = (time_t) n;

    if (t > ngx_time() + 60 || t + EB_CONSOLE_CSRF_TTL < ngx_time()) {
        goto forbidden;
    }

    if (ngx_http_eventbridge_csrf_token(mcf, t, want) != NGX_OK) {
        (void) ngx_http_eventbridge_console_error(r,
                                          NGX_HTTP_INTERNAL_SERVER_ERROR,
                                          "InternalError", "no CSRF MAC");
        return NGX_DECLINED;
    }

    if (CRYPTO_memcmp(want, h->value.data, EB_CSRF_LEN) != 0) {
        goto forbidden;
    }

    return NGX_OK;

forbidden:

    (void) ngx_http_eventbridge_console_error(r, NGX_HTTP_FORBIDDEN,
                                              "CSRFRejected",
                                              "a POST needs a token from "
                                              "GET api/csrf in X-EB-CSRF, "
                                              "from the console's origin");
    return NGX_DECLINED;
}
