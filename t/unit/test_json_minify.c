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

int
main(void)
{
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
