/*
 * GET api/config: the buses and their rules (patterns as JSON), the
 * targets and connections of the bus configuration file, and the event
 * endpoints of nginx's configuration with the checks in force.
 *
 * Secrets never leave: a target's or connection's member is shown only
 * when its name is on an allow-list of members that are never secret;
 * any other member is listed with the value "***" (so the page can say
 * it is set), header and query values are masked, and URLs lose their
 * user info and query. A key added to the file later is masked until
 * someone puts it on a list here.
 */

#include "ngx_http_eventbridge_console.h"


#define EB_CONSOLE_MASK  "***"


static const char  *ngx_http_eventbridge_target_shown[] = {
    "type", "description", "timeout", "concurrency", "retry",
    "fault_tolerance", "dead_letter", "circuit_breaker", "method",
    "connection", "rate", "mode", "delivery", "host", "port", "database",
    "table", "columns", "batch", "pool", "on_duplicate", "address",
    "stream", "maxlen", "db", "msgtype", "limit", "window", "ordering_key",
    "partitions", NULL
};

static const char  *ngx_http_eventbridge_connection_shown[] = {
    "type", "header", "scope", "method", "client_auth", "insecure", NULL
};

/* names shown, values masked */
static const char  *ngx_http_eventbridge_names_only[] = {
    "headers", "query", "params", NULL
};

static const char  *ngx_http_eventbridge_urls[] = {
    "url", "token_url", NULL
};


static ngx_uint_t
ngx_http_eventbridge_listed(const char **list, const char *name)
{
    for ( /* void */ ; *list; list++) {
        if (ngx_strcmp(*list, name) == 0) {
            return 1;
        }
    }

    return 0;
}


/* a value of the file, as it is */
static void
ngx_http_eventbridge_console_tree(yajl_gen g, yajl_val v, ngx_uint_t depth)
{
    size_t  i;

    if (depth > 64) {
        (void) yajl_gen_null(g);
        return;
    }

    if (YAJL_IS_STRING(v)) {
        ngx_http_eventbridge_console_str(g, YAJL_GET_STRING(v));

    } else if (YAJL_IS_NUMBER(v)) {
        (void) yajl_gen_number(g, YAJL_GET_NUMBER(v),
                               ngx_strlen(YAJL_GET_NUMBER(v)));

    } else if (YAJL_IS_TRUE(v)) {
        (void) yajl_gen_bool(g, 1);

    } else if (YAJL_IS_FALSE(v)) {
        (void) yajl_gen_bool(g, 0);

    } else if (YAJL_IS_OBJECT(v)) {
        (void) yajl_gen_map_open(g);

        for (i = 0; i < v->u.object.len; i++) {
            ngx_http_eventbridge_console_str(g, v->u.object.keys[i]);
            ngx_http_eventbridge_console_tree(g, v->u.object.values[i],
                                              depth + 1);
        }

        (void) yajl_gen_map_close(g);

    } else if (YAJL_IS_ARRAY(v)) {
        (void) yajl_gen_array_open(g);

        for (i = 0; i < v->u.array.len; i++) {
            ngx_http_eventbridge_console_tree(g, v->u.array.values[i],
                                              depth + 1);
        }

        (void) yajl_gen_array_close(g);

    } else {
        (void) yajl_gen_null(g);
    }
}


/* scheme://host[:port]/path: no user info, no query, no fragment */
static void
ngx_http_eventbridge_console_url(yajl_gen g, yajl_val v)
{
    u_char      buf[2048];
    size_t      n, m;
    const char  *s, *sep, *host, *end, *p;

    if (!YAJL_IS_STRING(v)) {
        ngx_http_eventbridge_console_str(g, EB_CONSOLE_MASK);
        return;
    }

    s = YAJL_GET_STRING(v);
    sep = ngx_strstr(s, "://");

    if (sep == NULL || sep - s > 16) {
        ngx_http_eventbridge_console_str(g, EB_CONSOLE_MASK);
        return;
    }

    host = sep + 3;
    end = host + strcspn(host, "?#");

    for (p = host; p < end && *p != '/'; p++) {
        if (*p == '@') {
            host = p + 1;
        }
    }

    n = sep + 3 - s;
    ngx_memcpy(buf, s, n);
    m = ngx_min((size_t) (end - host), sizeof(buf) - n);
    ngx_memcpy(buf + n, host, m);

    ngx_http_eventbridge_console_strn(g, buf, n + m);
}


