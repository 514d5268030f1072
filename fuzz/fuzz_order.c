/*
 * libFuzzer harness: ordering keys and partitions (eb_order.h), as
 * nginx and ebd compute them for an event. The input's first byte picks
 * the path (a string member, a nested one, "partitionkey", a wildcard
 * that makes an array) and the partitions; the rest is the event. For
 * every event that parses: the key is at most EB_ORDER_KEY_MAX bytes,
 * the same twice, and its partition is in range and its hash's.
 */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "eb_order.h"


static const char *const  eb_fuzz_paths[] = {
    "$.data.key", "$.data.body.userId", "partitionkey", "$.data.*",
    "$..id", "$.data.list[0]", "$.data['a b']", "$"
};


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char                      err[256];
    unsigned                  part;
    yajl_val                  tree;
    eb_buf_t                  k1, k2;
    eb_config_rule_target_t   rt;

    if (size < 1) {
        return 0;
    }

    memset(&rt, 0, sizeof(rt));
    rt.partitions = 1 + (data[0] >> 3) * 8;     /* 1 .. 249 */
    rt.order_path = eb_order_path(eb_fuzz_paths[data[0] & 7], err,
                                  sizeof(err));
    if (rt.order_path == NULL) {
        abort();                /* every path above compiles */
    }

    tree = eb_transform_parse_event(data + 1, size - 1, err, sizeof(err));
    if (tree == NULL) {
        eb_jsonpath_free(rt.order_path);
        return 0;
    }

    eb_buf_init(&k1);
    eb_buf_init(&k2);

    if (eb_order_key(&rt, tree, &k1) == 0
        && eb_order_key(&rt, tree, &k2) == 0)
    {
        if (k1.len > EB_ORDER_KEY_MAX || k1.len != k2.len
            || (k1.len && memcmp(k1.data, k2.data, k1.len) != 0))
        {
            abort();
        }

        part = eb_order_partition(&rt, k1.data, k1.len);
        if (part >= rt.partitions
            || part != eb_order_hash(k1.data, k1.len) % rt.partitions)
        {
            abort();
        }
    }

    eb_buf_free(&k1);
    eb_buf_free(&k2);
    yajl_tree_free(tree);
    eb_jsonpath_free(rt.order_path);

    return 0;
}
