/*
 * eb_order: ordering keys, partitions, and the configuration's
 * "ordering_key" / "partitions" (nginx and ebd must agree on both; t/091
 * checks them end to end).
 */

#include <stdlib.h>
#include <string.h>

#include "tap.h"
#include "eb_config.h"
#include "eb_order.h"


#define S(s)  (const unsigned char *) (s), sizeof(s) - 1


static char  err[EB_CONFIG_ERROR_MAX];


static eb_config_t *
load(const char *targets, const char *entry)
{
    char  text[4096];

    snprintf(text, sizeof(text),
             "{\"targets\":{%s},\"buses\":{\"b\":{\"rules\":{\"r\":{"
             "\"pattern\":{\"source\":[\"s\"]},\"targets\":[%s]}}}}}",
             targets, entry);
    err[0] = '\0';
    return eb_config_parse("buses.json", (const unsigned char *) text,
                           strlen(text), err, sizeof(err));
}


static const eb_config_rule_target_t *
rt0(eb_config_t *cf)
{
    return &cf->buses[0].rules[0].targets[0];
}


/* the key of event for cf's one rule target, as a C string */
static const char *
key_of(eb_config_t *cf, const char *event)
{
    static char  out[512];
    char         perr[128];
    yajl_val     tree;
    eb_buf_t     b;

    tree = eb_transform_parse_event((const unsigned char *) event,
                                    strlen(event), perr, sizeof(perr));
    eb_buf_init(&b);
    if (eb_order_key(rt0(cf), tree, &b) != 0 || b.len >= sizeof(out)) {
        strcpy(out, "(error)");
    } else {
        memcpy(out, b.data ? (char *) b.data : "", b.len);
        out[b.len] = '\0';
    }
    eb_buf_free(&b);
    yajl_tree_free(tree);
    return out;
}


#define HTTP  "\"type\":\"http\",\"url\":\"http://127.0.0.1:1/\""


