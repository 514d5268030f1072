/*
 * eb_json: validation (syntax, one value only, strict UTF-8, the nesting
 * bound, error messages, allocator hooks) and JSON content types.
 */

#include <stdlib.h>
#include <string.h>

#include "tap.h"
#include "eb_json.h"
#include "eb_json_string.h"
#include "eb_utf8.h"


#define DEPTH  32

#define S(s)   (const unsigned char *) (s), sizeof(s) - 1

/* validates a NUL-terminated document against a bound, discarding err */
#define V(doc, depth)                                                         \
    validate(doc, strlen(doc), depth, NULL, err, sizeof(err))


static const char *
rc_name(eb_json_rc_t rc)
{
    switch (rc) {
    case EB_JSON_OK:
        return "OK";
    case EB_JSON_SYNTAX:
        return "SYNTAX";
    case EB_JSON_TOO_DEEP:
        return "TOO_DEEP";
    case EB_JSON_NOMEM:
        return "NOMEM";
    }

    return "?";
}


/* Validates a copy of p[0..len) in a buffer of exactly len bytes, so that
 * ASan sees any read past the end. */
static eb_json_rc_t
validate(const char *p, size_t len, unsigned depth, yajl_alloc_funcs *afs,
    char *err, size_t errlen)
{
    unsigned char  *copy;
    eb_json_rc_t    rc;

    copy = malloc(len ? len : 1);
    if (copy == NULL) {
        return EB_JSON_NOMEM;
    }

    memcpy(copy, p, len);
    rc = eb_json_validate(copy, len, depth, afs, err, errlen);
    free(copy);

    return rc;
}


/* A one-line, printable copy of s for test names: control and non-ASCII
 * bytes as \xNN; long texts cut short. */
static const char *
printable(const char *s)
{
    static char  buf[80];
    size_t       n;

    for (n = 0; *s && n < sizeof(buf) - 8; s++) {
        if ((unsigned char) *s < 0x20 || (unsigned char) *s >= 0x7f) {
            n += (size_t) sprintf(buf + n, "\\x%02x", (unsigned char) *s);

        } else {
            buf[n++] = *s;
        }
    }

    strcpy(buf + n, *s ? "..." : "");

    return buf;
}


/* counting allocator for the yajl_alloc_funcs hook */

typedef struct {
    int  mallocs;
    int  reallocs;
    int  frees;
    int  live;
} count_alloc_t;


static void *
count_malloc(void *ctx, size_t size)
{
    count_alloc_t  *c = ctx;

    c->mallocs++;
    c->live++;
    return malloc(size);
}


static void *
count_realloc(void *ctx, void *p, size_t size)
{
    count_alloc_t  *c = ctx;

    c->reallocs++;

    if (p == NULL) {
        c->live++;
    }

    return realloc(p, size);
}


static void
count_free(void *ctx, void *p)
{
    count_alloc_t  *c = ctx;

    if (p) {
        c->frees++;
        c->live--;
    }

    free(p);
}


