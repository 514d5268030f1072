/*
 * eb_cloudevent: CloudEvents 1.0 PutEvents intake. Structured, batched and
 * binary modes; the required attributes, names, the type system (String,
 * Integer, URI, URI-reference, Timestamp, media types, base64); data and
 * data_base64; the bus's attributes; limits; the answer; the distributed
 * tracing extension (W3C traceparent and tracestate).
 */

#include <stdlib.h>
#include <string.h>

#include "tap.h"
#include "eb_cloudevent.h"


#define S(s)    (const unsigned char *) (s), sizeof(s) - 1
#define U(s)    (const unsigned char *) (s), strlen(s)

#define SERVER                                                                \
    ",\"aliyunpublishtime\":\"2026-11-23T07:48:55.236Z\""                     \
    ",\"aliyuneventbusname\":\"demo\""                                        \
    ",\"aliyunregionid\":\"cn-hangzhou\""                                     \
    ",\"aliyunaccountid\":\"1234567890\""                                     \
    ",\"aliyunpublishaddr\":\"203.0.113.9\""

/* the required attributes, as JSON members and as their normalized form */
#define REQ     "\"specversion\":\"1.0\",\"id\":\"1\",\"source\":\"/s\","     \
                "\"type\":\"t\""

#define PREFIX  "PREFIX"


static eb_ce_ctx_t  ctx;

/* what the last run produced */
static eb_ce_rc_t   got_rc;
static char        *got_event;
static char        *got_id;
static const char  *got_code;
static char         got_msg[EB_CE_MESSAGE_MAX];
static int          got_restored;   /* out back to PREFIX after a failure */


static void
ctx_init(void)
{
    memset(&ctx, 0, sizeof(ctx));

    ctx.bus.data = (const unsigned char *) "demo";
    ctx.bus.len = 4;
    ctx.region.data = (const unsigned char *) "cn-hangzhou";
    ctx.region.len = 11;
    ctx.account.data = (const unsigned char *) "1234567890";
    ctx.account.len = 10;
    ctx.publish_time.data = (const unsigned char *) "2026-11-23T07:48:55.236Z";
    ctx.publish_time.len = 24;
    ctx.publish_addr.data = (const unsigned char *) "203.0.113.9";
    ctx.publish_addr.len = 11;
    ctx.max_depth = 64;
}


static char *
strndup_bytes(const unsigned char *p, size_t len)
{
    char  *s;

    s = malloc(len + 1);
    if (s == NULL) {
        abort();
    }

    if (len) {
        memcpy(s, p, len);
    }

    s[len] = '\0';

    return s;
}


/* an exact-size copy, so that ASan sees any read past the end */
static unsigned char *
copy_of(const char *p, size_t len)
{
    unsigned char  *c;

    c = malloc(len ? len : 1);
    if (c == NULL) {
        abort();
    }

    memcpy(c, p, len);

    return c;
}


/* A one-line, printable copy of s for test names: control and non-ASCII
 * bytes as \\xNN. */
static const char *
printable(const char *s)
{
    static char  buf[4][128];
    static int   k;
    char        *b;
    size_t       n;

    b = buf[k++ % 4];

    for (n = 0; *s && n < sizeof(buf[0]) - 8; s++) {
        if ((unsigned char) *s < 0x20 || (unsigned char) *s >= 0x7f) {
            n += (size_t) sprintf(b + n, "\\x%02x", (unsigned char) *s);

        } else {
            b[n++] = *s;
        }
    }

    b[n] = '\0';

    return b;
}


static void
got_reset(void)
{
    free(got_event);
    free(got_id);
    got_event = NULL;
    got_id = NULL;
    got_code = NULL;
    got_msg[0] = '\0';
    got_restored = 0;
}


static void
got_entry(eb_ce_rc_t rc, const eb_ce_entry_t *e, const eb_buf_t *out)
{
    got_rc = rc;
    got_code = e->error.code ? e->error.code : "";
    strcpy(got_msg, e->error.message);

    if (rc == EB_CE_OK) {
        got_event = strndup_bytes(e->event.data, e->event.len);
        got_id = strndup_bytes(e->id.data, e->id.len);

        /* appended after what out held */
        got_restored = (e->event.data == out->data + sizeof(PREFIX) - 1
                        && memcmp(out->data, PREFIX, sizeof(PREFIX) - 1)
                           == 0);

    } else {
        got_restored = (out->len == sizeof(PREFIX) - 1
                        && memcmp(out->data, PREFIX, out->len) == 0);
    }
}


static eb_ce_rc_t
structured_n(const char *doc, size_t len)
{
    unsigned char  *copy;
    eb_buf_t        out;
    eb_ce_entry_t   e;
    eb_ce_rc_t      rc;

    got_reset();

    copy = copy_of(doc, len);
    eb_buf_init(&out);
    eb_buf_append_str(&out, PREFIX);

    rc = eb_ce_structured(&ctx, copy, len, &out, &e);
    got_entry(rc, &e, &out);

    eb_buf_free(&out);
    free(copy);

    return rc;
}


static eb_ce_rc_t
structured(const char *doc)
{
    return structured_n(doc, strlen(doc));
}


/* the normalized form of an event whose members after the required ones
 * are `tail` and whose data member (with its leading comma) is `data` */
static const char *
want(const char *tail, const char *data)
{
    static char  buf[4096];

    snprintf(buf, sizeof(buf), "{" REQ "%s" SERVER "%s}", tail, data);

    return buf;
}


#define is_ok(doc, expect, ...)                                               \
    do {                                                                      \
        structured(doc);                                                      \
        is_int(got_rc, EB_CE_OK, __VA_ARGS__);                                \
        if (got_rc != EB_CE_OK) {                                             \
            printf("#   %s: %s\n", got_code, got_msg);                        \
        }                                                                     \
        is_str(got_event, expect, __VA_ARGS__);                               \
    } while (0)

#define is_err(doc, code, msg, ...)                                           \
    do {                                                                      \
        structured(doc);                                                      \
        is_int(got_rc, EB_CE_INVALID, __VA_ARGS__);                           \
        is_str(got_code, code, __VA_ARGS__);                                  \
        if ((msg) != NULL) {                                                  \
            is_str(got_msg, (const char *) (msg), __VA_ARGS__);               \
        }                                                                     \
        ok(got_restored, __VA_ARGS__);                                        \
    } while (0)


static void
test_minimal(void)
{
    is_ok("{" REQ "}", want("", ""), "minimal event");
    is_str(got_id, "1", "minimal event: id");
    ok(got_restored, "minimal event: appended after what out held");

    is_ok(" \n{ \"specversion\" : \"1.0\" , \"id\" : \"1\" ,\t\"source\":"
          "\"/s\", \"type\" : \"t\" }\r\n", want("", ""),
          "whitespace around tokens");

    /* the order the sender chose is kept */
    is_ok("{\"type\":\"t\",\"source\":\"/s\",\"id\":\"1\","
          "\"specversion\":\"1.0\"}",
          "{\"type\":\"t\",\"source\":\"/s\",\"id\":\"1\","
          "\"specversion\":\"1.0\"" SERVER "}", "attribute order kept");

    is_ok("{\"specversion\":\"1.0\",\"type\":\"com.github.pull_request."
          "opened\",\"source\":\"https://github.com/cloudevents/spec/pull\","
          "\"subject\":\"123\",\"id\":\"A234-1234-1234\",\"time\":"
          "\"2018-04-05T17:31:00Z\",\"comexampleextension1\":\"value\","
          "\"comexampleothervalue\":5,\"datacontenttype\":\"text/xml\","
          "\"data\":\"<much wow=\\\"xml\\\"/>\"}",
          "{\"specversion\":\"1.0\",\"type\":\"com.github.pull_request."
          "opened\",\"source\":\"https://github.com/cloudevents/spec/pull\","
          "\"subject\":\"123\",\"id\":\"A234-1234-1234\",\"time\":"
          "\"2018-04-05T17:31:00Z\",\"comexampleextension1\":\"value\","
          "\"comexampleothervalue\":5,\"datacontenttype\":\"text/xml\""
          SERVER ",\"data\":\"<much wow=\\\"xml\\\"/>\"}",
          "the specification's example");
    is_str(got_id, "A234-1234-1234", "the specification's example: id");

    /* all optional attributes */
    is_ok("{" REQ ",\"datacontenttype\":\"application/json\",\"dataschema\":"
          "\"https://example.com/schema.json\",\"subject\":\"x\",\"time\":"
          "\"2018-04-05T17:31:00.123+08:00\"}",
          want(",\"datacontenttype\":\"application/json\",\"dataschema\":"
               "\"https://example.com/schema.json\",\"subject\":\"x\","
               "\"time\":\"2018-04-05T17:31:00.123+08:00\"", ""),
          "all optional attributes");
}


