/*
 * eb_event_scan: names, kinds, scalar texts and raw spans of an event's
 * top-level members, checked by hand and against yajl's tree reader
 * (each span, parsed alone, must equal the tree's value); the values
 * eb_event_scan_paths() finds at simple JSONPaths, by hand (fuzz/
 * fuzz_event_scan.c compares them with the tree).
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_tree.h>
#include <yajl/yajl_gen.h>

#include "tap.h"
#include "eb_event_scan.h"
#include "eb_jsonpath.h"


static const char *
span(const char *ev, const eb_event_member_t *m)
{
    static char  b[4096];

    snprintf(b, sizeof(b), "%.*s", (int) (m->end - m->start), ev + m->start);
    return b;
}


/* the JSON text yajl's generator makes of a tree: for comparisons */
static char *
canon(yajl_val v)
{
    size_t                len;
    const unsigned char  *buf;
    char                 *out;
    yajl_gen              g = yajl_gen_alloc(NULL);

    if (YAJL_IS_NULL(v)) {
        yajl_gen_null(g);
    } else {
        /* a tree node: write it back by hand for the kinds tested */
        if (YAJL_IS_STRING(v)) {
            yajl_gen_string(g, (const unsigned char *) v->u.string,
                            strlen(v->u.string));
        } else if (YAJL_IS_NUMBER(v)) {
            yajl_gen_number(g, v->u.number.r, strlen(v->u.number.r));
        } else if (YAJL_IS_TRUE(v)) {
            yajl_gen_bool(g, 1);
        } else if (YAJL_IS_FALSE(v)) {
            yajl_gen_bool(g, 0);
        } else {
            yajl_gen_null(g);   /* containers: compared by their spans */
        }
    }

    yajl_gen_get_buf(g, &buf, &len);
    out = strndup((const char *) buf, len);
    yajl_gen_free(g);
    return out;
}


static void
test_members(void)
{
    char             err[256];
    eb_event_scan_t  s;
    const char      *ev =
        "{ \"specversion\" : \"1.0\",\"id\":\"a\\\"b\\u00e9\", \"n\": -1.5e3 ,"
        "\"t\":true,\"f\":false,\"z\":null,"
        "\"data\" :\n {\"x\":[1,{\"y\":\"}\"}],\"s\":\"]\"},"
        "\"arr\":[ ],\"e\":\"\"}";

    is_int(eb_event_scan((const unsigned char *) ev, strlen(ev), &s, err,
                         sizeof(err)), 0, "scan: an event");
    is_int(s.n, 9, "scan: 9 members");

    is_str(s.members[0].name, "specversion", "member 0 name");
    is_int(s.members[0].kind, EB_EV_STRING, "member 0 kind");
    is_str(s.members[0].text, "1.0", "member 0 text");
    is_str(span(ev, &s.members[0]), "\"1.0\"", "member 0 span");

    is_str(s.members[1].text, "a\"b\xc3\xa9", "escapes decoded");
    is_int(s.members[1].text_len, 5, "decoded length");
    is_str(span(ev, &s.members[1]), "\"a\\\"b\\u00e9\"", "raw span kept");

    is_int(s.members[2].kind, EB_EV_NUMBER, "number kind");
    is_str(s.members[2].text, "-1.5e3", "number as written");
    is_str(span(ev, &s.members[2]), "-1.5e3", "number span");

    is_str(s.members[3].text, "true", "true");
    is_str(s.members[4].text, "false", "false");
    ok(s.members[5].kind == EB_EV_NULL && s.members[5].text == NULL,
       "null: no text");

    is_int(s.members[6].kind, EB_EV_OBJECT, "data: object");
    ok(s.members[6].text == NULL, "object: no text");
    is_str(span(ev, &s.members[6]), "{\"x\":[1,{\"y\":\"}\"}],\"s\":\"]\"}",
           "object span: braces in strings do not end it");

    is_int(s.members[7].kind, EB_EV_ARRAY, "array kind");
    is_str(span(ev, &s.members[7]), "[ ]", "empty array span");

    is_str(s.members[8].text, "", "empty string");
    is_str(span(ev, &s.members[8]), "\"\"", "empty string span");

    ok(eb_event_scan_get(&s, "data") == &s.members[6], "get data");
    ok(eb_event_scan_get(&s, "nope") == NULL, "get: missing");

    eb_event_scan_free(&s);
}