static void
test_valid(void)
{
    static const char  *docs[] = {
        "{}",
        "[]",
        "0",
        "-0",
        "42",
        "-17",
        "3.0e2",
        "1.5e-3",
        "1E+2",
        "-0.5E-3",
        "123456789012345678901234567890",
        "1e400",
        "\"\"",
        "\"plain\"",
        "\"\\\"\\\\\\/\\b\\f\\n\\r\\t\\u00e9\\u0000\"",
        "\"\\ud83d\\ude00\"",
        "true",
        "false",
        "null",
        " \t\r\n{ \"a\" : [ 1 , 2 ] }\n",
        "{\"a\":{\"b\":[1,{\"c\":null},[true,false]]},\"d\":\"e\"}",
        "[\"\xe5\xb0\x8f\xe6\x98\x8e\", \"\xf0\x9f\x98\x80\"]",
        "{\"\xe5\x90\x8d\":\"\xe5\xb0\x8f\xe6\x98\x8e\"}",
        "\"\xf4\x8f\xbf\xbf\"",
        "\"\xed\x9f\xbf\xee\x80\x80\xef\xbf\xbf\"",
        "\"\xc2\x80\xdf\xbf\xe0\xa0\x80\xf0\x90\x80\x80\"",
        "[[],{},[{}],{\"x\":[]}]",
        "{\"a\":{\"b\":1},\"b\":{\"a\":1},\"c\":[{\"a\":1},{\"a\":2}]}",
        "{\"\":1,\"a\":{\"\":2}}",
        "\"\\ud83d\\ude00 \\uD83D\\uDE00\"",
        "{\n  \"syncAction\": \"user_add_org\",\n  \"active\": true,\n"
        "  \"avatar\": \"\",\n  \"name\": \"\xe5\xb0\x8f\xe6\x98\x8e\",\n"
        "  \"department\": [\n    1\n  ]\n}\n",
    };

    char          err[256];
    eb_json_rc_t  rc;
    size_t        i;

    for (i = 0; i < sizeof(docs) / sizeof(docs[0]); i++) {
        strcpy(err, "junk");
        rc = validate(docs[i], strlen(docs[i]), DEPTH, NULL, err,
                      sizeof(err));

        ok(rc == EB_JSON_OK && err[0] == '\0', "valid: %s",
           printable(docs[i]));

        if (rc != EB_JSON_OK) {
            printf("#   got %s: %s\n", rc_name(rc), err);
        }
    }

    /* a NUL inside the text is just a bad byte, not the end */
    rc = validate("[1]\0", 4, DEPTH, NULL, err, sizeof(err));
    is_int(rc, EB_JSON_SYNTAX, "a NUL after the value is garbage");
}


typedef struct {
    const char  *doc;
    size_t       len;
    size_t       lo;         /* the message names a byte in [lo, hi] */
    size_t       hi;
    const char  *what;       /* and includes this text, if not NULL */
    const char  *name;
} syntax_case_t;

#define SYN(doc, lo, hi, what, name)                                          \
    { doc, sizeof(doc) - 1, lo, hi, what, name }


/* lo..hi span the offending token (yajl reports where it stopped, which
 * is just after it); an error found at the end of the input must name
 * the end of the input. */
static const syntax_case_t  syntax[] = {

    /* truncated */
    SYN("", 0, 0, "premature EOF", "empty input"),
    SYN(" \t\r\n", 4, 4, "premature EOF", "only whitespace"),
    SYN("{", 1, 1, "premature EOF", "lone '{'"),
    SYN("[1,", 3, 3, "premature EOF", "'[1,'"),
    SYN("[[[", 3, 3, "premature EOF", "'[[['"),
    SYN("{\"a\":", 5, 5, "premature EOF", "object without a value"),
    SYN("\"abc", 4, 4, "premature EOF", "unterminated string"),
    SYN("{\"key\": [1, 2", 13, 13, "premature EOF",
        "long truncated document"),

    /* bad tokens */
    SYN("[1,]", 3, 4, NULL, "trailing comma in array"),
    SYN("{\"a\":1,}", 7, 8, NULL, "trailing comma in object"),
    SYN("  [1,]  ", 5, 6, NULL, "trailing comma, whitespace around"),
    SYN("{\"a\" 1}", 5, 6, "colon", "missing colon"),
    SYN("[1 2]", 3, 4, NULL, "missing comma"),
    SYN("{a:1}", 1, 2, NULL, "unquoted key"),
    SYN("{1:1}", 1, 2, NULL, "number as key"),
    SYN("'a'", 0, 1, NULL, "single quotes"),
    SYN("NaN", 0, 1, NULL, "NaN"),
    SYN("+1", 0, 1, NULL, "leading '+'"),
    SYN(".5", 0, 1, NULL, "leading '.'"),
    SYN("-", 0, 1, NULL, "lone minus"),
    SYN("1.", 0, 2, NULL, "no digit after '.'"),
    SYN("nul", 0, 3, NULL, "truncated null"),
    SYN("tru", 0, 3, NULL, "truncated true"),
    SYN("/* c */ 1", 0, 2, "comment", "comment"),
    SYN("\"a\x01\"", 2, 3, NULL, "raw control character in a string"),
    SYN("\"a\nb\"", 2, 3, NULL, "raw newline in a string"),
    SYN("\"\\x\"", 1, 3, NULL, "bad escape"),
    SYN("\"\\u12\"", 1, 6, NULL, "short \\u escape"),
    SYN("[1,\0]", 3, 4, NULL, "NUL byte"),

    /* more than one value, or garbage after it */
    SYN("01", 1, 2, "trailing garbage", "leading zero"),
    SYN("1 2", 2, 3, "trailing garbage", "two numbers"),
    SYN("{} {}", 3, 4, "trailing garbage", "two objects"),
    SYN("[1][2]", 3, 4, "trailing garbage", "two arrays"),
    SYN("\"a\" \"b\"", 4, 7, "trailing garbage", "two strings"),
    SYN("true false", 5, 10, "trailing garbage", "two literals"),
    SYN("{} x", 3, 4, NULL, "object and garbage"),
    SYN("[1]]", 3, 4, "trailing garbage", "extra ']'"),
    SYN("{\"a\":1}}", 7, 8, "trailing garbage", "extra '}'"),
    SYN("{\"key\": [1, 2, 3]} 42", 19, 21, "trailing garbage",
        "object then a number"),
    SYN("null,", 4, 5, "trailing garbage", "trailing comma after a value"),
};