static void
ngx_http_eventbridge_console_masked(yajl_gen g, yajl_val obj,
    const char **shown)
{
    size_t       i, k;
    yajl_val     v;
    const char  *key;

    (void) yajl_gen_map_open(g);

    for (i = 0; i < obj->u.object.len; i++) {
        key = obj->u.object.keys[i];
        v = obj->u.object.values[i];

        ngx_http_eventbridge_console_str(g, key);

        if (ngx_http_eventbridge_listed(shown, key)) {
            ngx_http_eventbridge_console_tree(g, v, 0);

        } else if (ngx_http_eventbridge_listed(ngx_http_eventbridge_urls, key))
        {
            ngx_http_eventbridge_console_url(g, v);

        } else if (ngx_http_eventbridge_listed(ngx_http_eventbridge_names_only,
                                               key)
                   && YAJL_IS_OBJECT(v))
        {
            (void) yajl_gen_map_open(g);

            for (k = 0; k < v->u.object.len; k++) {
                ngx_http_eventbridge_console_str(g, v->u.object.keys[k]);
                ngx_http_eventbridge_console_str(g, EB_CONSOLE_MASK);
            }

            (void) yajl_gen_map_close(g);

        } else {
            ngx_http_eventbridge_console_str(g, EB_CONSOLE_MASK);
        }
    }

    (void) yajl_gen_map_close(g);
}


static void
ngx_http_eventbridge_console_cidr(yajl_gen g, ngx_cidr_t *cidr)
{
    u_char      text[NGX_SOCKADDR_STRLEN + 8], *p;
    size_t      len;
    ngx_uint_t  bits;
#if (NGX_HAVE_INET6)
    ngx_uint_t  i;
#endif

    switch (cidr->family) {

#if (NGX_HAVE_INET6)
    case AF_INET6:
        len = ngx_inet_ntop(AF_INET6, &cidr->u.in6.addr, text,
                            NGX_SOCKADDR_STRLEN);
        for (bits = 0, i = 0; i < 16; i++) {
            bits += __builtin_popcount(cidr->u.in6.mask.s6_addr[i]);
        }
        break;
#endif

    default: /* AF_INET */
        len = ngx_inet_ntop(AF_INET, &cidr->u.in.addr, text,
                            NGX_SOCKADDR_STRLEN);
        bits = __builtin_popcount(cidr->u.in.mask);
        break;
    }

    p = ngx_sprintf(text + len, "/%ui", bits);
    ngx_http_eventbridge_console_strn(g, text, p - text);
}


