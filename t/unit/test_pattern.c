/*
 * eb_pattern: the conformance table (t/data/patterns.tsv), each case on
 * its own and all patterns in one ruleset checked against the reference
 * matcher; the seed's DingTalk rule; refusals built here (too long, too
 * deep, too many alternatives); the API's edges; regex limits; numbers
 * and case folding.
 */

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tap.h"
#include "test_pattern_ref.h"
#include "eb_pattern.h"


#define TABLE  "t/data/patterns.tsv"
#define SEED   "t/data/dingtalk_user_add_org.json"

#define S(s)   (const unsigned char *) (s), strlen(s)


typedef struct {
    int     line;
    char    kind;               /* 'y', 'n', 'e' */
    char   *pattern;
    char   *third;              /* the event, or the message */
} tcase_t;


static tcase_t  *cases;
static int       ncases;


static char *
slurp(const char *path, size_t *len)
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
    if (fread(p, 1, (size_t) n, f) != (size_t) n) {
        free(p);
        fclose(f);
        return NULL;
    }

    fclose(f);
    p[n] = '\0';
    *len = (size_t) n;

    return p;
}


static int
load_table(void)
{
    size_t   len;
    int      line;
    char    *text, *p, *nl, *t1, *t2;

    text = slurp(TABLE, &len);
    if (text == NULL) {
        return -1;
    }

    cases = calloc(len / 8 + 1, sizeof(tcase_t));
    line = 0;

    for (p = text; *p; p = nl + 1) {
        line++;
        nl = strchr(p, '\n');
        if (nl == NULL) {
            nl = p + strlen(p);
        }

        *nl = '\0';

        if (*p == '#' || *p == '\0') {
            if (nl[1] == '\0' && nl == p + strlen(p)) {
                /* the last line */
            }

            continue;
        }

        t1 = strchr(p, '\t');
        t2 = t1 ? strchr(t1 + 1, '\t') : NULL;

        if (t2 == NULL) {
            printf("# %s:%d: not three fields\n", TABLE, line);
            return -1;
        }

        *t1 = '\0';
        *t2 = '\0';

        cases[ncases].line = line;
        cases[ncases].kind = strcmp(p, "yes") == 0 ? 'y'
                             : strcmp(p, "no") == 0 ? 'n' : 'e';
        cases[ncases].pattern = t1 + 1;
        cases[ncases].third = t2 + 1;
        ncases++;

        if (nl[0] == '\0' && nl[1] == '\0') {
            break;
        }
    }

    return 0;
}


/* matches json against one pattern with a fresh ruleset: 1, 0, or -1 on
 * any failure */
static int
engine_one(const char *pattern, const char *event, char *err, size_t errlen)
{
    int                  n;
    uint32_t             ids[4];
    eb_ruleset_t        *rs;
    eb_match_scratch_t  *s;

    rs = eb_ruleset_new();
    s = eb_match_scratch_new();

    if (eb_ruleset_add(rs, 7, S(pattern), err, errlen) != 0
        || eb_ruleset_compile(rs, err, errlen) != 0)
    {
        eb_ruleset_free(rs);
        eb_match_scratch_free(s);
        return -1;
    }

    n = eb_ruleset_match_json(rs, s, S(event), ids, 4);

    eb_ruleset_free(rs);
    eb_match_scratch_free(s);

    if (n < 0) {
        return n == EB_PATTERN_BAD_EVENT ? 0 : -1;
    }

    return n == 1 && ids[0] == 7;
}


static int
ref_one(const char *pattern, const char *event)
{
    int          r;
    ref_rule_t   rule;
    ref_event_t  ev;

    if (ref_rule_init(&rule, pattern, strlen(pattern)) != 0) {
        return -1;
    }

    if (ref_event_init(&ev, event, strlen(event)) != 0) {
        ref_rule_free(&rule);
        return 0;
    }

    r = ref_match(&rule, &ev);

    ref_event_free(&ev);
    ref_rule_free(&rule);

    return r;
}


static void
test_table(void)
{
    int      i, want, got, nmatch, nerr;
    char     err[512];
    tcase_t *c;

    nmatch = 0;
    nerr = 0;

    for (i = 0; i < ncases; i++) {
        c = &cases[i];

        if (c->kind == 'e') {
            nerr++;
            err[0] = '\0';
            got = eb_pattern_check(S(c->pattern), err, sizeof(err));
            ok(got == -1 && strcmp(err, c->third) == 0,
               "line %d: refused: %s", c->line, c->third);

            if (got != -1 || strcmp(err, c->third) != 0) {
                printf("#   got: %d '%s'\n", got, err);
            }

            continue;
        }

        nmatch++;
        want = c->kind == 'y';
        err[0] = '\0';
        got = engine_one(c->pattern, c->third, err, sizeof(err));

        ok(got == want, "line %d: %s %s %s", c->line, c->pattern,
           want ? "matches" : "does not match", c->third);

        if (got != want) {
            printf("#   got %d %s\n", got, err);
        }

        got = ref_one(c->pattern, c->third);

        if (got != want) {
            ok(0, "line %d: the reference matcher agrees", c->line);
        }
    }

    ok(nmatch >= 200, "%d match cases in the table", nmatch);
    ok(nerr >= 50, "%d refusal cases in the table", nerr);
}


/* All the table's patterns in one ruleset (rule id = case index): for
 * every event of the table, the engine's answer is what the reference
 * says for each pattern. */
