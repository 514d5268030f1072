/*
 * Reading Redis's own answers about its topology. Everything here is
 * fed straight from the network (fuzzed: fuzz/fuzz_redis_topology.c):
 * any reply shape is checked before it is used.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>

#include "eb_redis_topology.h"


static void
eb_redis_err(char *err, size_t errlen, const char *msg)
{
    if (errlen) {
        snprintf(err, errlen, "%s", msg);
    }
}


int
eb_redis_addr_parse(const char *s, size_t len, eb_redis_addr_t *a)
{
    size_t         colon, hlen, i;
    unsigned long  port;
    unsigned char  buf[sizeof(struct in6_addr)];

    for (colon = len; colon > 0 && s[colon - 1] != ':'; colon--) {
        /* void */
    }

    if (colon < 2 || colon == len || len - colon > 5) {
        return -1;
    }

    port = 0;
    for (i = colon; i < len; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return -1;
        }
        port = port * 10 + (unsigned long) (s[i] - '0');
    }

    if (port == 0 || port > 65535) {
        return -1;
    }

    hlen = colon - 1;

    /* "[v6]:port" as well as Redis's own "v6:port" */
    if (hlen >= 2 && s[0] == '[' && s[hlen - 1] == ']') {
        s++;
        hlen -= 2;
    }

    if (hlen == 0 || hlen >= EB_REDIS_HOST_LEN) {
        return -1;
    }

    memcpy(a->host, s, hlen);
    a->host[hlen] = '\0';

    if (inet_pton(AF_INET, a->host, buf) != 1
        && inet_pton(AF_INET6, a->host, buf) != 1)
    {
        return -1;
    }

    a->port = (int) port;

    return 0;
}


/* a host from a reply: numeric only; "" and "?" mean the node asked */
static int
eb_redis_host(const redisReply *r, const char *from_host, char *host)
{
    unsigned char  buf[sizeof(struct in6_addr)];
    const char    *s;
    size_t         len;

    if (r->type != REDIS_REPLY_STRING) {
        return -1;
    }

    s = r->str;
    len = r->len;

    if (len == 0 || (len == 1 && s[0] == '?')) {
        s = from_host;
        len = strlen(from_host);
    }

    if (len == 0 || len >= EB_REDIS_HOST_LEN) {
        return -1;
    }

    memcpy(host, s, len);
    host[len] = '\0';

    if (inet_pton(AF_INET, host, buf) != 1
        && inet_pton(AF_INET6, host, buf) != 1)
    {
        return -1;
    }

    return 0;
}


static int
eb_redis_map_find(eb_redis_map_t *map, const eb_redis_addr_t *a)
{
    size_t  i;

    for (i = 0; i < map->nnodes; i++) {
        if (map->nodes[i].port == a->port
            && strcmp(map->nodes[i].host, a->host) == 0)
        {
            return (int) i;
        }
    }

    return -1;
}


/* the index of a, added if new; -1 when the nodes are at their limit */
static int
eb_redis_map_add(eb_redis_map_t *map, const eb_redis_addr_t *a)
{
    int               i;
    eb_redis_addr_t  *nodes;

    i = eb_redis_map_find(map, a);
    if (i >= 0) {
        return i;
    }

    if (map->nnodes >= EB_REDIS_MAX_NODES) {
        return -1;
    }

    nodes = realloc(map->nodes, (map->nnodes + 1) * sizeof(eb_redis_addr_t));
    if (nodes == NULL) {
        return -1;
    }

    map->nodes = nodes;
    map->nodes[map->nnodes] = *a;

    return (int) map->nnodes++;
}


void
eb_redis_map_free(eb_redis_map_t *map)
{
    free(map->nodes);
    map->nodes = NULL;
    map->nnodes = 0;
    memset(map->slot, 0xff, sizeof(map->slot));
}


