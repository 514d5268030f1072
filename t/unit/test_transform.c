/*
 * eb_transform: the four forms applied to the seed's DingTalk event (a
 * CloudEvent built around t/data/dingtalk_user_add_org.json), JSON and
 * plain-text templates, escaping that keeps JSON templates valid, the
 * "$$" escape, and every compile-time check.
 */

#include <stdlib.h>
#include <string.h>

#include <yajl/yajl_tree.h>

#include "tap.h"
#include "eb_buf.h"
#include "eb_json.h"
#include "eb_jsonpath.h"
#include "eb_transform.h"


#define XIAOMING  "\xe5\xb0\x8f\xe6\x98\x8e"       /* the seed's name */

#define U(s)      (const unsigned char *) (s), sizeof(s) - 1
#define S_PATH(s) (s), sizeof(s) - 1


static eb_buf_t  event;          /* the DingTalk CloudEvent */
static char      body[1024];     /* its data.body, as in the file */


static const char  event_head[] =
    "{\"specversion\":\"1.0\","
    "\"id\":\"7059131c-1b5a-4e1c-b232-c4c3592120ae\","
    "\"source\":\"my.dingtalk\","
    "\"type\":\"eventbridge:Events:HTTPEvent\","
    "\"subject\":\"acs:eventbridge:cn-hangzhou:1148:eventbus/chenyangbus/"
    "eventsource/my.dingtalk\","
    "\"time\":\"2022-05-13T15:28:29.504+08:00\","
    "\"datacontenttype\":\"application/json\","
    "\"aliyunpublishtime\":\"2022-05-13T07:28:29.505Z\","
    "\"aliyuneventbusname\":\"chenyangbus\","
    "\"aliyunregionid\":\"cn-hangzhou\","
    "\"aliyunaccountid\":\"1148\","
    "\"aliyunpublishaddr\":\"203.0.113.9\","
    "\"data\":{\"headers\":{\"content-type\":\"application/json\"},"
    "\"path\":\"/webhook/putEvents\",\"httpMethod\":\"POST\","
    "\"queryString\":{},\"body\":";


/* reads the fixture from the tree's root, or next to this file */
static int
load_body(void)
{
    FILE    *f;
    char     path[512];
    size_t   n;
    char    *slash;

    f = fopen("t/data/dingtalk_user_add_org.json", "rb");

    if (f == NULL) {
        snprintf(path, sizeof(path), "%s", __FILE__);
        slash = strrchr(path, '/');
        snprintf(slash ? slash + 1 : path,
                 sizeof(path) - (size_t) (slash ? slash + 1 - path : 0),
                 "../data/dingtalk_user_add_org.json");
        f = fopen(path, "rb");
    }

    if (f == NULL) {
        return -1;
    }

    n = fread(body, 1, sizeof(body) - 1, f);
    fclose(f);
    body[n] = '\0';

    return n > 0 && n < sizeof(body) - 1 ? 0 : -1;
}


static eb_transform_t *
compile(const char *form, const char *value, const char *tmpl, char *err,
    size_t errlen)
{
    return eb_transform_compile(form, (const unsigned char *) value,
                                value ? strlen(value) : 0,
                                (const unsigned char *) tmpl,
                                tmpl ? strlen(tmpl) : 0, err, errlen);
}


/* A TEMPLATE of names and indexes applied to what the event's scan
 * found: the same output as from the tree (b), or the tree's turn
 * (EB_TRANSFORM_TREE: an object or array). Counted in found_same. */
static unsigned  found_same, found_tree;

static int
found_agrees(const eb_transform_t *t, const char *ev, const eb_buf_t *b)
{
    int                          same;
    char                         err[256];
    size_t                       n;
    eb_buf_t                     f;
    eb_event_scan_t              s;
    eb_transform_rc_t            rc;
    const eb_jsonpath_t *const  *paths;

    n = eb_transform_scan_paths(t, &paths);
    if (n == 0 || eb_event_scan_paths((const unsigned char *) ev, strlen(ev),
                                      &s, paths, n, err, sizeof(err)) != 0)
    {
        return 1;
    }

    eb_buf_init(&f);
    rc = eb_transform_apply_found(t, &s, 0, &f, err, sizeof(err));
    same = rc == EB_TRANSFORM_TREE
           || (rc == EB_TRANSFORM_OK && f.len == b->len
               && (b->len == 0 || memcmp(f.data, b->data, b->len) == 0));

    if (rc == EB_TRANSFORM_TREE) {
        found_tree++;
    } else if (same) {
        found_same++;
    } else {
        printf("# scan: %.*s\n# tree: %.*s\n", (int) f.len,
               f.data ? (char *) f.data : "", (int) b->len,
               b->data ? (char *) b->data : "");
    }

    eb_buf_free(&f);
    eb_event_scan_free(&s);
    return same;
}


/* Applies a transform to ev (NUL-terminated) and returns the output as a
 * string, or "ERROR: ..." / "NO_MATCH: ...". */
static const char *
apply(const eb_transform_t *t, const char *ev)
{
    static char        out[4096];
    char               err[256];
    eb_buf_t           b;
    eb_transform_rc_t  rc;

    if (t == NULL) {
        return "(not compiled)";
    }

    eb_buf_init(&b);
    rc = eb_transform_apply(t, (const unsigned char *) ev, strlen(ev), &b,
                            err, sizeof(err));

    if (rc == EB_TRANSFORM_OK) {
        snprintf(out, sizeof(out), "%.*s", (int) b.len,
                 b.data ? (char *) b.data : "");

        if (!found_agrees(t, ev, &b)) {
            snprintf(out, sizeof(out), "MISMATCH: the scan's output differs");
        }

    } else {
        snprintf(out, sizeof(out), "%s: %s",
                 rc == EB_TRANSFORM_NO_MATCH ? "NO_MATCH" : "ERROR", err);
    }

    eb_buf_free(&b);

    return out;
}