static void
test_table_together(void)
{
    int                   i, j, n, k, want, bad, nev;
    char                  err[512];
    uint32_t             *ids;
    ref_rule_t           *rules;
    ref_event_t           ev;
    eb_ruleset_t         *rs;
    eb_match_scratch_t   *s;

    rs = eb_ruleset_new();
    s = eb_match_scratch_new();
    ids = malloc(ncases * sizeof(uint32_t));
    rules = calloc(ncases, sizeof(ref_rule_t));

    for (i = 0; i < ncases; i++) {
        if (cases[i].kind == 'e') {
            continue;
        }

        if (eb_ruleset_add(rs, (uint32_t) i, S(cases[i].pattern), err,
                           sizeof(err)) != 0)
        {
            ok(0, "line %d: added (%s)", cases[i].line, err);
        }

        ref_rule_init(&rules[i], cases[i].pattern, strlen(cases[i].pattern));
    }

    ok(eb_ruleset_compile(rs, err, sizeof(err)) == 0,
       "all the table's patterns compile into one ruleset");

    bad = 0;
    nev = 0;

    for (j = 0; j < ncases; j++) {
        if (cases[j].kind == 'e') {
            continue;
        }

        nev++;
        n = eb_ruleset_match_json(rs, s, S(cases[j].third), ids,
                                  (size_t) ncases);

        if (ref_event_init(&ev, cases[j].third, strlen(cases[j].third))
            != 0)
        {
            if (n != EB_PATTERN_BAD_EVENT) {
                bad++;
            }

            ref_event_free(&ev);
            continue;
        }

        for (k = 0, i = 0; i < ncases; i++) {
            if (cases[i].kind == 'e') {
                continue;
            }

            /* yajl_tree, under the reference, cuts strings at a NUL:
             * the table's own answers cover \u0000 */
            if (strstr(cases[i].pattern, "\\u0000") != NULL
                || strstr(cases[j].third, "\\u0000") != NULL)
            {
                continue;
            }

            want = ref_match(&rules[i], &ev);

            while (k < n && ids[k] < (uint32_t) i) {
                k++;
            }

            if (want != (k < n && ids[k] == (uint32_t) i)) {
                if (bad++ < 5) {
                    printf("# event of line %d, pattern of line %d: "
                           "engine %d, reference %d\n", cases[j].line,
                           cases[i].line, !want, want);
                }
            }
        }

        for (k = 1; k < n; k++) {
            if (ids[k - 1] >= ids[k]) {
                bad++;
            }
        }

        ref_event_free(&ev);
    }

    ok(bad == 0, "%d events x %d patterns in one ruleset agree with the "
       "reference matcher", nev, nev);

    for (i = 0; i < ncases; i++) {
        if (cases[i].kind != 'e') {
            ref_rule_free(&rules[i]);
        }
    }

    free(rules);
    free(ids);
    eb_ruleset_free(rs);
    eb_match_scratch_free(s);
}


/* The seed's rule against the CloudEvent the HTTP source makes of the
 * DingTalk webhook body (docs/directives.md, "The event"). */
static void
test_seed(void)
{
    int                  n;
    size_t               blen;
    char                *body, *event, err[256];
    uint32_t             ids[8];
    eb_ruleset_t        *rs;
    eb_match_scratch_t  *s;

    static const char  *envelope =
        "{\"specversion\":\"1.0\","
        "\"id\":\"5d285b01-59b8-43b0-9073-587590a56891\","
        "\"source\":\"my.dingtalk\","
        "\"type\":\"eventbridge:Events:HTTPEvent\","
        "\"subject\":\"acs:eventbridge:cn-hangzhou:1234567890:eventbus/"
        "demo/eventsource/my.dingtalk\","
        "\"time\":\"2026-11-23T15:48:55.236+08:00\","
        "\"datacontenttype\":\"application/json\","
        "\"aliyunpublishtime\":\"2026-11-23T07:48:55.236Z\","
        "\"aliyuneventbusname\":\"demo\","
        "\"aliyunregionid\":\"cn-hangzhou\","
        "\"aliyunaccountid\":\"1234567890\","
        "\"aliyunpublishaddr\":\"203.0.113.9\","
        "\"data\":{\"headers\":{\"content-type\":\"application/json\","
        "\"user-agent\":\"DingTalk\"},"
        "\"path\":\"/webhook/putEvents\",\"httpMethod\":\"POST\","
        "\"queryString\":{\"dept\":\"r&d\"},"
        "\"body\":%s}}";

    body = slurp(SEED, &blen);
    ok(body != NULL, "read %s", SEED);
    if (body == NULL) {
        return;
    }

    event = malloc(strlen(envelope) + blen + 1);
    sprintf(event, envelope, body);

    rs = eb_ruleset_new();
    s = eb_match_scratch_new();

#define ADD(id, p)                                                            \
    ok(eb_ruleset_add(rs, id, S(p), err, sizeof(err)) == 0, "seed rule %d", \
       id)

    ADD(1, "{\"source\":[\"my.dingtalk\"],\"data\":{\"body\":"
           "{\"syncAction\":[\"user_add_org\"]}}}");
    ADD(2, "{\"source\":[\"my.dingtalk\"],\"data\":{\"body\":"
           "{\"syncAction\":[\"user_leave_org\"]}}}");
    ADD(3, "{\"data\":{\"body\":{\"name\":[\"小明\"],\"active\":[true],"
           "\"avatar\":[\"\"],\"department\":[1],"
           "\"dingId\":[{\"wildcard\":\"$:\\\\*\\\\*\\\\*:*\"}]}}}");
    ADD(4, "{\"data\":{\"body\":{\"isBoss\":[{\"anything-but\":[false]}]}}}");
    ADD(5, "{\"data\":{\"body\":{\"userId\":[{\"prefix\":\"1411\"}],"
           "\"orderInDepts\":[{\"regex\":\"^\\\\{1:[0-9*]+\\\\}$\"}]}},"
           "\"aliyunpublishaddr\":[{\"cidr\":\"203.0.113.0/24\"}]}");
    ADD(6, "{\"data\":{\"body\":{\"manager\":[{\"exists\":false}]},"
           "\"httpMethod\":[{\"equals-ignore-case\":\"post\"}]}}");
#undef ADD

    /* rule 3's wildcard: "$:\*\*\*:*", the value starts with "$:***:" */

    ok(eb_ruleset_compile(rs, err, sizeof(err)) == 0, "seed rules compile");

    n = eb_ruleset_match_json(rs, s, S(event), ids, 8);
    is_int(n, 4, "the DingTalk event matches 4 seed rules");
    ok(n == 4 && ids[0] == 1 && ids[1] == 3 && ids[2] == 5 && ids[3] == 6,
       "rules 1, 3, 5 and 6 (not 2: user_leave_org; not 4: isBoss is "
       "false)");

    n = eb_ruleset_match_json(rs, s, S(body), ids, 8);
    is_int(n, 0, "the bare body is not the event");

    eb_ruleset_free(rs);
    eb_match_scratch_free(s);
    free(event);
    free(body);
}


static void
refused(const char *pattern, const char *want, const char *name)
{
    int   rc;
    char  err[512];

    err[0] = '\0';
    rc = eb_pattern_check(S(pattern), err, sizeof(err));
    ok(rc == -1 && strcmp(err, want) == 0, "refused: %s", name);

    if (rc != -1 || strcmp(err, want) != 0) {
        printf("#   got: %d '%s'\n#   expected: '%s'\n", rc, err, want);
    }
}