int
main(void)
{
    eb_config_t  *cf;
    const char   *k;
    char          big[2048], ev[2200], first[64];
    unsigned      i, n, seen[16];

    /* FNV-1a 32: the published test values */
    is_int(eb_order_hash(S("")), 2166136261u, "hash of \"\"");
    is_int(eb_order_hash(S("a")), 0xe40c292cu, "hash of \"a\"");
    is_int(eb_order_hash(S("foobar")), 0xbf9cf968u, "hash of \"foobar\"");

    /* a target's key, default partitions */
    cf = load("\"t\":{" HTTP ",\"ordering_key\":\"$.data.user\"}",
              "{\"target\":\"t\"}");
    ok(cf != NULL, "ordering_key on a target loads: %s", err);
    is_int(rt0(cf)->partitions, EB_ORDER_PARTITIONS_DEFAULT,
           "default partitions");
    is_str(key_of(cf, "{\"data\":{\"user\":\"u-1\"}}"), "u-1",
           "a string: its characters");
    is_str(key_of(cf, "{\"data\":{\"user\":42.50}}"), "42.50",
           "a number: its text");
    is_str(key_of(cf, "{\"data\":{\"user\":{\"a\":[1,\"x\"]}}}"),
           "{\"a\":[1,\"x\"]}", "an object: compact JSON");
    is_str(key_of(cf, "{\"data\":{\"user\":null}}"), "", "null: empty");
    is_str(key_of(cf, "{\"data\":{}}"), "", "missing: empty");
    is_str(key_of(cf, "{\"data\":{\"user\":\"a\\u00e9\\n\"}}"), "a\xc3\xa9\n",
           "escapes decoded");

    memset(big, 'x', 1000);
    big[1000] = '\0';
    snprintf(ev, sizeof(ev), "{\"data\":{\"user\":\"%s\"}}", big);
    k = key_of(cf, ev);
    ok(strlen(k) <= EB_ORDER_KEY_MAX && k[0] == '#', "a long key is a "
       "digest: %s", k);
    snprintf(first, sizeof(first), "%s", k);
    big[999] = 'y';
    snprintf(ev, sizeof(ev), "{\"data\":{\"user\":\"%s\"}}", big);
    ok(strcmp(key_of(cf, ev), first) != 0, "another long key, another "
       "digest");

    /* partitions: in range, spread */
    memset(seen, 0, sizeof(seen));
    for (i = 0; i < 1600; i++) {
        snprintf(big, sizeof(big), "k%u", i);
        n = eb_order_partition(rt0(cf), (unsigned char *) big, strlen(big));
        if (n < 16) {
            seen[n]++;
        }
    }
    n = 0;
    for (i = 0; i < 16; i++) {
        n += seen[i] >= 50 && seen[i] <= 150;
    }
    is_int(n, 16, "1600 keys over 16 partitions: 50 to 150 each");
    is_int(eb_order_partition(rt0(cf), S("k1")),
           eb_order_hash(S("k1")) % 16, "the partition is the hash mod 16");
    eb_config_free(cf);

    /* partitionkey, partitions set */
    cf = load("\"t\":{" HTTP ",\"ordering_key\":\"partitionkey\","
              "\"partitions\":4}", "{\"target\":\"t\"}");
    ok(cf != NULL, "partitionkey loads: %s", err);
    is_int(rt0(cf)->partitions, 4, "partitions 4");
    is_str(key_of(cf, "{\"partitionkey\":\"pk\",\"data\":1}"), "pk",
           "the CloudEvents partitionkey attribute");
    eb_config_free(cf);

    /* the entry's key overrides; an entry makes an unordered target
     * ordered */
    cf = load("\"t\":{" HTTP "}",
              "{\"target\":\"t\",\"ordering_key\":\"$.data.k\"}");
    ok(cf != NULL, "an entry's ordering_key loads: %s", err);
    is_int(rt0(cf)->partitions, EB_ORDER_PARTITIONS_DEFAULT,
           "the entry is ordered");
    is_str(key_of(cf, "{\"data\":{\"k\":\"e\"}}"), "e", "the entry's key");
    eb_config_free(cf);

    cf = load("\"t\":{" HTTP ",\"ordering_key\":\"$.a\"}",
              "{\"target\":\"t\",\"ordering_key\":\"$.b\"}");
    is_str(key_of(cf, "{\"a\":\"A\",\"b\":\"B\"}"), "B",
           "the entry's key before the target's");
    eb_config_free(cf);

    /* NONE without a key: one partition, one key */
    cf = load("\"t\":{" HTTP ",\"fault_tolerance\":\"NONE\"}",
              "{\"target\":\"t\"}");
    ok(cf != NULL && rt0(cf)->partitions == 1 && rt0(cf)->order_path == NULL,
       "NONE: one partition, no path");
    is_str(key_of(cf, "{\"a\":1}"), "", "NONE: the empty key");
    is_int(eb_order_partition(rt0(cf), S("x")), 0, "NONE: partition 0");
    eb_config_free(cf);

    cf = load("\"t\":{" HTTP "}", "{\"target\":\"t\"}");
    ok(cf != NULL && rt0(cf)->partitions == 0, "not ordered by default");
    eb_config_free(cf);

    /* refused */
    cf = load("\"t\":{" HTTP ",\"ordering_key\":\"data.x\"}",
              "{\"target\":\"t\"}");
    ok(cf == NULL && strstr(err, "targets.t.ordering_key: invalid ordering "
                            "key \"data.x\": must be \"partitionkey\" or a "
                            "JSONPath"), "not a path: %s", err);
    cf = load("\"t\":{" HTTP ",\"ordering_key\":\"$.[\"}",
              "{\"target\":\"t\"}");
    ok(cf == NULL && strstr(err, "targets.t.ordering_key: invalid"),
       "a bad path: %s", err);
    cf = load("\"t\":{" HTTP ",\"partitions\":4}", "{\"target\":\"t\"}");
    ok(cf == NULL && strstr(err, "targets.t.partitions: needs "
                            "\"ordering_key\""), "partitions alone: %s", err);
    cf = load("\"t\":{" HTTP ",\"ordering_key\":\"$.a\",\"partitions\":0}",
              "{\"target\":\"t\"}");
    ok(cf == NULL && strstr(err, "partitions"), "partitions 0: %s", err);
    cf = load("\"t\":{" HTTP ",\"ordering_key\":\"$.a\",\"partitions\":257}",
              "{\"target\":\"t\"}");
    ok(cf == NULL && strstr(err, "partitions"), "partitions 257: %s", err);
    cf = load("\"t\":{" HTTP ",\"ordering_key\":7}", "{\"target\":\"t\"}");
    ok(cf == NULL && strstr(err, "ordering_key"), "a number: %s", err);
    cf = load("\"t\":{" HTTP "}",
              "{\"target\":\"t\",\"ordering_key\":\"nope\"}");
    ok(cf == NULL && strstr(err, "targets[0].ordering_key: invalid"),
       "an entry's bad key: %s", err);
    cf = load("\"t\":{" HTTP "}", "{\"target\":\"t\",\"partitions\":2}");
    ok(cf == NULL && strstr(err, "partitions"), "partitions on an entry: %s",
       err);

    return tap_done();
}