static int
valid_json(const char *s)
{
    char  err[128];

    return eb_json_validate((const unsigned char *) s, strlen(s), 64, NULL,
                            err, sizeof(err)) == EB_JSON_OK;
}


/* compiles, applies to the DingTalk event, compares */
static void
check(const char *form, const char *value, const char *tmpl,
    const char *want, const char *name)
{
    char             err[256];
    eb_transform_t  *t;

    t = compile(form, value, tmpl, err, sizeof(err));
    if (t == NULL) {
        printf("#   compile failed: %s\n", err);
    }

    is_str(apply(t, (const char *) event.data), want, "%s", name);
    eb_transform_free(t);
}


/* a compile-time failure whose message starts with want */
static void
refused(const char *form, const char *value, const char *tmpl,
    const char *want, const char *name)
{
    char             err[256];
    eb_transform_t  *t;

    strcpy(err, "");
    t = compile(form, value, tmpl, err, sizeof(err));

    ok(t == NULL && strncmp(err, want, strlen(want)) == 0, "refused: %s",
       name);

    if (t || strncmp(err, want, strlen(want)) != 0) {
        printf("#   got:      '%s'\n#   expected: '%s...'\n",
               t ? "(compiled)" : err, want);
    }

    eb_transform_free(t);
}


static void
test_original(void)
{
    char               err[128];
    eb_buf_t           b;
    yajl_val           root;
    eb_transform_t    *t;
    eb_transform_rc_t  rc;

    t = compile("ORIGINAL", NULL, NULL, err, sizeof(err));
    ok(t != NULL, "ORIGINAL compiles");

    eb_buf_init(&b);
    eb_buf_append_str(&b, "prefix:");
    rc = eb_transform_apply(t, event.data, event.len, &b, err, sizeof(err));
    ok(rc == EB_TRANSFORM_OK && b.len == 7 + event.len
       && memcmp(b.data, "prefix:", 7) == 0
       && memcmp(b.data + 7, event.data, event.len) == 0,
       "ORIGINAL appends the event byte for byte (white space included)");
    is_int(eb_transform_needs_tree(t), 0, "ORIGINAL needs no parse");
    is_int(eb_transform_form(t), EB_TRANSFORM_ORIGINAL, "its form");

    /* from a parsed event without its text: compact JSON */
    root = eb_transform_parse_event(U("{ \"a\" : [ 1 , 2.50 ] }"), err,
                                    sizeof(err));
    eb_buf_reset(&b);
    rc = eb_transform_apply_tree(t, root, NULL, 0, &b, err, sizeof(err));
    eb_buf_append(&b, "", 1);
    ok(rc == EB_TRANSFORM_OK, "ORIGINAL from a tree");
    is_str((char *) b.data, "{\"a\":[1,2.50]}",
           "ORIGINAL from a tree without text: compact JSON");
    yajl_tree_free(root);
    eb_buf_free(&b);
    eb_transform_free(t);

    t = compile("original", "ignored", "ignored", err, sizeof(err));
    ok(t && eb_transform_form(t) == EB_TRANSFORM_ORIGINAL,
       "form names are case-insensitive; value and template ignored");
    eb_transform_free(t);
}


static void
test_constant(void)
{
    char               err[128];
    eb_buf_t           b;
    eb_transform_t    *t;
    eb_transform_rc_t  rc;

    check("CONSTANT", "{\"msg\":\"new employee\"}", NULL,
          "{\"msg\":\"new employee\"}", "CONSTANT: JSON as is");
    check("CONSTANT", "hello ${name} $$ \\n", "${ignored}",
          "hello ${name} $$ \\n", "CONSTANT: nothing substituted");
    check("CONSTANT", "", NULL, "", "CONSTANT: empty");

    /* any bytes, even a NUL; never parses the event */
    t = eb_transform_compile("CONSTANT", U("a\0b"), NULL, 0, err,
                             sizeof(err));
    eb_buf_init(&b);
    rc = eb_transform_apply(t, U("not JSON"), &b, err, sizeof(err));
    ok(rc == EB_TRANSFORM_OK && b.len == 3 && memcmp(b.data, "a\0b", 3) == 0,
       "CONSTANT: binary value; the event is not read");
    is_int(eb_transform_needs_tree(t), 0, "CONSTANT needs no parse");
    eb_buf_free(&b);
    eb_transform_free(t);
}