static void
test_limits(void)
{
    int            i, rc;
    size_t         n;
    char          *p, err[256];
    eb_ruleset_t  *rs;

    /* a regex one byte too long, and one just short enough */

    p = malloc(2 * EB_PATTERN_MAX_REGEX + 64);

    n = (size_t) sprintf(p, "{\"a\":[{\"regex\":\"");
    memset(p + n, 'x', EB_PATTERN_MAX_REGEX + 1);
    strcpy(p + n + EB_PATTERN_MAX_REGEX + 1, "\"}]}");
    refused(p, "a[0].regex: longer than 1024 bytes", "a regex too long");

    strcpy(p + n + EB_PATTERN_MAX_REGEX, "\"}]}");
    ok(eb_pattern_check(S(p), err, sizeof(err)) == 0,
       "a regex of 1024 bytes");

    /* nesting: 32 objects deep is fine, 33 is not */

    for (n = 0, i = 0; i < EB_PATTERN_MAX_DEPTH; i++) {
        n += (size_t) sprintf(p + n, "{\"k\":");
    }

    n += (size_t) sprintf(p + n, "[1]");
    for (i = 0; i < EB_PATTERN_MAX_DEPTH; i++) {
        p[n++] = '}';
    }

    p[n] = '\0';
    ok(eb_pattern_check(S(p), err, sizeof(err)) == 0,
       "a pattern 32 objects deep");

    for (n = 0, i = 0; i < EB_PATTERN_MAX_DEPTH + 1; i++) {
        n += (size_t) sprintf(p + n, "{\"k\":");
    }

    n += (size_t) sprintf(p + n, "[1]");
    for (i = 0; i < EB_PATTERN_MAX_DEPTH + 1; i++) {
        p[n++] = '}';
    }

    p[n] = '\0';
    refused(p, "k.k.k.k.k.k.k.k.k.k.k.k.k.k.k.k.k.k.k.k.k.k.k.k.k.k.k.k.k"
            ".k.k.k: nested deeper than 32 levels", "33 objects deep");

    free(p);

    /* "$or": 2^10 alternatives are fine, 2^11 are not */

    p = malloc(4096);

    for (n = 0, i = 0; i < 11; i++) {
        n += (size_t) sprintf(p + n, "%s\"k%d\":{\"$or\":[{\"a\":[1]},"
                              "{\"b\":[2]}]}", i ? "," : "{", i);

        if (i == 9) {
            strcpy(p + n, "}");
            ok(eb_pattern_check(S(p), err, sizeof(err)) == 0,
               "\"$or\" giving 1024 alternatives");
        }
    }

    strcpy(p + n, "}");
    refused(p, "k10: \"$or\" expands to more than 1024 alternatives",
            "\"$or\" giving 2048 alternatives");

    /* 256 fields in one alternative, and 257 */

    for (n = 0, i = 0; i < EB_PATTERN_MAX_CONJUNCTS + 1; i++) {
        if (i == EB_PATTERN_MAX_CONJUNCTS) {
            strcpy(p + n, "}");
            ok(eb_pattern_check(S(p), err, sizeof(err)) == 0,
               "256 fields in one pattern");
        }

        n += (size_t) sprintf(p + n, "%s\"f%d\":[1]", i ? "," : "{", i);
    }

    strcpy(p + n, "}");
    refused(p, "f256: more than 256 fields in one alternative",
            "257 fields in one pattern");

    free(p);

    /* rule ids, and the order of calls */

    rs = eb_ruleset_new();

    rc = eb_ruleset_add(rs, EB_PATTERN_MAX_RULE_ID + 1, S("{\"a\":[1]}"),
                        err, sizeof(err));
    ok(rc == -1 && strcmp(err, "rule: id above EB_PATTERN_MAX_RULE_ID") == 0,
       "a rule id above the maximum is refused");

    ok(eb_ruleset_add(rs, 3, S("{\"a\":[{\"prefx\":1}]}"), err, sizeof(err))
       == -1, "a refused rule");
    ok(eb_ruleset_add(rs, 3, S("{\"b\":[2]}"), err, sizeof(err)) == 0,
       "a good rule after it");
    ok(eb_ruleset_compile(rs, err, sizeof(err)) == 0, "compiles");

    rc = eb_ruleset_add(rs, 4, S("{\"a\":[1]}"), err, sizeof(err));
    ok(rc == -1 && strcmp(err, "rule: the ruleset is already compiled") == 0,
       "no add after compile");

    ok(eb_ruleset_compile(rs, err, sizeof(err)) == -1,
       "no second compile");

    eb_ruleset_free(rs);
}


static int
match(eb_ruleset_t *rs, eb_match_scratch_t *s, const char *event,
    uint32_t *ids, size_t max)
{
    return eb_ruleset_match_json(rs, s, S(event), ids, max);
}


