/*
 * The HTTP event source's security settings, as the seed service has
 * them: allowed methods, source addresses (CIDR, IPv4 and IPv6, unix:),
 * Referer hosts, plus a shared-secret token in the query or a header,
 * and the headers never copied into events. All rules are compiled at
 * configuration time; the request path only walks them, before any of
 * the body is read.
 */

#include "ngx_http_eventbridge.h"
#include "eb_str.h"


typedef struct {
    ngx_str_t   name;
    ngx_uint_t  method;
} ngx_http_eventbridge_method_t;


static ngx_http_eventbridge_method_t  ngx_http_eventbridge_methods[] = {
    { ngx_string("GET"), NGX_HTTP_GET },
    { ngx_string("HEAD"), NGX_HTTP_HEAD },
    { ngx_string("POST"), NGX_HTTP_POST },
    { ngx_string("PUT"), NGX_HTTP_PUT },
    { ngx_string("DELETE"), NGX_HTTP_DELETE },
    { ngx_string("PATCH"), NGX_HTTP_PATCH },
    { ngx_string("OPTIONS"), NGX_HTTP_OPTIONS },
    { ngx_null_string, 0 }
};


/* credentials an event never carries, whatever the configuration adds */
static ngx_str_t  ngx_http_eventbridge_strip_default[] = {
    ngx_string("authorization"),
    ngx_string("proxy-authorization"),
    ngx_string("cookie"),
    ngx_string("x-gitlab-token"),
    ngx_string("x-api-key"),
    ngx_string("x-auth-token"),
    ngx_null_string
};


char *
ngx_http_eventbridge_allow_methods(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_eventbridge_loc_conf_t  *lcf = conf;

    ngx_str_t                      *value;
    ngx_uint_t                      i;
    ngx_http_eventbridge_method_t  *m;

    if (lcf->methods != NGX_CONF_UNSET_UINT) {
        return "is duplicate";
    }

    lcf->methods = 0;
    value = cf->args->elts;

    for (i = 1; i < cf->args->nelts; i++) {

        for (m = ngx_http_eventbridge_methods; m->name.len; m++) {
            if (value[i].len == m->name.len
                && ngx_strncasecmp(value[i].data, m->name.data,
                                   m->name.len) == 0)
            {
                break;
            }
        }

        if (m->name.len == 0) {
            ngx_http_eventbridge_conf_error(cf,
                               "unknown method \"%V\"", &value[i]);
            return NGX_CONF_ERROR;
        }

        lcf->methods |= m->method;
    }

    return NGX_CONF_OK;
}


