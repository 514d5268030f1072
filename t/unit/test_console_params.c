/*
 * eb_console_params: the console's names, stream ids, limit, replay
 * window, and the bodies of POST api/dlq/redrive and api/replay, with
 * the messages the API sends (t/045 and t/047 check them end to end).
 */

#include <stdlib.h>
#include <string.h>

#include "tap.h"
#include "eb_console_params.h"


#define S(s)  (const unsigned char *) (s), sizeof(s) - 1

#define NOW   1796215200000LL

#define MSG_REDRIVE_BODY  "the body: a JSON object"
#define MSG_REDRIVE_IDS   "\"ids\" (1 to 100 dead letter ids) or \"all\": true"
#define MSG_REDRIVE_ID    "\"ids\": stream ids (MS-SEQ)"
#define MSG_REPLAY_BODY   "\"body\": a JSON object"
#define MSG_RULES         "\"rules\": an array of 1 to 256 rule names"
#define MSG_TARGETS       "\"targets\": an array of 1 to 256 target names"
#define MSG_RATE          "\"rate\": events per second, 1 to 1000000000"
#define MSG_NAME          "\"name\": 1 to 128 letters, digits, \"-\", \"_\" " \
                          "or \".\""


/* the last parse's buffer: exactly len + 1 bytes, so that ASan sees any
 * write past it; freed by the next parse */
static char  *buf;


static int
str_is(eb_console_str_t *s, const char *want)
{
    return s->data && s->len == strlen(want)
           && memcmp(s->data, want, s->len) == 0;
}


static char *
repeat(char c, size_t n)
{
    char  *p;

    p = malloc(n + 1);
    if (p == NULL) {
        abort();
    }

    memset(p, c, n);
    p[n] = '\0';

    return p;
}


static const char *
redrive(const char *body, eb_console_redrive_t *rd)
{
    size_t  len;

    len = strlen(body);
    free(buf);
    buf = malloc(len + 1);

    return eb_console_redrive_parse((const unsigned char *) body, len, buf,
                                    len + 1, rd);
}


static const char *
replay(const char *body, eb_console_replay_t *rp)
{
    size_t  len;

    len = strlen(body);
    free(buf);
    buf = malloc(len + 1);

    return eb_console_replay_parse((const unsigned char *) body, len, NOW,
                                   buf, len + 1, rp);
}


static void
test_name(void)
{
    char  *s;

    is_int(eb_name_valid(S("a")), 0, "name: one letter");
    is_int(eb_name_valid(S("Hr-2026_11.30")), 0, "name: every class");
    is_int(eb_name_valid(S("")), -1, "name: empty");
    is_int(eb_name_valid(S("a b")), -1, "name: a space");
    is_int(eb_name_valid(S("b/x")), -1, "name: a slash");
    is_int(eb_name_valid(S("a:b")), -1, "name: a colon (key separator)");
    is_int(eb_name_valid(S("a{b}")), -1, "name: braces (hash tag)");
    is_int(eb_name_valid(S("a\0b")), -1, "name: a NUL byte");
    is_int(eb_name_valid(S("caf\xc3\xa9")), -1, "name: non-ASCII");

    s = repeat('x', 129);
    is_int(eb_name_valid((unsigned char *) s, 128), 0, "name: 128 bytes");
    is_int(eb_name_valid((unsigned char *) s, 129), -1, "name: 129 bytes");
    free(s);
}