static void
test_api(void)
{
    int                   n, i;
    char                  err[256], *deep, *big;
    uint32_t              ids[16];
    eb_ruleset_t         *rs, *other, *empty;
    eb_match_scratch_t   *s;
    eb_pattern_event_t   *ev;
    eb_ruleset_stats_t    st;

    rs = eb_ruleset_new();
    other = eb_ruleset_new();
    empty = eb_ruleset_new();
    s = eb_match_scratch_new();
    ev = eb_pattern_event_new();

    n = match(rs, s, "{}", ids, 16);
    is_int(n, EB_PATTERN_MISUSE, "matching before compile");

    eb_ruleset_add(rs, 5, S("{\"a\":[1]}"), err, sizeof(err));
    eb_ruleset_add(rs, 5, S("{\"b\":[2]}"), err, sizeof(err));
    eb_ruleset_add(rs, 9, S("{\"a\":[1],\"c\":[{\"exists\":false}]}"), err,
                   sizeof(err));
    eb_ruleset_add(rs, 2, S("{\"a\":[{\"numeric\":[\">\",0]}]}"), err,
                   sizeof(err));
    eb_ruleset_add(rs, 0, S("{\"$or\":[{\"a\":[1]},{\"a\":[1]}]}"), err,
                   sizeof(err));
    ok(eb_ruleset_compile(rs, err, sizeof(err)) == 0, "compiles");
    eb_ruleset_add(other, 1, S("{\"a\":[1]}"), err, sizeof(err));
    eb_ruleset_compile(other, err, sizeof(err));
    ok(eb_ruleset_compile(empty, err, sizeof(err)) == 0,
       "an empty ruleset compiles");

    eb_ruleset_stats(rs, &st);
    ok(st.rules == 4 && st.alternatives == 6 && st.fields == 3,
       "stats: %zu rules, %zu alternatives, %zu fields, %zu states, "
       "%zu bytes", st.rules, st.alternatives, st.fields, st.states,
       st.memory);

    n = match(rs, s, "{\"a\":1}", ids, 16);
    ok(n == 4 && ids[0] == 0 && ids[1] == 2 && ids[2] == 5 && ids[3] == 9,
       "ascending ids, each once (rule 0 twice by \"$or\")");

    n = match(rs, s, "{\"b\":2}", ids, 16);
    ok(n == 1 && ids[0] == 5, "a rule added twice: either pattern matches");

    n = match(rs, s, "{\"a\":1}", ids, 2);
    ok(n == 4 && ids[0] == 0 && ids[1] == 2,
       "max_ids 2: the count is 4, the first 2 written");

    n = match(rs, s, "{\"a\":1}", NULL, 0);
    is_int(n, 4, "max_ids 0: only the count");

    is_int(match(empty, s, "{\"a\":1}", ids, 16), 0,
           "an empty ruleset matches nothing");

    is_int(match(rs, s, "[{\"a\":1}]", ids, 16), EB_PATTERN_BAD_EVENT,
           "an array is not an event");
    is_int(match(rs, s, "\"a\"", ids, 16), EB_PATTERN_BAD_EVENT,
           "a string is not an event");
    is_int(match(rs, s, "", ids, 16), EB_PATTERN_BAD_EVENT,
           "nothing is not an event");
    is_int(match(rs, s, "{\"a\":1", ids, 16), EB_PATTERN_BAD_EVENT,
           "a cut object is not an event");
    is_int(match(rs, s, "{\"a\":1} x", ids, 16), EB_PATTERN_BAD_EVENT,
           "trailing bytes");
    is_int(match(rs, s, "{\"a\":01}", ids, 16), EB_PATTERN_BAD_EVENT,
           "a bad number, even where no rule looks");
    is_int(match(rs, s, "{\"z\":[1,]}", ids, 16), EB_PATTERN_BAD_EVENT,
           "a trailing comma, even where no rule looks");
    is_int(match(rs, s, "{\"z\":\"a\x01\"}", ids, 16), EB_PATTERN_BAD_EVENT,
           "a raw control character in a string");
    is_int(match(rs, s, "{\"z\":\"\\x\"}", ids, 16), EB_PATTERN_BAD_EVENT,
           "a bad escape");
    is_int(match(rs, s, "{\"z\":\"\\u12\"}", ids, 16), EB_PATTERN_BAD_EVENT,
           "a cut \\u escape");
    is_int(match(rs, s, "{\"z\":tru}", ids, 16), EB_PATTERN_BAD_EVENT,
           "a bad literal");
    is_int(match(rs, s, "{\"a\":1,}", ids, 16), EB_PATTERN_BAD_EVENT,
           "a trailing comma in an object");
    is_int(match(rs, s, "{\"a\" 1}", ids, 16), EB_PATTERN_BAD_EVENT,
           "a missing colon");
    is_int(match(rs, s, " \r\n\t{\"a\":1} \n", ids, 16), 4,
           "whitespace around the object");

    /* nesting */

    deep = malloc(2 * EB_PATTERN_EVENT_MAX_DEPTH + 64);

    for (i = 0; i < 2; i++) {
        int  arrays = EB_PATTERN_EVENT_MAX_DEPTH - 1 + i;

        n = sprintf(deep, "{\"a\":");
        memset(deep + n, '[', (size_t) arrays);
        memset(deep + n + arrays, ']', (size_t) arrays);
        strcpy(deep + n + 2 * arrays, "}");

        if (i == 0) {
            is_int(match(rs, s, deep, ids, 16), 0,
                   "an event 256 levels deep is scanned");

        } else {
            is_int(match(rs, s, deep, ids, 16), EB_PATTERN_BAD_EVENT,
                   "an event 257 levels deep is refused");
        }
    }

    free(deep);

    /* a big event where no rule looks costs a scan only */

    big = malloc(1 << 20);
    n = sprintf(big, "{\"a\":1,\"junk\":[");
    for (i = 0; i < 20000; i++) {
        n += sprintf(big + n, "%s{\"x\":\"%d\",\"y\":[1,2,{}]}",
                     i ? "," : "", i);
    }

    sprintf(big + n, "]}");
    is_int(match(rs, s, big, ids, 16), 4, "a 600 KB event");
    free(big);

    /* parse once, match many */

    ok(eb_pattern_event_parse(ev, rs, S("{\"a\":1,\"c\":2}")) == 0,
       "an event parsed for a ruleset");
    n = eb_ruleset_match_event(rs, s, ev, ids, 16);
    ok(n == 3 && ids[0] == 0 && ids[1] == 2 && ids[2] == 5,
       "matched parsed (not rule 9: c exists)");
    n = eb_ruleset_match_event(rs, s, ev, ids, 16);
    is_int(n, 3, "and again");
    is_int(eb_ruleset_match_event(other, s, ev, ids, 16), EB_PATTERN_MISUSE,
           "not with another ruleset");
    is_int(eb_pattern_event_parse(ev, rs, S("[]")), EB_PATTERN_BAD_EVENT,
           "a parse that fails");
    is_int(eb_ruleset_match_event(rs, s, ev, ids, 16), EB_PATTERN_MISUSE,
           "leaves no event to match");

    /* one scratch for two rulesets, in turns */

    is_int(match(other, s, "{\"a\":1}", ids, 16), 1, "other ruleset");
    is_int(match(rs, s, "{\"a\":1}", ids, 16), 4, "first ruleset again");

    eb_pattern_event_free(ev);
    eb_match_scratch_free(s);
    eb_ruleset_free(rs);
    eb_ruleset_free(other);
    eb_ruleset_free(empty);
}


static double
now(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);

    return ts.tv_sec + ts.tv_nsec / 1e9;
}


static void
test_regex_limit(void)
{
    int                  n, i;
    char                 err[256], ev[256];
    double               t;
    uint32_t             ids[4];
    eb_ruleset_t        *rs;
    eb_match_scratch_t  *s;

    rs = eb_ruleset_new();
    s = eb_match_scratch_new();

    /* exponential backtracking: 2^n ways to split the a's */
    ok(eb_ruleset_add(rs, 1, S("{\"s\":[{\"regex\":\"^(a|aa)+$\"}]}"), err,
                      sizeof(err)) == 0, "a catastrophic regex compiles");
    ok(eb_ruleset_add(rs, 2, S("{\"s\":[{\"regex\":\"^(\\\\w+\\\\s?)*$\"}]}"),
                      err, sizeof(err)) == 0, "another one");
    ok(eb_ruleset_add(rs, 3, S("{\"s\":[{\"prefix\":\"aaa\"}]}"), err,
                      sizeof(err)) == 0, "and a prefix");
    eb_ruleset_compile(rs, err, sizeof(err));

    strcpy(ev, "{\"s\":\"");
    for (i = 0; i < 90; i++) {
        strcat(ev, "a");
    }

    strcat(ev, "!\"}");

    t = now();
    n = match(rs, s, ev, ids, 4);
    t = now() - t;

    ok(n == 1 && ids[0] == 3, "the regexes do not match, the prefix does");
    ok(eb_match_scratch_regex_limits(s) >= 1,
       "%llu regex match(es) stopped at the match limit",
       (unsigned long long) eb_match_scratch_regex_limits(s));
    ok(t < 1.0, "in %.3f s", t);

    n = match(rs, s, "{\"s\":\"aaaa\"}", ids, 4);
    ok(n == 3, "short subjects still match");

    eb_ruleset_free(rs);
    eb_match_scratch_free(s);
}


/* Arrays cannot make the work explode: values in independent arrays, or
 * in many elements of one array of objects, are each followed once per
 * state and relevant array element, not once per combination. */