static void
test_required(void)
{
    static const char  *names[] = { "specversion", "id", "source", "type" };
    static const char  *members[] = {
        "\"specversion\":\"1.0\"", "\"id\":\"1\"", "\"source\":\"/s\"",
        "\"type\":\"t\""
    };

    size_t  i, k;
    char    doc[256], msg[128], tmp[256];

    for (i = 0; i < 4; i++) {

        /* missing */
        strcpy(doc, "{");
        for (k = 0; k < 4; k++) {
            if (k != i) {
                strcat(doc, doc[1] ? "," : "");
                strcat(doc, members[k]);
            }
        }
        strcat(doc, "}");

        snprintf(msg, sizeof(msg), "required attribute \"%s\" is missing",
                 names[i]);
        is_err(doc, "MissingAttribute", msg, "%s missing", names[i]);

        /* null is unset */
        snprintf(tmp, sizeof(tmp), "%.*s,\"%s\":null}",
                 (int) strlen(doc) - 1, doc, names[i]);
        is_err(tmp, "MissingAttribute", msg, "%s null", names[i]);

        /* empty, and of the wrong types */
#define VARIANT(value, code, text, what)                                      \
        snprintf(tmp, sizeof(tmp), "%.*s,\"%s\":%s}",                         \
                 (int) strlen(doc) - 1, doc, names[i], value);                \
        snprintf(msg, sizeof(msg), text, names[i]);                           \
        is_err(tmp, code, msg, "%s %s", names[i], what)

        if (i == 0) {
            VARIANT("\"\"", "InvalidSpecVersion",
                    "attribute \"%s\" is \"\"; only \"1.0\" is supported",
                    "empty");
        } else {
            VARIANT("\"\"", "InvalidAttributeValue",
                    "attribute \"%s\" is empty", "empty");
        }

        VARIANT("1", "InvalidAttributeValue",
                "attribute \"%s\" must be a string", "a number");
        VARIANT("true", "InvalidAttributeValue",
                "attribute \"%s\" must be a string", "a boolean");
        VARIANT("{\"a\":\"b\"}", "InvalidAttributeValue",
                "attribute \"%s\" is an object; attribute values are "
                "strings, integers or booleans", "an object");
        VARIANT("[\"a\"]", "InvalidAttributeValue",
                "attribute \"%s\" is an array; attribute values are "
                "strings, integers or booleans", "an array");
#undef VARIANT
    }

    is_err("{}", "MissingAttribute",
           "required attribute \"specversion\" is missing", "empty object");
}


static void
test_specversion(void)
{
    is_err("{\"specversion\":\"0.3\",\"id\":\"1\",\"source\":\"/s\","
           "\"type\":\"t\"}", "InvalidSpecVersion",
           "attribute \"specversion\" is \"0.3\"; only \"1.0\" is supported",
           "specversion 0.3");
    is_err("{\"specversion\":\"1.0 \",\"id\":\"1\",\"source\":\"/s\","
           "\"type\":\"t\"}", "InvalidSpecVersion",
           "attribute \"specversion\" is \"1.0 \"; only \"1.0\" is "
           "supported", "specversion '1.0 '");
    is_err("{\"specversion\":\"1\",\"id\":\"1\",\"source\":\"/s\","
           "\"type\":\"t\"}", "InvalidSpecVersion", NULL, "specversion 1");
    is_err("{\"specversion\":\"1.0.2\",\"id\":\"1\",\"source\":\"/s\","
           "\"type\":\"t\"}", "InvalidSpecVersion", NULL,
           "specversion 1.0.2");
    is_err("{\"specversion\":1.0,\"id\":\"1\",\"source\":\"/s\","
           "\"type\":\"t\"}", "InvalidAttributeValue",
           "attribute \"specversion\" must be a string",
           "specversion as a number");
    is_ok("{\"specversion\":\"\\u0031.0\",\"id\":\"1\",\"source\":\"/s\","
          "\"type\":\"t\"}", want("", ""), "specversion with an escape");
}


static void
test_names(void)
{
    is_ok("{" REQ ",\"abcdefghij0123456789\":\"x\"}",
          want(",\"abcdefghij0123456789\":\"x\"", ""),
          "a 20-character extension name");
    is_ok("{" REQ ",\"0\":\"x\"}", want(",\"0\":\"x\"", ""),
          "a digit as extension name");

    is_err("{" REQ ",\"abcdefghij0123456789x\":\"x\"}",
           "InvalidAttributeName", "attribute name "
           "\"abcdefghij0123456789x\" is longer than 20 characters",
           "a 21-character extension name");
    is_err("{" REQ ",\"myExt\":\"x\"}", "InvalidAttributeName",
           "attribute name \"myExt\" has a character other than a-z and 0-9",
           "upper case in an extension name");
    is_err("{" REQ ",\"my-ext\":\"x\"}", "InvalidAttributeName",
           "attribute name \"my-ext\" has a character other than a-z and 0-9",
           "a dash in an extension name");
    is_err("{" REQ ",\"my_ext\":\"x\"}", "InvalidAttributeName", NULL,
           "an underscore in an extension name");
    is_err("{" REQ ",\"caf\\u00e9\":\"x\"}", "InvalidAttributeName",
           "attribute name \"caf??\" has a character other than a-z and 0-9",
           "non-ASCII in an extension name");
    is_err("{" REQ ",\"\":\"x\"}", "InvalidAttributeName",
           "attribute name is empty", "an empty extension name");
    is_err("{" REQ ",\"ID\":\"x\"}", "InvalidAttributeName", NULL,
           "ID in upper case");
    is_err("{" REQ ",\"Data\":\"x\"}", "InvalidAttributeName", NULL,
           "Data in upper case");
    is_err("{" REQ ",\"a b\":null}", "InvalidAttributeName", NULL,
           "a bad name with a null value");
    is_err("{" REQ ",\"abcdefghijabcdefghijabcdefghijabcdefghijabcdefghij\":1}",
           "InvalidAttributeName",
           "attribute name \"abcdefghijabcdefghijabcdefghijabcdefghij...\" "
           "is longer than 20 characters", "a long name is cut in the message");

    /* an escaped name is its decoded text */
    is_ok("{\"specversion\":\"1.0\",\"\\u0069d\":\"1\",\"source\":\"/s\","
          "\"type\":\"t\"}", want("", ""), "an escaped attribute name");
}


static void
test_duplicates(void)
{
    is_err("{" REQ ",\"id\":\"2\"}", "DuplicateAttribute",
           "attribute \"id\" appears more than once", "id twice");
    is_err("{" REQ ",\"subject\":null,\"subject\":\"x\"}",
           "DuplicateAttribute", "attribute \"subject\" appears more than "
           "once", "subject null, then set");
    is_err("{" REQ ",\"ext\":1,\"other\":2,\"ext\":3}", "DuplicateAttribute",
           "attribute \"ext\" appears more than once", "an extension twice");
    is_err("{" REQ ",\"ext\":null,\"ext\":null}", "DuplicateAttribute", NULL,
           "an extension null twice");
    is_err("{" REQ ",\"data\":1,\"data\":2}", "DuplicateAttribute",
           "\"data\" appears more than once", "data twice");
    is_err("{" REQ ",\"data_base64\":\"\",\"data_base64\":\"\"}",
           "DuplicateAttribute", "\"data_base64\" appears more than once",
           "data_base64 twice");
    is_err("{" REQ ",\"aliyuneventbusname\":\"a\","
           "\"aliyuneventbusname\":\"b\"}", "DuplicateAttribute", NULL,
           "a bus attribute twice");
}


static void
test_time(void)
{
    static const char  *good[] = {
        "2018-04-05T17:31:00Z",
        "2018-04-05t17:31:00z",
        "2018-04-05T17:31:00.1Z",
        "2018-04-05T17:31:00.123456789+08:00",
        "2018-04-05T17:31:00-00:00",
        "2018-04-05T23:59:59+23:59",
        "2016-02-29T00:00:00Z",
        "2000-02-29T00:00:00Z",
        "2016-12-31T23:59:60Z",
        "0000-01-01T00:00:00Z",
        "9999-12-31T23:59:59Z",
    };

    static const char  *bad[] = {
        "",
        "2018-04-05",
        "2018-04-05T17:31:00",
        "2018-04-05 17:31:00Z",
        "2018-04-05T17:31Z",
        "2018-4-05T17:31:00Z",
        "18-04-05T17:31:00Z",
        "2018-13-05T17:31:00Z",
        "2018-00-05T17:31:00Z",
        "2018-04-00T17:31:00Z",
        "2018-04-31T17:31:00Z",
        "2018-02-29T17:31:00Z",
        "1900-02-29T17:31:00Z",
        "2018-04-05T24:00:00Z",
        "2018-04-05T17:60:00Z",
        "2018-04-05T17:31:61Z",
        "2018-04-05T17:31:00.Z",
        "2018-04-05T17:31:00,5Z",
        "2018-04-05T17:31:00+0800",
        "2018-04-05T17:31:00+08",
        "2018-04-05T17:31:00+24:00",
        "2018-04-05T17:31:00+08:60",
        "2018-04-05T17:31:00Zjunk",
        "2018-04-05T17:31:00 Z",
        " 2018-04-05T17:31:00Z",
        "2018-04-05T17:31:00ZZ",
        "2018-04-05T17:31:00.123+08:00 ",
        "2018-04-05T1a:31:00Z",
    };

    size_t  i;
    char    doc[256];

    for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        ok(eb_ce_timestamp_valid(U(good[i])), "timestamp '%s'", good[i]);
    }

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ok(!eb_ce_timestamp_valid(U(bad[i])), "not a timestamp: '%s'",
           bad[i]);
    }

    /* len bounds the value */
    ok(!eb_ce_timestamp_valid(S("2018-04-05T17:31:00Z") - 1),
       "timestamp cut by length");

    snprintf(doc, sizeof(doc), "{" REQ ",\"time\":\"%s\"}", good[3]);
    is_ok(doc, want(",\"time\":\"2018-04-05T17:31:00.123456789+08:00\"", ""),
          "event with a valid time");

    is_err("{" REQ ",\"time\":\"2018-04-05 17:31:00\"}",
           "InvalidAttributeValue",
           "attribute \"time\" is not an RFC 3339 timestamp",
           "event with an invalid time");
    is_err("{" REQ ",\"time\":\"\"}", "InvalidAttributeValue",
           "attribute \"time\" is empty", "event with an empty time");
    is_err("{" REQ ",\"time\":1522949460}", "InvalidAttributeValue",
           "attribute \"time\" must be a string", "event with a numeric time");
}


