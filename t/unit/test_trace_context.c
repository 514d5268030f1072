/*
 * eb_trace_context: W3C Trace Context. traceparent: version 00 exactly,
 * later versions by their first fields, every way to be invalid; new
 * traceparents (format, flags, uniqueness); tracestate: members, optional
 * whitespace, the grammar's bounds, truncation; a parsed event's
 * traceparent and tracestate as ebd reads them.
 */

#include <stdlib.h>
#include <string.h>

#include "tap.h"
#include "eb_str.h"
#include "eb_trace_context.h"


#define U(s)    (const unsigned char *) (s), strlen(s)

#define NEW_N   100000

/* the specification's examples */
#define TP      "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
#define TRACE   "4bf92f3577b34da6a3ce929d0e0e4736"
#define PARENT  "00f067aa0ba902b7"


/* eb_traceparent_valid() on an exact-size copy of s, so that ASan sees
 * any read past the end */
static int
tp_valid(const char *s)
{
    int             rc;
    size_t          len;
    unsigned char  *c;

    len = strlen(s);
    c = malloc(len ? len : 1);
    if (c == NULL) {
        abort();
    }

    memcpy(c, s, len);
    rc = eb_traceparent_valid(c, len);
    free(c);

    return rc;
}


static void
test_traceparent(void)
{
    size_t  i;
    char    buf[EB_TRACEPARENT_MAX + 2];

    static const struct {
        const char  *tp;
        int          valid;
        const char  *what;
    } cases[] = {
        { TP, 1, "the specification's example" },
        { "00-" TRACE "-" PARENT "-00", 1, "not sampled" },
        { "00-" TRACE "-" PARENT "-ff", 1, "unknown flags are accepted" },
        { "00-" TRACE "-" PARENT "-09", 1, "flags 09" },
        { "01-" TRACE "-" PARENT "-01", 1, "version 01" },
        { "cc-" TRACE "-" PARENT "-01-what-the-future-will-be-like", 1,
          "a later version with more fields" },
        { "cc-" TRACE "-" PARENT "-01-", 1,
          "a later version, an empty field after the flags" },
        { "fe-" TRACE "-" PARENT "-01-x", 1, "version fe" },

        { "", 0, "empty" },
        { "00", 0, "version only" },
        { "00-" TRACE "-" PARENT "-0", 0, "54 characters" },
        { "00-" TRACE "-" PARENT, 0, "no flags" },
        { "00-" TRACE "-" PARENT "-01-", 0, "version 00 with a dash more" },
        { "00-" TRACE "-" PARENT "-01-what-the-future-will-be-like", 0,
          "version 00 with more fields" },
        { "00-" TRACE "-" PARENT "-011", 0, "version 00, 56 characters" },
        { "cc-" TRACE "-" PARENT "-01what-the-future", 0,
          "a later version: the flags not followed by a dash" },
        { "cc-" TRACE "-" PARENT "-01-wh at", 0,
          "a later version: a space in a later field" },
        { "cc-" TRACE "-" PARENT "-01-a\x01", 0,
          "a later version: a control character in a later field" },
        { "cc-" TRACE "-" PARENT "-01-\xc3\xa9", 0,
          "a later version: non-ASCII in a later field" },
        { "ff-" TRACE "-" PARENT "-01", 0, "version ff" },
        { "0g-" TRACE "-" PARENT "-01", 0, "version not hex" },
        { "0A-" TRACE "-" PARENT "-01", 0, "version upper-case" },
        { "00-4BF92F3577B34DA6A3CE929D0E0E4736-" PARENT "-01", 0,
          "trace-id upper-case" },
        { "00-" TRACE "-00F067AA0BA902B7-01", 0, "parent-id upper-case" },
        { "00-" TRACE "-" PARENT "-0A", 0, "flags upper-case" },
        { "00-" TRACE "-" PARENT "-0g", 0, "flags not hex" },
        { "00-00000000000000000000000000000000-" PARENT "-01", 0,
          "trace-id all zeros" },
        { "00-" TRACE "-0000000000000000-01", 0, "parent-id all zeros" },
        { "cc-00000000000000000000000000000000-" PARENT "-01-x", 0,
          "a later version: trace-id all zeros" },
        { "00-4bf92f3577b34da6a3ce929d0e0e473-600f067aa0ba902b7-01", 0,
          "trace-id one short" },
        { "00-" TRACE "0-0f067aa0ba902b7-01", 0, "trace-id one long" },
        { "00_" TRACE "-" PARENT "-01", 0, "'_' for the first dash" },
        { "00-" TRACE "_" PARENT "-01", 0, "'_' for the second dash" },
        { "00-" TRACE "-" PARENT "_01", 0, "'_' for the third dash" },
        { " 00-" TRACE "-" PARENT "-0", 0, "a leading space" },
        { "00-" TRACE "-" PARENT "-01 ", 0, "a trailing space" },
        { "00-4bf92f3577b34da6a3ce929d0e0e473g-" PARENT "-01", 0,
          "trace-id not hex" },
        { "00-" TRACE "-00f067aa0ba902bz-01", 0, "parent-id not hex" },
    };

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        is_int(tp_valid(cases[i].tp), cases[i].valid, "traceparent %s: %s",
               cases[i].valid ? "valid" : "invalid", cases[i].what);
    }

    /* a later version's length bound */
    memset(buf, 'x', sizeof(buf));
    memcpy(buf, "cc-" TRACE "-" PARENT "-01-", 56);
    buf[EB_TRACEPARENT_MAX] = '\0';
    is_int(tp_valid(buf), 1, "traceparent: a later version of %d characters",
           EB_TRACEPARENT_MAX);
    buf[EB_TRACEPARENT_MAX] = 'x';
    buf[EB_TRACEPARENT_MAX + 1] = '\0';
    is_int(tp_valid(buf), 0, "traceparent: a later version of %d characters",
           EB_TRACEPARENT_MAX + 1);

    /* the NUL is a character like any other */
    is_int(eb_traceparent_valid((const unsigned char *) "00-" TRACE "-"
                                PARENT "-0\0", EB_TRACEPARENT_LEN), 0,
           "traceparent: a NUL in the flags");
}