static void
test_jsonpath(void)
{
    char               err[256];
    eb_buf_t           b;
    eb_transform_t    *t;
    eb_transform_rc_t  rc;

    check("JSONPATH", "$.data.body.name", NULL, XIAOMING,
          "JSONPATH: a string, unquoted");
    check("JSONPATH", "$.data.body.userId", NULL, "1411****46379",
          "JSONPATH: userId");
    check("JSONPATH", "$.data.body.dingId", NULL,
          "$:***:$5RU***QhP/pK**+4A==", "JSONPATH: a string with $ and /");
    check("JSONPATH", "$.data.body.orderInDepts", NULL,
          "{1:17626***32512}", "JSONPATH: a string that looks like JSON");
    check("JSONPATH", "$.data.body.active", NULL, "true",
          "JSONPATH: a boolean as JSON");
    check("JSONPATH", "$.data.body.department", NULL, "[1]",
          "JSONPATH: an array as compact JSON");
    check("JSONPATH", "$.data.body.department[0]", NULL, "1",
          "JSONPATH: a number");
    check("JSONPATH", "$.data.body.avatar", NULL, "",
          "JSONPATH: the empty string");
    check("JSONPATH", "$.data.body",
          NULL,
          "{\"syncAction\":\"user_add_org\","
          "\"orderInDepts\":\"{1:17626***32512}\","
          "\"dingId\":\"$:***:$5RU***QhP/pK**+4A==\",\"active\":true,"
          "\"avatar\":\"\",\"isAdmin\":false,\"userId\":\"1411****46379\","
          "\"isHide\":false,\"isLeaderInDepts\":\"{1:false}\","
          "\"isBoss\":false,\"isSenior\":false,\"name\":\"" XIAOMING "\","
          "\"department\":[1]}",
          "JSONPATH: an object as compact JSON (the whole body)");
    check("JSONPATH", "$.data.body['name','userId']", NULL,
          "[\"" XIAOMING "\",\"1411****46379\"]",
          "JSONPATH: a union gives a JSON array");
    check("JSONPATH", "$.data.headers.*", NULL, "[\"application/json\"]",
          "JSONPATH: a wildcard gives a JSON array");
    check("JSONPATH", "$.data.queryString.*", NULL, "[]",
          "JSONPATH: a wildcard with no match gives []");
    check("JSONPATH", "$..name", NULL, "[\"" XIAOMING "\"]",
          "JSONPATH: recursive descent");
    check("JSONPATH", "$.data.body.nickname", NULL,
          "NO_MATCH: JSONPATH: nothing at $.data.body.nickname",
          "JSONPATH: no match is reported");
    check("JSONPATH", "$.data.body.department[1]", NULL,
          "NO_MATCH: JSONPATH: nothing at $.data.body.department[1]",
          "JSONPATH: an index out of range is no match");

    t = compile("JSONPATH", "$.data.body.nickname", NULL, err, sizeof(err));
    eb_buf_init(&b);
    eb_buf_append_str(&b, "kept");
    rc = eb_transform_apply(t, event.data, event.len, &b, err, sizeof(err));
    ok(rc == EB_TRANSFORM_NO_MATCH && b.len == 4
       && memcmp(b.data, "kept", 4) == 0, "no match appends nothing");
    is_int(eb_transform_needs_tree(t), 1, "JSONPATH needs the parsed event");
    eb_transform_free(t);

    t = compile("JSONPATH", "$.a", NULL, err, sizeof(err));
    is_str(apply(t, "{\"a\":null}"), "null", "JSONPATH: null is null");
    is_str(apply(t, "{\"a\":\"null\"}"), "null",
           "JSONPATH: so is the string \"null\" (use eb_jsonpath_text to "
           "tell them apart)");
    is_str(apply(t, "{\"a\":\"x\\\"y\\n\"}"), "x\"y\n",
           "JSONPATH: a string is unescaped");
    is_str(apply(t, "{\"a\":12345678901234567890}"), "12345678901234567890",
           "JSONPATH: a big number keeps its text");
    is_str(apply(t, "{\"a\":1,}"),
           "ERROR: the event is not JSON: parse error: invalid object key "
           "(must be a string)", "JSONPATH: an event that is not JSON");
    is_str(apply(t, ""), "ERROR: the event is not JSON: parse error: "
           "premature EOF", "JSONPATH: an empty event");

    eb_buf_reset(&b);
    eb_buf_append_str(&b, "kept");
    rc = eb_transform_apply(t, U("{\"a\":1}\0{\"a\":2}"), &b, err,
                            sizeof(err));
    ok(rc == EB_TRANSFORM_ERROR && b.len == 4, "a NUL in the event");
    is_str(err, "the event is not JSON: a NUL byte at offset 7",
           "a NUL in the event: where");

    eb_buf_free(&b);
    eb_transform_free(t);
}