static void
test_uri(void)
{
    static const char  *refs[] = {
        "https://github.com/cloudevents",
        "mailto:cncf-wg-serverless@lists.cncf.io",
        "urn:uuid:6e8bc430-9c3a-11d9-9669-0800200c9a66",
        "/cloudevents/spec/pull/123",
        "/sensors/tn-1234567/alerts",
        "1-555-123-4567",
        "my.dingtalk",
        "acs.oss",
        "http://[::1]:8080/x?q=1#f",
        "http://[2001:db8::7]/c=GB?objectClass?one",
        "http://[v1.fe:x]/",
        "http://user:pw@host:80/p",
        "http://host:/p",
        "//host/p",
        "a/b:c",
        "?q=a/b?c",
        "#frag/x?y",
        "http://h/%E2%82%AC",
        "file:///etc/hosts",
        "ldap://192.0.2.1/x",
        "x+y.z-w:rest",
        "",
        "/!$&'()*+,;=:@~",
    };

    static const char  *bad_refs[] = {
        "a b",
        "/path with space",
        "ht tp://x",
        "http://h/%GG",
        "http://h/%4",
        "http://h/%",
        "1-555:123",
        ":a",
        "http://[::1/x",
        "http://[::1]x/",
        "http://h:80a/",
        "http://[zz::1]/",
        "http://[1.2.3.4]/",
        "http://[v.x]/",
        "a#b#c",
        "caf\xc3\xa9",
        "http://h/<x>",
        "x\"y",
        "a[b]",
        "http://u@s@h/",
        "http://h/a\\b",
        "a^b",
        "a|b",
        "a`b",
        "{a}",
    };

    static const char  *uris[] = {
        "https://example.com/schema.json",
        "urn:x",
        "https://example.com/s#/defs/a",
        "a:",
    };

    static const char  *bad_uris[] = {
        "",
        "/relative",
        "example.com/schema",
        "//host/p",
        "1a:b",
        "https://exa mple.com",
    };

    size_t  i;

    for (i = 0; i < sizeof(refs) / sizeof(refs[0]); i++) {
        ok(eb_ce_uri_reference_valid(U(refs[i])), "URI-reference '%s'",
           refs[i]);
    }

    for (i = 0; i < sizeof(bad_refs) / sizeof(bad_refs[0]); i++) {
        ok(!eb_ce_uri_reference_valid(U(bad_refs[i])),
           "not a URI-reference: '%s'", printable(bad_refs[i]));
    }

    for (i = 0; i < sizeof(uris) / sizeof(uris[0]); i++) {
        ok(eb_ce_uri_valid(U(uris[i])), "URI '%s'", uris[i]);
    }

    for (i = 0; i < sizeof(bad_uris) / sizeof(bad_uris[0]); i++) {
        ok(!eb_ce_uri_valid(U(bad_uris[i])), "not a URI: '%s'", bad_uris[i]);
    }

    is_ok("{\"specversion\":\"1.0\",\"id\":\"1\",\"source\":"
          "\"urn:uuid:6e8bc430-9c3a-11d9-9669-0800200c9a66\",\"type\":\"t\"}",
          "{\"specversion\":\"1.0\",\"id\":\"1\",\"source\":"
          "\"urn:uuid:6e8bc430-9c3a-11d9-9669-0800200c9a66\",\"type\":\"t\""
          SERVER "}", "source: a URN");
    is_err("{\"specversion\":\"1.0\",\"id\":\"1\",\"source\":\"my source\","
           "\"type\":\"t\"}", "InvalidAttributeValue",
           "attribute \"source\" is not a URI-reference (RFC 3986)",
           "source with a space");
    is_err("{" REQ ",\"dataschema\":\"/schema.json\"}",
           "InvalidAttributeValue",
           "attribute \"dataschema\" is not an absolute URI (RFC 3986)",
           "relative dataschema");
    is_err("{" REQ ",\"dataschema\":\"\"}", "InvalidAttributeValue",
           "attribute \"dataschema\" is empty", "empty dataschema");
    is_ok("{" REQ ",\"dataschema\":\"https:\\/\\/example.com\\/s\"}",
          want(",\"dataschema\":\"https://example.com/s\"", ""),
          "dataschema with escaped solidus");
}


static void
test_media_types(void)
{
    static const char  *good[] = {
        "application/json",
        "text/plain; charset=utf-8",
        "text/plain;charset=\"utf-8\"",
        "application/vnd.apache.thrift.binary",
        "application/cloudevents+json; charset=UTF-8",
        "multipart/form-data; boundary=\"a b;c\\\"d\"",
        "text/plain;",
        "text/plain ; a=b ;c=d",
        "text/plain;;a=b",
        "Application/JSON",
        "x-{a}/y'z",
    };

    static const char  *bad[] = {
        "",
        "json",
        "application/",
        "/json",
        "text/plain charset=utf-8",
        "text/plain; charset",
        "text/plain; charset=",
        "text/plain; =x",
        "text/pl ain",
        " text/plain",
        "text/plain ",
        "text/plain; a=b ",
        "text/plain; a=\"x",
        "text/plain; a=b c",
        "text/pl@in",
        "text/plain/x",
        "text/plain; a = b",
        "text/plain; a=\"caf\xc3\xa9\"",
        "text/plain; a=\"x\\",
    };

    size_t  i;

    for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        ok(eb_ce_media_type_valid(U(good[i])), "media type '%s'", good[i]);
    }

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ok(!eb_ce_media_type_valid(U(bad[i])), "not a media type: '%s'",
           printable(bad[i]));
    }

    is_err("{" REQ ",\"datacontenttype\":\"json\"}", "InvalidAttributeValue",
           "attribute \"datacontenttype\" is not a media type (RFC 2046)",
           "datacontenttype 'json'");
}


static void
test_strings(void)
{
    static const struct {
        const char  *s;
        const char  *why;       /* NULL: valid */
        ssize_t      at;
    } cases[] = {
        { "", NULL, -1 },
        { "hello", NULL, -1 },
        { "caf\xc3\xa9", NULL, -1 },
        { "\xc2\xa0", NULL, -1 },                   /* U+00A0 */
        { "\xf0\x9f\x98\x80", NULL, -1 },           /* U+1F600 */
        { "\xef\xbf\xbd", NULL, -1 },               /* U+FFFD */
        { "a\x01", "a control character", 1 },
        { "\t", "a control character", 0 },
        { "a\x7f", "a control character", 1 },
        { "x\xc2\x80", "a control character", 1 },  /* U+0080 */
        { "\xc2\x9f", "a control character", 0 },   /* U+009F */
        { "\xef\xb7\x90", "a Unicode noncharacter", 0 },        /* U+FDD0 */
        { "\xef\xb7\xaf", "a Unicode noncharacter", 0 },        /* U+FDEF */
        { "ab\xef\xbf\xbe", "a Unicode noncharacter", 2 },      /* U+FFFE */
        { "\xef\xbf\xbf", "a Unicode noncharacter", 0 },        /* U+FFFF */
        { "\xf0\x9f\xbf\xbf", "a Unicode noncharacter", 0 },    /* U+1FFFF */
        { "\xf4\x8f\xbf\xbe", "a Unicode noncharacter", 0 },    /* U+10FFFE */
        { "\xed\xa0\x80", "invalid UTF-8", 0 },     /* a surrogate */
        { "a\xc0\xa0", "invalid UTF-8", 1 },        /* overlong */
        { "\xff", "invalid UTF-8", 0 },
    };

    size_t       i;
    ssize_t      at;
    const char  *why;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        why = NULL;
        at = eb_ce_string_invalid_at(U(cases[i].s), &why);

        is_int(at, cases[i].at, "String case %zu: offset", i);

        if (cases[i].why) {
            is_str(why, cases[i].why, "String case %zu: reason", i);
        }
    }

    is_err("{" REQ ",\"subject\":\"a\\u0001\"}", "InvalidAttributeValue",
           "attribute \"subject\" has a control character at byte 1",
           "subject with U+0001");
    is_err("{" REQ ",\"subject\":\"\\u0085\"}", "InvalidAttributeValue",
           "attribute \"subject\" has a control character at byte 0",
           "subject with U+0085");
    is_err("{" REQ ",\"ext\":\"a\\nb\"}", "InvalidAttributeValue",
           "attribute \"ext\" has a control character at byte 1",
           "extension with a newline");
    is_err("{" REQ ",\"ext\":\"\\uFFFE\"}", "InvalidAttributeValue",
           "attribute \"ext\" has a Unicode noncharacter at byte 0",
           "extension with U+FFFE");
    /* unpaired surrogate escapes are not JSON text the bus stores
     * (eb_json_string.h): refused as every reader of the tree does */
    is_err("{" REQ ",\"subject\":\"\\uDEAD\"}", "InvalidJSON",
           "event: invalid JSON at byte 66: a lone low surrogate",
           "a lone low surrogate escape");
    is_err("{" REQ ",\"subject\":\"\\uD800\"}", "InvalidJSON",
           "event: invalid JSON at byte 66: a high surrogate without a low "
           "surrogate", "a lone high surrogate escape");
    is_err("{" REQ ",\"subject\":\"\\uD800\\u0041\"}", "InvalidJSON",
           NULL, "a high surrogate escape before a non-surrogate");
    is_err("{" REQ ",\"subject\":\"\\uD800x\"}", "InvalidJSON",
           NULL, "a high surrogate escape before text");
    is_err("{" REQ ",\"data\":{\"a\":\"\\uDC00\"}}", "InvalidJSON", NULL,
           "a lone low surrogate escape in data");
    is_err("{" REQ ",\"data\":{\"a\":1}\"x", "InvalidJSON",
           NULL, "a string left open after the event");
    is_err("{" REQ ",\"data\":{\"amount\":5,\"amount\":5000}}",
           "InvalidJSON", NULL, "a key twice in data");

    is_ok("{" REQ ",\"subject\":\"\\uD83D\\uDE00 caf\\u00e9 \\\"q\\\" "
          "\\\\ \\/\"}",
          want(",\"subject\":\"\xf0\x9f\x98\x80 caf\xc3\xa9 \\\"q\\\" "
               "\\\\ /\"", ""),
          "string escapes are decoded, output escaped canonically");
    is_ok("{" REQ ",\"subject\":\"\xe5\xb0\x8f\xe6\x98\x8e\"}",
          want(",\"subject\":\"\xe5\xb0\x8f\xe6\x98\x8e\"", ""),
          "UTF-8 subject");

    is_ok("{\"specversion\":\"1.0\",\"id\":\"a\\\"b\\\\c\",\"source\":\"/s\","
          "\"type\":\"t\"}",
          "{\"specversion\":\"1.0\",\"id\":\"a\\\"b\\\\c\",\"source\":\"/s\","
          "\"type\":\"t\"" SERVER "}", "id with a quote and a backslash");
    is_str(got_id, "a\\\"b\\\\c", "the id is given in its escaped form");

    is_ok("{" REQ ",\"ext\":\"\"}", want(",\"ext\":\"\"", ""),
          "an empty extension string is allowed");
}