static int
cmp_trace(const void *a, const void *b)
{
    return memcmp(a, b, EB_TRACEPARENT_LEN);
}


static void
test_new(void)
{
    size_t          i, j, k, dup_trace, dup_parent, bad;
    char           *all, out[EB_TRACEPARENT_LEN + 1];
    unsigned        seen[32][16];
    eb_uuid_gen_t   g;

    eb_uuid_gen_init(&g);

    memset(out, '#', sizeof(out));
    is_int(eb_traceparent_new(&g, out), 0, "new: 0");
    ok(out[EB_TRACEPARENT_LEN] == '#', "new: writes exactly %d bytes",
       EB_TRACEPARENT_LEN);
    out[EB_TRACEPARENT_LEN] = '\0';
    ok(tp_valid(out), "new: %s is valid", out);
    ok(memcmp(out, "00-", 3) == 0, "new: version 00");
    ok(memcmp(out + 52, "-01", 3) == 0, "new: flags 01 (sampled)");

    all = malloc((size_t) NEW_N * EB_TRACEPARENT_LEN);
    if (all == NULL) {
        abort();
    }

    memset(seen, 0, sizeof(seen));
    bad = 0;

    for (i = 0; i < NEW_N; i++) {
        if (eb_traceparent_new(&g, all + i * EB_TRACEPARENT_LEN) != 0
            || !eb_traceparent_valid((unsigned char *) all
                                     + i * EB_TRACEPARENT_LEN,
                                     EB_TRACEPARENT_LEN))
        {
            bad++;
        }

        /* every hex digit of the trace-id takes every value */
        for (k = 0; k < 32; k++) {
            seen[k][eb_hex((unsigned char) all[i * EB_TRACEPARENT_LEN + 3
                                               + k]) & 15]++;
        }
    }

    is_int(bad, 0, "new: %d valid traceparents, across pool refills",
           NEW_N);

    for (bad = 0, k = 0; k < 32; k++) {
        for (j = 0; j < 16; j++) {
            bad += (seen[k][j] == 0);
        }
    }

    is_int(bad, 0, "new: each trace-id digit takes all 16 values");

    /* unique trace-ids; then unique parent-ids, moved to the front */
    qsort(all, NEW_N, EB_TRACEPARENT_LEN, cmp_trace);

    for (dup_trace = 0, i = 1; i < NEW_N; i++) {
        dup_trace += memcmp(all + (i - 1) * EB_TRACEPARENT_LEN + 3,
                            all + i * EB_TRACEPARENT_LEN + 3, 32) == 0;
    }

    for (i = 0; i < NEW_N; i++) {
        memmove(all + i * EB_TRACEPARENT_LEN,
                all + i * EB_TRACEPARENT_LEN + 36, 16);
    }

    qsort(all, NEW_N, EB_TRACEPARENT_LEN, cmp_trace);

    for (dup_parent = 0, i = 1; i < NEW_N; i++) {
        dup_parent += memcmp(all + (i - 1) * EB_TRACEPARENT_LEN,
                             all + i * EB_TRACEPARENT_LEN, 16) == 0;
    }

    is_int(dup_trace, 0, "new: %d trace-ids, all different", NEW_N);
    is_int(dup_parent, 0, "new: %d parent-ids, all different", NEW_N);

    free(all);
}


