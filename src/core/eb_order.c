/*
 * Ordering keys and partitions (eb_order.h).
 */

#include <stdio.h>
#include <string.h>

#include "eb_jsonpath.h"
#include "eb_order.h"


uint32_t
eb_order_hash(const unsigned char *p, size_t len)
{
    size_t    i;
    uint32_t  h = 2166136261u;

    for (i = 0; i < len; i++) {
        h = (h ^ p[i]) * 16777619u;
    }

    return h;
}


int
eb_order_key(const eb_config_rule_target_t *rt, yajl_val event,
    eb_buf_t *key)
{
    size_t            start, len;
    uint64_t          h;
    eb_jsonpath_rc_t  rc;
    char              digest[48];

    if (rt->order_path == NULL || event == NULL) {
        return 0;
    }

    start = key->len;
    rc = eb_jsonpath_text(rt->order_path, event, key);

    if (rc == EB_JSONPATH_ERROR) {
        return -1;
    }

    if (rc != EB_JSONPATH_FOUND) {
        key->len = start;       /* missing and null: the empty key */
        return 0;
    }

    len = key->len - start;

    if (len > EB_ORDER_KEY_MAX) {
        /* FNV-1a, 64 bits, and the length: one key per long value */
        const unsigned char  *p = key->data + start;
        size_t                i;

        h = 14695981039346656037ULL;
        for (i = 0; i < len; i++) {
            h = (h ^ p[i]) * 1099511628211ULL;
        }

        key->len = start;
        snprintf(digest, sizeof(digest), "#%016llx.%zu",
                 (unsigned long long) h, len);
        return eb_buf_append_str(key, digest);
    }

    return 0;
}


unsigned
eb_order_partition(const eb_config_rule_target_t *rt,
    const unsigned char *key, size_t len)
{
    if (rt->partitions <= 1) {
        return 0;
    }

    return eb_order_hash(key, len) % rt->partitions;
}


unsigned
eb_order_bus_partitions(const eb_config_bus_t *bus, size_t target)
{
    size_t    j, k;
    unsigned  n = 0;

    for (j = 0; j < bus->nrules; j++) {
        for (k = 0; k < bus->rules[j].ntargets; k++) {
            if (bus->rules[j].targets[k].target == target
                && bus->rules[j].targets[k].partitions > n)
            {
                n = bus->rules[j].targets[k].partitions;
            }
        }
    }

    return n;
}


eb_jsonpath_t *
eb_order_path(const char *ordering_key, char *err, size_t errlen)
{
    if (strcmp(ordering_key, "partitionkey") == 0) {
        ordering_key = "$.partitionkey";
    }

    if (ordering_key[0] != '$') {
        snprintf(err, errlen, "must be \"partitionkey\" or a JSONPath "
                 "(\"$...\")");
        return NULL;
    }

    return eb_jsonpath_compile(ordering_key, strlen(ordering_key), err,
                               errlen);
}