static void
test_types(void)
{
    is_ok("{" REQ ",\"i1\":2147483647,\"i2\":-2147483648,\"i3\":0,"
          "\"i4\":-0,\"b1\":true,\"b2\":false}",
          want(",\"i1\":2147483647,\"i2\":-2147483648,\"i3\":0,\"i4\":-0,"
               "\"b1\":true,\"b2\":false", ""),
          "integers and booleans");

    is_err("{" REQ ",\"n\":2147483648}", "InvalidAttributeValue",
           "attribute \"n\" is 2147483648, outside the Integer range "
           "-2147483648 to 2147483647", "integer above the range");
    is_err("{" REQ ",\"n\":-2147483649}", "InvalidAttributeValue", NULL,
           "integer below the range");
    is_err("{" REQ ",\"n\":12345678901234567890}", "InvalidAttributeValue",
           NULL, "a 20-digit integer");
    is_err("{" REQ ",\"n\":1.5}", "InvalidAttributeValue",
           "attribute \"n\" is 1.5, not an integer", "a fraction");
    is_err("{" REQ ",\"n\":1e3}", "InvalidAttributeValue",
           "attribute \"n\" is 1e3, not an integer", "an exponent");
    is_err("{" REQ ",\"n\":1.0}", "InvalidAttributeValue", NULL,
           "1.0 is not an integer");
    is_err("{" REQ ",\"n\":{\"a\":1}}", "InvalidAttributeValue",
           "attribute \"n\" is an object; attribute values are strings, "
           "integers or booleans", "a nested object");
    is_err("{" REQ ",\"n\":[]}", "InvalidAttributeValue",
           "attribute \"n\" is an array; attribute values are strings, "
           "integers or booleans", "an array");
    is_err("{" REQ ",\"subject\":false}", "InvalidAttributeValue",
           "attribute \"subject\" must be a string", "a boolean subject");
    is_err("{" REQ ",\"subject\":\"\"}", "InvalidAttributeValue",
           "attribute \"subject\" is empty", "an empty subject");

    /* null: unset */
    is_ok("{" REQ ",\"subject\":null,\"ext\":null,\"time\":null,"
          "\"datacontenttype\":null}", want("", ""),
          "null attributes are left out");
}


static void
test_server(void)
{
    is_ok("{\"aliyuneventbusname\":\"evil\"," REQ ",\"aliyunpublishaddr\":"
          "\"198.51.100.1\",\"aliyunregionid\":5,\"aliyunaccountid\":true,"
          "\"aliyunpublishtime\":null,\"ext\":1}",
          want(",\"ext\":1", ""), "the bus's attributes replace the sender's");

    is_err("{" REQ ",\"aliyunaccountid\":{}}", "InvalidAttributeValue",
           NULL, "a bus attribute is still checked");
    is_err("{" REQ ",\"aliyunregionid\":\"\\u0000\"}",
           "InvalidAttributeValue", NULL,
           "a bus attribute's string is still checked");
}


static void
test_data(void)
{
    is_ok("{" REQ ",\"data\": { \"n\" : 12345678901234567890 , \"f\": 3.0e2,"
          " \"s\":\"caf\\u00e9 \\\" x\", \"a\":[1, 2 ,{ }], \"z\": -0.0E-0 } }",
          want("", ",\"data\":{\"n\":12345678901234567890,\"f\":3.0e2,"
               "\"s\":\"caf\\u00e9 \\\" x\",\"a\":[1,2,{}],\"z\":-0.0E-0}"),
          "data keeps its bytes but for whitespace");

    is_ok("{\"data\":[1,2]," REQ "}", want("", ",\"data\":[1,2]"),
          "data before the attributes goes last");
    is_ok("{" REQ ",\"data\":null}", want("", ",\"data\":null"),
          "data null is an explicit null payload");
    is_ok("{" REQ ",\"data\":\"I'm just a string\"}",
          want("", ",\"data\":\"I'm just a string\""),
          "a JSON string as data, no datacontenttype");
    is_ok("{" REQ ",\"data\":\"{\\\"a\\\": 1}\"}",
          want("", ",\"data\":\"{\\\"a\\\": 1}\""),
          "a string with JSON in it stays a string");
    is_ok("{" REQ ",\"datacontenttype\":\"application/vnd.x+json\","
          "\"data\":{\"a\":true}}",
          want(",\"datacontenttype\":\"application/vnd.x+json\"",
               ",\"data\":{\"a\":true}"), "+json data");
    is_ok("{\"data\":\"<a/>\"," REQ ",\"datacontenttype\":\"text/xml\"}",
          want(",\"datacontenttype\":\"text/xml\"", ",\"data\":\"<a/>\""),
          "XML data as a string, datacontenttype after data");

    is_err("{" REQ ",\"datacontenttype\":\"text/xml\",\"data\":{\"a\":1}}",
           "InvalidData", "\"data\" must be a string: datacontenttype does "
           "not declare JSON", "an object under a non-JSON content type");
    is_err("{" REQ ",\"datacontenttype\":\"text/plain\",\"data\":5}",
           "InvalidData", NULL, "a number under a non-JSON content type");

    is_ok("{" REQ ",\"datacontenttype\":\"application/octet-stream\","
          "\"data_base64\":\"SGVsbG8sIHdvcmxkIQ==\"}",
          want(",\"datacontenttype\":\"application/octet-stream\"",
               ",\"data_base64\":\"SGVsbG8sIHdvcmxkIQ==\""), "data_base64");
    is_ok("{" REQ ",\"data_base64\":\"\"}", want("", ",\"data_base64\":\"\""),
          "empty data_base64");
    is_ok("{" REQ ",\"data_base64\":null,\"data\":1}",
          want("", ",\"data\":1"), "data_base64 null is unset");

    is_err("{" REQ ",\"data\":{},\"data_base64\":\"QQ==\"}", "InvalidData",
           "\"data\" and \"data_base64\" are mutually exclusive",
           "data and data_base64");
    is_err("{" REQ ",\"data\":null,\"data_base64\":\"QQ==\"}", "InvalidData",
           NULL, "data null and data_base64");
    is_err("{" REQ ",\"data_base64\":\"QQ=\"}", "InvalidData",
           "\"data_base64\" is not valid base64 (RFC 4648)", "bad base64");
    is_err("{" REQ ",\"data_base64\":\"-_8=\"}", "InvalidData", NULL,
           "base64url is not base64");
    is_err("{" REQ ",\"data_base64\":5}", "InvalidData",
           "\"data_base64\" must be a string", "numeric data_base64");
}


static void
test_base64(void)
{
    static const char  *good[] = {
        "", "QQ==", "QUI=", "QUJD", "SGVsbG8sIHdvcmxkIQ==", "+/+/", "AAAA",
        "QR==",
    };

    static const char  *bad[] = {
        "Q", "QQ", "QQ=", "Q===", "QQ=A", "QU JD", "QUJD\n", "-_-_", "====",
        "QQ==QUJD", "=QUJ", "QUJD=",
    };

    size_t  i;

    for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        ok(eb_ce_base64_valid(U(good[i])), "base64 '%s'", good[i]);
    }

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ok(!eb_ce_base64_valid(U(bad[i])), "not base64: '%s'",
           printable(bad[i]));
    }
}


static void
test_json_errors(void)
{
    structured("{\"specversion\":");
    is_int(got_rc, EB_CE_INVALID, "truncated JSON");
    is_str(got_code, "InvalidJSON", "truncated JSON: code");
    ok(strncmp(got_msg, "event: invalid JSON at byte ", 28) == 0,
       "truncated JSON: message '%s'", got_msg);

    is_err("", "InvalidJSON", NULL, "empty body");
    is_err("{" REQ "} {}", "InvalidJSON", NULL, "two values");
    is_err("{" REQ ",\"subject\":\"\xff\"}", "InvalidJSON", NULL,
           "invalid UTF-8 in a string");
    is_err("[" "{" REQ "}" "]", "InvalidEvent",
           "an event must be a JSON object", "an array is not an event");
    is_err("\"x\"", "InvalidEvent", NULL, "a string is not an event");
    is_err("null", "InvalidEvent", NULL, "null is not an event");

    ctx.max_depth = 2;
    is_ok("{" REQ ",\"data\":{\"a\":1}}", want("", ",\"data\":{\"a\":1}"),
          "nesting within the bound");
    is_err("{" REQ ",\"data\":{\"a\":[]}}", "JSONTooDeep",
           "event nested deeper than 2 levels", "nesting past the bound");
    ctx.max_depth = 64;
}