static void
test_syntax(void)
{
    char                  err[256];
    const syntax_case_t  *c;
    eb_json_rc_t          rc;
    size_t                i, at;
    int                   n, named;

    for (i = 0; i < sizeof(syntax) / sizeof(syntax[0]); i++) {
        c = &syntax[i];

        rc = validate(c->doc, c->len, DEPTH, NULL, err, sizeof(err));

        is_int(rc, EB_JSON_SYNTAX, "syntax: %s is rejected", c->name);

        n = 0;
        named = sscanf(err, "invalid JSON at byte %zu:%n", &at, &n) == 1
                && n > 0;

        ok(named && at >= c->lo && at <= c->hi,
           "syntax: %s: the message names byte %zu..%zu", c->name, c->lo,
           c->hi);

        if (!(named && at >= c->lo && at <= c->hi)) {
            printf("#   message: '%s'\n", err);
        }

        if (c->what) {
            ok(strstr(err, c->what) != NULL, "syntax: %s: message says '%s'",
               c->name, c->what);
        }

        ok(strchr(err, '\n') == NULL, "syntax: %s: one line", c->name);
    }
}


static void
test_utf8(void)
{
    static const struct {
        const char  *doc;
        const char  *name;
    } bad[] = {
        { "\"\xff\"", "0xFF byte" },
        { "\"\xfe\"", "0xFE byte" },
        { "\"\x80\"", "lone continuation byte" },
        { "\"ok\xe5\xb0\"", "truncated sequence" },
        { "\"\xe5\x28\x8f\"", "bad continuation byte" },
        { "[\"abc\xff\"]", "bad byte in an array" },
        { "\"\xc0\xaf\"", "overlong 2-byte" },
        { "\"\xc1\xbf\"", "overlong 2-byte (C1)" },
        { "\"\xe0\x80\xaf\"", "overlong 3-byte" },
        { "\"\xf0\x80\x80\xaf\"", "overlong 4-byte" },
        { "\"x\xed\xa0\x80\"", "surrogate U+D800" },
        { "\"\xed\xbf\xbf\"", "surrogate U+DFFF" },
        { "\"\xf4\x90\x80\x80\"", "above U+10FFFF (F4 90)" },
        { "\"\xf5\x80\x80\x80\"", "F5 lead byte" },
        { "{\"\xc0\xaf\":1}", "overlong in an object key" },
        { "{\"k\":\"\xed\xa0\x80\"}", "surrogate in an object value" },
    };

    char          err[256];
    eb_json_rc_t  rc;
    size_t        i;

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        rc = validate(bad[i].doc, strlen(bad[i].doc), DEPTH, NULL, err,
                      sizeof(err));

        is_int(rc, EB_JSON_SYNTAX, "utf-8: %s, %s, is rejected",
               bad[i].name, printable(bad[i].doc));

        if (rc != EB_JSON_SYNTAX) {
            printf("#   got %s '%s'\n", rc_name(rc), err);
        }
    }

    /* invalid UTF-8 outside strings is a plain syntax error */
    rc = validate("[\xc3\xa9]", 4, DEPTH, NULL, err, sizeof(err));
    is_int(rc, EB_JSON_SYNTAX, "utf-8: a letter outside a string");
}


/* Writes a document nested exactly depth deep, alternating arrays and
 * objects: [{"k":[{"k":1}]}] for 4. */