int
eb_redis_map_parse(eb_redis_map_t *map, const redisReply *r,
    const char *from_host, char *err, size_t errlen)
{
    int               n;
    size_t            i;
    long long         start, end, s;
    eb_redis_map_t    next;
    eb_redis_addr_t   a;
    const redisReply *e, *node;

    memset(&next, 0, sizeof(next));
    memset(next.slot, 0xff, sizeof(next.slot));

    if (r == NULL || r->type != REDIS_REPLY_ARRAY) {
        eb_redis_err(err, errlen, "CLUSTER SLOTS: not an array");
        goto failed;
    }

    for (i = 0; i < r->elements; i++) {
        e = r->element[i];

        if (e == NULL || e->type != REDIS_REPLY_ARRAY || e->elements < 3
            || e->element[0]->type != REDIS_REPLY_INTEGER
            || e->element[1]->type != REDIS_REPLY_INTEGER)
        {
            eb_redis_err(err, errlen, "CLUSTER SLOTS: malformed range");
            goto failed;
        }

        start = e->element[0]->integer;
        end = e->element[1]->integer;

        if (start < 0 || end < start || end >= EB_REDIS_SLOTS) {
            eb_redis_err(err, errlen, "CLUSTER SLOTS: slot out of range");
            goto failed;
        }

        /* the range's first node is its primary; replicas follow */
        node = e->element[2];

        if (node->type != REDIS_REPLY_ARRAY || node->elements < 2
            || node->element[1]->type != REDIS_REPLY_INTEGER
            || node->element[1]->integer <= 0
            || node->element[1]->integer > 65535)
        {
            eb_redis_err(err, errlen, "CLUSTER SLOTS: malformed node");
            goto failed;
        }

        if (eb_redis_host(node->element[0], from_host, a.host) != 0) {
            eb_redis_err(err, errlen, "CLUSTER SLOTS: a node's address is "
                         "not numeric (set cluster-preferred-endpoint-type "
                         "ip)");
            goto failed;
        }

        a.port = (int) node->element[1]->integer;

        n = eb_redis_map_add(&next, &a);
        if (n < 0) {
            eb_redis_err(err, errlen, "CLUSTER SLOTS: too many primaries");
            goto failed;
        }

        for (s = start; s <= end; s++) {
            next.slot[s] = (uint16_t) n;
        }
    }

    free(map->nodes);
    *map = next;

    return 0;

failed:

    free(next.nodes);
    eb_redis_map_free(map);

    return -1;
}


const eb_redis_addr_t *
eb_redis_map_node(const eb_redis_map_t *map, unsigned slot)
{
    if (slot >= EB_REDIS_SLOTS || map->slot[slot] == EB_REDIS_NO_NODE
        || map->slot[slot] >= map->nnodes)
    {
        return NULL;
    }

    return &map->nodes[map->slot[slot]];
}


int
eb_redis_map_set(eb_redis_map_t *map, unsigned slot,
    const eb_redis_addr_t *addr)
{
    int  n;

    if (slot >= EB_REDIS_SLOTS) {
        return -1;
    }

    n = eb_redis_map_add(map, addr);
    if (n < 0) {
        return -1;
    }

    map->slot[slot] = (uint16_t) n;

    return 0;
}


int
eb_redis_sentinel_parse(const redisReply *r, eb_redis_addr_t *addr,
    char *err, size_t errlen)
{
    size_t             i;
    unsigned long      port;
    const redisReply  *p;

    if (r == NULL) {
        eb_redis_err(err, errlen, "no reply");
        return -1;
    }

    if (r->type == REDIS_REPLY_NIL) {
        return 0;
    }

    if (r->type == REDIS_REPLY_ERROR) {
        eb_redis_err(err, errlen, r->str ? r->str : "error reply");
        return -1;
    }

    if (r->type != REDIS_REPLY_ARRAY || r->elements != 2
        || r->element[1]->type != REDIS_REPLY_STRING)
    {
        eb_redis_err(err, errlen, "SENTINEL get-master-addr-by-name: "
                     "malformed reply");
        return -1;
    }

    if (eb_redis_host(r->element[0], "", addr->host) != 0) {
        eb_redis_err(err, errlen, "SENTINEL get-master-addr-by-name: the "
                     "primary's address is not numeric");
        return -1;
    }

    p = r->element[1];
    port = 0;

    for (i = 0; i < p->len; i++) {
        if (p->str[i] < '0' || p->str[i] > '9' || i >= 5) {
            port = 0;
            break;
        }
        port = port * 10 + (unsigned long) (p->str[i] - '0');
    }

    if (port == 0 || port > 65535) {
        eb_redis_err(err, errlen, "SENTINEL get-master-addr-by-name: "
                     "bad port");
        return -1;
    }

    addr->port = (int) port;

    return 1;
}