static void
test_template_json(void)
{
    char             err[256];
    const char      *out;
    eb_transform_t  *t;

    /* the seed's database mapping, as a JSON template */
    t = compile("TEMPLATE",
                "{\"userId\":\"$.data.body.userId\","
                "\"name\":\"$.data.body.name\"}",
                "{\"userId\":\"${userId}\",\"name\":\"${name}\"}",
                err, sizeof(err));
    ok(t != NULL, "TEMPLATE compiles");
    is_int(t ? eb_transform_is_json(t) : -1, 1, "the template is JSON");
    is_int(t ? eb_transform_needs_tree(t) : -1, 1, "it needs the tree");

    out = apply(t, (const char *) event.data);
    is_str(out, "{\"userId\":\"1411****46379\",\"name\":\"" XIAOMING "\"}",
           "TEMPLATE: userId and name (xiaoming)");
    ok(valid_json(out), "the output is valid JSON");
    eb_transform_free(t);

    /* placeholders outside quotes get JSON values */
    t = compile("TEMPLATE",
                "{\"active\":\"$.data.body.active\","
                "\"dept\":\"$.data.body.department\","
                "\"name\":\"$.data.body.name\","
                "\"nick\":\"$.data.body.nickname\","
                "\"admin\":\"$.data.body.isAdmin\","
                "\"q\":\"$.data.queryString\"}",
                "{\n  \"active\": ${active},\n  \"dept\": ${dept},\n"
                "  \"name\": ${name},\n  \"nick\": ${nick},\n"
                "  \"admin\": ${admin}, \"q\": ${q}\n}",
                err, sizeof(err));

    out = apply(t, (const char *) event.data);
    is_str(out, "{\n  \"active\": true,\n  \"dept\": [1],\n"
           "  \"name\": \"" XIAOMING "\",\n  \"nick\": null,\n"
           "  \"admin\": false, \"q\": {}\n}",
           "TEMPLATE: JSON values outside quotes; missing is null");
    ok(valid_json(out), "... valid JSON");

    is_str(apply(t, "{}"), "{\n  \"active\": null,\n  \"dept\": null,\n"
           "  \"name\": null,\n  \"nick\": null,\n"
           "  \"admin\": null, \"q\": null\n}",
           "TEMPLATE: every variable missing");
    eb_transform_free(t);

    /* non-string values inside quotes: text, escaped */
    t = compile("TEMPLATE",
                "{\"dept\":\"$.data.body.department\","
                "\"active\":\"$.data.body.active\","
                "\"nick\":\"$.data.body.nickname\","
                "\"h\":\"$.data.headers\"}",
                "{\"text\":\"dept ${dept}, active ${active}, nick [${nick}]\","
                "\"h\":\"${h}\"}", err, sizeof(err));
    out = apply(t, (const char *) event.data);
    is_str(out, "{\"text\":\"dept [1], active true, nick []\","
           "\"h\":\"{\\\"content-type\\\":\\\"application/json\\\"}\"}",
           "TEMPLATE: values inside quotes are escaped text; missing is "
           "nothing");
    ok(valid_json(out), "... valid JSON");
    eb_transform_free(t);

    /* an array template; a variable used twice; an unused variable */
    t = compile("TEMPLATE",
                "{\"n\":\"$.data.body.name\",\"d\":\"$.data.body.department\","
                "\"unused\":\"$.id\"}",
                "  [\"${n}\", ${d}, ${n}, \"${n}${n}\"]", err, sizeof(err));
    is_int(t ? eb_transform_is_json(t) : -1, 1,
           "a template starting with blanks and [ is JSON");
    out = apply(t, (const char *) event.data);
    is_str(out, "  [\"" XIAOMING "\", [1], \"" XIAOMING "\", \""
           XIAOMING XIAOMING "\"]", "TEMPLATE: a JSON array template");
    ok(valid_json(out), "... valid JSON");
    eb_transform_free(t);

    /* a placeholder as a key, inside quotes */
    t = compile("TEMPLATE", "{\"k\":\"$.data.body.userId\"}",
                "{\"${k}\": true}", err, sizeof(err));
    is_str(apply(t, (const char *) event.data),
           "{\"1411****46379\": true}", "TEMPLATE: a placeholder in a key");
    eb_transform_free(t);

    /* wildcards: an array of the matches */
    t = compile("TEMPLATE",
                "{\"all\":\"$.data.body.department[*]\","
                "\"ids\":\"$.data.body['userId','name']\","
                "\"none\":\"$.data.queryString.*\"}",
                "{\"a\":${all},\"b\":\"${ids}\",\"c\":${none}}",
                err, sizeof(err));
    out = apply(t, (const char *) event.data);
    is_str(out, "{\"a\":[1],\"b\":\"[\\\"1411****46379\\\",\\\"" XIAOMING
           "\\\"]\",\"c\":[]}", "TEMPLATE: wildcard variables are arrays");
    ok(valid_json(out), "... valid JSON");
    eb_transform_free(t);
}


/* Strings that would break JSON: quotes, backslashes, newlines, control
 * characters, something that looks like a placeholder. */
static void
test_template_escaping(void)
{
    char             err[256];
    const char      *out;
    yajl_val         root, v;
    eb_transform_t  *t;

    static const char  ev[] =
        "{\"data\":{\"body\":{"
        "\"name\":\"Tom \\\"the cat\\\" O'Hara\\\\\\n\\t\\u0001\\u001f</x>\","
        "\"n\":42,\"o\":{\"k\":\"v\\\"w\",\"arr\":[1,\"2\"]},"
        "\"tricky\":\"${name} $$ \\\"\"}}}";

    t = compile("TEMPLATE",
                "{\"name\":\"$.data.body.name\",\"n\":\"$.data.body.n\","
                "\"o\":\"$.data.body.o\",\"tricky\":\"$.data.body.tricky\"}",
                "{\"msg\":\"Hi ${name}!\",\"num\":\"${n}\",\"obj\":\"${o}\","
                "\"raw\":${name},\"rawobj\":${o},\"t\":\"${tricky}\"}",
                err, sizeof(err));

    out = apply(t, ev);
    is_str(out,
           "{\"msg\":\"Hi Tom \\\"the cat\\\" O'Hara\\\\\\n\\t\\u0001\\u001f"
           "</x>!\",\"num\":\"42\","
           "\"obj\":\"{\\\"k\\\":\\\"v\\\\\\\"w\\\","
           "\\\"arr\\\":[1,\\\"2\\\"]}\","
           "\"raw\":\"Tom \\\"the cat\\\" O'Hara\\\\\\n\\t\\u0001\\u001f</x>\","
           "\"rawobj\":{\"k\":\"v\\\"w\",\"arr\":[1,\"2\"]},"
           "\"t\":\"${name} $$ \\\"\"}",
           "TEMPLATE: quotes, backslashes, newlines escaped");
    ok(valid_json(out), "... valid JSON");

    /* the values survive the round trip */
    root = yajl_tree_parse(out, err, sizeof(err));
    ok(root != NULL, "the output parses");

    if (root) {
        v = root->u.object.values[0];
        is_str(YAJL_GET_STRING(v),
               "Hi Tom \"the cat\" O'Hara\\\n\t\x01\x1f</x>!",
               "the string reads back exactly");
        v = root->u.object.values[2];
        is_str(YAJL_GET_STRING(v), "{\"k\":\"v\\\"w\",\"arr\":[1,\"2\"]}",
               "the object inside quotes reads back as its JSON");
        v = root->u.object.values[5];
        is_str(YAJL_GET_STRING(v), "${name} $$ \"",
               "a value is never expanded again");
        yajl_tree_free(root);
    }

    eb_transform_free(t);

    /* an escaped backslash right before a placeholder */
    t = compile("TEMPLATE", "{\"name\":\"$.data.body.name\"}",
                "{\"path\":\"C:\\\\${name}\",\"q\":\"\\\"${name}\\\"\"}",
                err, sizeof(err));
    out = apply(t, (const char *) event.data);
    is_str(out, "{\"path\":\"C:\\\\" XIAOMING "\",\"q\":\"\\\"" XIAOMING
           "\\\"\"}", "TEMPLATE: escapes next to placeholders");
    ok(valid_json(out), "... valid JSON");
    eb_transform_free(t);
}