static void
test_id(void)
{
    is_int(eb_console_id(S("1796215290000"), 0), 0, "id: ms");
    is_int(eb_console_id(S("1796215290000-12"), 0), 0, "id: ms-seq");
    is_int(eb_console_id(S("1234567890123456789"), 0), 0, "id: 19 digits");
    is_int(eb_console_id(S("12345678901234567890"), 0), -1,
           "id: 20 digits");
    is_int(eb_console_id(S("1234567890123456789-1234567890123456789"), 0),
           0, "id: 19 digits each");
    is_int(eb_console_id(S("1-12345678901234567890"), 0), -1,
           "id: 20-digit sequence");
    is_int(eb_console_id(S(""), 0), -1, "id: empty");
    is_int(eb_console_id(S("-"), 0), -1, "id: a dash alone");
    is_int(eb_console_id(S("-1"), 0), -1, "id: leading dash");
    is_int(eb_console_id(S("1-"), 0), -1, "id: trailing dash");
    is_int(eb_console_id(S("1--2"), 0), -1, "id: two dashes");
    is_int(eb_console_id(S("1-2-3"), 0), -1, "id: three parts");
    is_int(eb_console_id(S("1-0 OR"), 0), -1, "id: trailing text");
    is_int(eb_console_id(S(" 1"), 0), -1, "id: a space");
    is_int(eb_console_id(S("+"), 0), -1, "id: XRANGE's +");
    is_int(eb_console_id(S("(1-0"), 0), -1, "id: exclusive range");
    is_int(eb_console_id(S("1-*"), 0), -1, "id: XADD's *");

    is_int(eb_console_id(S("0-0"), 0), 0, "id: 0-0 as from");
    is_int(eb_console_id(S("0-0"), EB_CONSOLE_ID_CURSOR), -1,
           "cursor: 0-0 refused");
    is_int(eb_console_id(S("0"), EB_CONSOLE_ID_CURSOR), -1,
           "cursor: 0 refused");
    is_int(eb_console_id(S("000-00"), EB_CONSOLE_ID_CURSOR), -1,
           "cursor: 000-00 refused");
    is_int(eb_console_id(S("0-1"), EB_CONSOLE_ID_CURSOR), 0, "cursor: 0-1");
    is_int(eb_console_id(S("10"), EB_CONSOLE_ID_CURSOR), 0, "cursor: 10");

    is_int(eb_console_id(S("1796215290000"), EB_CONSOLE_ID_SEQ), -1,
           "entry: ms alone refused");
    is_int(eb_console_id(S("1796215290000-0"), EB_CONSOLE_ID_SEQ), 0,
           "entry: ms-seq");
}


static void
test_limit(void)
{
    unsigned  n;

    n = 7;
    is_int(eb_console_limit(S("0"), &n), -1, "limit: 0");
    is_int(n, 7, "limit: unchanged when refused");
    ok(eb_console_limit(S("1"), &n) == 0 && n == 1, "limit: 1");
    ok(eb_console_limit(S("100"), &n) == 0 && n == 100, "limit: 100");
    is_int(eb_console_limit(S("101"), &n), -1, "limit: 101");
    ok(eb_console_limit(S("007"), &n) == 0 && n == 7,
       "limit: leading zeros");
    ok(eb_console_limit(S("0000000000000000000000100"), &n) == 0 && n == 100,
       "limit: many leading zeros");
    is_int(eb_console_limit(S(""), &n), -1, "limit: empty");
    is_int(eb_console_limit(S("ten"), &n), -1, "limit: not digits");
    is_int(eb_console_limit(S("1a"), &n), -1, "limit: trailing letter");
    is_int(eb_console_limit(S("-1"), &n), -1, "limit: negative");
    is_int(eb_console_limit(S("+1"), &n), -1, "limit: plus sign");
    is_int(eb_console_limit(S(" 1"), &n), -1, "limit: a space");
    is_int(eb_console_limit(S("18446744073709551617"), &n), -1,
           "limit: past 2^64");
    is_int(eb_console_limit(S("4294967297"), &n), -1,
           "limit: 2^32 + 1 (would wrap to 1)");
}


