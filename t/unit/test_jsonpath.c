/*
 * eb_jsonpath: every form of the grammar, evaluation order and edge cases
 * (missing members, out-of-range and negative indexes, wildcards over
 * objects, arrays and scalars, recursive descent, unions), compile errors
 * with their offsets, and the value-as-text helpers.
 */

#include <stdlib.h>
#include <string.h>

#include <yajl/yajl_tree.h>

#include "tap.h"
#include "eb_buf.h"
#include "eb_jsonpath.h"


#define S(s)  (s), sizeof(s) - 1


static const char  doc_text[] =
    "{"
    "\"a\": {\"b\": {\"c\": 1}},"
    "\"key with space\": \"sp\","
    "\"it's\": \"apos\","
    "\"say \\\"hi\\\"\": \"dq\","
    "\"back\\\\slash\": \"bs\","
    "\"\xe5\xb0\x8f\xe6\x98\x8e\": \"xm\","
    "\"\xf0\x9f\x98\x80\": \"smile\","
    "\"l\\nf\": \"newline\","
    "\"arr\": [10, 20, 30, [40, 50, [60]]],"
    "\"objs\": [{\"id\": 1, \"n\": \"x\"}, {\"id\": 2}, {\"n\": \"z\"}],"
    "\"empty\": {},"
    "\"ea\": [],"
    "\"nul\": null,"
    "\"t\": true,"
    "\"f\": false,"
    "\"num\": 3.0e2,"
    "\"big\": 12345678901234567890,"
    "\"neg\": -0.5E-3,"
    "\"dup\": 1, \"dup\": 2,"
    "\"content-type\": \"json\","
    "\"a.b\": \"dot\","
    "\"\": \"emptykey\","
    "\"@type\": \"at\","
    "\"strnull\": \"null\""
    "}";


static yajl_val
parse(const char *text)
{
    char      err[256];
    yajl_val  v;

    v = yajl_tree_parse(text, err, sizeof(err));
    if (v == NULL) {
        printf("# cannot parse the fixture: %s\n", err);
    }

    return v;
}


/* All matches of expr in root as a compact JSON array, or "ERROR: msg". */
static const char *
matches(const char *expr, yajl_val root)
{
    static char     out[4096];
    char            err[256];
    size_t          i, n;
    yajl_val        vals[64];
    eb_buf_t        b;
    eb_jsonpath_t  *p;

    p = eb_jsonpath_compile(expr, strlen(expr), err, sizeof(err));
    if (p == NULL) {
        snprintf(out, sizeof(out), "ERROR: %s", err);
        return out;
    }

    n = eb_jsonpath_eval(p, root, vals, 64);

    eb_buf_init(&b);
    eb_buf_append(&b, "[", 1);

    for (i = 0; i < n && i < 64; i++) {
        if (i) {
            eb_buf_append(&b, ",", 1);
        }

        eb_jsonpath_write_json(&b, vals[i]);
    }

    eb_buf_append(&b, "]", 1);

    snprintf(out, sizeof(out), "%.*s", (int) b.len, (char *) b.data);
    eb_buf_free(&b);
    eb_jsonpath_free(p);

    return out;
}


/* Compiles expr (expr_len bytes) expecting a failure at offset at whose
 * message contains what. */
static void
fails(const char *expr, size_t expr_len, size_t at, const char *what)
{
    char            err[256], want[64];
    eb_jsonpath_t  *p;

    strcpy(err, "");
    p = eb_jsonpath_compile(expr, expr_len, err, sizeof(err));

    snprintf(want, sizeof(want), "invalid JSONPath at offset %zu: ", at);

    ok(p == NULL && strncmp(err, want, strlen(want)) == 0
       && strstr(err, what) != NULL,
       "compile error at %zu: %s", at, what);

    if (p != NULL || strncmp(err, want, strlen(want)) != 0
        || strstr(err, what) == NULL)
    {
        printf("#   got: '%s'\n", p ? "(compiled)" : err);
    }

    eb_jsonpath_free(p);
}