static void
test_template_text(void)
{
    char             err[256];
    eb_transform_t  *t;

    t = compile("TEMPLATE",
                "{\"name\":\"$.data.body.name\","
                "\"userId\":\"$.data.body.userId\"}",
                "New employee ${name} (${userId})", err, sizeof(err));
    is_int(t ? eb_transform_is_json(t) : -1, 0, "a text template");
    is_str(apply(t, (const char *) event.data),
           "New employee " XIAOMING " (1411****46379)",
           "TEMPLATE: the seed's plain-text notice");
    is_str(apply(t, "{\"data\":{\"body\":{\"name\":\"a\\\"b\\\\c\\nd\"}}}"),
           "New employee a\"b\\c\nd ()",
           "TEMPLATE: text inserts strings raw; missing is nothing");
    eb_transform_free(t);

    check("TEMPLATE",
          "{\"a\":\"$.data.body.active\",\"d\":\"$.data.body.department\","
          "\"h\":\"$.data.headers\",\"x\":\"$.data.body.nope\","
          "\"all\":\"$.data.body.department[*]\"}",
          "active=${a} dept=${d} h=${h} x=[${x}] all=${all}",
          "active=true dept=[1] h={\"content-type\":\"application/json\"} "
          "x=[] all=[1]",
          "TEMPLATE: text inserts other values as compact JSON");

    check("TEMPLATE", "{\"name\":\"$.data.body.name\"}",
          "[alert] ${name} joined",
          "[alert] " XIAOMING " joined",
          "TEMPLATE: starts with [ but is not JSON: text");
    check("TEMPLATE", "{\"name\":\"$.data.body.name\"}",
          "{${name}: 1}", "{" XIAOMING ": 1}",
          "TEMPLATE: a bare placeholder as a key is not JSON: text");
    check("TEMPLATE", "{\"name\":\"$.data.body.name\"}",
          "{\"a\": ${name}${name}}", "{\"a\": " XIAOMING XIAOMING "}",
          "TEMPLATE: two adjacent JSON values are not JSON: text");

    /* the "$$" escape */
    check("TEMPLATE", "{\"name\":\"$.data.body.name\"}",
          "$${name} is ${name}", "${name} is " XIAOMING,
          "TEMPLATE: $${ is a literal ${");
    check("TEMPLATE", "{\"n\":\"$.data.body.department[0]\"}",
          "price $$${n}, $5, $$, a$b, $", "price $1, $5, $, a$b, $",
          "TEMPLATE: $$ is $; other $ are literal");
    check("TEMPLATE", "{\"name\":\"$.data.body.name\"}",
          "{\"lit\":\"$${name}\",\"v\":\"${name}\"}",
          "{\"lit\":\"${name}\",\"v\":\"" XIAOMING "\"}",
          "TEMPLATE: $${ in a JSON template");
    check("TEMPLATE", "{\"name\":\"$.data.body.name\"}",
          "$}{$ ${name}$", "$}{$ " XIAOMING "$",
          "TEMPLATE: stray $, { and } are literal");

    /* no variables at all */
    t = compile("TEMPLATE", "", "static ${}", err, sizeof(err));
    ok(t == NULL, "an empty placeholder is refused");
    eb_transform_free(t);

    t = compile("TEMPLATE", NULL, "just text, $${x}", err, sizeof(err));
    ok(t && !eb_transform_needs_tree(t), "no placeholders: no parse");
    is_str(apply(t, "not JSON"), "just text, ${x}",
           "no placeholders: the event is not read");
    eb_transform_free(t);

    t = compile("TEMPLATE", " {} ", "{\"ok\":true}", err, sizeof(err));
    ok(t && eb_transform_is_json(t), "an empty variable object");
    is_str(apply(t, "{}"), "{\"ok\":true}", "a constant JSON template");
    eb_transform_free(t);
}