/* the normalized list, or "INVALID" */
static const char *
ts_norm(const char *s, size_t max)
{
    static char     buf[4096];
    ssize_t         n;
    size_t          len;
    unsigned char  *c;

    len = strlen(s);
    c = malloc(len ? len : 1);
    if (c == NULL) {
        abort();
    }

    memcpy(c, s, len);
    n = eb_tracestate_normalize((unsigned char *) buf, max, c, len);
    free(c);

    if (n < 0) {
        return "INVALID";
    }

    buf[n] = '\0';
    return buf;
}


static void
test_tracestate(void)
{
    size_t  i;
    char    list[4096], want[4096], key[300];

    static const struct {
        const char  *in;
        const char  *out;
        const char  *what;
    } cases[] = {
        { "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE",
          "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE", "two members" },
        { "", "", "empty" },
        { " \t ", "", "whitespace only" },
        { ",,a=1,, \t,b=2,", "a=1,b=2", "empty members dropped" },
        { " rojo=1 ,\tcongo=2\t", "rojo=1,congo=2",
          "whitespace around members dropped" },
        { "a= x", "a= x", "a value's leading space is the value's" },
        { "a=x y", "a=x y", "a space inside a value" },
        { "t61rcwkgmze@congo=1", "t61rcwkgmze@congo=1",
          "a multi-tenant key" },
        { "1a=1", "1a=1", "a key may start with a digit" },
        { "a_-*/@=!\"#$%&'()*+-./:;<>?@[\\]^_`{|}~",
          "a_-*/@=!\"#$%&'()*+-./:;<>?@[\\]^_`{|}~",
          "every key character, every value character" },

        { "A=1", "INVALID", "an upper-case key" },
        { "_a=1", "INVALID", "a key starting with '_'" },
        { "a", "INVALID", "no '='" },
        { "=1", "INVALID", "an empty key" },
        { "a=", "INVALID", "an empty value" },
        { "a= ", "INVALID", "a value of one space" },
        { "a=1=2", "INVALID", "'=' in a value" },
        { "a=b,c", "INVALID", "a member without '='" },
        { "a=x\ty", "INVALID", "a tab inside a value" },
        { "a=x\x01", "INVALID", "a control character" },
        { "a=caf\xc3\xa9", "INVALID", "non-ASCII in a value" },
        { "a b=1", "INVALID", "a space in a key" },
        { "a=1,b=2,a=3", "INVALID", "a key twice" },
    };

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        is_str(ts_norm(cases[i].in, EB_TRACESTATE_MAX), cases[i].out,
               "tracestate: %s", cases[i].what);
    }

    /* keys up to 256 characters, values up to 256 */
    memset(key, 'k', 256);
    key[256] = '\0';
    snprintf(list, sizeof(list), "%s=v", key);
    is_str(ts_norm(list, 1024), list, "tracestate: a 256-character key");
    snprintf(list, sizeof(list), "%sk=v", key);
    is_str(ts_norm(list, 1024), "INVALID",
           "tracestate: a 257-character key");
    memset(key, 'v', 256);
    snprintf(list, sizeof(list), "k=%s", key);
    is_str(ts_norm(list, 1024), list, "tracestate: a 256-character value");
    snprintf(list, sizeof(list), "k=%sv", key);
    is_str(ts_norm(list, 1024), "INVALID",
           "tracestate: a 257-character value");

    /* 32 members */
    list[0] = '\0';
    for (i = 0; i < 32; i++) {
        snprintf(list + strlen(list), sizeof(list) - strlen(list),
                 "%sk%zu=%zu", i ? "," : "", i, i);
    }
    is_str(ts_norm(list, 1024), list, "tracestate: 32 members");
    strcat(list, ",,  ,");
    ok(strcmp(ts_norm(list, 1024), "INVALID") != 0,
       "tracestate: 32 members and empty ones");
    strcat(list, "k32=32");
    is_str(ts_norm(list, 1024), "INVALID", "tracestate: 33 members");

    /* too long: the long member goes first, wherever it is */
    memset(key, 'v', 200);
    key[200] = '\0';
    snprintf(list, sizeof(list), "big=%s", key);
    memset(key, 'w', 100);
    key[100] = '\0';
    snprintf(want, sizeof(want), "a=%s,b=%s,c=%s", key, key, key);
    strcat(list, ",");
    strcat(list, want);
    is_int(strlen(list), 204 + 1 + 3 * 102 + 2, "tracestate: a list of 513");
    is_str(ts_norm(list, 512), want,
           "tracestate: over 512, the member over 128 characters goes");
    is_int(eb_tracestate_normalize(NULL, 0, U(list)), 513,
           "tracestate: checking only returns the whole length");

    /* then members from the end: 617, 514, then 411 bytes */
    snprintf(list, sizeof(list), "a=%s,b=%s,c=%s,d=%s,e=%s,f=%s", key, key,
             key, key, key, key);
    snprintf(want, sizeof(want), "a=%s,b=%s,c=%s,d=%s", key, key, key, key);
    is_str(ts_norm(list, 512), want,
           "tracestate: over 512, members go from the end until it fits");
}