static void
test_array_fanout(void)
{
    int                  i, n, k;
    char                *ev, err[256];
    double               t;
    uint32_t             ids[4];
    eb_ruleset_t        *rs;
    eb_match_scratch_t  *s;

    rs = eb_ruleset_new();
    s = eb_match_scratch_new();
    ev = malloc(1 << 20);

    ok(eb_ruleset_add(rs, 1, S("{\"a\":[{\"numeric\":[\">\",0]}],"
                               "\"b\":[{\"numeric\":[\">\",0]}],"
                               "\"c\":[{\"numeric\":[\">\",0]}],"
                               "\"d\":[-1]}"), err, sizeof(err)) == 0
       && eb_ruleset_add(rs, 2, S("{\"x\":{\"a\":[1],\"b\":[1],\"c\":[1],"
                                  "\"d\":[-1]}}"), err, sizeof(err)) == 0
       && eb_ruleset_add(rs, 3, S("{\"y\":{\"a\":[1],\"b\":[1],"
                                  "\"c\":{\"e\":[1],\"f\":[2]}}}"),
                         err, sizeof(err)) == 0
       && eb_ruleset_compile(rs, err, sizeof(err)) == 0,
       "fan-out rules compile");

    /* three arrays of 3000 numbers: 2.7e10 combinations */

    n = sprintf(ev, "{");
    for (k = 0; k < 3; k++) {
        n += sprintf(ev + n, "%s\"%c\":[", k ? "," : "", 'a' + k);
        for (i = 0; i < 3000; i++) {
            n += sprintf(ev + n, "%s%d", i ? "," : "", i + 1);
        }
        n += sprintf(ev + n, "]");
    }
    sprintf(ev + n, ",\"d\":[5,-1]}");

    t = now();
    n = match(rs, s, ev, ids, 4);
    t = now() - t;
    ok(n == 1 && ids[0] == 1 && t < 1.0,
       "three arrays of 3000 numbers: matched in %.3f s", t);

    /* 5000 objects with a, b and c each: the conjuncts meet in each */

    n = sprintf(ev, "{\"x\":[");
    for (i = 0; i < 5000; i++) {
        n += sprintf(ev + n, "%s{\"a\":1,\"b\":1,\"c\":1,\"d\":%d}",
                     i ? "," : "", i == 4999 ? -1 : 0);
    }
    sprintf(ev + n, "]}");

    t = now();
    n = match(rs, s, ev, ids, 4);
    t = now() - t;
    ok(n == 1 && ids[0] == 2 && t < 1.0,
       "5000 objects, the last one matching: %.3f s", t);

    /* 60 objects holding arrays of 60 ones and 60 objects each */

    n = sprintf(ev, "{\"y\":[");
    for (i = 0; i < 60; i++) {
        n += sprintf(ev + n, "%s{\"a\":[", i ? "," : "");
        for (k = 0; k < 60; k++) {
            n += sprintf(ev + n, "%s1", k ? "," : "");
        }
        n += sprintf(ev + n, "],\"b\":[");
        for (k = 0; k < 60; k++) {
            n += sprintf(ev + n, "%s1", k ? "," : "");
        }
        n += sprintf(ev + n, "],\"c\":[");
        for (k = 0; k < 60; k++) {
            n += sprintf(ev + n, "%s{\"e\":1,\"f\":%d}", k ? "," : "",
                         (i == 59 && k == 59) ? 2 : 3);
        }
        n += sprintf(ev + n, "]}");
    }
    sprintf(ev + n, "]}");

    t = now();
    n = match(rs, s, ev, ids, 4);
    t = now() - t;
    ok(n == 1 && ids[0] == 3 && t < 1.0,
       "60 x (60 + 60 + 60 objects), the last one matching: %.3f s", t);

    free(ev);
    eb_ruleset_free(rs);
    eb_match_scratch_free(s);
}


static void
test_numbers(void)
{
    int          i, bad;
    char         buf[64];
    unsigned     seed;
    long double  want, got;

    static const char  *texts[] = {
        "0", "-0", "1", "-1", "0.1", "0.2", "0.3", "1e-1", "3.0e2",
        "300", "123456789012345678", "1234567890123456789",
        "12345678901234567890", "9007199254740993", "1.7976931348623157e308",
        "2.2250738585072014e-308", "4.9e-324", "1e22", "1e23", "1.5e-22",
        "0.000001", "123.456e-7", "-9.87654321e+21", "0e0", "1E400",
        "18446744073709551615", "18446744073709551616", "-9223372036854775808",
        "1e27", "1e28", "1.5e-27", "9007199254740993e10", "1e-4000", "1e5000"
    };

    bad = 0;

    for (i = 0; i < (int) (sizeof(texts) / sizeof(texts[0])); i++) {
        want = strtold(texts[i], NULL);
        got = eb_pm_number((const unsigned char *) texts[i],
                           strlen(texts[i]));

        if (!(got == want || (isinf(got) && isinf(want)))) {
            printf("# %s: %.21Lg != %.21Lg\n", texts[i], got, want);
            bad++;
        }
    }

    /* random decimal texts */

    seed = 12345;

    for (i = 0; i < 200000; i++) {
        seed = seed * 1103515245 + 12345;
        sprintf(buf, "%s%u.%ue%d", (seed >> 3) & 1 ? "-" : "",
                (seed >> 8) % 100000000, (seed * 7) % 1000000,
                (int) ((seed >> 20) % 60) - 30);

        want = strtold(buf, NULL);
        got = eb_pm_number((const unsigned char *) buf, strlen(buf));

        if (got != want) {
            if (bad++ < 5) {
                printf("# %s: %.21Lg != %.21Lg\n", buf, got, want);
            }
        }
    }

    ok(bad == 0, "numbers read as strtold() reads them");
    ok(eb_pm_number((const unsigned char *) "-0", 2) == 0
       && !signbit(eb_pm_number((const unsigned char *) "-0", 2)),
       "-0 reads as 0");
}


/* Numbers compare as eb_pm_num_t (long double): integers up to 2^64 are
 * exact (2^53 + 1 is not 2^53), -0 is 0, one value written differently is
 * one value, and decimals round as they always did. Each case on its own,
 * against the reference matcher too, then all of them in one ruleset (the
 * exact index and the range tree of one field holding 2^53 and 2^53 + 1
 * side by side). */

#define P53   "9007199254740992"        /* 2^53 */
#define P53A  "9007199254740993"        /* 2^53 + 1 */
#define P53B  "9007199254740994"
#define I64   "9223372036854775807"     /* 2^63 - 1 */
#define U64   "18446744073709551615"    /* 2^64 - 1 */

typedef struct {
    int          want;
    const char  *pattern;
    const char  *event;
} bigint_case_t;