static size_t
nest(char *buf, unsigned depth, int object_first)
{
    unsigned  i;
    size_t    n;
    int       obj;

    n = 0;

    for (i = 0; i < depth; i++) {
        obj = (i % 2 == 0) == (object_first != 0);

        if (obj) {
            memcpy(buf + n, "{\"k\":", 5);
            n += 5;

        } else {
            buf[n++] = '[';
        }
    }

    buf[n++] = '1';

    for (i = depth; i-- > 0; ) {
        obj = (i % 2 == 0) == (object_first != 0);
        buf[n++] = obj ? '}' : ']';
    }

    return n;
}


static void
test_depth(void)
{
    static const unsigned  limits[] = { 1, 2, 3, 16, 32, 64, 512, 10000 };

    char          err[256], want[64], *buf;
    eb_json_rc_t  rc;
    size_t        i, n;
    unsigned      lim;
    int           first;

    buf = malloc(6 * 10001 + 16);
    if (buf == NULL) {
        ok(0, "malloc");
        return;
    }

    for (i = 0; i < sizeof(limits) / sizeof(limits[0]); i++) {
        lim = limits[i];

        for (first = 0; first < 2; first++) {
            n = nest(buf, lim, first);
            rc = validate(buf, n, lim, NULL, err, sizeof(err));
            ok(rc == EB_JSON_OK, "depth: %u levels (%s first) pass a bound "
               "of %u", lim, first ? "object" : "array", lim);

            if (rc != EB_JSON_OK) {
                printf("#   got %s '%s'\n", rc_name(rc), err);
            }

            n = nest(buf, lim + 1, first);
            rc = validate(buf, n, lim, NULL, err, sizeof(err));
            is_int(rc, EB_JSON_TOO_DEEP, "depth: %u levels (%s first) fail "
                   "a bound of %u", lim + 1, first ? "object" : "array",
                   lim);

            snprintf(want, sizeof(want), "JSON nested deeper than %u levels",
                     lim);
            is_str(err, want, "depth: the message names the bound");
        }
    }

    free(buf);

    /* scalars need no depth at all */
    is_int(V("1", 0), EB_JSON_OK, "depth 0: a scalar passes");
    is_int(V("\"s\"", 0), EB_JSON_OK, "depth 0: a string passes");
    is_int(V("{}", 0), EB_JSON_TOO_DEEP, "depth 0: an empty object fails");
    is_int(V("[]", 0), EB_JSON_TOO_DEEP, "depth 0: an empty array fails");

    /* empty containers count */
    is_int(V("[[]]", 2), EB_JSON_OK, "depth: [[]] passes 2");
    is_int(V("[[]]", 1), EB_JSON_TOO_DEEP, "depth: [[]] fails 1");
    is_int(V("{\"a\":{}}", 1), EB_JSON_TOO_DEEP,
           "depth: {\"a\":{}} fails 1");

    /* closing a container gives its level back: siblings do not add up */
    is_int(V("[[1],[2],{\"a\":3},[]]", 2), EB_JSON_OK,
           "depth: siblings at level 2 pass 2");
    is_int(V("[[1],[2],{\"a\":[3]},[]]", 2), EB_JSON_TOO_DEEP,
           "depth: one deeper sibling fails 2");

    buf = malloc(16 * 1000 + 16);
    if (buf == NULL) {
        ok(0, "malloc");
        return;
    }

    n = 0;
    buf[n++] = '[';

    for (i = 0; i < 1000; i++) {
        memcpy(buf + n, i % 2 ? "{}," : "[],", 3);
        n += 3;
    }

    buf[n - 1] = ']';
    is_int(validate(buf, n, 2, NULL, err, sizeof(err)), EB_JSON_OK,
           "depth: 1000 empty siblings pass 2");

    n = 0;
    buf[n++] = '{';

    for (i = 0; i < 1000; i++) {
        n += (size_t) sprintf(buf + n, "\"%zu\":{},", i);
    }

    buf[n - 1] = '}';
    is_int(validate(buf, n, 2, NULL, err, sizeof(err)), EB_JSON_OK,
           "depth: 1000 empty member objects pass 2");

    free(buf);

    /* the bound wins over a later syntax error */
    is_int(V("[[[", 2), EB_JSON_TOO_DEEP,
           "depth: too deep before it is truncated");
    is_int(V("[[[1]]] x", 2), EB_JSON_TOO_DEEP,
           "depth: too deep before the garbage");
}


