/*
 * eventbridge_redis and eventbridge_redis_wait: parsed and checked at
 * configuration time. Every address is resolved here, to numeric text,
 * so that a worker never resolves a name.
 *
 *   eventbridge_redis ADDRESS [password=P] [user=U] [db=N];
 *   eventbridge_redis cluster ADDRESS... [password=P] [user=U];
 *   eventbridge_redis sentinel=MASTER ADDRESS... [password=P] [user=U]
 *                     [db=N] [sentinel_password=P] [sentinel_user=U];
 *   eventbridge_redis_wait N [TIMEOUT];
 */

#include "ngx_http_eventbridge.h"


static ngx_int_t ngx_http_eventbridge_redis_addr(ngx_conf_t *cf,
    ngx_http_eventbridge_main_conf_t *mcf, ngx_str_t *value);
static ngx_int_t ngx_http_eventbridge_redis_secret(ngx_conf_t *cf,
    ngx_http_eventbridge_main_conf_t *mcf, ngx_str_t *value);


/* the NAME=VALUE credentials of eventbridge_redis */
typedef struct {
    ngx_str_t    name;                 /* with its "=" */
    size_t       offset;               /* of the ngx_str_t in mcf */
    ngx_uint_t   sentinel;             /* sentinel= only */
    const char  *what;                 /* for "empty ..." */
} ngx_http_eventbridge_redis_secret_t;


static ngx_http_eventbridge_redis_secret_t
    ngx_http_eventbridge_redis_secrets[] = {

    { ngx_string("password="),
      offsetof(ngx_http_eventbridge_main_conf_t, redis_password), 0,
      "redis password" },

    { ngx_string("user="),
      offsetof(ngx_http_eventbridge_main_conf_t, redis_user), 0,
      "redis user" },

    { ngx_string("sentinel_password="),
      offsetof(ngx_http_eventbridge_main_conf_t, sentinel_password), 1,
      "sentinel password" },

    { ngx_string("sentinel_user="),
      offsetof(ngx_http_eventbridge_main_conf_t, sentinel_user), 1,
      "sentinel user" },

    { ngx_null_string, 0, 0, NULL }
};