char *
ngx_http_eventbridge_allow_ips(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_eventbridge_loc_conf_t  *lcf = conf;

    ngx_int_t    rc;
    ngx_str_t   *value;
    ngx_uint_t   i;
    ngx_cidr_t  *cidr;

    if (lcf->allow_ips != NGX_CONF_UNSET_PTR) {
        return "is duplicate";
    }

    lcf->allow_ips = ngx_array_create(cf->pool, cf->args->nelts - 1,
                                      sizeof(ngx_cidr_t));
    if (lcf->allow_ips == NULL) {
        return NGX_CONF_ERROR;
    }

    value = cf->args->elts;

    for (i = 1; i < cf->args->nelts; i++) {

#if (NGX_HAVE_UNIX_DOMAIN)
        /* as the access module: unix-socket peers only when listed */
        if (value[i].len == 5 && ngx_strncmp(value[i].data, "unix:", 5) == 0) {
            lcf->allow_unix = 1;
            continue;
        }
#endif

        cidr = ngx_array_push(lcf->allow_ips);
        if (cidr == NULL) {
            return NGX_CONF_ERROR;
        }

        if (value[i].len == 3 && ngx_strncmp(value[i].data, "all", 3) == 0) {
            ngx_http_eventbridge_conf_error(cf,
                               "\"all\" is the default; list addresses or "
                               "ranges instead");
            return NGX_CONF_ERROR;
        }

        rc = ngx_ptocidr(&value[i], cidr);

        if (rc == NGX_ERROR) {
            ngx_http_eventbridge_conf_error(cf,
                               "invalid address or CIDR range \"%V\"",
                               &value[i]);
            return NGX_CONF_ERROR;
        }

        if (rc == NGX_DONE) {
            ngx_conf_log_error(NGX_LOG_WARN, cf, 0,
                               "low address bits of %V are meaningless",
                               &value[i]);
        }
    }

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_http_eventbridge_valid_host_pattern(ngx_str_t *s)
{
    size_t   i, start;
    u_char   c;

    start = 0;

    if (s->len > 2 && s->data[0] == '*' && s->data[1] == '.') {
        start = 2;

    } else if (s->len > 1 && s->data[0] == '.') {
        start = 1;
    }

    if (start == s->len) {
        return NGX_ERROR;
    }

    for (i = start; i < s->len; i++) {
        c = s->data[i];

        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
              || (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_'))
        {
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


char *
ngx_http_eventbridge_allow_referers(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_eventbridge_loc_conf_t  *lcf = conf;

    ngx_str_t   *value, *host;
    ngx_uint_t   i;

    if (lcf->allow_referers != NGX_CONF_UNSET_PTR) {
        return "is duplicate";
    }

    lcf->allow_referers = ngx_array_create(cf->pool, cf->args->nelts - 1,
                                           sizeof(ngx_str_t));
    if (lcf->allow_referers == NULL) {
        return NGX_CONF_ERROR;
    }

    lcf->allow_no_referer = 0;
    value = cf->args->elts;

    for (i = 1; i < cf->args->nelts; i++) {

        if (value[i].len == 4 && ngx_strncmp(value[i].data, "none", 4) == 0) {
            lcf->allow_no_referer = 1;
            continue;
        }

        if (ngx_http_eventbridge_valid_host_pattern(&value[i]) != NGX_OK) {
            ngx_http_eventbridge_conf_error(cf,
                               "invalid referer host \"%V\": expected a host "
                               "name, \"*.domain\", \".domain\" or \"none\"",
                               &value[i]);
            return NGX_CONF_ERROR;
        }

        host = ngx_array_push(lcf->allow_referers);
        if (host == NULL) {
            return NGX_CONF_ERROR;
        }

        *host = value[i];
    }

    return NGX_CONF_OK;
}


/* a header field name (RFC 9110 token), lower-cased in place */
static ngx_int_t
ngx_http_eventbridge_header_name(ngx_str_t *name)
{
    u_char      c;
    ngx_uint_t  i;

    if (name->len == 0) {
        return NGX_ERROR;
    }

    for (i = 0; i < name->len; i++) {
        c = name->data[i];

        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
              || (c >= '0' && c <= '9') || ngx_strchr("!#$%&'*+-.^_`|~", c)))
        {
            return NGX_ERROR;
        }
    }

    ngx_strlow(name->data, name->data, name->len);

    return NGX_OK;
}


char *
ngx_http_eventbridge_token_header(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_eventbridge_loc_conf_t  *lcf = conf;

    ngx_str_t  *value;

    if (lcf->token_header.data) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (ngx_http_eventbridge_header_name(&value[1]) != NGX_OK) {
        ngx_http_eventbridge_conf_error(cf, "invalid header name \"%V\"",
                                        &value[1]);
        return NGX_CONF_ERROR;
    }

    lcf->token_header = value[1];

    return NGX_CONF_OK;
}


char *
ngx_http_eventbridge_strip_headers(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_eventbridge_loc_conf_t  *lcf = conf;

    ngx_str_t   *value, *name;
    ngx_uint_t   i;

    if (lcf->strip_headers != NGX_CONF_UNSET_PTR) {
        return "is duplicate";
    }

    lcf->strip_headers = ngx_array_create(cf->pool, cf->args->nelts - 1,
                                          sizeof(ngx_str_t));
    if (lcf->strip_headers == NULL) {
        return NGX_CONF_ERROR;
    }

    value = cf->args->elts;

    for (i = 1; i < cf->args->nelts; i++) {
        if (ngx_http_eventbridge_header_name(&value[i]) != NGX_OK) {
            ngx_http_eventbridge_conf_error(cf, "invalid header name \"%V\"",
                                            &value[i]);
            return NGX_CONF_ERROR;
        }

        name = ngx_array_push(lcf->strip_headers);
        if (name == NULL) {
            return NGX_CONF_ERROR;
        }

        *name = value[i];
    }

    return NGX_CONF_OK;
}


/* the defaults, then what the configuration adds, then the token header */
static ngx_int_t
ngx_http_eventbridge_merge_strip(ngx_conf_t *cf,
    ngx_http_eventbridge_loc_conf_t *conf)
{
    ngx_str_t   *name, *add;
    ngx_uint_t   i, n;

    n = sizeof(ngx_http_eventbridge_strip_default) / sizeof(ngx_str_t)
        + (conf->strip_headers ? conf->strip_headers->nelts : 0);

    conf->strip = ngx_array_create(cf->pool, n, sizeof(ngx_str_t));
    if (conf->strip == NULL) {
        return NGX_ERROR;
    }

    for (add = ngx_http_eventbridge_strip_default; add->len; add++) {
        name = ngx_array_push(conf->strip);
        if (name == NULL) {
            return NGX_ERROR;
        }
        *name = *add;
    }

    add = conf->strip_headers ? conf->strip_headers->elts : NULL;

    for (i = 0; conf->strip_headers && i < conf->strip_headers->nelts; i++) {
        name = ngx_array_push(conf->strip);
        if (name == NULL) {
            return NGX_ERROR;
        }
        *name = add[i];
    }

    if (conf->token_header.len) {
        name = ngx_array_push(conf->strip);
        if (name == NULL) {
            return NGX_ERROR;
        }
        *name = conf->token_header;
    }

    return NGX_OK;
}


ngx_int_t
ngx_http_eventbridge_stripped(ngx_http_eventbridge_loc_conf_t *lcf,
    ngx_table_elt_t *h)
{
    ngx_str_t   *name;
    ngx_uint_t   i;

    name = lcf->strip->elts;

    for (i = 0; i < lcf->strip->nelts; i++) {
        if (name[i].len == h->key.len
            && ngx_strncmp(name[i].data, h->lowcase_key, h->key.len) == 0)
        {
            return 1;
        }
    }

    return 0;
}


ngx_int_t
ngx_http_eventbridge_merge_security(ngx_conf_t *cf,
    ngx_http_eventbridge_loc_conf_t *prev,
    ngx_http_eventbridge_loc_conf_t *conf)
{
    u_char                         *p;
    size_t                          len;
    ngx_http_eventbridge_method_t  *m;

    ngx_conf_merge_uint_value(conf->methods, prev->methods, NGX_HTTP_POST);
    if (conf->allow_ips == NGX_CONF_UNSET_PTR) {
        conf->allow_unix = prev->allow_unix;   /* a part of allow_ips */
    }

    ngx_conf_merge_ptr_value(conf->allow_ips, prev->allow_ips, NULL);
    ngx_conf_merge_ptr_value(conf->allow_referers, prev->allow_referers,
                             NULL);
    ngx_conf_merge_value(conf->allow_no_referer, prev->allow_no_referer, 0);
    ngx_conf_merge_str_value(conf->token, prev->token, "");
    ngx_conf_merge_str_value(conf->token_header, prev->token_header, "");
    ngx_conf_merge_ptr_value(conf->strip_headers, prev->strip_headers, NULL);

    if (ngx_http_eventbridge_merge_strip(cf, conf) != NGX_OK) {
        return NGX_ERROR;
    }

    /* the Allow header of 405 answers, built once */
    len = 0;

    for (m = ngx_http_eventbridge_methods; m->name.len; m++) {
        if (conf->methods & m->method) {
            len += m->name.len + 2;
        }
    }

    p = ngx_pnalloc(cf->pool, len);
    if (p == NULL) {
        return NGX_ERROR;
    }

    conf->allow_header.data = p;

    for (m = ngx_http_eventbridge_methods; m->name.len; m++) {
        if (conf->methods & m->method) {
            if (p != conf->allow_header.data) {
                *p++ = ',';
                *p++ = ' ';
            }
            p = ngx_cpymem(p, m->name.data, m->name.len);
        }
    }

    conf->allow_header.len = p - conf->allow_header.data;

    return NGX_OK;
}


static ngx_int_t
ngx_http_eventbridge_check_address(ngx_http_request_t *r,
    ngx_http_eventbridge_loc_conf_t *lcf)
{
    ngx_array_t          *rules = lcf->allow_ips;
    in_addr_t             addr;
    ngx_uint_t            i, n;
    ngx_cidr_t           *cidr;
    struct sockaddr_in   *sin;
#if (NGX_HAVE_INET6)
    u_char               *p;
    struct in6_addr      *in6;
    struct sockaddr_in6  *sin6;
#endif

    cidr = rules->elts;

    switch (r->connection->sockaddr->sa_family) {

#if (NGX_HAVE_INET6)
    case AF_INET6:
        sin6 = (struct sockaddr_in6 *) r->connection->sockaddr;
        in6 = &sin6->sin6_addr;

        /* ::ffff:a.b.c.d is checked against the IPv4 rules */
        if (IN6_IS_ADDR_V4MAPPED(in6)) {
            p = in6->s6_addr;
            addr = (in_addr_t) p[12] << 24 | p[13] << 16 | p[14] << 8 | p[15];
            addr = htonl(addr);
            goto ipv4;
        }

        for (i = 0; i < rules->nelts; i++) {
            if (cidr[i].family != AF_INET6) {
                continue;
            }

            for (n = 0; n < 16; n++) {
                if ((in6->s6_addr[n] & cidr[i].u.in6.mask.s6_addr[n])
                    != cidr[i].u.in6.addr.s6_addr[n])
                {
                    break;
                }
            }

            if (n == 16) {
                return NGX_OK;
            }
        }

        return NGX_DECLINED;
#endif

    case AF_INET:
        sin = (struct sockaddr_in *) r->connection->sockaddr;
        addr = sin->sin_addr.s_addr;
        goto ipv4;

    default:
        /* unix sockets: only when "unix:" is listed */
        return lcf->allow_unix ? NGX_OK : NGX_DECLINED;
    }

ipv4:

    for (i = 0; i < rules->nelts; i++) {
        if (cidr[i].family == AF_INET
            && (addr & cidr[i].u.in.mask) == cidr[i].u.in.addr)
        {
            return NGX_OK;
        }
    }

    return NGX_DECLINED;
}


/* The host of "scheme://[user@]host[:port][/...]"; empty if none. */
static void
ngx_http_eventbridge_referer_host(ngx_str_t *referer, ngx_str_t *host)
{
    u_char  *p, *last, *start;

    host->len = 0;

    p = referer->data;
    last = p + referer->len;

    p = ngx_strlcasestrn(p, last, (u_char *) "://", 3 - 1);
    if (p == NULL) {
        return;
    }

    start = p + 3;

    for (p = start; p < last; p++) {
        if (*p == '/' || *p == '?' || *p == '#') {
            break;
        }

        if (*p == '@') {
            start = p + 1;
        }
    }

    last = p;

    /* drop the port, but not the colons of a bracketed IPv6 literal */
    for (p = last; p > start; p--) {
        if (p[-1] == ':') {
            last = p - 1;
            break;
        }

        if (p[-1] == ']') {
            break;
        }
    }

    host->data = start;
    host->len = last - start;
}


static ngx_int_t
ngx_http_eventbridge_check_referer(ngx_http_request_t *r,
    ngx_http_eventbridge_loc_conf_t *lcf)
{
    ngx_str_t   host, *pat;
    ngx_uint_t  i;

    if (r->headers_in.referer == NULL) {
        return lcf->allow_no_referer ? NGX_OK : NGX_DECLINED;
    }

    ngx_http_eventbridge_referer_host(&r->headers_in.referer->value, &host);

    if (host.len == 0) {
        return NGX_DECLINED;
    }

    pat = lcf->allow_referers->elts;

    for (i = 0; i < lcf->allow_referers->nelts; i++) {
        if (eb_host_match(pat[i].data, pat[i].len, host.data, host.len)) {
            return NGX_OK;
        }
    }

    return NGX_DECLINED;
}


/*
 * The values of the query arguments "token" in s (a request line, a URI
 * or the arguments) become "***", in a copy: log lines carry
 * r->request_line, access logs $request, $request_uri and $args.
 */
static void
ngx_http_eventbridge_redact(ngx_pool_t *pool, ngx_str_t *s)
{
    u_char  *p, *q, *end, *v, *copy, *out;

    if (s->len == 0) {
        return;
    }

    end = s->data + s->len;

    p = ngx_strlchr(s->data, end, '?');
    if (p == NULL) {
        p = s->data - 1;                    /* r->args: no '?' */
    }

    copy = NULL;
    out = NULL;
    q = s->data;                            /* copied up to here */

    while ((p = ngx_strlcasestrn(p + 1, end, (u_char *) "token=", 6 - 1))) {

        if (p != s->data && p[-1] != '?' && p[-1] != '&') {
            continue;
        }

        if (copy == NULL) {
            /* "***" is at most 3 bytes longer than each value */
            copy = ngx_pnalloc(pool, s->len * 2 + 3);
            if (copy == NULL) {
                return;
            }
            out = copy;
        }

        for (v = p + 6; v < end && *v != '&' && *v != ' ' && *v != '#'; v++) {
            /* void */
        }

        out = ngx_cpymem(out, q, p + 6 - q);
        out = ngx_cpymem(out, "***", 3);
        q = v;
        p = v - 1;
    }

    if (copy == NULL) {
        return;
    }

    out = ngx_cpymem(out, q, end - q);

    s->data = copy;
    s->len = out - copy;
}


/*
 * The token as sent: the header's value, or the query argument decoded
 * (the argument is then redacted before anything is logged, whether the
 * request goes on or not). NGX_DECLINED: none sent.
 */
static ngx_int_t
ngx_http_eventbridge_sent_token(ngx_http_request_t *r,
    ngx_http_eventbridge_loc_conf_t *lcf, ngx_str_t *token)
{
    ngx_str_t         arg;
    ngx_uint_t        i;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h;

    /* whether or not it is the one checked, no log line shows it */
    if (ngx_http_arg(r, (u_char *) "token", 5, &arg) == NGX_OK) {
        token->data = ngx_pnalloc(r->pool, arg.len + 1);
        if (token->data == NULL) {
            return NGX_ERROR;
        }

        token->len = eb_form_decode(token->data, arg.data, arg.len);

        ngx_http_eventbridge_redact(r->pool, &r->request_line);
        ngx_http_eventbridge_redact(r->pool, &r->unparsed_uri);
        ngx_http_eventbridge_redact(r->pool, &r->args);

        if (lcf->token_header.len == 0) {
            return NGX_OK;
        }
    }

    if (lcf->token_header.len) {
        for (part = &r->headers_in.headers.part; part; part = part->next) {
            h = part->elts;

            for (i = 0; i < part->nelts; i++) {
                if (h[i].key.len == lcf->token_header.len
                    && ngx_strncmp(h[i].lowcase_key, lcf->token_header.data,
                                   h[i].key.len) == 0)
                {
                    *token = h[i].value;
                    return NGX_OK;
                }
            }
        }
    }

    return NGX_DECLINED;
}


/* A refused request's body is discarded without first inviting it with
 * "100 Continue": the sender gets the final answer at once. */
static ngx_int_t
ngx_http_eventbridge_refuse_body(ngx_http_request_t *r)
{
    r->expect_tested = 1;

    return ngx_http_discard_request_body(r);
}


ngx_int_t
ngx_http_eventbridge_check_access(ngx_http_request_t *r,
    ngx_http_eventbridge_loc_conf_t *lcf)
{
    ngx_int_t         rc, sent;
    ngx_str_t         token;
    ngx_table_elt_t  *h;

    /* first, so that no line logged below shows a token in the query */
    sent = NGX_DECLINED;

    if (lcf->token.len) {
        sent = ngx_http_eventbridge_sent_token(r, lcf, &token);

        if (sent == NGX_ERROR) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
    }

    if (!(r->method & lcf->methods)) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "eventbridge %V: method %V not allowed",
                      &lcf->endpoint, &r->method_name);

        rc = ngx_http_eventbridge_refuse_body(r);
        if (rc != NGX_OK) {
            return rc;
        }

        h = ngx_list_push(&r->headers_out.headers);
        if (h == NULL) {
            return NGX_ERROR;
        }

        h->hash = 1;
        ngx_str_set(&h->key, "Allow");
        h->value = lcf->allow_header;
#if (nginx_version >= 1023000)
        h->next = NULL;            /* 1.23+: the chain of same-name headers */
#endif

        ngx_http_eventbridge_count_reject(r, EB_REJECT_METHOD);
        return ngx_http_eventbridge_send_error(r, NGX_HTTP_NOT_ALLOWED,
                   "MethodNotAllowed", "method %V is not allowed; allowed: %V",
                   &r->method_name, &lcf->allow_header);
    }

    if (lcf->allow_ips
        && ngx_http_eventbridge_check_address(r, lcf) != NGX_OK)
    {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "eventbridge %V: address not allowed",
                      &lcf->endpoint);
        ngx_http_eventbridge_count_reject(r, EB_REJECT_ADDRESS);
        goto discard_forbidden;
    }

    if (lcf->allow_referers
        && ngx_http_eventbridge_check_referer(r, lcf) != NGX_OK)
    {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "eventbridge %V: referer not allowed",
                      &lcf->endpoint);
        ngx_http_eventbridge_count_reject(r, EB_REJECT_REFERER);

        rc = ngx_http_eventbridge_refuse_body(r);
        if (rc != NGX_OK) {
            return rc;
        }

        return ngx_http_eventbridge_send_error(r, NGX_HTTP_FORBIDDEN,
                   "RefererNotAllowed", "referer not allowed");
    }

    if (lcf->token.len) {
        if (sent != NGX_OK
            || !eb_ct_equal(token.data, token.len, lcf->token.data,
                            lcf->token.len))
        {
            ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                          "eventbridge %V: token missing or wrong",
                          &lcf->endpoint);
            ngx_http_eventbridge_count_reject(r, EB_REJECT_TOKEN);

            rc = ngx_http_eventbridge_refuse_body(r);
            if (rc != NGX_OK) {
                return rc;
            }

            return ngx_http_eventbridge_send_error(r, NGX_HTTP_UNAUTHORIZED,
                       "InvalidToken", "token missing or wrong");
        }
    }

    return NGX_DECLINED;

discard_forbidden:

    rc = ngx_http_eventbridge_refuse_body(r);
    if (rc != NGX_OK) {
        return rc;
    }

    return ngx_http_eventbridge_send_error(r, NGX_HTTP_FORBIDDEN,
               "AddressNotAllowed", "source address %V not allowed",
               &r->connection->addr_text);
}