static void
ngx_http_eventbridge_console_sources(ngx_http_eventbridge_console_t *cn)
{
    yajl_gen                          g = cn->g;
    ngx_str_t                        *ref;
    ngx_uint_t                        i, k;
    ngx_cidr_t                       *cidr;
    ngx_http_eventbridge_endpoint_t  *ep;
    ngx_http_eventbridge_loc_conf_t  *lcf;

    (void) yajl_gen_array_open(g);

    ep = cn->mcf->endpoints ? cn->mcf->endpoints->elts : NULL;

    for (i = 0; ep && i < cn->mcf->endpoints->nelts; i++) {
        lcf = ep[i].lcf;

        (void) yajl_gen_map_open(g);

        ngx_http_eventbridge_console_str(g, "location");
        ngx_http_eventbridge_console_strn(g, ep[i].location.data,
                                          ep[i].location.len);
        ngx_http_eventbridge_console_str(g, "kind");
        ngx_http_eventbridge_console_str(g, lcf->put_events ? "put_events"
                                                            : "source");
        ngx_http_eventbridge_console_str(g, "name");
        ngx_http_eventbridge_console_strn(g, lcf->endpoint.data,
                                          lcf->endpoint.len);
        ngx_http_eventbridge_console_str(g, "bus");
        ngx_http_eventbridge_console_strn(g, lcf->bus.data, lcf->bus.len);

        ngx_http_eventbridge_console_str(g, "checks");
        (void) yajl_gen_map_open(g);

        ngx_http_eventbridge_console_str(g, "methods");
        ngx_http_eventbridge_console_strn(g, lcf->allow_header.data,
                                          lcf->allow_header.len);

        /* that a token is asked, and where: never the token */
        ngx_http_eventbridge_console_str(g, "token");
        if (lcf->token.len) {
            if (lcf->token_header.len) {
                ngx_http_eventbridge_console_strn(g, lcf->token_header.data,
                                                  lcf->token_header.len);
            } else {
                ngx_http_eventbridge_console_str(g, "query:token");
            }

        } else {
            (void) yajl_gen_null(g);
        }

        ngx_http_eventbridge_console_str(g, "ips");
        if (lcf->allow_ips) {
            (void) yajl_gen_array_open(g);
            cidr = lcf->allow_ips->elts;

            for (k = 0; k < lcf->allow_ips->nelts; k++) {
                ngx_http_eventbridge_console_cidr(g, &cidr[k]);
            }

            if (lcf->allow_unix) {
                ngx_http_eventbridge_console_str(g, "unix:");
            }

            (void) yajl_gen_array_close(g);

        } else {
            (void) yajl_gen_null(g);
        }

        ngx_http_eventbridge_console_str(g, "referers");
        if (lcf->allow_referers) {
            (void) yajl_gen_array_open(g);
            ref = lcf->allow_referers->elts;

            for (k = 0; k < lcf->allow_referers->nelts; k++) {
                ngx_http_eventbridge_console_strn(g, ref[k].data, ref[k].len);
            }

            (void) yajl_gen_array_close(g);

        } else {
            (void) yajl_gen_null(g);
        }

        ngx_http_eventbridge_console_str(g, "signature");
        if (lcf->signature && lcf->signature->preset) {
            ngx_http_eventbridge_console_str(g, lcf->signature->preset);
        } else {
            (void) yajl_gen_null(g);
        }

        ngx_http_eventbridge_console_str(g, "dedupe");
        switch (lcf->dedupe) {
        case EB_DEDUPE_HEADER:
            ngx_http_eventbridge_console_str(g, "header");
            break;
        case EB_DEDUPE_BODY:
            ngx_http_eventbridge_console_str(g, "body");
            break;
        case EB_DEDUPE_CLOUDEVENTS:
            ngx_http_eventbridge_console_str(g, "cloudevents");
            break;
        default:
            (void) yajl_gen_null(g);
        }

        (void) yajl_gen_map_close(g);
        (void) yajl_gen_map_close(g);
    }

    (void) yajl_gen_array_close(g);
}