static void
test_apply_tree(void)
{
    int                i;
    char               err[256];
    eb_buf_t           b;
    yajl_val           root;
    eb_transform_t    *t;
    eb_transform_rc_t  rc;

    static const char  *names[] = { "Ann", "\xe6\x9d\x8e\xe9\x9b\xb7", "" };

    t = compile("TEMPLATE", "{\"n\":\"$.name\"}", "{\"who\":\"${n}\"}", err,
                sizeof(err));
    eb_buf_init(&b);

    /* one compiled transform, many events */
    for (i = 0; i < 3; i++) {
        eb_buf_reset(&b);
        eb_buf_append_str(&b, "{\"name\":\"");
        eb_buf_append_str(&b, names[i]);
        eb_buf_append_str(&b, "\"}");

        root = eb_transform_parse_event(b.data, b.len, err, sizeof(err));
        eb_buf_reset(&b);
        rc = eb_transform_apply_tree(t, root, NULL, 0, &b, err, sizeof(err));
        eb_buf_append(&b, "", 1);
        ok(rc == EB_TRANSFORM_OK && strncmp((char *) b.data, "{\"who\":\"", 8)
           == 0 && strncmp((char *) b.data + 8, names[i], strlen(names[i]))
           == 0, "apply_tree, event %d", i);
        yajl_tree_free(root);
    }

    /* the text need not be NUL-terminated */
    root = eb_transform_parse_event(U("{\"name\":\"x\"}garbage"), err,
                                    sizeof(err));
    ok(root == NULL && strstr(err, "trailing garbage"),
       "parse_event reads len bytes: trailing garbage");
    root = eb_transform_parse_event((const unsigned char *) "{\"name\":\"x\"}"
                                    "garbage", 12, err, sizeof(err));
    ok(root != NULL, "parse_event reads only len bytes");
    yajl_tree_free(root);

    root = eb_transform_parse_event(NULL, 0, err, sizeof(err));
    ok(root == NULL, "parse_event of nothing");

    /* out of memory: the buffer refuses to grow */
    eb_buf_reset(&b);
    eb_buf_append_str(&b, "kept");
    b.failed = 1;
    rc = eb_transform_apply(t, U("{\"name\":\"x\"}"), &b, err,
                            sizeof(err));
    ok(rc == EB_TRANSFORM_ERROR && b.len == 4, "out of memory: an error");
    is_str(err, "out of memory", "out of memory: the message");

    eb_buf_free(&b);
    eb_transform_free(t);
}


/* the column-mapping helper on the DingTalk event */
static void
test_columns(void)
{
    size_t             i;
    eb_buf_t           b;
    yajl_val           root;
    eb_jsonpath_t     *p;
    eb_jsonpath_rc_t   rc;

    static const struct {
        const char        *path;
        eb_jsonpath_rc_t   rc;
        const char        *text;
    } cols[] = {
        { "$.data.body.dingId", EB_JSONPATH_FOUND,
          "$:***:$5RU***QhP/pK**+4A==" },
        { "$.data.body.active", EB_JSONPATH_FOUND, "true" },
        { "$.data.body.isAdmin", EB_JSONPATH_FOUND, "false" },
        { "$.data.body.userId", EB_JSONPATH_FOUND, "1411****46379" },
        { "$.data.body.name", EB_JSONPATH_FOUND, XIAOMING },
        { "$.data.body.department", EB_JSONPATH_FOUND, "[1]" },
        { "$.data.body.nickname", EB_JSONPATH_MISSING, "" },
        { "$.data.nothing", EB_JSONPATH_NULL, "null" },
        { "$.data.quoted", EB_JSONPATH_FOUND, "null" },
    };

    eb_buf_init(&b);
    eb_buf_append(&b, event.data, event.len - 2);    /* without "}}" */
    eb_buf_append_str(&b, ",\"nothing\":null,\"quoted\":\"null\"}}");

    root = eb_transform_parse_event(b.data, b.len, NULL, 0);
    ok(root != NULL, "the extended event parses");

    for (i = 0; i < sizeof(cols) / sizeof(cols[0]); i++) {
        p = eb_jsonpath_compile(cols[i].path, strlen(cols[i].path), NULL, 0);
        eb_buf_reset(&b);
        rc = eb_jsonpath_text(p, root, &b);
        eb_buf_append(&b, "", 1);
        ok(rc == cols[i].rc && strcmp((char *) b.data, cols[i].text) == 0,
           "column %s", cols[i].path);
        eb_jsonpath_free(p);
    }

    p = eb_jsonpath_compile(S_PATH("$.data.body"), NULL, 0);
    eb_buf_reset(&b);
    b.failed = 1;
    is_int(eb_jsonpath_text(p, root, &b), EB_JSONPATH_ERROR,
           "column: out of memory");
    eb_jsonpath_free(p);

    p = eb_jsonpath_compile(S_PATH("$.data.body.*"), NULL, 0);
    is_int(eb_jsonpath_text(p, root, &b), EB_JSONPATH_ERROR,
           "column: out of memory, wildcard");
    eb_jsonpath_free(p);

    yajl_tree_free(root);
    eb_buf_free(&b);
}


