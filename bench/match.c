/*
 * bench/match.c: how many events per second one core matches against a
 * bus's rules, and how that changes from 10 to 10,000 rules.
 *
 * Two events:
 *   dingtalk   the CloudEvent the HTTP source makes of the seed's DingTalk
 *              webhook (body: t/data/dingtalk_user_add_org.json)
 *   synthetic  a ~1 KB order event with nested objects and arrays
 * For each, rulesets of 10, 1,000 and 10,000 rules: 5 rules that match
 * the event (exact, prefix, numeric, anything-but, cidr) and the rest a
 * mix of exact, prefix, numeric and anything-but rules on the same
 * fields that do not (as a bus's rules for other sources, types and
 * values would), many sharing their first condition with the event.
 * Two figures each:
 *   match        matching an event parsed once (eb_ruleset_match_event)
 *   parse+match  eb_ruleset_match_json on the JSON text
 * and the ratio of the time per event with 10,000 rules to that with 10.
 *
 * Each figure is the best of 5 runs of the given seconds (default 0.3),
 * the three rule counts measured in turns.
 *
 * Usage: match [seconds per run] [repository root]
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "eb_pattern.h"


#define NFIXED  5
#define NTMPL   5
#define ROUNDS  5


typedef struct {
    const char  *name;
    const char  *fixed[NFIXED];       /* match the event */
    const char  *tmpl[NTMPL];         /* %d: the rule's number */
} bench_rules_t;


static const bench_rules_t  dingtalk_rules = {
    "dingtalk",
    {
        "{\"source\":[\"my.dingtalk\"],"
        "\"data\":{\"body\":{\"syncAction\":[\"user_add_org\"]}}}",

        "{\"subject\":[{\"prefix\":\"acs:eventbridge:cn-hangzhou:\"}]}",

        "{\"source\":[\"my.dingtalk\"],\"data\":{\"body\":"
        "{\"department\":[{\"numeric\":[\">=\",1,\"<\",2]}]}}}",

        "{\"source\":[\"my.dingtalk\"],\"data\":{\"body\":{\"syncAction\":"
        "[{\"anything-but\":[\"user_leave_org\",\"user_modify_org\"]}]}}}",

        "{\"aliyunpublishaddr\":[{\"cidr\":\"203.0.113.0/24\"}],"
        "\"data\":{\"httpMethod\":[\"POST\"]}}"
    },
    {
        /* exact: other sources; the same source, other actions */
        "{\"source\":[\"app-%d.dingtalk\"],"
        "\"data\":{\"body\":{\"syncAction\":[\"user_add_org\"]}}}",

        "{\"source\":[\"my.dingtalk\"],"
        "\"data\":{\"body\":{\"syncAction\":[\"action_%d\"]}}}",

        /* prefix, after the same type */
        "{\"type\":[\"eventbridge:Events:HTTPEvent\"],"
        "\"subject\":[{\"prefix\":\"acs:eventbridge:cn-shanghai:%d:\"}]}",

        /* numeric, after the same source */
        "{\"source\":[\"my.dingtalk\"],\"data\":{\"body\":{\"department\":"
        "[{\"numeric\":[\">\",%d000,\"<=\",%d001]}]}}}",

        /* anything-but, after another source */
        "{\"source\":[\"ab-%d.dingtalk\"],\"data\":{\"body\":{\"syncAction\":"
        "[{\"anything-but\":[\"user_leave_org\",\"x%d\"]}]}}}"
    }
};


static const bench_rules_t  synthetic_rules = {
    "synthetic",
    {
        "{\"source\":[\"shop.orders\"],\"type\":[\"order.created\"],"
        "\"data\":{\"status\":[\"paid\"]}}",

        "{\"data\":{\"orderId\":[{\"prefix\":\"ORD-2026-\"}],"
        "\"customer\":{\"tier\":[\"gold\",\"platinum\"]}}}",

        "{\"source\":[\"shop.orders\"],"
        "\"data\":{\"amount\":[{\"numeric\":[\">\",1000,\"<=\",5000]}]}}",

        "{\"type\":[\"order.created\"],\"data\":{\"customer\":"
        "{\"country\":[{\"anything-but\":[\"US\",\"GB\"]}]}}}",

        "{\"data\":{\"items\":{\"sku\":[\"SKU-0042\"],"
        "\"qty\":[{\"numeric\":[\">=\",2]}]}}}"
    },
    {
        "{\"source\":[\"shop.orders\"],\"type\":[\"order.%d\"]}",

        "{\"source\":[\"shop-%d.orders\"],\"data\":{\"status\":[\"paid\"]}}",

        "{\"source\":[\"shop.orders\"],"
        "\"data\":{\"orderId\":[{\"prefix\":\"ORD-2025-%d\"}]}}",

        "{\"type\":[\"order.created\"],\"data\":{\"amount\":"
        "[{\"numeric\":[\">\",%d0000,\"<=\",%d0001]}]}}",

        "{\"source\":[\"shop-%d.orders\"],\"data\":{\"customer\":"
        "{\"country\":[{\"anything-but\":[\"CN\",\"X%d\"]}]}}}"
    }
};