static void
test_window(void)
{
    int64_t  to;

    to = 2000;
    ok(eb_console_window(1000, &to, NOW) == NULL && to == 2000,
       "window: in the past, as given");
    to = 1000;
    ok(eb_console_window(1000, &to, NOW) == NULL && to == 1000,
       "window: one ms");
    to = NOW + 3600000;
    ok(eb_console_window(1000, &to, NOW) == NULL && to == NOW - 1,
       "window: ending later ends 1 ms before now");
    to = NOW;
    ok(eb_console_window(NOW - 1, &to, NOW) == NULL && to == NOW - 1,
       "window: ending now ends 1 ms before");
    to = NOW + 10;
    is_str(eb_console_window(NOW, &to, NOW),
           "\"from\": the window begins in the future",
           "window: beginning now");
    to = 999;
    is_str(eb_console_window(1000, &to, NOW),
           "\"from\": after \"to\": the window is empty",
           "window: from after to");
}


static void
test_redrive(void)
{
    char                  *body, *p;
    size_t                 i;
    eb_console_redrive_t   rd;

    ok(redrive("{\"bus\":\"hr\",\"target\":\"web\",\"ids\":[\"1-0\"]}", &rd)
       == NULL && str_is(&rd.bus, "hr") && str_is(&rd.target, "web")
       && rd.nids == 1 && !rd.all && str_is(&rd.ids[0], "1-0")
       && rd.ids[0].data[3] == '\0',
       "redrive: one id");

    ok(redrive("{\"ids\":[\"1-0\",\"1796215290000-1\",\"2-3\"],"
               "\"target\":\"web\",\"bus\":\"h\\u0072\"}", &rd)
       == NULL && str_is(&rd.bus, "hr") && rd.nids == 3
       && str_is(&rd.ids[1], "1796215290000-1") && str_is(&rd.ids[2], "2-3"),
       "redrive: a selection, any order, escapes decoded");

    ok(redrive(" {\"bus\":\"hr\",\"target\":\"web\",\"all\":true} ", &rd)
       == NULL && rd.all && rd.nids == 0,
       "redrive: all");

    ok(redrive("{\"bus\":\"hr\",\"target\":\"web\",\"all\":true,"
               "\"note\":{\"x\":[1,2]}}", &rd) == NULL && rd.all,
       "redrive: unknown members ignored");

    ok(redrive("{\"bus\":\"hr\",\"bus\":\"x y\",\"target\":\"web\","
               "\"all\":true}", &rd) == NULL && str_is(&rd.bus, "hr"),
       "redrive: a repeated member: the first");

    is_str(redrive("{nope", &rd), MSG_REDRIVE_BODY, "redrive: bad JSON");
    is_str(redrive("", &rd), MSG_REDRIVE_BODY, "redrive: empty");
    is_str(redrive("[]", &rd), MSG_REDRIVE_BODY, "redrive: an array");
    is_str(redrive("\"bus\"", &rd), MSG_REDRIVE_BODY, "redrive: a string");
    is_str(redrive("{\"bus\":\"hr\"} x", &rd), MSG_REDRIVE_BODY,
           "redrive: text after the object");
    is_str(redrive("{\"bus\":\"hr\",}", &rd), MSG_REDRIVE_BODY,
           "redrive: trailing comma");

    {
        static const unsigned char  nul[] =
            "{\"bus\":\"hr\",\"target\":\"web\",\"all\":true}\0junk";
        char  b[sizeof(nul)];

        is_str(eb_console_redrive_parse(nul, sizeof(nul) - 1, b, sizeof(b),
                                        &rd),
               MSG_REDRIVE_BODY, "redrive: a NUL byte in the body");
    }

    {
        static const unsigned char  ok_body[] =
            "{\"bus\":\"hr\",\"target\":\"web\",\"all\":true}";
        char  b[sizeof(ok_body)];

        is_str(eb_console_redrive_parse(ok_body, sizeof(ok_body) - 1, b,
                                        sizeof(ok_body) - 1, &rd),
               MSG_REDRIVE_BODY, "redrive: a buffer one byte short");
        ok(eb_console_redrive_parse(ok_body, sizeof(ok_body) - 1, b,
                                    sizeof(ok_body), &rd) == NULL,
           "redrive: a buffer of len + 1");
    }

    is_str(redrive("{\"target\":\"web\",\"all\":true}", &rd),
           "\"bus\": a bus name", "redrive: no bus");
    is_str(redrive("{\"bus\":7,\"target\":\"web\",\"all\":true}", &rd),
           "\"bus\": a bus name", "redrive: bus a number");
    is_str(redrive("{\"bus\":\"x y\",\"target\":\"web\",\"all\":true}", &rd),
           "\"bus\": a bus name", "redrive: bad bus");
    is_str(redrive("{\"bus\":\"\",\"target\":\"web\",\"all\":true}", &rd),
           "\"bus\": a bus name", "redrive: empty bus");
    is_str(redrive("{\"bus\":\"x y\",\"ids\":7}", &rd),
           "\"bus\": a bus name", "redrive: the bus is checked first");
    is_str(redrive("{\"bus\":\"hr\",\"all\":true}", &rd),
           "\"target\": a target name", "redrive: no target");
    is_str(redrive("{\"bus\":\"hr\",\"target\":[\"web\"],\"all\":true}",
                   &rd),
           "\"target\": a target name", "redrive: target an array");

    is_str(redrive("{\"bus\":\"hr\",\"target\":\"web\"}", &rd),
           MSG_REDRIVE_IDS, "redrive: neither ids nor all");
    is_str(redrive("{\"bus\":\"hr\",\"target\":\"web\",\"all\":true,"
                   "\"ids\":[\"1-0\"]}", &rd),
           MSG_REDRIVE_IDS, "redrive: both ids and all");
    is_str(redrive("{\"bus\":\"hr\",\"target\":\"web\",\"all\":false}", &rd),
           MSG_REDRIVE_IDS, "redrive: all false");
    is_str(redrive("{\"bus\":\"hr\",\"target\":\"web\",\"all\":1}", &rd),
           MSG_REDRIVE_IDS, "redrive: all 1");
    is_str(redrive("{\"bus\":\"hr\",\"target\":\"web\",\"ids\":[]}", &rd),
           MSG_REDRIVE_IDS, "redrive: no ids");
    is_str(redrive("{\"bus\":\"hr\",\"target\":\"web\",\"ids\":null}", &rd),
           MSG_REDRIVE_IDS, "redrive: ids null");
    is_str(redrive("{\"bus\":\"hr\",\"target\":\"web\",\"ids\":\"1-0\"}",
                   &rd),
           MSG_REDRIVE_IDS, "redrive: ids a string");

    is_str(redrive("{\"bus\":\"hr\",\"target\":\"web\",\"ids\":[1]}", &rd),
           MSG_REDRIVE_ID, "redrive: an id a number");
    is_str(redrive("{\"bus\":\"hr\",\"target\":\"web\","
                   "\"ids\":[\"1-0\",\"1796215290000\"]}", &rd),
           MSG_REDRIVE_ID, "redrive: an id without its sequence");
    is_str(redrive("{\"bus\":\"hr\",\"target\":\"web\","
                   "\"ids\":[\"1-0 OR\"]}", &rd),
           MSG_REDRIVE_ID, "redrive: an id with text after it");
    /* yajl's tree keeps C strings: what is checked is what is used */
    ok(redrive("{\"bus\":\"hr\",\"target\":\"web\","
               "\"ids\":[\"1-0\\u0000x\"]}", &rd) == NULL
       && str_is(&rd.ids[0], "1-0"),
       "redrive: an escaped NUL ends the id");

    /* 100 ids, then 101 */
    body = malloc(64 + 101 * 8);
    p = body + sprintf(body, "{\"bus\":\"hr\",\"target\":\"web\",\"ids\":[");
    for (i = 0; i < 100; i++) {
        p += sprintf(p, "%s\"%zu-0\"", i ? "," : "", i + 1);
    }
    strcpy(p, "]}");
    ok(redrive(body, &rd) == NULL && rd.nids == 100
       && str_is(&rd.ids[99], "100-0"),
       "redrive: 100 ids");
    p += sprintf(p, ",\"101-0\"]}");
    is_str(redrive(body, &rd), MSG_REDRIVE_IDS, "redrive: 101 ids");
    free(body);

    /* the cap of the body, whatever the buffer */
    body = malloc(EB_CONSOLE_BODY_MAX + 2);
    memset(body, ' ', EB_CONSOLE_BODY_MAX + 1);
    memcpy(body, "{\"bus\":\"hr\",\"target\":\"web\",\"all\":true}", 38);
    body[EB_CONSOLE_BODY_MAX] = '\0';
    ok(redrive(body, &rd) == NULL, "redrive: a body of 64 KiB");
    body[EB_CONSOLE_BODY_MAX] = ' ';
    body[EB_CONSOLE_BODY_MAX + 1] = '\0';
    is_str(redrive(body, &rd), MSG_REDRIVE_BODY,
           "redrive: a body over 64 KiB");
    free(body);
}