int
eb_redis_role_is_primary(const redisReply *r)
{
    const redisReply  *role;

    if (r == NULL || r->type != REDIS_REPLY_ARRAY || r->elements == 0) {
        return -1;
    }

    role = r->element[0];

    if (role->type != REDIS_REPLY_STRING) {
        return -1;
    }

    return role->len == 6 && memcmp(role->str, "master", 6) == 0;
}


/* whether str starts with the word w (followed by a space or the end) */
static int
eb_redis_word(const char *str, size_t len, const char *w)
{
    size_t  n = strlen(w);

    return len >= n && memcmp(str, w, n) == 0 && (len == n || str[n] == ' ');
}


static const char  *eb_redis_refresh_errors[] = {
    "READONLY", "MASTERDOWN", "LOADING", "CLUSTERDOWN", "UNBLOCKED", NULL
};

static const char  *eb_redis_retry_errors[] = {
    "BUSY", "OOM", "NOREPLICAS", NULL
};


eb_redis_error_e
eb_redis_error_parse(const char *str, size_t len, unsigned *slot,
    eb_redis_addr_t *to)
{
    int                e;
    size_t             i, sp;
    unsigned long      n;
    const char        *p;
    eb_redis_error_e   kind;

    if (eb_redis_word(str, len, "MOVED")) {
        kind = EB_REDIS_ERROR_MOVED;
        p = str + 6;

    } else if (eb_redis_word(str, len, "ASK")) {
        kind = EB_REDIS_ERROR_ASK;
        p = str + 4;

    } else {
        if (eb_redis_word(str, len, "TRYAGAIN")) {
            return EB_REDIS_ERROR_TRYAGAIN;
        }

        for (e = 0; eb_redis_refresh_errors[e]; e++) {
            if (eb_redis_word(str, len, eb_redis_refresh_errors[e])) {
                return EB_REDIS_ERROR_REFRESH;
            }
        }

        for (e = 0; eb_redis_retry_errors[e]; e++) {
            if (eb_redis_word(str, len, eb_redis_retry_errors[e])) {
                return EB_REDIS_ERROR_RETRY;
            }
        }

        return EB_REDIS_ERROR_FATAL;
    }

    /* "MOVED <slot> <host>:<port>": anything else, or a redirection we
     * cannot follow without resolving, means "ask the cluster again" */
    if ((size_t) (p - str) >= len) {
        return EB_REDIS_ERROR_REFRESH;
    }

    len -= (size_t) (p - str);

    n = 0;
    for (sp = 0; sp < len && p[sp] != ' '; sp++) {
        if (p[sp] < '0' || p[sp] > '9' || sp >= 5) {
            return EB_REDIS_ERROR_REFRESH;
        }
        n = n * 10 + (unsigned long) (p[sp] - '0');
    }

    if (sp == 0 || sp == len || n >= EB_REDIS_SLOTS) {
        return EB_REDIS_ERROR_REFRESH;
    }

    p += sp + 1;
    len -= sp + 1;

    for (i = 0; i < len; i++) {
        if (p[i] == ' ') {
            return EB_REDIS_ERROR_REFRESH;
        }
    }

    if (eb_redis_addr_parse(p, len, to) != 0) {
        return EB_REDIS_ERROR_REFRESH;
    }

    *slot = (unsigned) n;

    return kind;
}