static const char  *synthetic_event =
    "{\"specversion\":\"1.0\",\"id\":\"7f4e9c2a-1b3d-4e5f-8a9b-0c1d2e3f4a5b\","
    "\"source\":\"shop.orders\",\"type\":\"order.created\","
    "\"subject\":\"orders/ORD-2026-000123\","
    "\"time\":\"2026-11-23T15:48:55.236+08:00\","
    "\"datacontenttype\":\"application/json\","
    "\"data\":{\"orderId\":\"ORD-2026-000123\",\"status\":\"paid\","
    "\"channel\":\"app\",\"currency\":\"CNY\",\"amount\":1234.5,"
    "\"customer\":{\"id\":\"C-778812\",\"tier\":\"gold\",\"country\":\"CN\","
    "\"email\":\"li.lei@example.com\",\"phone\":\"+86-138-0000-0000\","
    "\"address\":{\"city\":\"Hangzhou\",\"district\":\"Xihu\","
    "\"street\":\"1 Wen San Road\",\"zip\":\"310000\"}},"
    "\"items\":[{\"sku\":\"SKU-0042\",\"name\":\"Tea, Longjing, 250 g\","
    "\"qty\":2,\"price\":300.25},{\"sku\":\"SKU-0777\","
    "\"name\":\"Teapot, clay\",\"qty\":1,\"price\":634},"
    "{\"sku\":\"SKU-1001\",\"name\":\"Cups, set of 4\",\"qty\":1,"
    "\"price\":0}],\"tags\":[\"new-customer\",\"promo-1111\",\"gift\"],"
    "\"payment\":{\"method\":\"alipay\",\"txn\":\"2026112322001400001\","
    "\"paidAt\":\"2026-11-23T15:48:50+08:00\"},"
    "\"shipping\":{\"carrier\":\"SF\",\"service\":\"next-day\","
    "\"fee\":0,\"insured\":true},\"notes\":null,"
    "\"metadata\":{\"ab\":\"B\",\"app\":\"9.1.2\",\"os\":\"ios\","
    "\"ua\":\"ShopApp/9.1.2 (iPhone; iOS 18.1)\"}}}";


static double
now(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);

    return ts.tv_sec + ts.tv_nsec / 1e9;
}


static char *
slurp(const char *path)
{
    FILE    *f;
    long     n;
    char    *p;

    f = fopen(path, "rb");
    if (f == NULL) {
        return NULL;
    }

    fseek(f, 0, SEEK_END);
    n = ftell(f);
    fseek(f, 0, SEEK_SET);
    p = malloc((size_t) n + 1);

    if (p == NULL || fread(p, 1, (size_t) n, f) != (size_t) n) {
        fclose(f);
        free(p);
        return NULL;
    }

    fclose(f);
    p[n] = '\0';

    return p;
}


/* the seed's CloudEvent (docs/directives.md, "The event"), compact */
static char *
dingtalk_event(const char *root)
{
    size_t   i, n;
    char     path[4096], *body, *ev, *d;
    int      in_string, esc;

    snprintf(path, sizeof(path), "%s/t/data/dingtalk_user_add_org.json",
             root);

    body = slurp(path);
    if (body == NULL) {
        return NULL;
    }

    /* the module keeps a JSON body byte for byte but without the
     * whitespace between tokens */
    for (d = body, in_string = 0, esc = 0, i = 0; body[i]; i++) {
        char  c = body[i];

        if (in_string) {
            in_string = !(c == '"' && !esc);
            esc = (c == '\\' && !esc);

        } else if (c == ' ' || c == '\n' || c == '\r' || c == '\t') {
            continue;

        } else if (c == '"') {
            in_string = 1;
        }

        *d++ = c;
    }

    *d = '\0';

    n = strlen(body) + 2048;
    ev = malloc(n);
    snprintf(ev, n,
        "{\"specversion\":\"1.0\","
        "\"id\":\"5d285b01-59b8-43b0-9073-587590a56891\","
        "\"source\":\"my.dingtalk\","
        "\"type\":\"eventbridge:Events:HTTPEvent\","
        "\"subject\":\"acs:eventbridge:cn-hangzhou:1234567890:eventbus/demo/"
        "eventsource/my.dingtalk\","
        "\"time\":\"2026-11-23T15:48:55.236+08:00\","
        "\"datacontenttype\":\"application/json\","
        "\"aliyunpublishtime\":\"2026-11-23T07:48:55.236Z\","
        "\"aliyuneventbusname\":\"demo\",\"aliyunregionid\":\"cn-hangzhou\","
        "\"aliyunaccountid\":\"1234567890\","
        "\"aliyunpublishaddr\":\"203.0.113.9\","
        "\"data\":{\"headers\":{\"accept\":\"*/*\","
        "\"content-length\":\"362\",\"content-type\":\"application/json\","
        "\"host\":\"events.example.com\",\"user-agent\":\"DingTalk/1.0\","
        "\"x-forwarded-for\":\"203.0.113.9\"},"
        "\"path\":\"/webhook/putEvents\",\"httpMethod\":\"POST\","
        "\"queryString\":{\"dept\":\"r&d\"},\"body\":%s}}", body);

    free(body);

    return ev;
}