static int
definite(const char *expr)
{
    int             d;
    eb_jsonpath_t  *p;

    p = eb_jsonpath_compile(expr, strlen(expr), NULL, 0);
    if (p == NULL) {
        return -1;
    }

    d = eb_jsonpath_is_definite(p);
    eb_jsonpath_free(p);

    return d;
}


static void
test_names(yajl_val doc)
{
    is_str(matches("$.a.b.c", doc), "[1]", "dot names");
    is_str(matches("$['a']['b'][\"c\"]", doc), "[1]",
           "single- and double-quoted names");
    is_str(matches("$.a['b'].c", doc), "[1]", "dots and brackets mixed");
    is_str(matches("$.a.b", doc), "[{\"c\":1}]", "an object value");
    is_str(matches("$['key with space']", doc), "[\"sp\"]",
           "a key with spaces");
    is_str(matches("$[\"it's\"]", doc), "[\"apos\"]",
           "an apostrophe inside double quotes");
    is_str(matches("$['it\\'s']", doc), "[\"apos\"]", "\\' escape");
    is_str(matches("$['say \"hi\"']", doc), "[\"dq\"]",
           "double quotes inside single quotes");
    is_str(matches("$[\"say \\\"hi\\\"\"]", doc), "[\"dq\"]", "\\\" escape");
    is_str(matches("$['say \\\"hi\\\"']", doc), "[\"dq\"]",
           "\\\" accepted inside single quotes too");
    is_str(matches("$['back\\\\slash']", doc), "[\"bs\"]", "\\\\ escape");
    is_str(matches("$['l\\nf']", doc), "[\"newline\"]", "\\n escape");
    is_str(matches("$.\xe5\xb0\x8f\xe6\x98\x8e", doc), "[\"xm\"]",
           "a UTF-8 dot name (xiaoming)");
    is_str(matches("$['\xe5\xb0\x8f\xe6\x98\x8e']", doc), "[\"xm\"]",
           "a UTF-8 quoted name");
    is_str(matches("$['\\u5c0f\\u660E']", doc), "[\"xm\"]",
           "\\u escapes (either case)");
    is_str(matches("$['\\ud83d\\ude00']", doc), "[\"smile\"]",
           "a \\u surrogate pair");
    is_str(matches("$.\xf0\x9f\x98\x80", doc), "[\"smile\"]",
           "a 4-byte UTF-8 dot name");
    is_str(matches("$.content-type", doc), "[\"json\"]",
           "a dash in a dot name");
    is_str(matches("$.@type", doc), "[\"at\"]", "an @ in a dot name");
    is_str(matches("$['a.b']", doc), "[\"dot\"]",
           "a quoted name with a dot is one key");
    is_str(matches("$['']", doc), "[\"emptykey\"]", "the empty key");
    is_str(matches("$[\"a\\/b\"]", doc), "[]", "\\/ escape (no such key)");
    is_str(matches("$['nokey']", doc), "[]", "a missing key");
    is_str(matches("$.a.nokey.c", doc), "[]", "below a missing key");
    is_str(matches("$.dup", doc), "[2]", "a repeated key: the last wins");
    is_str(matches("$.nul", doc), "[null]", "a null value is a match");
    is_str(matches("$.nul.x", doc), "[]", "a name on null");
    is_str(matches("$.t.x", doc), "[]", "a name on true");
    is_str(matches("$.arr.x", doc), "[]", "a name on an array");
    is_str(matches("$['key with'][0]", doc), "[]", "a near miss");
    is_str(matches("$[ 'a' ]", doc), "[{\"b\":{\"c\":1}}]",
           "blanks inside brackets");
}


static void
test_numbers(yajl_val doc)
{
    is_str(matches("$.num", doc), "[3.0e2]", "a number keeps its text");
    is_str(matches("$.big", doc), "[12345678901234567890]",
           "a number beyond 64 bits keeps its text");
    is_str(matches("$.neg", doc), "[-0.5E-3]", "exponent case kept");
    is_str(matches("$.f", doc), "[false]", "false");
}


