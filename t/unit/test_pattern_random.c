/*
 * eb_pattern against the reference matcher on random rules and events:
 * 10,000 rules in one ruleset give, on every event, exactly the rules
 * the reference finds one by one; and the same with fewer rules and
 * events full of arrays of objects. A fixed seed keeps runs repeatable
 * (EB_TEST_SEED=n picks another).
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tap.h"
#include "test_pattern_ref.h"
#include "eb_pattern.h"


typedef struct {
    char    *p;
    size_t   len;
    size_t   cap;
} str_t;


static unsigned long long  rnd_state;


static unsigned
rnd(unsigned n)
{
    rnd_state = rnd_state * 6364136223846793005ULL + 1442695040888963407ULL;

    return (unsigned) ((rnd_state >> 33) % n);
}


static void
put(str_t *s, const char *t)
{
    size_t  n;

    n = strlen(t);

    if (s->len + n + 1 > s->cap) {
        s->cap = (s->len + n + 1) * 2;
        s->p = realloc(s->p, s->cap);
    }

    memcpy(s->p + s->len, t, n + 1);
    s->len += n;
}


#define PICK(a)  (a[rnd(sizeof(a) / sizeof(a[0]))])


static const char  *keys[] = { "a", "b", "c", "o", "r", "k" };

static const char  *strings[] = {
    "\"\"", "\"a\"", "\"ab\"", "\"abc\"", "\"b\"", "\"ba\"", "\"A\"",
    "\"AB\"", "\"Ab\"", "\"x.y\"", "\"10.0.0.1\"", "\"10.1.2.3\"",
    "\"192.168.1.1\"", "\"::1\"", "\"2001:db8::1\"", "\"\\u00e9\"",
    "\"\\u00c9\"", "\"a*b\"", "\"hello\"", "\"HELLO\"", "\"aab\"",
    "\"bab\"", "\"a\\\\b\""
};

static const char  *numbers[] = {
    "0", "-0", "1", "1.5", "2", "3.0e2", "300", "-7", "1e3", "0.1", "1000",
    "9007199254740992", "9007199254740993", "-9007199254740993",
    "18446744073709551615", "1.8446744073709551614e19"
};

static const char  *literals[] = { "true", "false", "null" };

static const char  *affixes[] = {
    "\"\"", "\"a\"", "\"ab\"", "\"b\"", "\"A\"", "\"10.\"", "\"x\"",
    "\"ba\"", "\"abc\"", "\"\\u00e9\"", "\".1\""
};

static const char  *wildcards[] = {
    "\"*\"", "\"a*\"", "\"*b\"", "\"a*b\"", "\"*a*\"", "\"*a*b*\"",
    "\"a*a*b\"", "\"\"", "\"ab\"", "\"a\\\\*b\"", "\"*b*a\"", "\"b*\"",
    "\"*.*\"", "\"*1*\"", "\"a\\\\\\\\b\"", "\"*a*a*\""
};

static const char  *bounds[] = {
    "-5", "0", "1", "1.5", "2", "3", "300", "1000", "0.1", "-0",
    "9007199254740992", "9007199254740993", "-9007199254740993",
    "18446744073709551614"
};

static const char  *blocks[] = {
    "\"10.0.0.0/8\"", "\"10.0.0.0/24\"", "\"10.0.0.1/32\"",
    "\"0.0.0.0/0\"", "\"192.168.0.0/16\"", "\"::/0\"",
    "\"2001:db8::/32\"", "\"::1/128\""
};

static const char  *regexes[] = {
    "\"^a\"", "\"b$\"", "\"^[a-c]+$\"", "\"(?i)hello\"", "\"^$\"", "\"1\"",
    "\"\\\\.\""
};


static void
gen_scalar(str_t *s)
{
    switch (rnd(10)) {
    case 0:
    case 1:
    case 2:
    case 3:
    case 4:
        put(s, PICK(strings));
        break;
    case 5:
    case 6:
    case 7:
        put(s, PICK(numbers));
        break;
    default:
        put(s, PICK(literals));
    }
}


static void
gen_numeric(str_t *s)
{
    long double  a, b;
    const char   *x, *y;

    put(s, "{\"numeric\":[");

    switch (rnd(3)) {
    case 0:
        put(s, PICK(((const char *[]) { "\"<\",", "\"<=\",", "\">\",",
                                        "\">=\",", "\"=\"," })));
        put(s, PICK(bounds));
        break;

    default:
        do {
            x = PICK(bounds);
            y = PICK(bounds);
            a = strtold(x, NULL);
            b = strtold(y, NULL);
        } while (!(a < b));

        put(s, rnd(2) ? "\">\"," : "\">=\",");
        put(s, x);
        put(s, rnd(2) ? ",\"<\"," : ",\"<=\",");
        put(s, y);
    }

    put(s, "]}");
}


static void
gen_string_list(str_t *s, const char **pool, unsigned n)
{
    unsigned  i, k;

    if (rnd(2)) {
        put(s, pool[rnd(n)]);
        return;
    }

    k = 1 + rnd(3);
    put(s, "[");

    for (i = 0; i < k; i++) {
        put(s, i ? "," : "");
        put(s, pool[rnd(n)]);
    }

    put(s, "]");
}


static void
gen_operator(str_t *s, int rich)
{
    unsigned  i, k;

    switch (rnd(rich ? 17 : 8)) {
    case 0:
        put(s, "\"prefix\":");
        put(s, PICK(affixes));
        break;
    case 1:
        put(s, "\"suffix\":");
        put(s, PICK(affixes));
        break;
    case 2:
        put(s, "\"numeric\":");
        {
            str_t  t = { NULL, 0, 0 };

            gen_numeric(&t);
            /* {"numeric":[...]} -> the inside */
            t.p[t.len - 1] = '\0';
            put(s, t.p + strlen("{\"numeric\":"));
            free(t.p);
        }
        break;
    case 3:
        put(s, "\"anything-but\":");

        if (rnd(2)) {
            gen_scalar(s);

        } else {
            k = 1 + rnd(3);
            put(s, "[");

            for (i = 0; i < k; i++) {
                put(s, i ? "," : "");
                gen_scalar(s);
            }

            put(s, "]");
        }

        break;
    case 4:
        put(s, "\"exists\":");
        put(s, rnd(2) ? "true" : "false");
        break;
    case 5:
        put(s, "\"equals-ignore-case\":");
        put(s, PICK(strings));
        break;
    case 6:
        put(s, "\"contains\":");
        put(s, PICK(affixes));
        break;
    case 7:
        put(s, "\"wildcard\":");
        put(s, PICK(wildcards));
        break;
    case 8:
        put(s, rnd(2) ? "\"prefix\":{\"equals-ignore-case\":"
                      : "\"suffix\":{\"equals-ignore-case\":");
        put(s, PICK(affixes));
        put(s, "}");
        break;
    case 9:
    case 10:
        put(s, "\"cidr\":");
        put(s, PICK(blocks));
        break;
    case 11:
        put(s, "\"regex\":");
        put(s, PICK(regexes));
        break;
    case 12:
        put(s, "\"anything-but\":{\"prefix\":");
        gen_string_list(s, affixes, sizeof(affixes) / sizeof(affixes[0]));
        put(s, "}");
        break;
    case 13:
        put(s, "\"anything-but\":{\"suffix\":");
        gen_string_list(s, affixes, sizeof(affixes) / sizeof(affixes[0]));
        put(s, "}");
        break;
    case 14:
        put(s, "\"anything-but\":{\"equals-ignore-case\":");
        gen_string_list(s, strings, sizeof(strings) / sizeof(strings[0]));
        put(s, "}");
        break;
    case 15:
        put(s, "\"anything-but\":{\"wildcard\":");
        gen_string_list(s, wildcards,
                        sizeof(wildcards) / sizeof(wildcards[0]));
        put(s, "}");
        break;
    default:
        put(s, "\"prefix\":");
        put(s, PICK(affixes));
        put(s, ",\"suffix\":");
        put(s, PICK(affixes));
        break;
    }
}