static void
test_err_buffer(void)
{
    char          err[64];
    eb_json_rc_t  rc;

    memset(err, 'X', sizeof(err));
    rc = eb_json_validate(S("[1,]"), DEPTH, NULL, err, 8);
    is_int(rc, EB_JSON_SYNTAX, "small err buffer: still SYNTAX");
    is_str(err, "invalid", "small err buffer: truncated, NUL-terminated");
    ok(err[8] == 'X', "small err buffer: nothing written past it");

    memset(err, 'X', sizeof(err));
    rc = eb_json_validate(S("[[1]]"), 1, NULL, err, 5);
    is_int(rc, EB_JSON_TOO_DEEP, "small err buffer: still TOO_DEEP");
    is_str(err, "JSON", "small err buffer: deep message truncated");
    ok(err[5] == 'X', "small err buffer: nothing written past it");

    memset(err, 'X', sizeof(err));
    rc = eb_json_validate(S("{}"), DEPTH, NULL, err, 1);
    is_int(rc, EB_JSON_OK, "success clears err");
    ok(err[0] == '\0' && err[1] == 'X', "success writes only the NUL");
}


static void
test_alloc(void)
{
    yajl_alloc_funcs  afs;
    count_alloc_t     c;
    char              err[256], deep[64];
    eb_json_rc_t      rc;
    size_t            n;

    afs.malloc = count_malloc;
    afs.realloc = count_realloc;
    afs.free = count_free;
    afs.ctx = &c;

    memset(&c, 0, sizeof(c));
    rc = validate("{\"a\":[1,2,{\"b\":\"c\"}]}", 21, DEPTH, &afs, err,
                  sizeof(err));
    is_int(rc, EB_JSON_OK, "alloc hooks: valid document");
    ok(c.mallocs > 0, "alloc hooks: are used (%d mallocs)", c.mallocs);
    is_int(c.live, 0, "alloc hooks: everything freed after success");

    memset(&c, 0, sizeof(c));
    rc = validate("[1,]", 4, DEPTH, &afs, err, sizeof(err));
    is_int(rc, EB_JSON_SYNTAX, "alloc hooks: syntax error");
    is_int(c.live, 0, "alloc hooks: everything freed after a syntax error");

    memset(&c, 0, sizeof(c));
    rc = validate("[1,", 3, DEPTH, &afs, err, sizeof(err));
    is_int(rc, EB_JSON_SYNTAX, "alloc hooks: premature EOF");
    is_int(c.live, 0, "alloc hooks: everything freed after EOF error");

    memset(&c, 0, sizeof(c));
    n = nest(deep, 8, 0);
    rc = validate(deep, n, 4, &afs, err, sizeof(err));
    is_int(rc, EB_JSON_TOO_DEEP, "alloc hooks: too deep");
    is_int(c.live, 0, "alloc hooks: everything freed after too deep");

    /*
     * EB_JSON_NOMEM cannot be tested: yajl 2.1's yajl_alloc() writes to
     * the handle its malloc hook returned without checking it for NULL,
     * so a failing allocator crashes inside yajl before eb_json_validate()
     * can see the failure.
     */
}


typedef struct {
    const char  *ct;
    int          want;
} ct_case_t;


static const ct_case_t  cts[] = {
    { "application/json", 1 },
    { "APPLICATION/JSON", 1 },
    { "Application/Json", 1 },
    { "application/json; charset=utf-8", 1 },
    { "APPLICATION/JSON; charset=utf-8", 1 },
    { "application/json;charset=UTF-8", 1 },
    { "application/json ; charset=utf-8", 1 },
    { "application/json\t;charset=utf-8", 1 },
    { "application/cloudevents+json", 1 },
    { "application/cloudevents+json; charset=utf-8", 1 },
    { "Application/CloudEvents+JSON", 1 },
    { "application/vnd.api+json", 1 },
    { "application/ld+json", 1 },
    { "text/json", 1 },
    { "a/json", 1 },

    { "text/plain", 0 },
    { "application/jsonx", 0 },
    { "application/json-patch", 0 },
    { "application/x-json", 0 },
    { "application/xjson", 0 },
    { "application/xml", 0 },
    { "application/x-www-form-urlencoded", 0 },
    { "json", 0 },
    { "+json", 0 },
    { "", 0 },
    { "/json", 0 },
    { "/+json", 0 },
    { "applicationjson", 0 },
    { "application/ json", 0 },
    { "text/plain; note=application/json", 0 },
    { "text/plain;json", 0 },
    { " application/json", 0 },
};