static void
test_indexes(yajl_val doc)
{
    is_str(matches("$.arr[0]", doc), "[10]", "index 0");
    is_str(matches("$.arr[2]", doc), "[30]", "index 2");
    is_str(matches("$.arr[3]", doc), "[[40,50,[60]]]", "a nested array");
    is_str(matches("$.arr[3][2][0]", doc), "[60]", "nested indexes");
    is_str(matches("$.arr[-1]", doc), "[[40,50,[60]]]", "index -1: the last");
    is_str(matches("$.arr[-1][-1][-1]", doc), "[60]",
           "negative nested indexes");
    is_str(matches("$.arr[-4]", doc), "[10]", "index -len: the first");
    is_str(matches("$.arr[4]", doc), "[]", "index len: out of range");
    is_str(matches("$.arr[-5]", doc), "[]", "index -len-1: out of range");
    is_str(matches("$.arr[9223372036854775807]", doc), "[]",
           "the largest index");
    is_str(matches("$.arr[-9223372036854775807]", doc), "[]",
           "the smallest index");
    is_str(matches("$.ea[0]", doc), "[]", "index 0 of an empty array");
    is_str(matches("$.ea[-1]", doc), "[]", "index -1 of an empty array");
    is_str(matches("$.a[0]", doc), "[]", "an index on an object");
    is_str(matches("$.num[0]", doc), "[]", "an index on a number");
    is_str(matches("$.objs[1].id", doc), "[2]", "a member of an element");
    is_str(matches("$.objs[2].id", doc), "[]",
           "a member missing from an element");
}


static void
test_wildcards(yajl_val doc)
{
    yajl_val  small;

    is_str(matches("$.arr[*]", doc), "[10,20,30,[40,50,[60]]]",
           "[*] over an array");
    is_str(matches("$.arr.*", doc), "[10,20,30,[40,50,[60]]]",
           ".* over an array");
    is_str(matches("$.a.*", doc), "[{\"c\":1}]", ".* over an object");
    is_str(matches("$.objs[*].id", doc), "[1,2]",
           "a member of every element, where present");
    is_str(matches("$.objs[*].n", doc), "[\"x\",\"z\"]",
           "document order");
    is_str(matches("$.objs.*.*", doc), "[1,\"x\",2,\"z\"]",
           "two wildcards");
    is_str(matches("$.empty.*", doc), "[]", "* over an empty object");
    is_str(matches("$.ea[*]", doc), "[]", "* over an empty array");
    is_str(matches("$.num.*", doc), "[]", "* over a number");
    is_str(matches("$.nul[*]", doc), "[]", "* over null");
    is_str(matches("$.arr[*][*]", doc), "[40,50,[60]]",
           "* over the elements: scalars give nothing");

    small = parse("{\"k\":1,\"k\":2,\"m\":3}");
    is_str(matches("$.*", small), "[1,2,3]",
           "* keeps repeated keys, in order");
    yajl_tree_free(small);
}


static void
test_descendants(yajl_val doc)
{
    yajl_val  small;

    is_str(matches("$..c", doc), "[1]", "..name");
    is_str(matches("$..id", doc), "[1,2]", "..name in array elements");
    is_str(matches("$..n", doc), "[\"x\",\"z\"]", "..name in order");
    is_str(matches("$.arr..[0]", doc), "[10,40,60]", "..[index]");
    is_str(matches("$.arr..[-1]", doc), "[[40,50,[60]],[60],60]",
           "..[negative index]");
    is_str(matches("$..nokey", doc), "[]", "..name with no match");
    is_str(matches("$.objs..['id','n']", doc), "[1,\"x\",2,\"z\"]",
           "..[union]");

    small = parse("{\"a\":{\"a\":1}}");
    is_str(matches("$..a", small), "[{\"a\":1},1]",
           "a node before its descendants");
    yajl_tree_free(small);

    small = parse("{\"a\":[1,{\"b\":2}],\"c\":3}");
    is_str(matches("$..*", small), "[[1,{\"b\":2}],3,1,{\"b\":2},2]",
           "..*: children, then their descendants");
    is_str(matches("$..[*]", small), "[[1,{\"b\":2}],3,1,{\"b\":2},2]",
           "..[*] is ..*");
    is_str(matches("$.a..b", small), "[2]", "..name below a name");
    yajl_tree_free(small);
}