static void
test_replay(void)
{
    char                 *body, *p, *n64;
    size_t                i;
    eb_console_replay_t  *rp;

    /* about 8 KiB: on the heap, as the module has it in its pool */
    rp = malloc(sizeof(eb_console_replay_t));

    ok(replay("{\"bus\":\"hr\",\"from\":1000,\"to\":2000,"
              "\"rules\":[\"new\",\"other\"],\"targets\":[\"web\"],"
              "\"rate\":2000,\"name\":\"r1\"}", rp) == NULL
       && str_is(&rp->bus, "hr") && rp->from == 1000 && rp->to == 2000
       && rp->rules.n == 2 && str_is(&rp->rules.joined, "new,other")
       && rp->rules.items[0].len == 3
       && memcmp(rp->rules.items[1].data, "other", 5) == 0
       && rp->rules.items[1].len == 5
       && rp->targets.n == 1 && str_is(&rp->targets.joined, "web")
       && rp->rate == 2000 && str_is(&rp->name, "r1"),
       "replay: every member");
    ok(eb_console_replay_name(rp) == NULL && str_is(&rp->name, "r1"),
       "replay: a given name is kept");

    ok(replay("{\"bus\":\"hr\",\"from\":0,\"to\":2000}", rp) == NULL
       && rp->rules.n == 0 && str_is(&rp->rules.joined, "")
       && rp->targets.n == 0 && str_is(&rp->targets.joined, "")
       && rp->rate == 0 && rp->name.data == NULL,
       "replay: the required members alone");
    ok(eb_console_replay_name(rp) == NULL && str_is(&rp->name, "0-2000"),
       "replay: default name FROM-TO");

    ok(replay("{\"bus\":\"hr\",\"from\":1,\"to\":2,\"rules\":[\"a\",\"b\"],"
              "\"targets\":[\"t.x\"],\"rate\":null,\"name\":null}", rp)
       == NULL && rp->rate == 0 && rp->name.data == NULL,
       "replay: rate and name null: not given");
    ok(eb_console_replay_name(rp) == NULL
       && str_is(&rp->name, "1-2-a.b-t.x"),
       "replay: default name with rules and targets, commas as dots");

    ok(replay("{\"bus\":\"hr\",\"from\":1,\"to\":2,\"targets\":[\"t\"]}", rp)
       == NULL && eb_console_replay_name(rp) == NULL
       && str_is(&rp->name, "1-2-t"),
       "replay: default name with targets alone");

    n64 = repeat('r', 64);
    body = malloc(256);
    sprintf(body, "{\"bus\":\"hr\",\"from\":1,\"to\":2,\"rules\":[\"%s\","
            "\"%s\"]}", n64, n64);
    ok(replay(body, rp) == NULL, "replay: two 64-byte rule names");
    is_str(eb_console_replay_name(rp), "\"name\": required: the default "
           "name would be over 128 characters",
           "replay: a default name over 128");
    ok(rp->name.data == NULL, "replay: ... and none set");
    sprintf(body, "{\"bus\":\"hr\",\"from\":1,\"to\":2,\"rules\":[\"%.60s\","
            "\"%.60s\"]}", n64, n64);
    ok(replay(body, rp) == NULL && eb_console_replay_name(rp) == NULL
       && rp->name.len == 4 + 121,
       "replay: a default name of 125");

    /* "1-2-" and one rule: 128 in all, then 129 */
    sprintf(body, "{\"bus\":\"hr\",\"from\":1,\"to\":2,"
            "\"rules\":[\"%.62s%.62s\"]}", n64, n64);
    ok(replay(body, rp) == NULL && eb_console_replay_name(rp) == NULL
       && rp->name.len == 128,
       "replay: a default name of 128");
    sprintf(body, "{\"bus\":\"hr\",\"from\":1,\"to\":2,"
            "\"rules\":[\"%.62s%.63s\"]}", n64, n64);
    ok(replay(body, rp) == NULL && eb_console_replay_name(rp) != NULL,
       "replay: a default name of 129");
    free(body);
    free(n64);

    ok(replay("{\"bus\":\"hr\",\"from\":1000,\"to\":9999999999999}", rp)
       == NULL && rp->to == NOW - 1,
       "replay: a window ending later ends 1 ms before now");

    is_str(replay("{nope", rp), MSG_REPLAY_BODY, "replay: bad JSON");
    is_str(replay("[{\"bus\":\"hr\"}]", rp), MSG_REPLAY_BODY,
           "replay: an array");
    is_str(replay("null", rp), MSG_REPLAY_BODY, "replay: null");

    is_str(replay("{\"bus\":\"b/x\",\"from\":1,\"to\":2}", rp),
           "\"bus\": a bus name", "replay: bad bus");
    is_str(replay("{\"bus\":\"b/x\",\"to\":2}", rp),
           "\"bus\": a bus name", "replay: the bus is checked first");
    is_str(replay("{\"bus\":\"hr\",\"to\":2}", rp),
           "\"from\": ms since the epoch", "replay: no from");
    is_str(replay("{\"bus\":\"hr\",\"from\":null,\"to\":2}", rp),
           "\"from\": ms since the epoch", "replay: from null");
    is_str(replay("{\"bus\":\"hr\",\"from\":-1,\"to\":2}", rp),
           "\"from\": ms since the epoch", "replay: from negative");
    is_str(replay("{\"bus\":\"hr\",\"from\":1.5,\"to\":2}", rp),
           "\"from\": ms since the epoch", "replay: from a fraction");
    is_str(replay("{\"bus\":\"hr\",\"from\":1e3,\"to\":2000}", rp),
           "\"from\": ms since the epoch", "replay: from an exponent");
    is_str(replay("{\"bus\":\"hr\",\"from\":99999999999999999999,\"to\":2}",
                  rp),
           "\"from\": ms since the epoch", "replay: from past int64");
    is_str(replay("{\"bus\":\"hr\",\"from\":1,\"to\":\"2\"}", rp),
           "\"to\": ms since the epoch", "replay: to a string");
    is_str(replay("{\"bus\":\"hr\",\"from\":3,\"to\":2}", rp),
           "\"from\": after \"to\": the window is empty",
           "replay: from after to");
    is_str(replay("{\"bus\":\"hr\",\"from\":9999999999998,"
                  "\"to\":9999999999999}", rp),
           "\"from\": the window begins in the future",
           "replay: a window in the future");

    is_str(replay("{\"bus\":\"hr\",\"from\":1,\"to\":2,\"rules\":\"new\"}",
                  rp),
           MSG_RULES, "replay: rules a string");
    is_str(replay("{\"bus\":\"hr\",\"from\":1,\"to\":2,\"rules\":[]}", rp),
           MSG_RULES, "replay: rules empty");
    is_str(replay("{\"bus\":\"hr\",\"from\":1,\"to\":2,\"rules\":null}", rp),
           MSG_RULES, "replay: rules null");
    is_str(replay("{\"bus\":\"hr\",\"from\":1,\"to\":2,\"rules\":[1]}", rp),
           MSG_RULES, "replay: a rule a number");
    is_str(replay("{\"bus\":\"hr\",\"from\":1,\"to\":2,"
                  "\"rules\":[\"a\",\"a,b\"]}", rp),
           MSG_RULES, "replay: a rule name with a comma");
    is_str(replay("{\"bus\":\"hr\",\"from\":1,\"to\":2,\"targets\":[\"\"]}",
                  rp),
           MSG_TARGETS, "replay: an empty target name");
    is_str(replay("{\"bus\":\"hr\",\"from\":1,\"to\":2,\"targets\":{}}", rp),
           MSG_TARGETS, "replay: targets an object");

    /* 256 rules, then 257 */
    body = malloc(64 + 257 * 8);
    p = body + sprintf(body, "{\"bus\":\"hr\",\"from\":1,\"to\":2,"
                       "\"rules\":[");
    for (i = 0; i < 256; i++) {
        p += sprintf(p, "%s\"r%zu\"", i ? "," : "", i);
    }
    strcpy(p, "]}");
    ok(replay(body, rp) == NULL && rp->rules.n == 256
       && rp->rules.items[255].len == 4
       && memcmp(rp->rules.items[255].data, "r255", 4) == 0
       /* 256 r, 658 digits, 255 commas */
       && rp->rules.joined.len == 1169,
       "replay: 256 rules");
    p += sprintf(p, ",\"r256\"]}");
    is_str(replay(body, rp), MSG_RULES, "replay: 257 rules");
    free(body);

    is_str(replay("{\"bus\":\"hr\",\"from\":1,\"to\":2,\"rate\":0}", rp),
           MSG_RATE, "replay: rate 0");
    is_str(replay("{\"bus\":\"hr\",\"from\":1,\"to\":2,\"rate\":1000000001}",
                  rp),
           MSG_RATE, "replay: rate over the cap");
    ok(replay("{\"bus\":\"hr\",\"from\":1,\"to\":2,\"rate\":1000000000}", rp)
       == NULL && rp->rate == 1000000000, "replay: rate at the cap");
    is_str(replay("{\"bus\":\"hr\",\"from\":1,\"to\":2,\"rate\":\"fast\"}",
                  rp),
           MSG_RATE, "replay: rate a string");
    is_str(replay("{\"bus\":\"hr\",\"from\":1,\"to\":2,\"rate\":2.5}", rp),
           MSG_RATE, "replay: rate a fraction");

    is_str(replay("{\"bus\":\"hr\",\"from\":1,\"to\":2,\"name\":\"a b\"}",
                  rp),
           MSG_NAME, "replay: bad name");
    is_str(replay("{\"bus\":\"hr\",\"from\":1,\"to\":2,\"name\":5}", rp),
           MSG_NAME, "replay: name a number");
    is_str(replay("{\"bus\":\"hr\",\"from\":1,\"to\":2,\"name\":\"\"}", rp),
           MSG_NAME, "replay: empty name");

    n64 = repeat('x', 129);
    body = malloc(256);
    sprintf(body, "{\"bus\":\"hr\",\"from\":1,\"to\":2,\"name\":\"%s\"}",
            n64);
    is_str(replay(body, rp), MSG_NAME, "replay: a name of 129");
    sprintf(body, "{\"bus\":\"hr\",\"from\":1,\"to\":2,\"name\":\"%.128s\"}",
            n64);
    ok(replay(body, rp) == NULL && rp->name.len == 128,
       "replay: a name of 128");
    free(body);
    free(n64);

    free(rp);
}


int
main(void)
{
    test_name();
    test_id();
    test_limit();
    test_window();
    test_redrive();
    test_replay();

    free(buf);

    return tap_done();
}