char *
ngx_http_eventbridge_redis_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_eventbridge_main_conf_t  *mcf = conf;

    ngx_int_t    rc;
    ngx_str_t   *value;
    ngx_uint_t   i, first;

    if (mcf->redis_addrs) {
        return "is duplicate";
    }

    value = cf->args->elts;
    first = 1;

    if (ngx_strcmp(value[1].data, "cluster") == 0) {
        mcf->redis_mode = EB_REDIS_CLUSTER;
        first = 2;

    } else if (ngx_strncmp(value[1].data, "sentinel=", 9) == 0) {
        mcf->redis_mode = EB_REDIS_SENTINEL;
        mcf->sentinel_master.data = value[1].data + 9;
        mcf->sentinel_master.len = value[1].len - 9;
        first = 2;

        if (mcf->sentinel_master.len == 0) {
            ngx_http_eventbridge_conf_error(cf, "empty sentinel master name");
            return NGX_CONF_ERROR;
        }
    }

    mcf->redis_addrs = ngx_array_create(cf->pool, 3, sizeof(eb_redis_addr_t));
    if (mcf->redis_addrs == NULL) {
        return NGX_CONF_ERROR;
    }

    for (i = first; i < cf->args->nelts; i++) {

        rc = ngx_http_eventbridge_redis_secret(cf, mcf, &value[i]);

        if (rc == NGX_ERROR) {
            return NGX_CONF_ERROR;
        }

        if (rc == NGX_OK) {
            continue;
        }

        if (ngx_strncmp(value[i].data, "db=", 3) == 0) {
            if (mcf->redis_mode == EB_REDIS_CLUSTER) {
                ngx_http_eventbridge_conf_error(cf,
                                   "\"%V\": a Redis Cluster has only "
                                   "database 0", &value[i]);
                return NGX_CONF_ERROR;
            }

            mcf->redis_db = ngx_atoi(value[i].data + 3, value[i].len - 3);

            if (mcf->redis_db == NGX_ERROR || mcf->redis_db > 65535) {
                ngx_http_eventbridge_conf_error(cf,
                                   "invalid redis database \"%V\"",
                                   &value[i]);
                return NGX_CONF_ERROR;
            }

            continue;
        }

        if (ngx_strlchr(value[i].data, value[i].data + value[i].len, '=')
            && ngx_strncmp(value[i].data, "unix:", 5) != 0)
        {
            ngx_http_eventbridge_conf_error(cf,
                               "invalid parameter \"%V\"", &value[i]);
            return NGX_CONF_ERROR;
        }

        if (ngx_http_eventbridge_redis_addr(cf, mcf, &value[i]) != NGX_OK) {
            return NGX_CONF_ERROR;
        }
    }

    if (mcf->redis_addrs->nelts == 0 && mcf->redis_unix == NULL) {
        ngx_http_eventbridge_conf_error(cf, "no redis address");
        return NGX_CONF_ERROR;
    }

    if (mcf->redis_mode == EB_REDIS_SINGLE
        && mcf->redis_addrs->nelts + (mcf->redis_unix ? 1 : 0) > 1)
    {
        ngx_http_eventbridge_conf_error(cf,
                           "several addresses: use \"cluster\" or "
                           "\"sentinel=MASTER\" before them");
        return NGX_CONF_ERROR;
    }

    if (mcf->redis_user.len && mcf->redis_password.len == 0) {
        ngx_http_eventbridge_conf_error(cf, "\"user=\" needs \"password=\"");
        return NGX_CONF_ERROR;
    }

    if (mcf->sentinel_user.len && mcf->sentinel_password.len == 0) {
        ngx_http_eventbridge_conf_error(cf, "\"sentinel_user=\" needs "
                                        "\"sentinel_password=\"");
        return NGX_CONF_ERROR;
    }

    mcf->redis_addr = value[1];

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_http_eventbridge_redis_secret(ngx_conf_t *cf,
    ngx_http_eventbridge_main_conf_t *mcf, ngx_str_t *value)
{
    ngx_str_t                            *to;
    ngx_http_eventbridge_redis_secret_t  *sc;

    for (sc = ngx_http_eventbridge_redis_secrets; sc->name.len; sc++) {
        if (value->len < sc->name.len
            || ngx_strncmp(value->data, sc->name.data, sc->name.len) != 0
            || (sc->sentinel && mcf->redis_mode != EB_REDIS_SENTINEL))
        {
            continue;
        }

        to = (ngx_str_t *) ((u_char *) mcf + sc->offset);
        to->data = value->data + sc->name.len;
        to->len = value->len - sc->name.len;

        if (to->len == 0) {
            ngx_http_eventbridge_conf_error(cf, "empty %s", sc->what);
            return NGX_ERROR;
        }

        return NGX_OK;
    }

    return NGX_DECLINED;
}


/* One address: a unix socket (single mode only) or the first address a
 * name resolves to, as numeric text */
static ngx_int_t
ngx_http_eventbridge_redis_addr(ngx_conf_t *cf,
    ngx_http_eventbridge_main_conf_t *mcf, ngx_str_t *value)
{
    size_t            len;
    u_char            text[NGX_SOCKADDR_STRLEN + 1];
    ngx_url_t         u;
    eb_redis_addr_t  *a;

    ngx_memzero(&u, sizeof(ngx_url_t));
    u.url = *value;
    u.default_port = mcf->redis_mode == EB_REDIS_SENTINEL ? 26379 : 6379;

    if (ngx_parse_url(cf->pool, &u) != NGX_OK) {
        ngx_http_eventbridge_conf_error(cf,
                           "invalid redis address \"%V\"%s%s", &u.url,
                           u.err ? ": " : "", u.err ? u.err : "");
        return NGX_ERROR;
    }

    if (u.naddrs == 0) {
        ngx_http_eventbridge_conf_error(cf,
                           "redis address \"%V\" resolves to nothing", &u.url);
        return NGX_ERROR;
    }

    if (u.family == AF_UNIX) {
        if (mcf->redis_mode != EB_REDIS_SINGLE) {
            ngx_http_eventbridge_conf_error(cf,
                               "\"%V\": unix sockets only for a single "
                               "server", &u.url);
            return NGX_ERROR;
        }

        len = u.url.len - 5;
        mcf->redis_unix = ngx_pnalloc(cf->pool, len + 1);
        if (mcf->redis_unix == NULL) {
            return NGX_ERROR;
        }

        /* u.url is not NUL-terminated at its length */
        ngx_cpystrn(mcf->redis_unix, u.url.data + 5, len + 1);

        return NGX_OK;
    }

    a = ngx_array_push(mcf->redis_addrs);
    if (a == NULL) {
        return NGX_ERROR;
    }

    /* ngx_sock_ntop without a port gives IPv6 unbracketed */
    len = ngx_sock_ntop(u.addrs[0].sockaddr, u.addrs[0].socklen, text,
                        NGX_SOCKADDR_STRLEN, 0);

    if (len >= EB_REDIS_HOST_LEN) {
        ngx_http_eventbridge_conf_error(cf, "redis address \"%V\" is too "
                                        "long", &u.url);
        return NGX_ERROR;
    }

    ngx_memcpy(a->host, text, len);
    a->host[len] = '\0';
    a->port = ngx_inet_get_port(u.addrs[0].sockaddr);

    return NGX_OK;
}