/* compile_tree: the "transform" object of the configuration file */
static void
test_compile_tree(void)
{
    char             err[256];
    yajl_val         conf, tr;
    eb_transform_t  *t;

    static const char  *keys_value[] = { "value", NULL };
    static const char  *keys_tmpl[] = { "template", NULL };

    conf = yajl_tree_parse(
        "{\"crm\":{\"form\":\"TEMPLATE\","
        "\"value\":{\"name\":\"$.data.body.name\","
        "\"id\":\"$.data.body.userId\"},"
        "\"template\":\"{\\\"user\\\":\\\"${name}\\\","
        "\\\"id\\\":\\\"${id}\\\"}\"},"
        "\"part\":{\"form\":\"JSONPATH\",\"value\":\"$.data.body.name\"},"
        "\"const\":{\"form\":\"CONSTANT\",\"value\":{\"msg\": \"hi\"}},"
        "\"cstr\":{\"form\":\"CONSTANT\",\"value\":\"a \\\"b\\\"\"},"
        "\"badpath\":{\"form\":\"JSONPATH\",\"value\":[\"$.a\"]},"
        "\"badvars\":{\"form\":\"TEMPLATE\",\"value\":\"$.a\","
        "\"template\":\"x\"},"
        "\"badtmpl\":{\"form\":\"TEMPLATE\",\"value\":{},"
        "\"template\":{}}}", err, sizeof(err));
    ok(conf != NULL, "the configuration parses");

    if (conf == NULL) {
        return;
    }

#define TREE(name)                                                            \
    (tr = conf->u.object.values[name],                                        \
     eb_transform_compile_tree(                                               \
         YAJL_GET_STRING(tr->u.object.values[0]),                             \
         yajl_tree_get(tr, keys_value, yajl_t_any),                           \
         yajl_tree_get(tr, keys_tmpl, yajl_t_any), err, sizeof(err)))

    t = TREE(0);
    is_str(apply(t, (const char *) event.data),
           "{\"user\":\"" XIAOMING "\",\"id\":\"1411****46379\"}",
           "compile_tree: the documented TEMPLATE example");
    eb_transform_free(t);

    t = TREE(1);
    is_str(apply(t, (const char *) event.data), XIAOMING,
           "compile_tree: JSONPATH");
    eb_transform_free(t);

    t = TREE(2);
    is_str(apply(t, "{}"), "{\"msg\":\"hi\"}",
           "compile_tree: a CONSTANT object is its compact JSON");
    eb_transform_free(t);

    t = TREE(3);
    is_str(apply(t, "{}"), "a \"b\"",
           "compile_tree: a CONSTANT string is its characters");
    eb_transform_free(t);

    t = TREE(4);
    ok(t == NULL && strcmp(err, "JSONPATH: the JSONPath value must be a "
                           "string") == 0, "compile_tree: a JSONPath array");
    eb_transform_free(t);

    t = TREE(5);
    ok(t == NULL && strcmp(err, "TEMPLATE: the value must be an object of "
                           "variables") == 0,
       "compile_tree: TEMPLATE variables as a string");
    eb_transform_free(t);

    t = TREE(6);
    ok(t == NULL && strcmp(err, "TEMPLATE: the template must be a string")
       == 0, "compile_tree: a template that is an object");
    eb_transform_free(t);

    t = eb_transform_compile_tree(NULL, NULL, NULL, err, sizeof(err));
    ok(t == NULL && strncmp(err, "no transform form", 17) == 0,
       "compile_tree: no form");

    t = eb_transform_compile_tree("ORIGINAL", conf, conf, err, sizeof(err));
    ok(t != NULL, "compile_tree: ORIGINAL ignores value and template");
    eb_transform_free(t);

#undef TREE

    yajl_tree_free(conf);
}