static void
test_content_type(void)
{
    size_t  i;

    for (i = 0; i < sizeof(cts) / sizeof(cts[0]); i++) {
        is_int(eb_json_content_type((const unsigned char *) cts[i].ct,
                                    strlen(cts[i].ct)),
               cts[i].want, "content type '%s' is %sJSON", cts[i].ct,
               cts[i].want ? "" : "not ");
    }

    /* len bounds the value */
    is_int(eb_json_content_type(S("application/json") - 1), 0,
           "content type: 'application/jso' (by length) is not JSON");
    is_int(eb_json_content_type((const unsigned char *) "text/jsonx", 9), 1,
           "content type: 'text/json' (by length) is JSON");
}


/* What yajl lets through and every reader must refuse alike (issue 9):
 * a string left open after the value, unpaired surrogate escapes, keys
 * twice in an object. */
static void
test_trust(void)
{
    static const struct {
        const char  *doc;
        const char  *err;
    } bad[] = {
        { "{\"a\":1}\"x", "invalid JSON at byte 9: a string left open "
          "after the value" },
        { "{\"a\":1} \"x\\\"", NULL },
        { "[1]\"", NULL },
        { "{\"a\":\"\\udc00\"}", "invalid JSON at byte 6: a lone low "
          "surrogate" },
        { "{\"a\":\"\\ud800\"}", "invalid JSON at byte 6: a high "
          "surrogate without a low surrogate" },
        { "[\"\\ud800\\u0041\"]", NULL },
        { "[\"\\ud800\\ud800\"]", NULL },
        { "[\"\\uDBFF\"]", NULL },
        { "{\"\\udc00\":1}", NULL },
        { "{\"amount\":5,\"amount\":5000}", "invalid JSON at byte 20: "
          "duplicate key \"amount\"" },
        { "{\"a\":1,\"\\u0061\":2}", "invalid JSON at byte 15: duplicate "
          "key \"a\"" },
        { "{\"\":1,\"\":2}", NULL },
        { "{\"x\":[{\"a\":1,\"b\":2,\"a\":3}]}", NULL },
        { "{\"a\":{\"k\":1},\"b\":2,\"a\":3}", NULL },
        { "{\"a\\u0000\":1}", "invalid JSON at byte 10: \\u0000 in a key" },
        { "{\"\\u0001\\u0002\":1,\"\\u0001\\u0002\":1}", "invalid JSON at "
          "byte 32: duplicate key \"??\"" },
    };

    char          err[256];
    size_t        i, n;
    uint32_t      cp;
    const char   *why;
    eb_json_rc_t  rc;
    unsigned char buf[64], u[4];

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        rc = V(bad[i].doc, DEPTH);
        is_int(rc, EB_JSON_SYNTAX, "refused: %s", printable(bad[i].doc));

        if (bad[i].err) {
            is_str(err, bad[i].err, "message: %s", printable(bad[i].doc));
        }
    }

    /* a key longer than a message quotes is cut */
    rc = V("{\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\":1,"
           "\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\":2}",
           DEPTH);
    ok(rc == EB_JSON_SYNTAX && strstr(err, "...\"") != NULL,
       "a long duplicate key is cut in the message");

    /* the level the caller checks itself */
    rc = eb_json_validate_keys(S("{\"a\":1,\"a\":2}"), DEPTH, 1, NULL, err,
                               sizeof(err));
    is_int(rc, EB_JSON_OK, "keys of level 1 left to the caller");
    rc = eb_json_validate_keys(S("{\"a\":1,\"a\":2,\"d\":{\"b\":1,\"b\":2}}"),
                               DEPTH, 1, NULL, err, sizeof(err));
    is_int(rc, EB_JSON_SYNTAX, "keys below level 1 still checked");
    rc = eb_json_validate_keys(S("[{\"a\":1,\"a\":2}]"), DEPTH, 2, NULL,
                               err, sizeof(err));
    is_int(rc, EB_JSON_OK, "keys of level 2 left to the caller");
    rc = eb_json_validate_keys(S("{\"a\":{\"b\":1,\"b\":1}}"), DEPTH,
                               EB_JSON_DUP_ANY, NULL, err, sizeof(err));
    is_int(rc, EB_JSON_OK, "EB_JSON_DUP_ANY: no level checked");

    /* many keys: sorted, not compared pairwise */
    {
        char    *doc;
        size_t   len;

        doc = malloc(200000 * 12 + 16);
        len = 0;
        doc[len++] = '{';

        for (i = 0; i < 200000; i++) {
            len += (size_t) sprintf(doc + len, "%s\"k%zu\":1", i ? "," : "",
                                    (i * 7919) % 200000);
        }

        doc[len++] = '}';
        rc = validate(doc, len, DEPTH, NULL, err, sizeof(err));
        is_int(rc, EB_JSON_OK, "200,000 distinct keys");

        len = (size_t) sprintf(doc + len - 1, ",\"k77\":2}") + len - 1;
        rc = validate(doc, len, DEPTH, NULL, err, sizeof(err));
        is_int(rc, EB_JSON_SYNTAX, "200,000 keys and one twice");
        free(doc);
    }

    /* the shared escape decoder */
    n = eb_json_escape(S("\\ud83d\\ude00"), &cp, &why);
    ok(n == 12 && cp == 0x1f600, "escape: a surrogate pair");
    n = eb_json_escape(S("\\u00e9x"), &cp, &why);
    ok(n == 6 && cp == 0xe9, "escape: \\u00e9");
    n = eb_json_escape(S("\\n"), &cp, &why);
    ok(n == 2 && cp == '\n', "escape: \\n");
    n = eb_json_escape(S("\\udc00"), &cp, &why);
    ok(n == 0 && strcmp(why, "a lone low surrogate") == 0,
       "escape: a lone low surrogate");
    n = eb_json_escape(S("\\ud800\\u0041"), &cp, &why);
    ok(n == 0, "escape: a high surrogate before a non-surrogate");
    n = eb_json_escape(S("\\ud800\\ud800"), &cp, &why);
    ok(n == 0, "escape: two high surrogates");
    n = eb_json_escape(S("\\ud800\\ude0"), &cp, &why);
    ok(n == 0, "escape: a pair cut short");
    n = eb_json_escape(S("\\u12"), &cp, &why);
    ok(n == 0, "escape: \\u cut short");
    n = eb_json_escape(S("\\"), &cp, &why);
    ok(n == 0, "escape: a lone backslash");
    n = eb_json_escape(S("\\x"), &cp, &why);
    ok(n == 0, "escape: \\x");

    /* ebd's reading of text the edge did not check */
    strcpy((char *) buf, "[\"\\udc00\",\"\\ud800\\u0041\","
           "\"\\ud83d\\ude00\",\"\\\\udc00\"]");
    n = eb_json_surrogates_replace(buf, strlen((char *) buf));
    is_int(n, 2, "replace: two unpaired surrogates");
    is_str((char *) buf, "[\"\\ufffd\",\"\\ufffd\\u0041\",\"\\ud83d\\ude00\","
           "\"\\\\udc00\"]", "replace: \\ufffd, the rest as it was");
    rc = V((char *) buf, DEPTH);
    is_int(rc, EB_JSON_OK, "replace: the result is valid");

    ok(eb_utf8_encode(u, 0x41) == 1 && u[0] == 0x41, "encode: U+0041");
    ok(eb_utf8_encode(u, 0xe9) == 2 && u[0] == 0xc3 && u[1] == 0xa9,
       "encode: U+00E9");
    ok(eb_utf8_encode(u, 0xfffd) == 3 && u[0] == 0xef && u[2] == 0xbd,
       "encode: U+FFFD");
    ok(eb_utf8_encode(u, 0x10ffff) == 4 && u[0] == 0xf4 && u[3] == 0xbf,
       "encode: U+10FFFF");
}


int
main(void)
{
    test_valid();
    test_syntax();
    test_trust();
    test_utf8();
    test_depth();
    test_err_buffer();
    test_alloc();
    test_content_type();

    return tap_done();
}