static const bigint_case_t  bigint_cases[] = {
    /* exact */
    { 1, "{\"n\":[" P53A "]}", "{\"n\":" P53A "}" },
    { 0, "{\"n\":[" P53A "]}", "{\"n\":" P53 "}" },
    { 0, "{\"n\":[" P53 "]}", "{\"n\":" P53A "}" },
    { 1, "{\"n\":[" P53 "]}", "{\"n\":" P53 "}" },
    { 0, "{\"n\":[" P53A "]}", "{\"n\":" P53B "}" },
    { 1, "{\"n\":[" P53A "]}", "{\"n\":" P53A ".0}" },
    { 1, "{\"n\":[" P53A "]}", "{\"n\":9.007199254740993e15}" },
    { 1, "{\"n\":[" P53A "]}", "{\"n\":90071992547409930e-1}" },
    { 1, "{\"n\":[-" P53A "]}", "{\"n\":-" P53A "}" },
    { 0, "{\"n\":[-" P53A "]}", "{\"n\":-" P53 "}" },
    { 0, "{\"n\":[-" P53A "]}", "{\"n\":" P53A "}" },
    { 1, "{\"n\":[" I64 "]}", "{\"n\":" I64 "}" },
    { 0, "{\"n\":[" I64 "]}", "{\"n\":9223372036854775806}" },
    { 0, "{\"n\":[" I64 "]}", "{\"n\":9223372036854775808}" },
    { 1, "{\"n\":[-9223372036854775808]}", "{\"n\":-9223372036854775808}" },
    { 0, "{\"n\":[-9223372036854775808]}", "{\"n\":-" I64 "}" },
    { 1, "{\"n\":[" U64 "]}", "{\"n\":" U64 "}" },
    { 0, "{\"n\":[" U64 "]}", "{\"n\":18446744073709551614}" },
    { 0, "{\"n\":[" U64 "]}", "{\"n\":18446744073709551616}" },
    { 1, "{\"n\":[18446744073709551616]}", "{\"n\":1.8446744073709551616e19}" },
    { 0, "{\"n\":[18446744073709551616]}", "{\"n\":" U64 "}" },
    /* past 2^64, 64 significant bits: 2^64 + 1 rounds to 2^64 */
    { 1, "{\"n\":[18446744073709551617]}", "{\"n\":18446744073709551616}" },
    { 0, "{\"n\":[" P53A "]}", "{\"n\":\"" P53A "\"}" },
    /* -0 is 0 */
    { 1, "{\"n\":[0]}", "{\"n\":-0}" },
    { 1, "{\"n\":[-0]}", "{\"n\":0}" },
    { 1, "{\"n\":[-0.0e5]}", "{\"n\":0.0}" },
    { 0, "{\"n\":[{\"numeric\":[\">\",0]}]}", "{\"n\":-0}" },
    { 0, "{\"n\":[{\"numeric\":[\"<\",0]}]}", "{\"n\":-0}" },
    { 1, "{\"n\":[{\"numeric\":[\"<=\",-0]}]}", "{\"n\":0}" },
    { 0, "{\"n\":[{\"anything-but\":0}]}", "{\"n\":-0}" },
    { 0, "{\"n\":[{\"anything-but\":-0}]}", "{\"n\":0}" },
    /* one value, several texts */
    { 1, "{\"n\":[1]}", "{\"n\":1.0}" },
    { 1, "{\"n\":[1]}", "{\"n\":1e0}" },
    { 1, "{\"n\":[1]}", "{\"n\":10e-1}" },
    { 1, "{\"n\":[1.0]}", "{\"n\":0.1e1}" },
    { 1, "{\"n\":[1e0]}", "{\"n\":1}" },
    { 1, "{\"n\":[{\"numeric\":[\"=\",1e0]}]}", "{\"n\":1.00}" },
    { 0, "{\"n\":[{\"anything-but\":1.0}]}", "{\"n\":1}" },
    /* decimals that binary cannot hold: as before */
    { 1, "{\"n\":[0.1]}", "{\"n\":0.1}" },
    { 1, "{\"n\":[0.1]}", "{\"n\":1e-1}" },
    { 1, "{\"n\":[0.10]}", "{\"n\":0.1}" },
    { 0, "{\"n\":[0.1]}", "{\"n\":0.2}" },
    { 0, "{\"n\":[0.3]}", "{\"n\":0.30000000000000004}" },
    { 0, "{\"n\":[{\"numeric\":[\">\",0.1]}]}", "{\"n\":0.1}" },
    { 1, "{\"n\":[{\"numeric\":[\">=\",0.1]}]}", "{\"n\":1e-1}" },
    { 0, "{\"n\":[{\"numeric\":[\"<\",0.1]}]}", "{\"n\":0.1}" },
    { 1, "{\"n\":[{\"numeric\":[\">\",0.1,\"<\",0.3]}]}", "{\"n\":0.2}" },
    { 0, "{\"n\":[{\"anything-but\":0.1}]}", "{\"n\":0.10}" },
    /* anything-but */
    { 1, "{\"n\":[{\"anything-but\":" P53 "}]}", "{\"n\":" P53A "}" },
    { 0, "{\"n\":[{\"anything-but\":" P53 "}]}", "{\"n\":" P53 "}" },
    { 1, "{\"n\":[{\"anything-but\":[" P53A "]}]}", "{\"n\":" P53 "}" },
    { 0, "{\"n\":[{\"anything-but\":[" P53A "]}]}", "{\"n\":" P53A "}" },
    { 1, "{\"n\":[{\"anything-but\":[1," P53A "]}]}", "{\"n\":" P53B "}" },
    { 1, "{\"n\":[{\"anything-but\":-" P53 "}]}", "{\"n\":-" P53A "}" },
    { 1, "{\"n\":[{\"anything-but\":" U64 "}]}",
      "{\"n\":18446744073709551614}" },
    { 0, "{\"n\":[{\"anything-but\":" U64 "}]}", "{\"n\":" U64 "}" },
    /* numeric: each bound, inclusive and exclusive */
    { 1, "{\"n\":[{\"numeric\":[\">\"," P53 "]}]}", "{\"n\":" P53A "}" },
    { 0, "{\"n\":[{\"numeric\":[\">\"," P53 "]}]}", "{\"n\":" P53 "}" },
    { 1, "{\"n\":[{\"numeric\":[\">=\"," P53A "]}]}", "{\"n\":" P53A "}" },
    { 0, "{\"n\":[{\"numeric\":[\">=\"," P53A "]}]}", "{\"n\":" P53 "}" },
    { 0, "{\"n\":[{\"numeric\":[\">\"," P53A "]}]}", "{\"n\":" P53A "}" },
    { 1, "{\"n\":[{\"numeric\":[\"<\"," P53A "]}]}", "{\"n\":" P53 "}" },
    { 0, "{\"n\":[{\"numeric\":[\"<\"," P53A "]}]}", "{\"n\":" P53A "}" },
    { 1, "{\"n\":[{\"numeric\":[\"<=\"," P53 "]}]}", "{\"n\":" P53 "}" },
    { 0, "{\"n\":[{\"numeric\":[\"<=\"," P53 "]}]}", "{\"n\":" P53A "}" },
    { 1, "{\"n\":[{\"numeric\":[\"<=\"," P53A "]}]}", "{\"n\":" P53A "}" },
    { 1, "{\"n\":[{\"numeric\":[\"=\"," P53A "]}]}", "{\"n\":" P53A "}" },
    { 0, "{\"n\":[{\"numeric\":[\"=\"," P53A "]}]}", "{\"n\":" P53 "}" },
    { 1, "{\"n\":[{\"numeric\":[\">\"," P53 ",\"<\"," P53B "]}]}",
      "{\"n\":" P53A "}" },
    { 0, "{\"n\":[{\"numeric\":[\">\"," P53 ",\"<\"," P53B "]}]}",
      "{\"n\":" P53 "}" },
    { 0, "{\"n\":[{\"numeric\":[\">\"," P53 ",\"<\"," P53B "]}]}",
      "{\"n\":" P53B "}" },
    { 1, "{\"n\":[{\"numeric\":[\">=\"," P53A ",\"<=\"," P53A "]}]}",
      "{\"n\":" P53A "}" },
    { 0, "{\"n\":[{\"numeric\":[\">=\"," P53A ",\"<=\"," P53A "]}]}",
      "{\"n\":" P53B "}" },
    /* no integer in (2^53, 2^53 + 1), but a half */
    { 1, "{\"n\":[{\"numeric\":[\">\"," P53 ",\"<\"," P53A "]}]}",
      "{\"n\":9007199254740992.5}" },
    { 0, "{\"n\":[{\"numeric\":[\">\"," P53 ",\"<\"," P53A "]}]}",
      "{\"n\":" P53A "}" },
    { 1, "{\"n\":[{\"numeric\":[\"<\",-" P53 "]}]}", "{\"n\":-" P53A "}" },
    { 0, "{\"n\":[{\"numeric\":[\"<\",-" P53 "]}]}", "{\"n\":-" P53 "}" },
    { 1, "{\"n\":[{\"numeric\":[\">=\",-" P53A ",\"<\",-" P53 "]}]}",
      "{\"n\":-" P53A "}" },
    { 1, "{\"n\":[{\"numeric\":[\">\",9223372036854775806]}]}",
      "{\"n\":" I64 "}" },
    { 0, "{\"n\":[{\"numeric\":[\">\",9223372036854775806]}]}",
      "{\"n\":9223372036854775806}" },
    { 1, "{\"n\":[{\"numeric\":[\">\"," I64 ",\"<\",9223372036854775809]}]}",
      "{\"n\":9223372036854775808}" },
    { 0, "{\"n\":[{\"numeric\":[\">\"," I64 ",\"<\",9223372036854775809]}]}",
      "{\"n\":" I64 "}" },
    { 1, "{\"n\":[{\"numeric\":[\"<\"," U64 "]}]}",
      "{\"n\":18446744073709551614}" },
    { 0, "{\"n\":[{\"numeric\":[\"<\"," U64 "]}]}", "{\"n\":" U64 "}" },
    { 1, "{\"n\":[{\"numeric\":[\">=\"," U64 "]}]}",
      "{\"n\":18446744073709551616}" },
    { 0, "{\"n\":[{\"numeric\":[\">=\"," U64 "]}]}",
      "{\"n\":18446744073709551614}" },
    { 1, "{\"n\":[{\"numeric\":[\">\"," U64 "]}]}", "{\"n\":1e30}" },
    { 1, "{\"n\":[{\"numeric\":[\">\",1e300]}]}", "{\"n\":1e400}" },
    { 1, "{\"n\":[{\"numeric\":[\">\",1e400]}]}", "{\"n\":1e4000}" },
    { 0, "{\"n\":[{\"numeric\":[\">\",1e400]}]}", "{\"n\":1e399}" }
};