static void
test_size(void)
{
    size_t  len;

    structured("{" REQ "}");
    len = strlen(got_event);

    ctx.max_event_size = len;
    is_ok("{" REQ "}", want("", ""), "an event of exactly max_event_size");

    ctx.max_event_size = len - 1;
    is_err("{" REQ "}", "EventTooLarge", NULL, "one byte too large");
    ok(strstr(got_msg, "bytes as stored; at most") != NULL,
       "too large: message '%s'", got_msg);

    ctx.max_event_size = 0;
}


/* yajl's memory through ctx.afs: counted here; LeakSanitizer sees that it
 * is all freed */

static void *
hook_malloc(void *ctx, size_t size)
{
    (*(int *) ctx)++;
    return malloc(size);
}


static void *
hook_realloc(void *ctx, void *p, size_t size)
{
    (*(int *) ctx)++;
    return realloc(p, size);
}


static void
hook_free(void *ctx, void *p)
{
    free(p);
}


/* a failed out buffer: out of memory; ctx.afs for yajl */
static void
test_nomem(void)
{
    eb_buf_t           out;
    eb_ce_entry_t      e;
    eb_ce_rc_t         rc;
    eb_ce_error_t      err;
    int                calls;
    yajl_alloc_funcs   afs;
    unsigned char     *doc, *batch;
    static const char  text[] = "{" REQ ",\"data\":[1,2,3]}";
    static const char  btext[] = "[{" REQ "}]";

    doc = copy_of(text, sizeof(text) - 1);
    batch = copy_of(btext, sizeof(btext) - 1);

    eb_buf_init(&out);
    out.failed = 1;

    rc = eb_ce_structured(&ctx, doc, sizeof(text) - 1, &out, &e);
    is_int(rc, EB_CE_NOMEM, "failed out buffer: EB_CE_NOMEM");
    is_str(e.error.code ? e.error.code : "", "InternalError",
           "failed out buffer: InternalError");

    rc = eb_ce_batch(&ctx, batch, sizeof(btext) - 1, &out, NULL, NULL,
                     &err);
    is_int(rc, EB_CE_NOMEM, "failed out buffer: batch EB_CE_NOMEM");
    is_str(err.code ? err.code : "", "InternalError",
           "failed out buffer: batch InternalError");

    calls = 0;
    afs.malloc = hook_malloc;
    afs.realloc = hook_realloc;
    afs.free = hook_free;
    afs.ctx = &calls;

    eb_buf_init(&out);
    ctx.afs = &afs;

    rc = eb_ce_structured(&ctx, doc, sizeof(text) - 1, &out, &e);
    is_int(rc, EB_CE_OK, "yajl allocator hook: event accepted");
    ok(calls > 0, "yajl allocator hook: used (%d calls)", calls);

    ctx.afs = NULL;

    eb_buf_free(&out);
    free(batch);
    free(doc);
}


/* batches */

typedef struct {
    eb_ce_answer_t  answer;
    eb_buf_t        events;     /* the events, one a line */
    size_t          calls;
    size_t          stop_after; /* 0: never */
    int             order_ok;
} batch_t;


static int
batch_entry(void *data, const eb_ce_entry_t *e)
{
    batch_t  *b = data;

    if (e->index != b->calls) {
        b->order_ok = 0;
    }

    b->calls++;

    if (e->error.code == NULL) {
        eb_buf_append(&b->events, e->event.data, e->event.len);
        eb_buf_append(&b->events, "\n", 1);
    }

    if (eb_ce_answer_add(&b->answer, e) != 0) {
        return -1;
    }

    return (b->stop_after && b->calls == b->stop_after) ? -1 : 0;
}


static eb_ce_rc_t
run_batch(const char *doc, batch_t *b, eb_ce_error_t *err, char **answer)
{
    unsigned char  *copy;
    size_t          len;
    eb_buf_t        out, ans;
    eb_ce_rc_t      rc;

    len = strlen(doc);
    copy = copy_of(doc, len);

    eb_ce_answer_init(&b->answer);
    eb_buf_init(&b->events);
    b->calls = 0;
    b->order_ok = 1;

    eb_buf_init(&out);
    eb_buf_append_str(&out, PREFIX);

    rc = eb_ce_batch(&ctx, copy, len, &out, batch_entry, b, err);

    ok(out.len == sizeof(PREFIX) - 1
       && memcmp(out.data, PREFIX, out.len) == 0,
       "batch: out back to what it held");

    eb_buf_init(&ans);
    eb_ce_answer_finish(&b->answer, &ans);
    *answer = strndup_bytes(ans.data, ans.len);

    eb_buf_free(&ans);
    eb_buf_free(&out);
    free(copy);

    return rc;
}


static void
batch_free(batch_t *b, char *answer)
{
    eb_ce_answer_free(&b->answer);
    eb_buf_free(&b->events);
    free(answer);
}


static void
test_batch(void)
{
    batch_t        b;
    eb_ce_error_t  err;
    eb_ce_rc_t     rc;
    char          *answer, *events;

    memset(&b, 0, sizeof(b));

    rc = run_batch("[{\"specversion\":\"1.0\",\"id\":\"a\",\"source\":\"/s\","
                   "\"type\":\"t\",\"data\":{ \"x\" : 1 }},\n"
                   " {\"specversion\":\"1.0\",\"source\":\"/s\","
                   "\"type\":\"t\"},\n"
                   " 5,\n"
                   " {\"specversion\":\"1.0\",\"id\":\"b\",\"source\":\"/s\","
                   "\"type\":\"t\",\"Bad\":1},\n"
                   " {\"specversion\":\"1.0\",\"id\":\"c\\\"\",\"source\":"
                   "\"/s\",\"type\":\"t\"}]", &b, &err, &answer);

    is_int(rc, EB_CE_OK, "mixed batch");
    is_int(b.calls, 5, "mixed batch: one call per entry");
    ok(b.order_ok, "mixed batch: entries in order");

    events = strndup_bytes(b.events.data, b.events.len);
    is_str(events,
           "{\"specversion\":\"1.0\",\"id\":\"a\",\"source\":\"/s\","
           "\"type\":\"t\"" SERVER ",\"data\":{\"x\":1}}\n"
           "{\"specversion\":\"1.0\",\"id\":\"c\\\"\",\"source\":\"/s\","
           "\"type\":\"t\"" SERVER "}\n", "mixed batch: the valid events");
    free(events);

    is_str(answer,
           "{\"failedEntryCount\":3,\"entries\":["
           "{\"eventId\":\"a\"},"
           "{\"errorCode\":\"MissingAttribute\",\"errorMessage\":"
           "\"required attribute \\\"id\\\" is missing\"},"
           "{\"errorCode\":\"InvalidEvent\",\"errorMessage\":"
           "\"entry 2 is not a JSON object\"},"
           "{\"errorCode\":\"InvalidAttributeName\",\"errorMessage\":"
           "\"attribute name \\\"Bad\\\" has a character other than a-z "
           "and 0-9\"},"
           "{\"eventId\":\"c\\\"\"}]}", "mixed batch: the answer");
    batch_free(&b, answer);

    rc = run_batch(" [ ]\n", &b, &err, &answer);
    is_int(rc, EB_CE_OK, "empty batch");
    is_int(b.calls, 0, "empty batch: no calls");
    is_str(answer, "{\"failedEntryCount\":0,\"entries\":[]}",
           "empty batch: the answer");
    batch_free(&b, answer);

    ctx.max_entries = 2;

    rc = run_batch("[{" REQ "},{" REQ "}]", &b, &err, &answer);
    is_int(rc, EB_CE_OK, "batch of max_entries");
    is_int(b.calls, 2, "batch of max_entries: two calls");
    is_str(answer, "{\"failedEntryCount\":0,\"entries\":[{\"eventId\":\"1\"},"
           "{\"eventId\":\"1\"}]}", "batch of max_entries: the answer");
    batch_free(&b, answer);

    rc = run_batch("[{" REQ "},{" REQ "},7]", &b, &err, &answer);
    is_int(rc, EB_CE_INVALID, "batch over max_entries");
    is_str(err.code, "BatchTooLarge", "batch over max_entries: code");
    is_str(err.message, "batch has 3 entries; at most 2",
           "batch over max_entries: message");
    is_int(b.calls, 0, "batch over max_entries: no calls");
    batch_free(&b, answer);

    ctx.max_entries = 0;
    ctx.max_batch_size = 10;

    rc = run_batch("[{" REQ "}]", &b, &err, &answer);
    is_int(rc, EB_CE_INVALID, "batch over max_batch_size");
    is_str(err.code, "BatchTooLarge", "batch over max_batch_size: code");
    ok(strstr(err.message, "; at most 10") != NULL,
       "batch over max_batch_size: message '%s'", err.message);
    batch_free(&b, answer);

    ctx.max_batch_size = 0;

    rc = run_batch("{" REQ "}", &b, &err, &answer);
    is_int(rc, EB_CE_INVALID, "an object is not a batch");
    is_str(err.code, "InvalidBatch", "an object is not a batch: code");
    is_str(err.message, "a batch must be a JSON array",
           "an object is not a batch: message");
    batch_free(&b, answer);

    rc = run_batch("[{" REQ "},", &b, &err, &answer);
    is_int(rc, EB_CE_INVALID, "broken batch JSON");
    is_str(err.code, "InvalidJSON", "broken batch JSON: code");
    ok(strncmp(err.message, "batch: invalid JSON at byte", 27) == 0,
       "broken batch JSON: message '%s'", err.message);
    is_int(b.calls, 0, "broken batch JSON: no calls");
    batch_free(&b, answer);

    ctx.max_depth = 2;

    rc = run_batch("[{" REQ ",\"data\":{\"a\":1}}]", &b, &err, &answer);
    is_int(rc, EB_CE_OK, "batch: events within the nesting bound");
    batch_free(&b, answer);

    rc = run_batch("[{" REQ ",\"data\":{\"a\":[]}}]", &b, &err, &answer);
    is_int(rc, EB_CE_INVALID, "batch: an event past the nesting bound");
    is_str(err.code, "JSONTooDeep", "batch too deep: code");
    batch_free(&b, answer);

    ctx.max_depth = 64;

    b.stop_after = 1;
    rc = run_batch("[{" REQ "},{" REQ "},{" REQ "}]", &b, &err, &answer);
    is_int(rc, EB_CE_ABORTED, "a callback stops the batch");
    is_int(b.calls, 1, "a callback stops the batch: one call");
    batch_free(&b, answer);
    b.stop_after = 0;

    /* room for the minimal event only */
    structured("{" REQ "}");
    ctx.max_event_size = strlen(got_event);

    rc = run_batch("[{" REQ "},{" REQ ",\"data\":\"xxxxxxxxxxxxxxxxxxxxxxxx"
                   "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
                   "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"}]",
                   &b, &err, &answer);
    ctx.max_event_size = 0;
    is_int(rc, EB_CE_OK, "batch with a too large entry");
    ok(strstr(answer, "{\"failedEntryCount\":1,\"entries\":[{\"eventId\":"
              "\"1\"},{\"errorCode\":\"EventTooLarge\"") == answer,
       "batch with a too large entry: the answer");
    batch_free(&b, answer);
}