static void
test_repeated_and_nul(void)
{
    char             err[256];
    eb_event_scan_t  s;
    const char      *ev = "{\"id\":\"1\",\"id\":\"2\",\"da\\u0000ta\":3}";

    is_int(eb_event_scan((const unsigned char *) ev, strlen(ev), &s, err,
                         sizeof(err)), 0, "scan: repeated key");
    is_str(eb_event_scan_get(&s, "id")->text, "2", "the last one wins");
    ok(eb_event_scan_get(&s, "da") == NULL, "a NUL in a name: not a prefix");
    is_int(s.members[2].name_len, 5, "name_len counts past the NUL");
    eb_event_scan_free(&s);

    ev = "{\"a\":\"x\\ud800y\",\"b\":\"\\ud83d\\ude00\\n\",\"c\":\"\\udc00\"}";
    is_int(eb_event_scan((const unsigned char *) ev, strlen(ev), &s, err,
                         sizeof(err)), 0, "scan: surrogates");
    is_str(s.members[0].text, "x\xef\xbf\xbdy", "a lone high surrogate: U+FFFD");
    is_str(s.members[1].text, "\xf0\x9f\x98\x80\n", "a pair: one code point");
    is_str(s.members[2].text, "\xef\xbf\xbd", "a lone low surrogate: U+FFFD");
    eb_event_scan_free(&s);
}


/* yajl's lexer also takes \v and \f for whitespace: spans skip them */
static void
test_vf_whitespace(void)
{
    char             err[256];
    eb_event_scan_t  s;
    const char      *ev = "{\"id\":\f\v \"a\\u00e9\",\"n\":\f1}";

    is_int(eb_event_scan((const unsigned char *) ev, strlen(ev), &s, err,
                         sizeof(err)), 0, "scan: \\v and \\f before values");
    is_str(span(ev, &s.members[0]), "\"a\\u00e9\"", "span starts at the quote");
    is_str(s.members[0].text, "a\xc3\xa9", "escaped text decoded from there");
    is_str(span(ev, &s.members[1]), "1", "number span");
    eb_event_scan_free(&s);
}


static void
test_refused(void)
{
    size_t           i;
    char             err[256];
    eb_event_scan_t  s;
    static const struct { const char *text, *why; } bad[] = {
        { "", "not JSON" },
        { "[1]", "not a JSON object" },
        { "\"x\"", "not a JSON object" },
        { "{\"a\":1", "not JSON" },
        { "{\"a\":1}x", "not JSON" },
        { "{\"a\":1}{}", "not JSON" },
        { "{\"a\":\"\xff\"}", "not JSON" },
        { "{a:1}", "not JSON" },
        { "{\"a\":1/* stored events have no comments */}", "not JSON" },
    };

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        is_int(eb_event_scan((const unsigned char *) bad[i].text,
                             strlen(bad[i].text), &s, err, sizeof(err)), -1,
               "refused: %s", bad[i].text);
        ok(strstr(err, bad[i].why) != NULL, "reason: %s (%s)", bad[i].why,
           err);
        ok(s.members == NULL && s.buf == NULL, "nothing held");
    }
}