static void
test_bigints(void)
{
    int                   want, got, ref, bad, n, k;
    char                  err[512];
    size_t                i, j, nc;
    uint32_t              ids[128];
    ref_rule_t           *rules;
    ref_event_t           ev;
    eb_ruleset_t         *rs;
    eb_match_scratch_t   *s;

    if (LDBL_MANT_DIG < 64) {
        ok(1, "# SKIP long double is a double here: integers exact to 2^53");
        return;
    }

    nc = sizeof(bigint_cases) / sizeof(bigint_cases[0]);

    for (i = 0; i < nc; i++) {
        want = bigint_cases[i].want;
        err[0] = '\0';
        got = engine_one(bigint_cases[i].pattern, bigint_cases[i].event, err,
                         sizeof(err));
        ref = ref_one(bigint_cases[i].pattern, bigint_cases[i].event);

        ok(got == want && ref == want, "number: %s %s %s",
           bigint_cases[i].pattern, want ? "matches" : "does not match",
           bigint_cases[i].event);

        if (got != want || ref != want) {
            printf("#   engine %d, reference %d %s\n", got, ref, err);
        }
    }

    /* all in one ruleset, rule id = case index */

    rs = eb_ruleset_new();
    s = eb_match_scratch_new();
    rules = calloc(nc, sizeof(ref_rule_t));
    bad = 0;

    for (i = 0; i < nc; i++) {
        if (eb_ruleset_add(rs, (uint32_t) i, S(bigint_cases[i].pattern), err,
                           sizeof(err)) != 0)
        {
            bad++;
        }

        ref_rule_init(&rules[i], bigint_cases[i].pattern,
                      strlen(bigint_cases[i].pattern));
    }

    ok(bad == 0 && eb_ruleset_compile(rs, err, sizeof(err)) == 0,
       "the number cases compile into one ruleset");

    for (j = 0; j < nc; j++) {
        n = eb_ruleset_match_json(rs, s, S(bigint_cases[j].event), ids, 128);

        if (n < 0 || n > 128
            || ref_event_init(&ev, bigint_cases[j].event,
                              strlen(bigint_cases[j].event)) != 0)
        {
            bad++;
            continue;
        }

        for (k = 0, i = 0; i < nc; i++) {
            want = ref_match(&rules[i], &ev);

            while (k < n && ids[k] < (uint32_t) i) {
                k++;
            }

            if (want != (k < n && ids[k] == (uint32_t) i)) {
                if (bad++ < 5) {
                    printf("# event %s, pattern %s: engine %d, reference "
                           "%d\n", bigint_cases[j].event,
                           bigint_cases[i].pattern, !want, want);
                }
            }
        }

        ref_event_free(&ev);
    }

    ok(bad == 0, "%zu events x %zu number patterns in one ruleset agree "
       "with the reference matcher", nc, nc);

    for (i = 0; i < nc; i++) {
        ref_rule_free(&rules[i]);
    }

    free(rules);
    eb_ruleset_free(rs);
    eb_match_scratch_free(s);

    refused("{\"n\":[{\"numeric\":[\">=\"," P53A ",\"<=\"," P53 "]}]}",
            "n[0].numeric: empty range: no number is above the lower bound "
            "and below the upper one", "2^53 + 1 > 2^53: an empty range");
    refused("{\"n\":[{\"numeric\":[\">\"," P53 ",\"<\"," P53 "]}]}",
            "n[0].numeric: empty range: no number is above the lower bound "
            "and below the upper one", "(2^53, 2^53): an empty range");
}