/* binary mode */

static eb_kv_t
kv(const char *name, const char *value)
{
    eb_kv_t  h;

    h.name.data = (const unsigned char *) name;
    h.name.len = strlen(name);
    h.value.data = (const unsigned char *) value;
    h.value.len = strlen(value);

    return h;
}


static eb_ce_rc_t
binary_n(const eb_kv_t *extra, size_t nextra, int required,
    const char *ctype, const char *body, size_t body_len)
{
    eb_kv_t         h[16];
    size_t          n, i;
    unsigned char  *b, *ct;
    eb_buf_t        out;
    eb_ce_entry_t   e;
    eb_ce_rc_t      rc;

    got_reset();

    n = 0;

    if (required) {
        h[n++] = kv("ce-specversion", "1.0");
        h[n++] = kv("ce-id", "1");
        h[n++] = kv("ce-source", "/s");
        h[n++] = kv("ce-type", "t");
    }

    for (i = 0; i < nextra; i++) {
        h[n++] = extra[i];
    }

    b = copy_of(body, body_len);
    ct = ctype ? copy_of(ctype, strlen(ctype)) : NULL;

    eb_buf_init(&out);
    eb_buf_append_str(&out, PREFIX);

    rc = eb_ce_binary(&ctx, h, n, ct, ctype ? strlen(ctype) : 0, b, body_len,
                      &out, &e);
    got_entry(rc, &e, &out);

    eb_buf_free(&out);
    free(ct);
    free(b);

    return rc;
}


#define binary(extra, ctype, body)                                            \
    binary_n(extra, sizeof(extra) / sizeof(extra[0]), 1, ctype, body,         \
             strlen(body))


/* one ce-* header besides the required ones, no body */
static const struct {
    const char  *name;
    const char  *value;
    const char  *code;      /* NULL: accepted */
    const char  *text;      /* the message; if accepted, the members added */
    const char  *what;
} one[] = {
    { "ce-subject", "caf\xc3\xa9", NULL, ",\"subject\":\"caf\xc3\xa9\"",
      "raw UTF-8 in a header value" },
    { "ce-ABCDEFGHIJabcdefghij", "x", NULL,
      ",\"abcdefghijabcdefghij\":\"x\"", "a 20-character name, lower-cased" },
    { "ce-time", "2018-04-05T03:56:24Z", NULL,
      ",\"time\":\"2018-04-05T03:56:24Z\"", "ce-time" },
    { "ce-dataschema", "\"http://x/%257Bs%257D\"", NULL,
      ",\"dataschema\":\"http://x/%7Bs%7D\"",
      "quoted ce-dataschema, one round of decoding" },
    { "ce-dataschema", "http://x/%7Bs%7D", "InvalidAttributeValue",
      "attribute \"dataschema\" is not an absolute URI (RFC 3986)",
      "ce-dataschema decoded to a non-URI" },
    { "ce-subject", "%C0%A0", "InvalidUTF8",
      "header \"ce-subject\": the percent-decoded value is not valid UTF-8 "
      "(byte 0)", "overlong UTF-8 after decoding" },
    { "ce-subject", "ok%FF", "InvalidUTF8", NULL, "%FF after decoding" },
    { "ce-subject", "%ED%A0%80", "InvalidUTF8", NULL,
      "an encoded surrogate" },
    { "ce-subject", "a%0Ab", "InvalidAttributeValue",
      "attribute \"subject\" has a control character at byte 1",
      "a decoded newline" },
    { "ce-subject", "100%", "InvalidAttributeValue",
      "header \"ce-subject\": malformed quoting or percent-encoding at "
      "byte 3", "a lone %" },
    { "ce-subject", "%G1", "InvalidAttributeValue", NULL, "%G1" },
    { "ce-subject", "\"open", "InvalidAttributeValue", NULL,
      "an unterminated quoted string" },
    { "ce-subject", "", "InvalidAttributeValue",
      "attribute \"subject\" is empty", "an empty ce-subject" },
    { "ce-time", "yesterday", "InvalidAttributeValue",
      "attribute \"time\" is not an RFC 3339 timestamp", "a bad ce-time" },
    { "ce-datacontenttype", "application/json", "InvalidAttributeName",
      "header \"ce-datacontenttype\" is not allowed in binary mode: "
      "Content-Type is the datacontenttype", "ce-datacontenttype" },
    { "ce-data", "x", "InvalidAttributeName", NULL, "ce-data" },
    { "ce-my_ext", "x", "InvalidAttributeName",
      "header \"ce-my_ext\": an attribute name has only a-z and 0-9",
      "ce-my_ext" },
    { "ce-", "x", "InvalidAttributeName",
      "header \"ce-\" names no attribute", "ce-" },
    { "ce-abcdefghijabcdefghijk", "x", "InvalidAttributeName",
      "header \"ce-abcdefghijabcdefghijk\": attribute name longer than 20 "
      "characters", "a 21-character name" },
    { "ce-id", "2", "DuplicateAttribute",
      "attribute \"id\" appears more than once", "ce-id twice" },
    { "CE-SPECVERSION", "1.0", "DuplicateAttribute", NULL,
      "ce-specversion twice, in other case" },
};