static void
test_unions(yajl_val doc)
{
    is_str(matches("$.arr[0,2]", doc), "[10,30]", "an index union");
    is_str(matches("$.arr[2,0]", doc), "[30,10]",
           "a union keeps the selectors' order");
    is_str(matches("$.arr[0,0]", doc), "[10,10]",
           "a union keeps duplicates");
    is_str(matches("$.arr[ 0 ,\t-1 ]", doc), "[10,[40,50,[60]]]",
           "blanks around union members");
    is_str(matches("$['t','f','nokey','nul']", doc), "[true,false,null]",
           "a name union, missing names skipped");
    is_str(matches("$.objs[0]['id',\"n\"]", doc), "[1,\"x\"]",
           "mixed quotes");
    is_str(matches("$.arr[1,*]", doc), "[20,10,20,30,[40,50,[60]]]",
           "an index and a wildcard");
}


static void
test_root(yajl_val doc)
{
    char       err[64];
    yajl_val   v, out[2];
    const char *m;
    eb_jsonpath_t  *p;

    m = matches("$", doc);
    ok(strncmp(m, "[{\"a\":{\"b\":{\"c\":1}},", 20) == 0, "$ is the root");

    v = parse("\"just a string\"");
    is_str(matches("$", v), "[\"just a string\"]", "$ of a scalar document");
    is_str(matches("$.a", v), "[]", "a name on a scalar root");
    yajl_tree_free(v);

    p = eb_jsonpath_compile(S("$.a"), err, sizeof(err));
    is_int(eb_jsonpath_eval(p, NULL, out, 2), 0, "a NULL root: no matches");
    ok(eb_jsonpath_first(p, NULL) == NULL, "first of a NULL root");
    eb_jsonpath_free(p);
}


static void
test_definite(void)
{
    is_int(definite("$"), 1, "$ is definite");
    is_int(definite("$.a.b"), 1, "names are definite");
    is_int(definite("$['a'][0][-1]"), 1, "brackets are definite");
    is_int(definite("$.a[*]"), 0, "[*] is not definite");
    is_int(definite("$.*"), 0, ".* is not definite");
    is_int(definite("$..a"), 0, ".. is not definite");
    is_int(definite("$.a[0,1]"), 0, "a union is not definite");
    is_int(definite("$.a['x','y'].b"), 0, "a name union is not definite");
}


static int
stop_after_two(void *ctx, yajl_val v)
{
    int  *n = ctx;

    return ++*n == 2 ? 7 : 0;
}


static void
test_api(yajl_val doc)
{
    int             n;
    char            err[64];
    size_t          count;
    yajl_val        out[2], v;
    eb_jsonpath_t  *p;

    p = eb_jsonpath_compile(S("$.arr[*]"), err, sizeof(err));

    out[0] = out[1] = NULL;
    count = eb_jsonpath_eval(p, doc, out, 2);
    is_int(count, 4, "eval counts all matches beyond max");
    ok(out[0] && YAJL_IS_NUMBER(out[0]) && out[0]->u.number.i == 10
       && out[1] && out[1]->u.number.i == 20, "eval fills the first max");
    is_int(eb_jsonpath_eval(p, doc, NULL, 0), 4, "eval with no room counts");

    n = 0;
    is_int(eb_jsonpath_walk(p, doc, stop_after_two, &n), 7,
           "walk returns the callback's stop value");
    is_int(n, 2, "walk stops when asked");

    v = eb_jsonpath_first(p, doc);
    ok(v && YAJL_IS_NUMBER(v) && v->u.number.i == 10,
       "first of a wildcard is the first match");
    is_str(eb_jsonpath_expr(p), "$.arr[*]", "expr gives the text back");
    eb_jsonpath_free(p);

    /* the length bounds the expression: no NUL needed */
    p = eb_jsonpath_compile("$.t.more", 3, err, sizeof(err));
    ok(p != NULL, "compile reads only len bytes");
    v = p ? eb_jsonpath_first(p, doc) : NULL;
    ok(v && YAJL_IS_TRUE(v), "compile(\"$.t.more\", 3) is $.t");
    is_str(p ? eb_jsonpath_expr(p) : "", "$.t", "its expr is cut too");
    eb_jsonpath_free(p);

    eb_jsonpath_free(NULL);
    ok(1, "free(NULL) is harmless");
}