/* many members (the array grows), each scalar against yajl's tree */
static void
test_against_tree(void)
{
    size_t             i, n = 0;
    char               ev[16384], err[256], *c1, *c2;
    int                off = 0;
    yajl_val           tree, v;
    eb_event_scan_t    s;

    off += snprintf(ev + off, sizeof(ev) - off, "{");
    for (i = 0; i < 100; i++) {
        off += snprintf(ev + off, sizeof(ev) - off, "%s\"k%zu\":", i ? "," : "",
                        i);
        switch (i % 5) {
        case 0: off += snprintf(ev + off, sizeof(ev) - off, "\"v\\t%zu\"", i);
                break;
        case 1: off += snprintf(ev + off, sizeof(ev) - off, "%zu.25", i);
                break;
        case 2: off += snprintf(ev + off, sizeof(ev) - off, "true"); break;
        case 3: off += snprintf(ev + off, sizeof(ev) - off, "null"); break;
        default: off += snprintf(ev + off, sizeof(ev) - off,
                                 "{\"a\":[%zu]}", i);
        }
    }
    snprintf(ev + off, sizeof(ev) - off, "}");

    tree = yajl_tree_parse(ev, err, sizeof(err));
    ok(tree != NULL, "the reference parses it");
    is_int(eb_event_scan((const unsigned char *) ev, strlen(ev), &s, err,
                         sizeof(err)), 0, "scan: 100 members");
    is_int(s.n, 100, "100 members");

    for (i = 0; i < s.n && tree != NULL; i++) {
        const char  *path[2] = { s.members[i].name, NULL };
        char         raw[256];

        v = yajl_tree_get(tree, path, yajl_t_any);
        snprintf(raw, sizeof(raw), "%.*s",
                 (int) (s.members[i].end - s.members[i].start),
                 ev + s.members[i].start);
        yajl_val one = yajl_tree_parse(raw, err, sizeof(err));
        c1 = canon(v);
        c2 = canon(one);
        if (one != NULL && strcmp(c1, c2) == 0) {
            n++;
        } else {
            printf("# member %s: span %s\n", s.members[i].name, raw);
        }
        free(c1);
        free(c2);
        yajl_tree_free(one);
    }
    is_int(n, 100, "every span parses to the tree's value");

    yajl_tree_free(tree);
    eb_event_scan_free(&s);
}


/* what eb_event_scan_paths() found at each of exprs, as one line:
 * "kind:text" (a container: "kind:span"), "-" when none */
static const char *
found(const char *ev, const char **exprs, size_t n, size_t want)
{
    static char               line[4096];
    char                      err[256];
    size_t                    i, used = 0;
    eb_jsonpath_t            *p[40];
    eb_event_scan_t           s;
    const eb_event_member_t  *m;

    for (i = 0; i < n; i++) {
        p[i] = eb_jsonpath_compile(exprs[i], strlen(exprs[i]), err,
                                   sizeof(err));
        if (p[i] == NULL || !eb_jsonpath_is_simple(p[i])) {
            printf("# %s: not simple\n", exprs[i]);
            return "bad path";
        }
    }

    if (eb_event_scan_paths((const unsigned char *) ev, strlen(ev), &s,
                            (const eb_jsonpath_t *const *) p, n, err,
                            sizeof(err)) != 0)
    {
        snprintf(line, sizeof(line), "error: %s", err);
        goto done;
    }

    line[0] = '\0';
    for (i = 0; i < n && i < want; i++) {
        m = eb_event_scan_found(&s, i);
        used += snprintf(line + used, sizeof(line) - used, "%s", i ? " " : "");
        if (m == NULL) {
            used += snprintf(line + used, sizeof(line) - used, "-");
        } else if (m->kind == EB_EV_OBJECT || m->kind == EB_EV_ARRAY) {
            used += snprintf(line + used, sizeof(line) - used, "%d:%.*s",
                             (int) m->kind, (int) (m->end - m->start),
                             ev + m->start);
        } else {
            used += snprintf(line + used, sizeof(line) - used, "%d:%s",
                             (int) m->kind, m->text ? m->text : "(null)");
        }
    }
    eb_event_scan_free(&s);

done:
    for (i = 0; i < n; i++) {
        eb_jsonpath_free(p[i]);
    }
    return line;
}