static void
test_binary(void)
{
    size_t   i;
    eb_kv_t  h1[1];
    eb_kv_t  none[1] = { { { NULL, 0 }, { NULL, 0 } } };

    {
        eb_kv_t  h[] = {
            kv("host", "example.com"),
            kv("ce-subject", "caf%C3%A9"),
            kv("ce-comexampleothervalue", "5"),
            kv("content-length", "12"),
        };

        binary(h, "application/json", " { \"a\" : 1.50 }\n");
        is_int(got_rc, EB_CE_OK, "binary: JSON body");
        is_str(got_event, want(",\"subject\":\"caf\xc3\xa9\","
                               "\"comexampleothervalue\":\"5\","
                               "\"datacontenttype\":\"application/json\"",
                               ",\"data\":{\"a\":1.50}"),
               "binary: JSON body, percent-decoded subject");
        is_str(got_id, "1", "binary: id");
        ok(got_restored, "binary: appended after what out held");
    }

    {
        eb_kv_t  h[] = {
            kv("ce-subject", "Euro%20%e2%82%ac%20%F0%9F%98%80"),
            kv("ce-ext", "\"quoted \\\"value\\\"%21\""),
            kv("ce-ext2", "%41%2525"),
        };

        binary(h, "text/plain; charset=utf-8", "h\xc3\xa9llo\n\"x\"");
        is_int(got_rc, EB_CE_OK, "binary: text body");
        is_str(got_event, want(",\"subject\":\"Euro \xe2\x82\xac "
                               "\xf0\x9f\x98\x80\",\"ext\":\"quoted "
                               "\\\"value\\\"!\",\"ext2\":\"A%25\","
                               "\"datacontenttype\":\"text/plain; "
                               "charset=utf-8\"",
                               ",\"data\":\"h\xc3\xa9llo\\n\\\"x\\\"\""),
               "binary: text body as a string; quoted and encoded values");
    }

    binary_n(none, 0, 1, "text/plain", "caf\xe9", 4);
    is_str(got_event, want(",\"datacontenttype\":\"text/plain\"",
                           ",\"data_base64\":\"Y2Fm6Q==\""),
           "binary: a text body that is not UTF-8 is data_base64");

    binary_n(none, 0, 1, "text/plain; charset=iso-8859-1", "abc", 3);
    is_str(got_event, want(",\"datacontenttype\":\"text/plain; "
                           "charset=iso-8859-1\"",
                           ",\"data_base64\":\"YWJj\""),
           "binary: a text body in another charset is data_base64");

    binary_n(none, 0, 1, "application/octet-stream", "\x00\x01\xff\xfe", 4);
    is_str(got_event, want(",\"datacontenttype\":\"application/octet-stream\"",
                           ",\"data_base64\":\"AAH//g==\""),
           "binary: bytes as data_base64");

    binary_n(none, 0, 1, NULL, "abcde", 5);
    is_str(got_event, want("", ",\"data_base64\":\"YWJjZGU=\""),
           "binary: no Content-Type, bytes as data_base64");

    binary_n(none, 0, 1, " application/xml ", "<a/>", 4);
    is_str(got_event, want(",\"datacontenttype\":\"application/xml\"",
                           ",\"data_base64\":\"PGEvPg==\""),
           "binary: Content-Type trimmed; non-text type as data_base64");

    binary_n(none, 0, 1, "application/json", "", 0);
    is_str(got_event, want(",\"datacontenttype\":\"application/json\"", ""),
           "binary: an empty body is no data");

    binary_n(none, 0, 1, "application/json", "{\"a\":", 5);
    is_int(got_rc, EB_CE_INVALID, "binary: broken JSON body");
    is_str(got_code, "InvalidJSON", "binary: broken JSON body: code");
    ok(strncmp(got_msg, "body: invalid JSON at byte", 26) == 0,
       "binary: broken JSON body: message '%s'", got_msg);
    ok(got_restored, "binary: out as it was after a failure");

    ctx.max_depth = 2;
    binary_n(none, 0, 1, "application/json", "{\"a\":1}", 7);
    is_int(got_rc, EB_CE_OK, "binary: JSON body within the bound");
    binary_n(none, 0, 1, "application/json", "{\"a\":{}}", 8);
    is_str(got_code, "JSONTooDeep", "binary: JSON body past the bound");
    ctx.max_depth = 64;

    for (i = 0; i < sizeof(one) / sizeof(one[0]); i++) {
        h1[0] = kv(one[i].name, one[i].value);
        binary_n(h1, 1, 1, NULL, "", 0);

        if (one[i].code == NULL) {
            is_str(got_event, want(one[i].text, ""), "binary: %s",
                   one[i].what);
            continue;
        }

        is_int(got_rc, EB_CE_INVALID, "binary: %s", one[i].what);
        is_str(got_code, one[i].code, "binary: %s: code", one[i].what);

        if (one[i].text) {
            is_str(got_msg, one[i].text, "binary: %s: message", one[i].what);
        }

        ok(got_restored, "binary: %s: out as it was", one[i].what);
    }

    {
        eb_kv_t  h[] = {
            kv("ce-id", "1"), kv("ce-source", "/s"), kv("ce-type", "t"),
        };

        binary_n(h, 3, 0, NULL, "", 0);
        is_str(got_code, "MissingAttribute", "binary: no ce-specversion");
        is_str(got_msg, "required attribute \"specversion\" is missing",
               "binary: no ce-specversion: message");
    }

    {
        eb_kv_t  h[] = {
            kv("CE-SpecVersion", "1.0"), kv("Ce-Id", "x"),
            kv("CE-SOURCE", "/s"), kv("ce-Type", "t"), kv("cex-id", "y"),
            kv("ce", "z"),
        };

        binary_n(h, 6, 0, NULL, "", 0);
        is_str(got_event, "{\"specversion\":\"1.0\",\"id\":\"x\","
               "\"source\":\"/s\",\"type\":\"t\"" SERVER "}",
               "binary: header names in any case; others ignored");
    }

    {
        eb_kv_t  h[] = {
            kv("ce-specversion", "0.3"), kv("ce-id", "1"),
            kv("ce-source", "/s"), kv("ce-type", "t"),
        };

        binary_n(h, 4, 0, NULL, "", 0);
        is_str(got_code, "InvalidSpecVersion", "binary: specversion 0.3");
    }

    {
        eb_kv_t  h[] = { kv("ce-ext", "1"), kv("CE-EXT", "2") };

        binary(h, NULL, "");
        is_str(got_code, "DuplicateAttribute", "binary: an extension twice");
    }

    {
        eb_kv_t  h[] = {
            kv("ce-aliyuneventbusname", "evil"),
            kv("ce-aliyunpublishaddr", "198.51.100.1"),
        };

        binary(h, NULL, "");
        is_str(got_event, want("", ""),
               "binary: the bus's attributes replace the sender's");
    }

    binary_n(none, 0, 1, "json", "1", 1);
    is_str(got_msg, "attribute \"datacontenttype\" is not a media type "
           "(RFC 2046)", "binary: a bad Content-Type");

    {
        eb_kv_t  h[] = { kv("ce-id", "") };

        binary_n(h, 1, 0, NULL, "", 0);
        is_str(got_code, "InvalidAttributeValue", "binary: an empty ce-id");
    }
}


static void
test_header_decode(void)
{
    static const struct {
        const char  *in;
        const char  *out;       /* NULL: malformed */
        size_t       bad;
    } cases[] = {
        { "caf%C3%A9", "caf\xc3\xa9", 0 },
        { "caf%c3%a9", "caf\xc3\xa9", 0 },
        { "%41%42", "AB", 0 },
        { "Euro%20%E2%82%AC%20%F0%9F%98%80",
          "Euro \xe2\x82\xac \xf0\x9f\x98\x80", 0 },
        { "\"quoted value\"", "quoted value", 0 },
        { "\"a\\\"b\\\\c\"", "a\"b\\c", 0 },
        { "\"%41\"", "A", 0 },
        { "\"\"", "", 0 },
        { "  x y \t", "x y", 0 },
        { "", "", 0 },
        { "%2525", "%25", 0 },
        { "say \"hi\"", "say \"hi\"", 0 },
        { "%", NULL, 0 },
        { "ab%4", NULL, 2 },
        { "%G1", NULL, 0 },
        { "%1G", NULL, 0 },
        { "\"unterminated", NULL, 13 },
        { "\"a\"b", NULL, 3 },
        { "\"a\\", NULL, 3 },
        { "\"a\x01\"", NULL, 2 },
    };

    size_t          i, len, bad;
    ssize_t         n;
    unsigned char  *buf;
    char           *got;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        len = strlen(cases[i].in);
        buf = copy_of(cases[i].in, len);
        bad = 99;

        /* in place, as eb_ce_binary() does */
        n = eb_ce_header_decode(buf, buf, len, &bad);

        if (cases[i].out == NULL) {
            is_int(n, -1, "header value '%s' is malformed",
                   printable(cases[i].in));
            is_int(bad, cases[i].bad, "header value '%s': at",
                   printable(cases[i].in));

        } else {
            got = strndup_bytes(buf, n < 0 ? 0 : (size_t) n);
            ok(n >= 0, "header value '%s' decodes", printable(cases[i].in));
            is_str(got, cases[i].out, "header value '%s'",
                   printable(cases[i].in));
            free(got);
        }

        free(buf);
    }
}


static void
test_mode(void)
{
    static const struct {
        const char    *ct;
        eb_ce_mode_t   mode;
    } cases[] = {
        { "application/cloudevents+json", EB_CE_MODE_STRUCTURED },
        { "application/cloudevents+json; charset=UTF-8",
          EB_CE_MODE_STRUCTURED },
        { "Application/CloudEvents+JSON", EB_CE_MODE_STRUCTURED },
        { " application/cloudevents+json ;x=y", EB_CE_MODE_STRUCTURED },
        { "application/cloudevents-batch+json", EB_CE_MODE_BATCH },
        { "application/cloudevents-batch+json;charset=utf-8",
          EB_CE_MODE_BATCH },
        { "application/cloudevents+avro", EB_CE_MODE_UNSUPPORTED },
        { "application/cloudevents-batch+avro", EB_CE_MODE_UNSUPPORTED },
        { "application/cloudevents", EB_CE_MODE_UNSUPPORTED },
        { "application/json", EB_CE_MODE_BINARY },
        { "text/plain", EB_CE_MODE_BINARY },
        { "application/cloudevent+json", EB_CE_MODE_BINARY },
        { "", EB_CE_MODE_BINARY },
    };

    size_t  i;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        is_int(eb_ce_mode(U(cases[i].ct)), cases[i].mode, "mode of '%s'",
               cases[i].ct);
    }

    is_int(eb_ce_mode(NULL, 0), EB_CE_MODE_BINARY, "no Content-Type: binary");
}


static void
test_names_api(void)
{
    ok(eb_ce_name_valid(S("abc123")), "name abc123");
    ok(eb_ce_name_valid(S("abcdefghij0123456789")), "name of 20");
    ok(!eb_ce_name_valid(S("abcdefghij0123456789a")), "name of 21");
    ok(!eb_ce_name_valid(S("")), "empty name");
    ok(!eb_ce_name_valid(S("aB")), "name aB");
    ok(!eb_ce_name_valid(S("a.b")), "name a.b");
}


static void
test_answer(void)
{
    eb_ce_answer_t  a;
    eb_ce_entry_t   e;
    eb_buf_t        out;
    char           *s;

    eb_ce_answer_init(&a);
    eb_buf_init(&out);

    eb_ce_answer_finish(&a, &out);
    s = strndup_bytes(out.data, out.len);
    is_str(s, "{\"failedEntryCount\":0,\"entries\":[]}", "answer: none");
    free(s);

    memset(&e, 0, sizeof(e));
    e.id.data = (const unsigned char *) "ab\\\"c";
    e.id.len = 5;
    ok(eb_ce_answer_add(&a, &e) == 0, "answer: add an event");

    e.error.code = "InvalidData";
    strcpy(e.error.message, "\"data\" is \\ wrong\n");
    ok(eb_ce_answer_add(&a, &e) == 0, "answer: add an error");

    out.len = 0;
    eb_ce_answer_finish(&a, &out);
    s = strndup_bytes(out.data, out.len);
    is_str(s, "{\"failedEntryCount\":1,\"entries\":[{\"eventId\":\"ab\\\"c\"},"
           "{\"errorCode\":\"InvalidData\",\"errorMessage\":\"\\\"data\\\" is "
           "\\\\ wrong\\n\"}]}", "answer: an event and an error");
    free(s);

    eb_buf_free(&out);
    eb_ce_answer_free(&a);
}