static void
test_errors(void)
{
    char            err[16];
    eb_jsonpath_t  *p;

    fails(S(""), 0, "expected \"$\" at the start, found the end");
    fails(S("a.b"), 0, "expected \"$\" at the start, found \"a\"");
    fails(S(" $.a"), 0, "found \" \"");
    fails(S("$."), 2, "expected a name or \"*\" after \".\"");
    fails(S("$.."), 3, "after \"..\"");
    fails(S("$..."), 3, "after \"..\", found \".\"");
    fails(S("$a"), 1, "expected \".\", \"..\" or \"[\", found \"a\"");
    fails(S("$.a "), 3, "found \" \"");
    fails(S("$.a b"), 3, "found \" \"");
    fails(S("$.a.[0]"), 4, "after \".\", found \"[\"");
    fails(S("$.a]"), 3, "found \"]\"");
    fails(S("$.'a'"), 2, "found \"'\"");
    fails(S("$["), 1, "unterminated \"[\"");
    fails(S("$[]"), 2, "expected a quoted name, an index or \"*\"");
    fails(S("$['a'"), 1, "unterminated \"[\"");
    fails(S("$[*"), 1, "unterminated \"[\"");
    fails(S("$['a"), 2, "unterminated 'string'");
    fails(S("$[\"a]"), 2, "unterminated \"string\"");
    fails(S("$['a\\"), 2, "unterminated 'string'");
    fails(S("$['a'x]"), 5, "expected \",\" or \"]\", found \"x\"");
    fails(S("$[1 2]"), 4, "expected \",\" or \"]\"");
    fails(S("$['a',]"), 6, "expected a quoted name, an index or \"*\"");
    fails(S("$[,'a']"), 2, "expected a quoted name");
    fails(S("$[a]"), 2, "found \"a\"");
    fails(S("$[\xe5\xb0\x8f]"), 2, "found \"\xe5\xb0\x8f\"");
    fails(S("$['a\\q']"), 4, "invalid escape \"\\q\"");
    fails(S("$['\\u12']"), 3, "\\u needs four hexadecimal digits");
    fails(S("$['\\u12g4']"), 3, "\\u needs four hexadecimal digits");
    fails(S("$['\\ud800']"), 3, "a high surrogate without a low");
    fails(S("$['\\ud800\\u0041']"), 3, "a high surrogate without a low");
    fails(S("$['\\udc00']"), 3, "a lone low surrogate");
    fails(S("$['a\tb']"), 4, "byte 0x09 in a quoted name");
    fails(S("$[1:2]"), 3, "slices are not supported");
    fails(S("$[:2]"), 2, "slices are not supported");
    fails(S("$[?(@.a)]"), 2, "filters are not supported");
    fails(S("$[01]"), 2, "an index has no leading zeros");
    fails(S("$[-0]"), 2, "-0 is not an index");
    fails(S("$[-]"), 3, "expected a digit, found \"]\"");
    fails(S("$[-x]"), 3, "expected a digit, found \"x\"");
    fails(S("$[9223372036854775808]"), 2, "index out of range");
    fails(S("$[-99999999999999999999]"), 2, "index out of range");
    fails(S("$.\xff"), 2, "invalid UTF-8");
    fails(S("$.a\xe5\xb0"), 3, "invalid UTF-8");
    fails(S("$['\xc0\xaf']"), 3, "invalid UTF-8");
    fails(S("$.a\0b"), 3, "found byte 0x00");

    p = eb_jsonpath_compile(S("$."), NULL, 0);
    ok(p == NULL, "an error without an error buffer");

    memset(err, 'x', sizeof(err));
    p = eb_jsonpath_compile(S("$."), err, sizeof(err));
    ok(p == NULL && strlen(err) == sizeof(err) - 1,
       "a long message is cut and NUL-terminated");
}