static void
ngx_http_eventbridge_console_buses(ngx_http_eventbridge_console_t *cn)
{
    size_t                    i, j, k;
    yajl_gen                  g = cn->g;
    yajl_val                  buses, bus, rules, rule;
    const eb_config_t        *cf = cn->mcf->config;
    const eb_config_bus_t    *b;
    const eb_config_rule_t   *ru;

    (void) yajl_gen_array_open(g);

    buses = eb_config_get(cf->root, "buses");

    for (i = 0; i < cf->nbuses; i++) {
        b = &cf->buses[i];
        bus = eb_config_get(buses, b->name);
        rules = eb_config_get(bus, "rules");

        (void) yajl_gen_map_open(g);
        ngx_http_eventbridge_console_str(g, "name");
        ngx_http_eventbridge_console_str(g, b->name);

        ngx_http_eventbridge_console_str(g, "retention");
        (void) yajl_gen_map_open(g);
        ngx_http_eventbridge_console_str(g, "age_ms");
        ngx_http_eventbridge_console_int(g, (int64_t) b->retention_age_ms);
        ngx_http_eventbridge_console_str(g, "length");
        ngx_http_eventbridge_console_int(g, (int64_t) b->retention_length);
        (void) yajl_gen_map_close(g);

        ngx_http_eventbridge_console_str(g, "rules");
        (void) yajl_gen_array_open(g);

        for (j = 0; j < b->nrules; j++) {
            ru = &b->rules[j];
            rule = eb_config_get(rules, ru->name);

            (void) yajl_gen_map_open(g);
            ngx_http_eventbridge_console_str(g, "name");
            ngx_http_eventbridge_console_str(g, ru->name);
            ngx_http_eventbridge_console_str(g, "enabled");
            (void) yajl_gen_bool(g, ru->enabled);

            if (eb_config_get(rule, "description")) {
                ngx_http_eventbridge_console_str(g, "description");
                ngx_http_eventbridge_console_tree(g,
                                      eb_config_get(rule, "description"), 0);
            }

            /* patterns hold no secrets: event values to match */
            ngx_http_eventbridge_console_str(g, "pattern");
            if (eb_config_get(rule, "pattern")) {
                ngx_http_eventbridge_console_tree(g,
                                          eb_config_get(rule, "pattern"), 0);
            } else {
                (void) yajl_gen_null(g);
            }

            ngx_http_eventbridge_console_str(g, "targets");
            (void) yajl_gen_array_open(g);

            for (k = 0; k < ru->ntargets; k++) {
                (void) yajl_gen_map_open(g);
                ngx_http_eventbridge_console_str(g, "target");
                ngx_http_eventbridge_console_str(g,
                                       cf->targets[ru->targets[k].target].name);
                ngx_http_eventbridge_console_str(g, "transform");
                (void) yajl_gen_bool(g, ru->targets[k].transform != NULL);
                /* in order per key: by this path ("" for a NONE target
                 * in order as a whole); null: not in order */
                ngx_http_eventbridge_console_str(g, "ordering_key");
                if (ru->targets[k].partitions == 0) {
                    (void) yajl_gen_null(g);
                } else {
                    ngx_http_eventbridge_console_str(g,
                        ru->targets[k].order_path
                        ? eb_jsonpath_expr(ru->targets[k].order_path) : "");
                }
                (void) yajl_gen_map_close(g);
            }

            (void) yajl_gen_array_close(g);
            (void) yajl_gen_map_close(g);
        }

        (void) yajl_gen_array_close(g);
        (void) yajl_gen_map_close(g);
    }

    (void) yajl_gen_array_close(g);
}


ngx_int_t
ngx_http_eventbridge_console_api_config(ngx_http_eventbridge_console_t *cn)
{
    size_t              i;
    yajl_gen            g;
    const eb_config_t  *cf = cn->mcf->config;

    if (ngx_http_eventbridge_console_gen(cn) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    g = cn->g;

    (void) yajl_gen_map_open(g);

    ngx_http_eventbridge_console_str(g, "buses");
    if (cf) {
        ngx_http_eventbridge_console_buses(cn);
    } else {
        (void) yajl_gen_array_open(g);
        (void) yajl_gen_array_close(g);
    }

    ngx_http_eventbridge_console_str(g, "targets");
    (void) yajl_gen_array_open(g);

    for (i = 0; cf && i < cf->ntargets; i++) {
        (void) yajl_gen_map_open(g);
        ngx_http_eventbridge_console_str(g, "name");
        ngx_http_eventbridge_console_str(g, cf->targets[i].name);
        ngx_http_eventbridge_console_str(g, "spec");
        ngx_http_eventbridge_console_masked(g, cf->targets[i].spec,
                                          ngx_http_eventbridge_target_shown);
        (void) yajl_gen_map_close(g);
    }

    (void) yajl_gen_array_close(g);

    ngx_http_eventbridge_console_str(g, "connections");
    (void) yajl_gen_array_open(g);

    for (i = 0; cf && i < cf->nconnections; i++) {
        (void) yajl_gen_map_open(g);
        ngx_http_eventbridge_console_str(g, "name");
        ngx_http_eventbridge_console_str(g, cf->connections[i].name);
        ngx_http_eventbridge_console_str(g, "spec");
        ngx_http_eventbridge_console_masked(g, cf->connections[i].spec,
                                      ngx_http_eventbridge_connection_shown);
        (void) yajl_gen_map_close(g);
    }

    (void) yajl_gen_array_close(g);

    ngx_http_eventbridge_console_str(g, "sources");
    ngx_http_eventbridge_console_sources(cn);

    (void) yajl_gen_map_close(g);

    if (ngx_http_eventbridge_console_finish(cn) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_http_eventbridge_console_send(cn);
}