static void
gen_condition(str_t *s, int rich)
{
    size_t  mark;

    if (rnd(3) == 0) {
        gen_scalar(s);
        return;
    }

    put(s, "{");
    mark = s->len;
    gen_operator(s, rich);

    /* sometimes two operators on one value (never with exists:false,
     * never the same one twice) */
    if (rich && rnd(6) == 0 && strstr(s->p + mark, "\"exists\"") == NULL) {
        const char  *op1 = s->p + mark;
        str_t        t = { NULL, 0, 0 };

        gen_operator(&t, rich);

        if (strncmp(op1, t.p, strchr(t.p, ':') - t.p) != 0
            && strstr(t.p, "\"exists\"") == NULL
            && strstr(t.p, "\"suffix\":") == NULL
            && strstr(op1, "\"suffix\":") == NULL)
        {
            put(s, ",");
            put(s, t.p);
        }

        free(t.p);
    }

    put(s, "}");
}


static void gen_pattern(str_t *s, int depth, int rich);


static void
gen_member(str_t *s, const char *key, int depth, int rich)
{
    unsigned  i, k;

    put(s, "\"");
    put(s, key);
    put(s, "\":");

    if (depth < 3 && rnd(4) == 0) {
        gen_pattern(s, depth + 1, rich);
        return;
    }

    k = 1 + rnd(3);
    put(s, "[");

    for (i = 0; i < k; i++) {
        put(s, i ? "," : "");
        gen_condition(s, rich);
    }

    put(s, "]");
}