#define ESC_IN  "a\"b\\c/\n\r\t\b\f\x01\x1f\x7f\xe5\xb0\x8f"

static void
test_text(void)
{
    eb_buf_t          b;
    yajl_val          v;
    eb_jsonpath_t    *p;
    eb_jsonpath_rc_t  rc;

    eb_buf_init(&b);

    eb_jsonpath_write_escaped(&b, (const unsigned char *) ESC_IN,
                              sizeof(ESC_IN) - 1);
    eb_buf_append(&b, "", 1);
    is_str((char *) b.data,
           "a\\\"b\\\\c/\\n\\r\\t\\b\\f\\u0001\\u001f\x7f\xe5\xb0\x8f",
           "write_escaped: quotes, backslashes, control characters");

    eb_buf_reset(&b);
    eb_jsonpath_write_escaped(&b, (const unsigned char *) "a\0b", 3);
    ok(b.len == 8 && memcmp(b.data, "a\\u0000b", 8) == 0,
       "write_escaped: NUL");

    v = parse("{\"s\":\"x\\\"y\",\"n\":-1.50,\"o\":{\"a\":[true,null,{}],"
              "\"b\":[]},\"z\":null,\"sn\":\"null\",\"e\":\"\"}");

    eb_buf_reset(&b);
    eb_jsonpath_write_json(&b, v);
    eb_buf_append(&b, "", 1);
    is_str((char *) b.data,
           "{\"s\":\"x\\\"y\",\"n\":-1.50,\"o\":{\"a\":[true,null,{}],"
           "\"b\":[]},\"z\":null,\"sn\":\"null\",\"e\":\"\"}",
           "write_json: compact, exact");

    eb_buf_reset(&b);
    eb_jsonpath_write_text(&b, v->u.object.values[0]);
    eb_buf_append(&b, "", 1);
    is_str((char *) b.data, "x\"y", "write_text: a string is raw");

    eb_buf_reset(&b);
    eb_jsonpath_write_text(&b, v->u.object.values[1]);
    eb_buf_append(&b, "", 1);
    is_str((char *) b.data, "-1.50", "write_text: a number keeps its text");

    /* eb_jsonpath_text: missing, null, "null" */

#define TEXT(expr, want_rc, want, name)                                       \
    do {                                                                      \
        p = eb_jsonpath_compile(S(expr), NULL, 0);                            \
        eb_buf_reset(&b);                                                     \
        eb_buf_append(&b, "<", 1);                                            \
        rc = eb_jsonpath_text(p, v, &b);                                      \
        eb_buf_append(&b, "", 1);                                             \
        is_int(rc, want_rc, name " (rc)");                                    \
        is_str((char *) b.data, "<" want, name);                              \
        eb_jsonpath_free(p);                                                  \
    } while (0)

    TEXT("$.s", EB_JSONPATH_FOUND, "x\"y", "text of a string");
    TEXT("$.e", EB_JSONPATH_FOUND, "", "text of the empty string");
    TEXT("$.n", EB_JSONPATH_FOUND, "-1.50", "text of a number");
    TEXT("$.o", EB_JSONPATH_FOUND, "{\"a\":[true,null,{}],\"b\":[]}",
         "text of an object");
    TEXT("$.o.a[0]", EB_JSONPATH_FOUND, "true", "text of true");
    TEXT("$.z", EB_JSONPATH_NULL, "null", "text of null");
    TEXT("$.sn", EB_JSONPATH_FOUND, "null", "text of the string \"null\"");
    TEXT("$.missing", EB_JSONPATH_MISSING, "",
         "a missing value appends nothing");
    TEXT("$.o.a[*]", EB_JSONPATH_FOUND, "[true,null,{}]",
         "a wildcard gives an array");
    TEXT("$.o.b[*]", EB_JSONPATH_FOUND, "[]",
         "a wildcard with no match gives []");
    TEXT("$['s','n']", EB_JSONPATH_FOUND, "[\"x\\\"y\",-1.50]",
         "a union gives an array, strings quoted");

    yajl_tree_free(v);
    eb_buf_free(&b);
}


