#include "tap.h"
#include "eb_json.h"

static const char *
minify(const char *in)
{
    static unsigned char  buf[1024];
    size_t                n;

    n = strlen(in);
    memcpy(buf, in, n);
    n = eb_json_minify(buf, n);
    buf[n] = '\0';

    return (const char *) buf;
}

/* eb_json_validate_minify() answers as eb_json_validate() and, on
 * success, leaves what eb_json_minify() does, into a copy and in place */
static void
same(const char *in, const char *name)
{
    char           e1[256], e2[256], e3[256];
    size_t         n, n2, n3;
    eb_json_rc_t   rc1, rc2, rc3;
    unsigned char  a[1024], b[1024], c[1024];

    n = strlen(in);
    memcpy(a, in, n);
    memcpy(c, in, n);

    rc1 = eb_json_validate(a, n, 8, NULL, e1, sizeof(e1));
    rc2 = eb_json_validate_minify(a, n, 8, NULL, b, &n2, e2, sizeof(e2));
    rc3 = eb_json_validate_minify(c, n, 8, NULL, c, &n3, e3, sizeof(e3));

    ok(rc1 == rc2 && rc1 == rc3, "%s: same answer (%d %d %d)", name,
       (int) rc1, (int) rc2, (int) rc3);
    is_str(e2, e1, "%s: same message", name);
    is_str(e3, e1, "%s: same message in place", name);
    ok(memcmp(a, in, n) == 0, "%s: input untouched", name);

    if (rc1 == EB_JSON_OK) {
        n = eb_json_minify(a, n);
        ok(n2 == n && memcmp(a, b, n) == 0, "%s: compacted as minify", name);
        ok(n3 == n && memcmp(a, c, n) == 0, "%s: in place as minify", name);
    }
}

int
main(void)
{
    same(" { \"a\" : [ 1 , 2.5e3 , true , null ] ,\n\"b\" : \"x y\" } ",
         "object with spaces");
    same("{\"s\": \"\\\" \\\\ \\u00e9 \\ud83d\\ude00\"}", "escapes");
    same("{\"name\": \"\xe5\xb0\x8f \xf0\x9f\x98\x80\"}", "UTF-8");
    same("[\"\xed\xa0\x80\"]", "UTF-8 surrogate");
    same("[\"\xc0\xaf\", \"\\ud800\"]", "overlong before a lone surrogate");
    same("[\"\\ud800\", \"\xc0\xaf\"]", "lone surrogate before overlong");
    same("[\"\xf4\x90\x80\x80\"]", "past U+10FFFF");
    same("[\"\\udc00\"]", "lone low surrogate");
    same("[1]\v", "vertical tab");
    same("[1,\f2]", "form feed");
    same("{\"a\":1,\"b\":2,\"a\":3}", "duplicate key");
    same("{\"bb\":1,\"a\":1,\"bb\":2,\"a\":2}", "two duplicate keys");
    same("{\"z\":1,\"b\":1,\"c\":1,\"d\":1,\"e\":1,\"f\":1,\"g\":1,"
         "\"h\":1,\"i\":1,\"j\":1,\"k\":1,\"l\":1,\"m\":1,\"n\":1,"
         "\"o\":1,\"p\":1,\"q\":1,\"z\":1,\"b\":2}",
         "duplicate keys in a large object");
    same("{\"\":1,\"\":2}", "empty key twice");
    same("{\"a\\u0000\":1}", "U+0000 in a key");
    same("[[[[[[[[[[1]]]]]]]]]]", "too deep");
    same("{\"a\":", "cut short");
    same("[1,]", "syntax");
    same("", "empty");

    is_str(minify(""), "", "empty");
    is_str(minify("{ \"a\" : 1 }"), "{\"a\":1}", "spaces between tokens");
    is_str(minify("\n[\r\n\t1 ,\n 2 ]\n"), "[1,2]", "newlines, tabs, CR");
    is_str(minify("{\"k y\": \"a b\\t c\"}"), "{\"k y\":\"a b\\t c\"}",
           "whitespace inside strings kept");
    is_str(minify("[\"q\\\"  x\", \"\\\\\" , 1]"), "[\"q\\\"  x\",\"\\\\\",1]",
           "escaped quote and escaped backslash");
    is_str(minify("{ \"n\" : 3.0e2 , \"b\": 12345678901234567890 }"),
           "{\"n\":3.0e2,\"b\":12345678901234567890}",
           "numbers keep their exact text");
    is_str(minify("{\"name\": \"\xe5\xb0\x8f\xe6\x98\x8e\"}"),
           "{\"name\":\"\xe5\xb0\x8f\xe6\x98\x8e\"}", "UTF-8 untouched");
    is_str(minify("  true  "), "true", "scalar with surrounding space");

    return tap_done();
}