static void
gen_pattern(str_t *s, int depth, int rich)
{
    unsigned     i, j, k, n, used;
    const char  *key;

    n = 1 + rnd(3);
    used = 0;
    put(s, "{");

    for (i = 0; i < n; i++) {
        if (rnd(8) == 0 && depth < 3) {
            if (used & (1u << 31)) {
                continue;
            }

            used |= 1u << 31;
            put(s, s->p[s->len - 1] == '{' ? "\"$or\":[" : ",\"$or\":[");
            k = 1 + rnd(3);

            for (j = 0; j < k; j++) {
                put(s, j ? "," : "");
                gen_pattern(s, depth + 1, rich);
            }

            put(s, "]");
            continue;
        }

        j = rnd(sizeof(keys) / sizeof(keys[0]));
        if (used & (1u << j)) {
            continue;
        }

        used |= 1u << j;
        key = keys[j];

        if (s->p[s->len - 1] != '{') {
            put(s, ",");
        }

        gen_member(s, key, depth, rich);
    }

    if (s->p[s->len - 1] == '{') {
        gen_member(s, keys[rnd(3)], depth, rich);
    }

    put(s, "}");
}


static void gen_event_object(str_t *s, int depth, int arrays);


static void
gen_event_value(str_t *s, int depth, int arrays)
{
    unsigned  i, k, r;

    r = rnd(arrays ? 10 : 14);

    if (depth < 4 && r < (arrays ? 3u : 2u)) {
        gen_event_object(s, depth + 1, arrays);
        return;
    }

    if (depth < 4 && r < (arrays ? 6u : 3u)) {
        /* an array: of objects, scalars or arrays */
        k = rnd(4);
        put(s, "[");

        for (i = 0; i < k; i++) {
            put(s, i ? "," : "");

            switch (rnd(arrays ? 3 : 5)) {
            case 0:
                gen_event_object(s, depth + 1, arrays);
                break;
            case 1:
                if (rnd(3) == 0) {
                    put(s, "[");
                    gen_scalar(s);
                    put(s, ",");
                    gen_event_object(s, depth + 2, arrays);
                    put(s, "]");
                    break;
                }
                /* fall through */
            default:
                gen_scalar(s);
            }
        }

        put(s, "]");
        return;
    }

    gen_scalar(s);
}


static void
gen_event_object(str_t *s, int depth, int arrays)
{
    unsigned  i, n, used;

    n = rnd(depth ? 4 : 6);
    used = 0;
    put(s, "{");

    for (i = 0; i < n; i++) {
        unsigned  j = rnd(sizeof(keys) / sizeof(keys[0]));

        if (used & (1u << j)) {
            continue;
        }

        used |= 1u << j;
        put(s, s->p[s->len - 1] == '{' ? "\"" : ",\"");
        put(s, keys[j]);
        put(s, "\":");
        gen_event_value(s, depth, arrays);
    }

    put(s, "}");
}


/* nrules random rules in one ruleset, nevents random events: the engine
 * (both ways of matching) against the reference, rule by rule */