/* Nesting deeper than yajl_gen's limit (128) is written fine. */
static void
test_deep(void)
{
    size_t          depth;
    char           *text;
    eb_buf_t        b;
    yajl_val        v;
    eb_jsonpath_t  *p;

    depth = 1000;
    text = malloc(2 * depth + 2);
    memset(text, '[', depth);
    text[depth] = '7';
    memset(text + depth + 1, ']', depth);
    text[2 * depth + 1] = '\0';

    v = parse(text);

    eb_buf_init(&b);
    ok(eb_jsonpath_write_json(&b, v) == 0 && b.len == 2 * depth + 1
       && memcmp(b.data, text, b.len) == 0, "write_json of 1000 levels");

    p = eb_jsonpath_compile(S("$..[0]"), NULL, 0);
    is_int(eb_jsonpath_eval(p, v, NULL, 0), depth, "$..[0] over 1000 levels");
    eb_jsonpath_free(p);

    yajl_tree_free(v);
    eb_buf_free(&b);
    free(text);
}


/* The seed's DingTalk event: its body is t/data/dingtalk_user_add_org.json */
static void
test_dingtalk(void)
{
    yajl_val  v;

    v = parse("{\"specversion\":\"1.0\",\"source\":\"my.dingtalk\","
              "\"data\":{\"headers\":{\"content-type\":\"application/json\"},"
              "\"path\":\"/webhook/putEvents\",\"body\":{"
              "\"syncAction\":\"user_add_org\",\"active\":true,"
              "\"userId\":\"1411****46379\","
              "\"name\":\"\xe5\xb0\x8f\xe6\x98\x8e\","
              "\"department\":[1]}}}");

    is_str(matches("$.data.body.name", v), "[\"\xe5\xb0\x8f\xe6\x98\x8e\"]",
           "dingtalk: $.data.body.name");
    is_str(matches("$.data.body.department[0]", v), "[1]",
           "dingtalk: $.data.body.department[0]");
    is_str(matches("$.data.headers.content-type", v),
           "[\"application/json\"]", "dingtalk: a header");
    is_str(matches("$.data.body['userId','name']", v),
           "[\"1411****46379\",\"\xe5\xb0\x8f\xe6\x98\x8e\"]",
           "dingtalk: two fields");

    yajl_tree_free(v);
}


/* empty text with no buffer behind it (UBSan: no arithmetic on NULL) */
static void
test_empty(void)
{
    eb_buf_t  b;

    eb_buf_init(&b);
    ok(eb_jsonpath_write_escaped(&b, NULL, 0) == 0 && b.len == 0,
       "escaping nothing");
    eb_buf_free(&b);
}


int
main(void)
{
    yajl_val  doc;

    doc = parse(doc_text);
    ok(doc != NULL, "the fixture parses");

    if (doc == NULL) {
        return tap_done();
    }

    test_names(doc);
    test_numbers(doc);
    test_indexes(doc);
    test_wildcards(doc);
    test_descendants(doc);
    test_unions(doc);
    test_root(doc);
    test_definite();
    test_api(doc);
    test_errors();
    test_text();
    test_deep();
    test_dingtalk();
    test_empty();

    yajl_tree_free(doc);

    return tap_done();
}