static void
test_paths(void)
{
    size_t       i;
    const char  *ev, *many[40];
    char         names[40][16];

    {
        const char *x[] = { "$.id", "$.data.body.name", "$.data.body.n",
                            "$.data.list[1]", "$.data.list[2].k",
                            "$.data.list[9]", "$.data.t", "$.data.z",
                            "$.data.body", "$.data.list" };
        ev = "{\"id\":\"e1\",\"data\":{\"body\":{\"name\":\"A \\u00e9\","
             "\"n\":-1.5e3},\"list\":[true,false,{\"k\":null}],"
             "\"t\":\"x\\ud800y\"}}";
        is_str(found(ev, x, 10, 10),
               "0:e1 0:A \xc3\xa9 1:-1.5e3 3:false 4:(null) - 0:x\xef\xbf\xbdy"
               " - 5:{\"name\":\"A \\u00e9\",\"n\":-1.5e3}"
               " 6:[true,false,{\"k\":null}]",
               "names, indexes, kinds; escapes decoded, an unpaired "
               "surrogate as U+FFFD; containers as their spans");
    }

    {
        /* of repeated names the last wins, as in a tree: a later "a"
         * that is not an object forgets what the first one had */
        const char *x[] = { "$.a.b", "$.c.d", "$.e", "$.f[0]" };
        ev = "{\"a\":{\"b\":1},\"a\":2,\"c\":{\"d\":1,\"d\":2},"
             "\"c\":{\"d\":3},\"e\":1,\"e\":{},\"f\":[9],\"f\":[]}";
        is_str(found(ev, x, 4, 4), "- 1:3 5:{} -",
               "repeated names: the last one's value, or none");
    }

    {
        /* names compared as decoded; a tree's keys end at a NUL */
        const char *x[] = { "$['\\u00e9']", "$['a\"b']", "$['x']",
                            "$['k\\\\']" };
        ev = "{\"\\u00e9\":1,\"a\\\"b\":2,\"x\\u0000y\":3,\"k\\\\\":4}";
        is_str(found(ev, x, 4, 4), "1:1 1:2 1:3 1:4",
               "escaped names; a name with a NUL as the tree reads it");
    }

    {
        /* arrays of arrays; an index past the end; depth */
        const char *x[] = { "$.a[0][1]", "$.a[1][0][0]", "$.a[2]",
                            "$.b.c.d.e.f.g", "$.a[0]" };
        ev = "{\"a\":[[1,[2]],[[\"x\"]]],\"b\":{\"c\":{\"d\":{\"e\":{"
             "\"f\":{\"g\":\"deep\"}}}}}}";
        is_str(found(ev, x, 5, 5),
               "6:[2] 0:x - 0:deep 6:[1,[2]]",
               "nested arrays, deep objects");
    }

    /* more paths than are followed without an allocation */
    for (i = 0; i < 40; i++) {
        snprintf(names[i], sizeof(names[i]), "$.k%zu", i % 20);
        many[i] = names[i];
    }
    ev = "{\"k0\":0,\"k5\":5,\"k19\":19}";
    is_str(found(ev, many, 40, 40),
           "1:0 - - - - 1:5 - - - - - - - - - - - - - 1:19 "
           "1:0 - - - - 1:5 - - - - - - - - - - - - - 1:19",
           "40 paths");

    {
        const char *x[] = { "$.a" };
        is_str(found("{\"a\":1", x, 1, 1),
               "error: the event is not JSON: parse error: premature EOF",
               "a text that is not JSON: an error, nothing found");
    }

    {
        eb_jsonpath_t  *p;
        const char     *no[] = { "$.a[-1]", "$..a", "$.a[*]", "$['a','b']",
                                 "$" };

        for (i = 0; i < sizeof(no) / sizeof(no[0]); i++) {
            p = eb_jsonpath_compile(no[i], strlen(no[i]), NULL, 0);
            ok(p != NULL && !eb_jsonpath_is_simple(p),
               "%s is not simple: a tree reads it", no[i]);
            eb_jsonpath_free(p);
        }
    }
}


int
main(void)
{
    test_members();
    test_repeated_and_nul();
    test_vf_whitespace();
    test_refused();
    test_against_tree();
    test_paths();

    return tap_done();
}