char *
ngx_http_eventbridge_redis_wait_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_eventbridge_main_conf_t  *mcf = conf;

    ngx_int_t   n;
    ngx_str_t  *value;

    if (mcf->redis_wait != NGX_CONF_UNSET_UINT) {
        return "is duplicate";
    }

    value = cf->args->elts;

    n = ngx_atoi(value[1].data, value[1].len);
    if (n == NGX_ERROR || n < 1 || n > 64) {
        ngx_http_eventbridge_conf_error(cf,
                           "invalid number of replicas \"%V\": "
                           "use 1 to 64", &value[1]);
        return NGX_CONF_ERROR;
    }

    mcf->redis_wait = n;

    if (cf->args->nelts == 3) {
        mcf->redis_wait_timeout = ngx_parse_time(&value[2], 0);

        if (mcf->redis_wait_timeout == (ngx_msec_t) NGX_ERROR
            || mcf->redis_wait_timeout == 0)
        {
            ngx_http_eventbridge_conf_error(cf, "invalid timeout \"%V\"",
                                            &value[2]);
            return NGX_CONF_ERROR;
        }
    }

    mcf->redis_wait_file = cf->conf_file->file.name.data;
    mcf->redis_wait_line = cf->conf_file->line;

    return NGX_CONF_OK;
}


/* Once the http block is read: the WAIT command, its timeout checked
 * against eventbridge_redis_timeout (WAIT must answer before the
 * request gives up). */
ngx_int_t
ngx_http_eventbridge_redis_init_conf(ngx_conf_t *cf,
    ngx_http_eventbridge_main_conf_t *mcf)
{
    u_char  n[NGX_INT_T_LEN], t[NGX_INT_T_LEN];
    size_t  nlen, tlen;

    if (mcf->redis_wait == NGX_CONF_UNSET_UINT) {
        mcf->redis_wait = 0;
        return NGX_OK;
    }

    if (mcf->redis_wait_timeout == NGX_CONF_UNSET_MSEC) {
        mcf->redis_wait_timeout = mcf->redis_timeout / 2;
    }

    if (mcf->redis_wait_timeout >= mcf->redis_timeout) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "\"eventbridge_redis_wait\" directive: timeout %Mms "
                      "must be less than eventbridge_redis_timeout (%Mms) "
                      "in %s:%ui", mcf->redis_wait_timeout,
                      mcf->redis_timeout, mcf->redis_wait_file,
                      mcf->redis_wait_line);
        return NGX_ERROR;
    }

    nlen = ngx_sprintf(n, "%ui", mcf->redis_wait) - n;
    tlen = ngx_sprintf(t, "%M", mcf->redis_wait_timeout) - t;

    mcf->redis_wait_cmd.data = ngx_pnalloc(cf->pool, 64);
    if (mcf->redis_wait_cmd.data == NULL) {
        return NGX_ERROR;
    }

    mcf->redis_wait_cmd.len = ngx_sprintf(mcf->redis_wait_cmd.data,
                                          "*3\r\n$4\r\nWAIT\r\n$%uz\r\n%*s\r\n"
                                          "$%uz\r\n%*s\r\n",
                                          nlen, nlen, n, tlen, tlen, t)
                              - mcf->redis_wait_cmd.data;

    return NGX_OK;
}