static void
test_tracestate_cut(void)
{
    is_str(ts_norm("a=1,b=2,c=3", 11), "a=1,b=2,c=3",
           "tracestate cut: fits exactly");
    is_str(ts_norm("a=1,b=2,c=3", 10), "a=1,b=2",
           "tracestate cut: one byte over, the last member goes");
    is_str(ts_norm("a=1,b=2,c=3", 5), "a=1",
           "tracestate cut: members go from the end");
    is_str(ts_norm("a=1,b=2,c=3", 2), "", "tracestate cut: nothing fits");
    is_str(ts_norm(" a=1 , b=2 ", 7), "a=1,b=2",
           "tracestate cut: whitespace is not counted");
}


static void
test_event(void)
{
    size_t       i;
    yajl_val     tree;
    const char  *tp, *ts;
    char         err[128];

    static const struct {
        const char  *json;
        const char  *tp;       /* NULL: none */
        const char  *ts;
        const char  *what;
    } cases[] = {
        { "{\"id\":\"1\",\"traceparent\":\"" TP "\",\"tracestate\":\"a=1\"}",
          TP, "a=1", "traceparent and tracestate" },
        { "{\"traceparent\":\"" TP "\"}", TP, NULL, "traceparent alone" },
        { "{\"traceparent\":\"" TP "\",\"tracestate\":5}", TP, NULL,
          "a tracestate that is no string" },
        { "{\"traceparent\":\"" TP "\",\"tracestate\":\"A=\"}", TP, "A=",
          "the tracestate is not checked here" },
        { "{\"tracestate\":\"a=1\"}", NULL, NULL, "tracestate alone" },
        { "{\"traceparent\":\"00-" TRACE "-" PARENT "\"}", NULL, NULL,
          "an invalid traceparent" },
        { "{\"traceparent\":5}", NULL, NULL, "a traceparent that is no "
          "string" },
        { "{\"traceparent\":null}", NULL, NULL, "a null traceparent" },
        { "{\"data\":{\"traceparent\":\"" TP "\"}}", NULL, NULL,
          "a traceparent in the data only" },
        { "{\"traceparent\":\"x\",\"traceparent\":\"" TP "\"}", TP, NULL,
          "twice: the last one counts" },
        { "[\"" TP "\"]", NULL, NULL, "not an object" },
    };

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        tree = yajl_tree_parse(cases[i].json, err, sizeof(err));
        ok(tree != NULL, "event: parsed: %s", cases[i].what);

        tp = eb_trace_context_of(tree, &ts);

        if (cases[i].tp) {
            is_str(tp, cases[i].tp, "event: traceparent: %s", cases[i].what);
        } else {
            ok(tp == NULL, "event: no traceparent: %s", cases[i].what);
        }

        if (cases[i].ts) {
            is_str(ts, cases[i].ts, "event: tracestate: %s", cases[i].what);
        } else {
            ok(ts == NULL, "event: no tracestate: %s", cases[i].what);
        }

        yajl_tree_free(tree);
    }

    ok(eb_trace_context_of(NULL, &ts) == NULL && ts == NULL,
       "event: no event");
}


int
main(void)
{
    test_traceparent();
    test_new();
    test_tracestate();
    test_tracestate_cut();
    test_event();

    return tap_done();
}
