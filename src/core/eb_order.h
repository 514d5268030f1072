/*
 * Per-key order: which key an event has for an ordered (rule, target)
 * and which partition of the target its entry goes to.
 *
 * nginx appends an ordered (rule, target)'s entry to
 * eb:{BUS}:target:TARGET:p:N, N = FNV-1a(key) mod partitions, with the
 * key in its field "key"; ebd reads each partition under a lease, in
 * order per key (src/dispatcher/ebd_order.c). The same functions serve
 * both sides, and ebd replay, so that they agree on every key.
 */

#ifndef EB_ORDER_H
#define EB_ORDER_H

#include <stddef.h>
#include <stdint.h>
#include <yajl/yajl_tree.h>

#include "eb_buf.h"
#include "eb_config.h"


#define EB_ORDER_PARTITIONS_DEFAULT  16
#define EB_ORDER_PARTITIONS_MAX      256

/* keys longer than this are replaced by a digest of theirs, so that
 * ebd's per-key bookkeeping and the entries stay small */
#define EB_ORDER_KEY_MAX             256


/* A Lua script for the backlog of a target in order per key: the lag
 * and pending entries of the group ARGV[1], summed over the streams
 * KEYS (the target's and its partitions'); returns {known, lag,
 * pending}, known 0 while the group does not exist. ebd's metrics and
 * the console's overview both ask it. */
#define EB_ORDER_GROUPS_LUA                                                   \
    "local known, lag, pending = 0, 0, 0\n"                                    \
    "for _, s in ipairs(KEYS) do\n"                                            \
    "  if redis.call('EXISTS', s) == 1 then\n"                                 \
    "    for _, g in ipairs(redis.call('XINFO', 'GROUPS', s)) do\n"            \
    "      local name, l, p\n"                                                 \
    "      for j = 1, #g, 2 do\n"                                              \
    "        if g[j] == 'name' then name = g[j + 1]\n"                         \
    "        elseif g[j] == 'lag' then l = g[j + 1]\n"                         \
    "        elseif g[j] == 'pending' then p = g[j + 1] end\n"                 \
    "      end\n"                                                              \
    "      if name == ARGV[1] then\n"                                          \
    "        known = 1\n"                                                      \
    "        if type(l) == 'number' then lag = lag + l end\n"                  \
    "        pending = pending + (p or 0)\n"                                   \
    "      end\n"                                                              \
    "    end\n"                                                                \
    "  end\n"                                                                  \
    "end\n"                                                                    \
    "return {known, lag, pending}\n"


/* FNV-1a, 32 bits */
uint32_t eb_order_hash(const unsigned char *p, size_t len);

/* The event's key for rt (ordered: rt->partitions > 0), appended to
 * key: the text of rt->order_path's value (a string without quotes,
 * other values as JSON); empty when it is missing or null, and for a
 * target in order as a whole (no path). Returns 0, or -1 without
 * memory. */
int eb_order_key(const eb_config_rule_target_t *rt, yajl_val event,
    eb_buf_t *key);

unsigned eb_order_partition(const eb_config_rule_target_t *rt,
    const unsigned char *key, size_t len);

/* The partition streams of target on bus, as ebd reads them: the most
 * "partitions" of the bus's (rule, target) entries to it (a NONE target
 * without a key: 1); 0: none of them is in order. */
unsigned eb_order_bus_partitions(const eb_config_bus_t *bus, size_t target);

/* "partitionkey" (the CloudEvents attribute) or a JSONPath: compiled,
 * or NULL with the reason in err */
eb_jsonpath_t *eb_order_path(const char *ordering_key, char *err,
    size_t errlen);

#endif /* EB_ORDER_H */