static eb_ruleset_t *
build(const bench_rules_t *br, int n)
{
    int            i, k;
    char           buf[1024], err[256];
    eb_ruleset_t  *rs;

    rs = eb_ruleset_new();

    for (i = 0; i < n; i++) {
        if (i < NFIXED) {
            snprintf(buf, sizeof(buf), "%s", br->fixed[i]);

        } else {
            k = (i - NFIXED) % NTMPL;
            snprintf(buf, sizeof(buf), br->tmpl[k], i, i);
        }

        if (eb_ruleset_add(rs, (uint32_t) i, (unsigned char *) buf,
                           strlen(buf), err, sizeof(err)) != 0)
        {
            fprintf(stderr, "rule %d: %s\n%s\n", i, err, buf);
            exit(2);
        }
    }

    if (eb_ruleset_compile(rs, err, sizeof(err)) != 0) {
        fprintf(stderr, "compile: %s\n", err);
        exit(2);
    }

    return rs;
}


/* events per second over one run of `seconds` */
static double
measure(const eb_ruleset_t *rs, eb_match_scratch_t *s,
    const eb_pattern_event_t *pev, const char *json, size_t len,
    double seconds, int *matched)
{
    int       i, n;
    long      count;
    double    t0, t;
    uint32_t  ids[64];

    count = 0;
    n = 0;
    t0 = now();

    do {
        for (i = 0; i < 1000; i++) {
            n = pev ? eb_ruleset_match_event(rs, s, pev, ids, 64)
                    : eb_ruleset_match_json(rs, s,
                                            (const unsigned char *) json,
                                            len, ids, 64);
        }

        count += 1000;
        t = now() - t0;
    } while (t < seconds);

    *matched = n;

    return count / t;
}


/* The three sizes are measured in turns, ROUNDS times, and the best run
 * of each kept: noise from other work on the machine then hits every
 * size alike instead of biasing the ratio. */
static void
bench_event(const char *name, const bench_rules_t *br, const char *json,
    double seconds)
{
    int                  i, r, m1[3], m2[3], sizes[3] = { 10, 1000, 10000 };
    size_t               len;
    double               x, parsed[3], full[3];
    eb_ruleset_t        *rs[3];
    eb_match_scratch_t  *s;
    eb_pattern_event_t  *pev[3];
    eb_ruleset_stats_t   st;

    len = strlen(json);
    s = eb_match_scratch_new();

    for (i = 0; i < 3; i++) {
        rs[i] = build(br, sizes[i]);
        pev[i] = eb_pattern_event_new();
        parsed[i] = 0;
        full[i] = 0;

        if (eb_pattern_event_parse(pev[i], rs[i],
                                   (const unsigned char *) json, len)
            != 0)
        {
            fprintf(stderr, "the %s event does not parse\n", name);
            exit(2);
        }
    }

    for (r = 0; r < ROUNDS; r++) {
        for (i = 0; i < 3; i++) {
            x = measure(rs[i], s, pev[i], json, len, seconds, &m1[i]);
            parsed[i] = x > parsed[i] ? x : parsed[i];
            x = measure(rs[i], s, NULL, json, len, seconds, &m2[i]);
            full[i] = x > full[i] ? x : full[i];
        }
    }

    printf("\n%s event (%zu bytes)\n", name, len);
    printf("  %6s %7s %8s %5s %14s %14s\n", "rules", "states", "memory",
           "hits", "match/s", "parse+match/s");

    for (i = 0; i < 3; i++) {
        eb_ruleset_stats(rs[i], &st);

        printf("  %6d %7zu %6zuKB %5d %14.0f %14.0f%s\n", sizes[i],
               st.states, st.memory / 1024, m1[i], parsed[i], full[i],
               m1[i] == m2[i] ? "" : "  (matches differ!)");

        eb_pattern_event_free(pev[i]);
        eb_ruleset_free(rs[i]);
    }

    printf("  time per event, 10,000 rules / 10 rules: match %.2f, "
           "parse+match %.2f\n", parsed[0] / parsed[2], full[0] / full[2]);

    eb_match_scratch_free(s);
}


int
main(int argc, char **argv)
{
    double       seconds;
    const char  *root;
    char        *ding;

    seconds = argc > 1 ? strtod(argv[1], NULL) : 0.3;
    root = argc > 2 ? argv[2] : ".";

    ding = dingtalk_event(root);
    if (ding == NULL) {
        fprintf(stderr, "cannot read %s/t/data/dingtalk_user_add_org.json\n",
                root);
        return 2;
    }

    printf("eb_pattern matching, one core, best of %d runs of %.1f s "
           "(events/s)\n", ROUNDS, seconds);

    bench_event("dingtalk", &dingtalk_rules, ding, seconds);
    bench_event("synthetic", &synthetic_rules, synthetic_event, seconds);

    free(ding);

    return 0;
}