/* Empty values with no buffer behind them (UBSan: no arithmetic on
 * NULL): the checks, the bus's empty attributes. */
static void
test_empty(void)
{
    eb_buf_t       out;
    eb_ce_ctx_t    c;
    eb_ce_entry_t  e;

    ok(eb_ce_uri_reference_valid(NULL, 0), "empty: a URI-reference");
    ok(!eb_ce_uri_valid(NULL, 0), "empty: no URI");
    ok(!eb_ce_timestamp_valid(NULL, 0), "empty: no timestamp");
    ok(!eb_ce_media_type_valid(NULL, 0), "empty: no media type");
    ok(eb_ce_base64_valid(NULL, 0), "empty: base64");

    memset(&c, 0, sizeof(c));
    c.max_depth = 8;
    eb_buf_init(&out);

    is_int(eb_ce_structured(&c, S("{\"specversion\":\"1.0\",\"id\":\"1\","
                                  "\"source\":\"s\",\"type\":\"t\"}"),
                            &out, &e), EB_CE_OK,
           "empty: the bus's attributes empty");
    is_int(eb_ce_structured(&c, NULL, 0, &out, &e), EB_CE_INVALID,
           "empty: no event");

    eb_buf_free(&out);
}


/* the distributed tracing extension, with ctx.trace and without */

#define TP      "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
#define TP_REQ  "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"

static void
test_trace(void)
{
    batch_t        b;
    eb_ce_error_t  err;
    char          *answer, *events;

    ctx.trace = 1;
    ctx.traceparent.data = (const unsigned char *) TP_REQ;
    ctx.traceparent.len = sizeof(TP_REQ) - 1;
    ctx.tracestate.data = (const unsigned char *) "congo=t61rcWkgMzE";
    ctx.tracestate.len = sizeof("congo=t61rcWkgMzE") - 1;

    is_ok("{" REQ "}",
          want(",\"traceparent\":\"" TP_REQ "\",\"tracestate\":"
               "\"congo=t61rcWkgMzE\"", ""),
          "trace: an event without one gets the request's, after its own "
          "attributes");
    is_ok("{" REQ ",\"subject\":\"x\",\"data\":1}",
          want(",\"subject\":\"x\",\"traceparent\":\"" TP_REQ "\","
               "\"tracestate\":\"congo=t61rcWkgMzE\"", ",\"data\":1"),
          "trace: added before the bus's attributes and the data");
    is_ok("{" REQ ",\"traceparent\":\"" TP "\"}",
          want(",\"traceparent\":\"" TP "\"", ""),
          "trace: an event's own traceparent is kept, without the "
          "request's tracestate");
    is_ok("{\"traceparent\":\"" TP "\",\"tracestate\":\" a=1 ,,b=2\","
          REQ "}",
          "{\"traceparent\":\"" TP "\",\"tracestate\":\" a=1 ,,b=2\","
          REQ SERVER "}",
          "trace: an event's own tracestate is kept as it came");
    is_ok("{" REQ ",\"traceparent\":\"" TP "\",\"tracestate\":\"\"}",
          want(",\"traceparent\":\"" TP "\",\"tracestate\":\"\"", ""),
          "trace: an empty tracestate");
    is_ok("{" REQ ",\"traceparent\":null}",
          want(",\"traceparent\":\"" TP_REQ "\",\"tracestate\":"
               "\"congo=t61rcWkgMzE\"", ""),
          "trace: a null traceparent is unset: the request's is added");
    is_ok("{" REQ ",\"traceparent\":\"cc-4bf92f3577b34da6a3ce929d0e0e4736-"
          "00f067aa0ba902b7-01-later\"}",
          want(",\"traceparent\":\"cc-4bf92f3577b34da6a3ce929d0e0e4736-"
               "00f067aa0ba902b7-01-later\"", ""),
          "trace: a later version is kept as it came");

    is_err("{" REQ ",\"traceparent\":\"00-4bf92f3577b34da6a3ce929d0e0e4736-"
           "00f067aa0ba902b7-1\"}", "InvalidAttributeValue",
           "attribute \"traceparent\" is not a W3C traceparent "
           "(version-traceid-parentid-flags in lower-case hex)",
           "trace: a malformed traceparent");
    is_err("{" REQ ",\"traceparent\":\"00-00000000000000000000000000000000-"
           "00f067aa0ba902b7-01\"}", "InvalidAttributeValue", NULL,
           "trace: an all-zero trace-id");
    is_err("{" REQ ",\"traceparent\":\"\"}", "InvalidAttributeValue",
           "attribute \"traceparent\" is empty",
           "trace: an empty traceparent");
    is_err("{" REQ ",\"traceparent\":5}", "InvalidAttributeValue",
           "attribute \"traceparent\" must be a string",
           "trace: a traceparent that is a number");
    is_err("{" REQ ",\"tracestate\":true,\"traceparent\":\"" TP "\"}",
           "InvalidAttributeValue",
           "attribute \"tracestate\" must be a string",
           "trace: a tracestate that is a boolean");
    is_err("{" REQ ",\"traceparent\":\"" TP "\",\"tracestate\":\"A=1\"}",
           "InvalidAttributeValue",
           "attribute \"tracestate\" is not a W3C tracestate (up to 32 "
           "key=value members, each key once)",
           "trace: a malformed tracestate");
    is_err("{" REQ ",\"tracestate\":\"a=1\"}", "InvalidAttributeValue",
           "attribute \"tracestate\" without \"traceparent\"",
           "trace: a tracestate without a traceparent");
    is_err("{" REQ ",\"traceparent\":\"" TP "\",\"traceparent\":\"" TP
           "\"}", "DuplicateAttribute",
           "attribute \"traceparent\" appears more than once",
           "trace: traceparent twice");

    /* binary mode: ce-traceparent is the event's; the request's
     * traceparent header is the module's to give as ctx.traceparent */
    {
        eb_kv_t  h[] = {
            kv("traceparent", TP_REQ),
            kv("ce-traceparent", " " TP " "),
            kv("ce-tracestate", "rojo=00f067aa0ba902b7"),
        };

        binary(h, "text/plain", "x");
        is_int(got_rc, EB_CE_OK, "trace: binary, ce-traceparent");
        is_str(got_event, want(",\"traceparent\":\"" TP "\",\"tracestate\":"
                               "\"rojo=00f067aa0ba902b7\",\"datacontenttype\":"
                               "\"text/plain\"", ",\"data\":\"x\""),
               "trace: binary, ce-traceparent and ce-tracestate kept");
    }

    {
        eb_kv_t  h[] = { kv("ce-subject", "s") };

        binary(h, "text/plain", "x");
        is_str(got_event, want(",\"subject\":\"s\",\"datacontenttype\":"
                               "\"text/plain\",\"traceparent\":\"" TP_REQ
                               "\",\"tracestate\":\"congo=t61rcWkgMzE\"",
                               ",\"data\":\"x\""),
               "trace: binary, without ce-traceparent: the request's");
    }

    {
        eb_kv_t  h[] = { kv("ce-traceparent", "not-a-traceparent") };

        binary(h, "text/plain", "x");
        is_str(got_code, "InvalidAttributeValue",
               "trace: binary, a malformed ce-traceparent");
    }

    /* a batch: each event on its own */
    memset(&b, 0, sizeof(b));
    run_batch("[{" REQ ",\"traceparent\":\"" TP "\"},{" REQ "},"
              "{" REQ ",\"traceparent\":\"x\"}]", &b, &err, &answer);
    events = strndup_bytes(b.events.data, b.events.len);
    is_str(events,
           "{" REQ ",\"traceparent\":\"" TP "\"" SERVER "}\n"
           "{" REQ ",\"traceparent\":\"" TP_REQ "\",\"tracestate\":"
           "\"congo=t61rcWkgMzE\"" SERVER "}\n",
           "trace: batch, the event's own or the request's");
    ok(strstr(answer, "{\"failedEntryCount\":1,") == answer
       && strstr(answer, "InvalidAttributeValue") != NULL,
       "trace: batch, the malformed one fails alone");
    free(events);
    batch_free(&b, answer);

    /* no request traceparent (the module always has one; the core
     * adds nothing without) */
    ctx.traceparent.len = 0;
    is_ok("{" REQ "}", want("", ""), "trace: nothing to add");

    /* trace off: extensions like any other */
    ctx.trace = 0;
    is_ok("{" REQ ",\"traceparent\":5,\"tracestate\":\"A\"}",
          want(",\"traceparent\":5,\"tracestate\":\"A\"", ""),
          "trace off: traceparent and tracestate are plain extensions");
    is_err("{" REQ ",\"traceparent\":1,\"traceparent\":2}",
           "DuplicateAttribute",
           "attribute \"traceparent\" appears more than once",
           "trace off: twice is still twice");

    ctx_init();
}


int
main(void)
{
    ctx_init();

    test_minimal();
    test_required();
    test_specversion();
    test_names();
    test_duplicates();
    test_time();
    test_uri();
    test_media_types();
    test_strings();
    test_types();
    test_server();
    test_data();
    test_base64();
    test_json_errors();
    test_size();
    test_nomem();
    test_batch();
    test_binary();
    test_header_decode();
    test_mode();
    test_names_api();
    test_answer();
    test_empty();
    test_trace();

    got_reset();

    return tap_done();
}