static void
test_refused(void)
{
    char             err[16];
    eb_transform_t  *t;

    refused(NULL, NULL, NULL, "no transform form", "no form");
    refused("FULL", NULL, NULL, "unknown transform form \"FULL\" (ORIGINAL, "
            "JSONPATH, CONSTANT or TEMPLATE)", "an unknown form");
    refused("", NULL, NULL, "unknown transform form \"\"", "an empty form");

    refused("JSONPATH", NULL, NULL, "JSONPATH needs a JSONPath value",
            "JSONPATH without a path");
    refused("JSONPATH", "$.data body", NULL,
            "JSONPATH: invalid JSONPath at offset 6: expected \".\", \"..\" "
            "or \"[\", found \" \"", "JSONPATH with a bad path");
    refused("JSONPATH", "data.body", NULL,
            "JSONPATH: invalid JSONPath at offset 0", "JSONPATH without $");

    refused("TEMPLATE", "{\"a\":\"$.a\"}", NULL, "TEMPLATE needs a template",
            "TEMPLATE without a template");
    refused("TEMPLATE", "{\"a\":\"$.a\"", "${a}",
            "TEMPLATE variables: invalid JSON at byte 10",
            "variables that are not JSON");
    refused("TEMPLATE", "[\"$.a\"]", "${a}",
            "TEMPLATE variables: expected a JSON object",
            "variables that are not an object");
    refused("TEMPLATE", "\"$.a\"", "x",
            "TEMPLATE variables: expected a JSON object",
            "variables that are a string");
    refused("TEMPLATE", "{\"a-b\":\"$.a\"}", "x",
            "TEMPLATE variables: invalid name \"a-b\"", "a name with a dash");
    refused("TEMPLATE", "{\"\":\"$.a\"}", "x",
            "TEMPLATE variables: invalid name \"\"", "an empty name");
    refused("TEMPLATE", "{\"" XIAOMING "\":\"$.a\"}", "x",
            "TEMPLATE variables: invalid name", "a non-ASCII name");
    refused("TEMPLATE", "{\"a\":\"$.x\",\"a\":\"$.y\"}", "x",
            "TEMPLATE variables: \"a\" is defined twice", "a name twice");
    refused("TEMPLATE", "{\"a\":1}", "x",
            "TEMPLATE variable \"a\": the JSONPath must be a string",
            "a path that is not a string");
    refused("TEMPLATE", "{\"a\":{\"p\":\"$.x\"}}", "x",
            "TEMPLATE variable \"a\": the JSONPath must be a string",
            "a path that is an object");
    refused("TEMPLATE", "{\"ok\":\"$.a\",\"bad\":\"$.a[\"}", "x",
            "TEMPLATE variable \"bad\": invalid JSONPath at offset 3: "
            "unterminated \"[\"", "a path that does not compile");

    refused("TEMPLATE", "{\"name\":\"$.a\"}", "Hi ${nmae}!",
            "TEMPLATE template at offset 3: unknown variable \"nmae\"",
            "an unknown variable");
    refused("TEMPLATE", NULL, "Hi ${name}!",
            "TEMPLATE template at offset 3: unknown variable \"name\"",
            "a placeholder with no variables");
    refused("TEMPLATE", "{\"name\":\"$.a\"}", "Hi ${name",
            "TEMPLATE template at offset 3: \"${\" without \"}\"",
            "an unterminated placeholder");
    refused("TEMPLATE", "{\"name\":\"$.a\"}", "Hi ${na me}",
            "TEMPLATE template at offset 7: invalid character in a variable "
            "name", "a blank in a placeholder");
    refused("TEMPLATE", "{\"name\":\"$.a\"}", "Hi ${$.a}",
            "TEMPLATE template at offset 5: invalid character",
            "a JSONPath in a placeholder");
    refused("TEMPLATE", "{\"name\":\"$.a\"}", "${name} ${}",
            "TEMPLATE template at offset 8: empty placeholder",
            "an empty placeholder");
    refused("TEMPLATE", "{\"name\":\"$.a\"}", "${" XIAOMING "}",
            "TEMPLATE template at offset 2: invalid character",
            "a non-ASCII placeholder");

    t = compile("TEMPLATE", "{\"a\":1}", "x", NULL, 0);
    ok(t == NULL, "refused without an error buffer");

    memset(err, 'x', sizeof(err));
    t = compile("TEMPLATE", "{\"a\":1}", "x", err, sizeof(err));
    ok(t == NULL && strlen(err) == sizeof(err) - 1,
       "a long message is cut and NUL-terminated");

    is_str(eb_transform_form_name(EB_TRANSFORM_JSONPATH), "JSONPATH",
           "form_name");
    is_str(eb_transform_form_name((eb_transform_form_t) 9), "?",
           "form_name of nonsense");
    eb_transform_free(NULL);
    ok(1, "free(NULL) is harmless");
}


/* ebd reads what the edge did not check (entries older than its checks,
 * XADD by hand): an unpaired surrogate escape is U+FFFD, never the bytes
 * yajl would make of it, which are not UTF-8. */
static void
test_surrogates(void)
{
    static const char  ev[] =
        "{\"a\":\"x\\udc00y\",\"b\":\"\\ud800\",\"c\":\"\\ud83d\\ude00\"}";

    char            err[256];
    eb_buf_t        out;
    eb_transform_t *t;

    t = eb_transform_compile("TEMPLATE",
                             (const unsigned char *) "{\"a\":\"$.a\","
                             "\"b\":\"$.b\",\"c\":\"$.c\"}", 31,
                             (const unsigned char *) "${a}|${b}|${c}", 14,
                             err, sizeof(err));
    ok(t != NULL, "surrogates: the template compiles");

    if (t == NULL) {
        printf("#   %s\n", err);
        return;
    }

    eb_buf_init(&out);
    is_int(eb_transform_apply(t, (const unsigned char *) ev, sizeof(ev) - 1,
                              &out, err, sizeof(err)),
           EB_TRANSFORM_OK, "surrogates: applied");
    eb_buf_append(&out, "", 1);
    is_str((char *) out.data, "x\xef\xbf\xbdy|\xef\xbf\xbd|\xf0\x9f\x98\x80",
           "surrogates: U+FFFD for unpaired ones, a pair is one character");

    eb_buf_free(&out);
    eb_transform_free(t);
}


int
main(void)
{
    int  loaded;

    loaded = load_body() == 0;
    ok(loaded, "t/data/dingtalk_user_add_org.json is readable");

    if (!loaded) {
        return tap_done();
    }

    eb_buf_init(&event);
    eb_buf_append_str(&event, event_head);
    eb_buf_append_str(&event, body);
    eb_buf_append_str(&event, "}}");
    eb_buf_append(&event, "", 1);
    event.len--;                                /* NUL-terminated text */

    ok(valid_json((const char *) event.data), "the DingTalk event is JSON");

    test_original();
    test_constant();
    test_jsonpath();
    test_template_json();
    test_template_escaping();
    test_template_text();
    test_apply_tree();
    test_columns();
    test_compile_tree();
    test_refused();
    test_surrogates();

    /* the TEMPLATEs above of names and indexes, applied from the scan */
    ok(found_same >= 10, "a TEMPLATE from the event's scan: the tree's "
       "output %u times (%u times an object or array: the tree's turn)",
       found_same, found_tree);
    ok(found_tree >= 1, "an object or array value goes to the tree");

    eb_buf_free(&event);

    return tap_done();
}