static void
test_fold(void)
{
    unsigned char  out[64];

#define FOLD(in, want)                                                        \
    do {                                                                      \
        size_t  n_ = strlen(in);                                              \
        eb_pm_fold(out, (const unsigned char *) (in), n_);                    \
        out[n_] = '\0';                                                       \
        is_str((char *) out, want, "fold %s", in);                            \
    } while (0)

    FOLD("ABC xyz 123", "abc xyz 123");
    FOLD("ÀÉÎÕÜ×Þ", "àéîõü×þ");
    FOLD("ĀĂĹŁŸŹ", "āăĺłÿź");
    FOLD("İı", "İı");
    FOLD("ΑΒΓΣΩΆΈΌΏ", "αβγσωάέόώ");
    FOLD("ς", "σ");
    FOLD("ЁЖЯ", "ёжя");
    FOLD("ＡＺ", "ａｚ");
    FOLD("小明", "小明");
    FOLD("a\xc3", "a\xc3");
    FOLD("\xff\xfe" "A", "\xff\xfe" "a");
#undef FOLD
}


/* Issue 9: what fuzzing and UBSan found. */
static void
test_trust(void)
{
    int                  i, n;
    char                *p, err[512];
    size_t               len;
    uint32_t             ids[4];
    eb_ruleset_t        *rs;
    eb_match_scratch_t  *s;

    /* a key path past the 480 bytes of the error path: cut with "..." */
    p = malloc(8192);

    for (len = 0, i = 0; i < 6; i++) {
        len += (size_t) sprintf(p + len, "{\"");
        memset(p + len, 'a' + i, 300);
        len += 300;
        len += (size_t) sprintf(p + len, "\":");
    }

    len += (size_t) sprintf(p + len, "[{\"bogus\":1}]}}}}}}");
    p[len] = '\0';

    err[0] = '\0';
    ok(eb_pattern_check((const unsigned char *) p, len, err, sizeof(err))
       == -1 && strstr(err, "...") != NULL && strlen(err) < sizeof(err),
       "a key path of 1800 bytes in an error: cut");

    for (len = 0, i = 0; i < 30; i++) {
        len += (size_t) sprintf(p + len, "{\"%c%c%c%c%c%c%c%c%c%c%c%c%c%c%c%c"
                                "%c%c\":", 'a' + i % 26, 'a', 'a', 'a', 'a',
                                'a', 'a', 'a', 'a', 'a', 'a', 'a', 'a', 'a',
                                'a', 'a', 'a', 'a');
    }

    len += (size_t) sprintf(p + len, "[{\"bogus\":1}]");
    for (i = 0; i < 30; i++) {
        p[len++] = '}';
    }

    p[len] = '\0';
    ok(eb_pattern_check((const unsigned char *) p, len, err, sizeof(err))
       == -1, "30 keys of 18 bytes in an error path");

    free(p);

    /* keys twice are refused with their path; \u escapes as JSON says */
    refused("{\"a\":[1],\"\\u0061\":[2]}", "a: duplicate key",
            "a key twice, once escaped");
    refused("{\"a\":[\"\\udc00\"]}", "pattern: invalid JSON at byte 7: a "
            "lone low surrogate", "a lone low surrogate escape");

    /* empty values: no arithmetic on NULL (UBSan) */
    rs = eb_ruleset_new();
    s = eb_match_scratch_new();

    ok(eb_ruleset_add(rs, 1, S("{\"a\":[{\"equals-ignore-case\":\"\"}]}"),
                      err, sizeof(err)) == 0
       && eb_ruleset_add(rs, 2, S("{\"b\":[\"\"],\"c\":[{\"prefix\":\"\"}]}"),
                         err, sizeof(err)) == 0
       && eb_ruleset_compile(rs, err, sizeof(err)) == 0,
       "empty equals-ignore-case, exact and prefix values");

    n = match(rs, s, "{\"a\":\"\"}", ids, 4);
    ok(n == 1 && ids[0] == 1, "an empty equals-ignore-case matches \"\"");
    n = match(rs, s, "{\"a\":\"x\",\"b\":\"\",\"c\":\"\"}", ids, 4);
    ok(n == 1 && ids[0] == 2, "empty exact and prefix values match");
    n = match(rs, s, "{\"a\":\"\\u00e9\",\"b\":\"\\udc00\"}", ids, 4);
    ok(n < 0, "an event with a lone surrogate escape is refused");
    n = match(rs, s, "{\"a\":\"\\ud83d\\ude00\"}", ids, 4);
    ok(n == 0, "a surrogate pair is one character");

    eb_match_scratch_free(s);
    eb_ruleset_free(rs);

    /* only empty strings: no string bytes at all */
    rs = eb_ruleset_new();
    s = eb_match_scratch_new();
    ok(eb_ruleset_add(rs, 1, S("{\"a\":[\"\"]}"), err, sizeof(err)) == 0
       && eb_ruleset_compile(rs, err, sizeof(err)) == 0,
       "a pattern of one empty string");
    n = match(rs, s, "{\"a\":\"\"}", ids, 4);
    ok(n == 1 && ids[0] == 1, "matches \"\"");
    ok(eb_ruleset_match_json(rs, s, NULL, 0, ids, 4) == EB_PATTERN_BAD_EVENT,
       "no event at all");
    eb_match_scratch_free(s);
    eb_ruleset_free(rs);

    rs = eb_ruleset_new();
    s = eb_match_scratch_new();
    ok(eb_ruleset_compile(rs, err, sizeof(err)) == 0, "an empty ruleset");
    ok(match(rs, s, "{}", ids, 4) == 0, "matches nothing");
    eb_match_scratch_free(s);
    eb_ruleset_free(rs);
}


int
main(void)
{
    if (load_table() != 0) {
        ok(0, "read %s (run from the repository root)", TABLE);
        return tap_done();
    }

    test_table();
    test_table_together();
    test_seed();
    test_limits();
    test_api();
    test_regex_limit();
    test_array_fanout();
    test_numbers();
    test_bigints();
    test_fold();
    test_trust();

    ref_regex_free();

    return tap_done();
}