static void
differential(const char *name, int nrules, int nevents, int rich,
    int arrays)
{
    int                  i, j, k, n, n2, bad, total, added, want, hits, rc;
    char                 err[512];
    str_t                s;
    char               **pats;
    uint32_t            *ids, *ids2;
    ref_rule_t          *rules;
    ref_event_t          ev;
    eb_ruleset_t        *rs;
    eb_match_scratch_t  *sc;
    eb_pattern_event_t  *pev;
    eb_ruleset_stats_t   st;

    rs = eb_ruleset_new();
    sc = eb_match_scratch_new();
    pev = eb_pattern_event_new();
    pats = calloc(nrules, sizeof(char *));
    rules = calloc(nrules, sizeof(ref_rule_t));
    ids = malloc(nrules * sizeof(uint32_t));
    ids2 = malloc(nrules * sizeof(uint32_t));

    added = 0;

    for (i = 0; i < nrules; i++) {
        memset(&s, 0, sizeof(s));
        gen_pattern(&s, 0, rich);
        pats[i] = s.p;

        err[0] = '\0';
        rc = eb_ruleset_add(rs, (uint32_t) i, (unsigned char *) s.p, s.len,
                            err, sizeof(err));

        if (rc != 0 && strstr(err, "alternatives")) {
            /* too many "$or"s multiplied: another one */
            free(s.p);
            i--;
            continue;
        }

        if (rc != 0) {
            if (added >= 0) {
                printf("# %s\n#   %s\n", s.p, err);
                added = -1 - added;
            }

            continue;
        }

        ref_rule_init(&rules[i], s.p, s.len);

        if (added >= 0) {
            added++;
        }
    }

    ok(added == nrules, "%s: %d random rules added", name, nrules);
    ok(eb_ruleset_compile(rs, err, sizeof(err)) == 0, "%s: compiled", name);


    eb_ruleset_stats(rs, &st);
    printf("# %s: %zu alternatives, %zu fields, %zu states, %zu matchers, "
           "%zu KB\n", name, st.alternatives, st.fields, st.states,
           st.matchers, st.memory / 1024);

    bad = 0;
    total = 0;
    hits = 0;

    for (j = 0; j < nevents; j++) {
        memset(&s, 0, sizeof(s));
        gen_event_object(&s, 0, arrays);

        n = eb_ruleset_match_json(rs, sc, (unsigned char *) s.p, s.len, ids,
                                  (size_t) nrules);

        if (eb_pattern_event_parse(pev, rs, (unsigned char *) s.p, s.len)
            != 0)
        {
            n2 = -100;

        } else {
            n2 = eb_ruleset_match_event(rs, sc, pev, ids2, (size_t) nrules);
        }

        if (n2 != n || (n > 0 && memcmp(ids, ids2, n * sizeof(uint32_t)))) {
            if (bad++ < 3) {
                printf("# event %s: match_json %d, match_event %d\n", s.p, n,
                       n2);
            }
        }

        ref_event_init(&ev, s.p, s.len);

        for (k = 0, i = 0; i < nrules; i++) {
            want = ref_match(&rules[i], &ev);

            while (k < n && ids[k] < (uint32_t) i) {
                k++;
            }

            total++;
            hits += want;

            if (want != (k < n && ids[k] == (uint32_t) i)) {
                if (bad++ < 3) {
                    printf("# rule %s\n# event %s\n#   engine %d, "
                           "reference %d\n", pats[i], s.p, !want, want);
                }
            }
        }

        ref_event_free(&ev);
        free(s.p);
    }

    ok(bad == 0, "%s: %d events x %d rules (%d matches) agree with the "
       "reference", name, nevents, nrules, hits);

    for (i = 0; i < nrules; i++) {
        if (rules[i].root) {
            ref_rule_free(&rules[i]);
        }

        free(pats[i]);
    }

    free(pats);
    free(rules);
    free(ids);
    free(ids2);
    eb_pattern_event_free(pev);
    eb_match_scratch_free(sc);
    eb_ruleset_free(rs);
}


int
main(void)
{
    const char  *seed;

    seed = getenv("EB_TEST_SEED");
    rnd_state = seed ? strtoull(seed, NULL, 10) : 20261123;
    printf("# seed %llu\n", rnd_state);

    /* the plain operators, many rules */
    differential("10000 rules", 10000, 150, 0, 0);

    /* every operator, arrays of objects everywhere */
    differential("rich rules, arrays", 2000, 400, 1, 1);
    differential("rich rules", 3000, 300, 1, 0);

    ref_regex_free();

    return tap_done();
}
