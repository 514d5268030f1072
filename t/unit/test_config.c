#include <stdlib.h>
#include <string.h>

#include "tap.h"
#include "eb_config.h"


#define S(s)  (const unsigned char *) (s), sizeof(s) - 1


static const char  seed_config[] =
    "{\n"
    "  \"connections\": {\n"
    "    \"crm-key\": {\"type\": \"api_key\", \"header\": \"X-Api-Key\",\n"
    "                  \"value\": \"s3cret\"}\n"
    "  },\n"
    "  \"targets\": {\n"
    "    \"users-db\": {\"type\": \"mysql\", \"host\": \"127.0.0.1\",\n"
    "      \"user\": \"eb\", \"database\": \"hr\", \"table\": \"user_info\",\n"
    "      \"columns\": {\"name\": \"$.data.body.name\",\n"
    "                    \"userId\": \"$.data.body.userId\"},\n"
    "      \"retry\": {\"strategy\": \"backoff\", \"attempts\": 3,\n"
    "                \"interval\": \"10s\"}},\n"
    "    \"crm\": {\"type\": \"http\", \"url\": \"https://crm.example/api\",\n"
    "             \"connection\": \"crm-key\", \"timeout\": 2500}\n"
    "  },\n"
    "  \"buses\": {\n"
    "    \"hr\": {\n"
    "      \"rules\": {\n"
    "        \"new-employee\": {\n"
    "          \"pattern\": {\"source\": [\"my.dingtalk\"],\n"
    "            \"data\": {\"body\": {\"syncAction\": [\"user_add_org\"]}}},\n"
    "          \"targets\": [{\"target\": \"users-db\"},\n"
    "            {\"target\": \"crm\", \"transform\": {\"form\": \"TEMPLATE\",\n"
    "              \"value\": {\"n\": \"$.data.body.name\"},\n"
    "              \"template\": \"{\\\"user\\\": \\\"${n}\\\"}\"}}]\n"
    "        },\n"
    "        \"off\": {\"enabled\": false, \"pattern\": {\"source\": [\"x\"]},\n"
    "                 \"targets\": [{\"target\": \"crm\"}]},\n"
    "        \"all-hr\": {\"pattern\": {\"aliyuneventbusname\": [\"hr\"]},\n"
    "                    \"targets\": [{\"target\": \"crm\"}]}\n"
    "      }\n"
    "    },\n"
    "    \"empty\": {}\n"
    "  }\n"
    "}\n";


static const char  seed_event[] =
    "{\"specversion\":\"1.0\",\"id\":\"1\",\"source\":\"my.dingtalk\","
    "\"type\":\"eventbridge:Events:HTTPEvent\","
    "\"aliyuneventbusname\":\"hr\","
    "\"data\":{\"body\":{\"syncAction\":\"user_add_org\",\"name\":\"x\"}}}";


static eb_config_t *
parse(const char *text, char *err, size_t errlen)
{
    return eb_config_parse("buses.json", (const unsigned char *) text,
                           strlen(text), err, errlen);
}


/* Expects the text to be refused with a message containing want. */
static void
refused(const char *text, const char *want, const char *name)
{
    char          err[EB_CONFIG_ERROR_MAX];
    eb_config_t  *cf;

    cf = parse(text, err, sizeof(err));
    ok(cf == NULL && strstr(err, want) != NULL, "refused: %s", name);

    if (cf != NULL || strstr(err, want) == NULL) {
        printf("#   message: %s\n#   wanted:  %s\n", err, want);
    }

    eb_config_free(cf);
}


static void
test_seed(void)
{
    int                       n;
    char                      err[EB_CONFIG_ERROR_MAX];
    uint32_t                  ids[8];
    uint64_t                  ms;
    eb_config_t              *cf;
    eb_match_scratch_t       *s;
    const eb_config_bus_t    *bus;

    cf = parse(seed_config, err, sizeof(err));
    ok(cf != NULL, "the seed walkthrough's configuration loads");
    if (cf == NULL) {
        printf("#   %s\n", err);
        return;
    }

    is_int(cf->nconnections, 1, "one connection");
    is_int(cf->ntargets, 2, "two targets");
    is_int(cf->nbuses, 2, "two buses");
    is_int(cf->targets[1].connection, 0, "crm uses crm-key");
    is_int(cf->targets[0].type, EB_TARGET_MYSQL, "users-db is mysql");

    bus = eb_config_bus(cf, "hr", 2);
    ok(bus != NULL, "bus hr found");
    ok(eb_config_bus(cf, "h", 1) == NULL, "no bus h");
    ok(eb_config_bus(cf, "empty", 5) != NULL, "bus without rules");

    is_int(bus->nrules, 3, "three rules");
    is_str(bus->rules[0].name, "new-employee", "rule 0 name");
    is_int(bus->rules[0].ntargets, 2, "two targets on rule 0");
    ok(bus->rules[0].targets[0].transform == NULL, "no transform: ORIGINAL");
    ok(bus->rules[0].targets[1].transform != NULL, "template compiled");
    is_int(bus->rules[1].enabled, 0, "rule off is disabled");

    s = eb_match_scratch_new();
    n = eb_ruleset_match_json(bus->ruleset, s,
                              (const unsigned char *) seed_event,
                              strlen(seed_event), ids, 8);
    is_int(n, 2, "the seed event matches two rules");
    ok(n == 2 && ids[0] == 0 && ids[1] == 2,
       "new-employee and all-hr, not the disabled rule");
    eb_match_scratch_free(s);

    ok(eb_config_duration(yajl_tree_get(cf->targets[0].spec,
                              (const char *[]) { "retry", "interval", NULL },
                              yajl_t_any), &ms) == 0 && ms == 10000,
       "duration \"10s\" is 10000 ms");

    eb_config_free(cf);
}


static void
test_errors(void)
{
    refused("{\"buses\": {\"a\": {}},\n  \"targets\" {}}",
            "buses.json:2:13: invalid JSON", "syntax error with line:column");
    refused("", "invalid JSON", "empty file");
    refused("[]", "(top level): must be an object", "not an object");
    refused("{}", "missing key \"buses\"", "no buses");
    refused("{\"buses\": {}, \"bus\": {}}", "unknown key \"bus\"",
            "unknown top-level key");
    refused("{\"buses\": {\"a b\": {}}}", "buses.a b: invalid bus name",
            "bad bus name");
    refused("{\"buses\": {\"b\": {\"rules\": {\"r\": {\"pattern\": "
            "{\"source\": [\"x\"]}, \"targets\": [{\"target\": \"nope\"}]}}}}}",
            "buses.b.rules.r.targets[0]: undefined target \"nope\"",
            "undefined target names the rule");
    refused("{\"buses\": {\"b\": {\"rules\": {\"r\": {\"pattern\": "
            "{\"source\": [\"x\"]}, \"targets\": []}}}}}",
            "buses.b.rules.r.targets: must be a non-empty array",
            "no targets");
    refused("{\"targets\": {\"t\": {\"type\": \"http\", \"url\": "
            "\"https://x.example\"}}, \"buses\": {\"b\": {\"rules\": {\"r\": "
            "{\"pattern\": {\"source\": {\"prefx\": \"a\"}}, \"targets\": "
            "[{\"target\": \"t\"}]}}}}}",
            "buses.b.rules.r.pattern: ", "invalid pattern names the rule");
    refused("{\"targets\": {\"t\": {\"type\": \"http\", \"url\": "
            "\"https://x.example\"}}, \"buses\": {\"b\": {\"rules\": {\"r\": "
            "{\"enabled\": false, \"pattern\": {\"source\": "
            "[{\"prefx\": \"a\"}]}, \"targets\": [{\"target\": \"t\"}]}}}}}",
            "buses.b.rules.r.pattern: ",
            "a disabled rule's pattern is checked too");
    refused("{\"targets\": {\"t\": {\"type\": \"http\", \"url\": "
            "\"https://x.example\", \"connection\": \"c\"}}, "
            "\"buses\": {}}",
            "targets.t.connection: undefined connection \"c\"",
            "undefined connection");
    refused("{\"targets\": {\"t\": {\"type\": \"http\", \"url\": "
            "\"ftp://x\"}}, \"buses\": {}}",
            "targets.t.url: must be an http:// or https:// URL", "bad URL");
    refused("{\"targets\": {\"t\": {\"type\": \"smtp\"}}, \"buses\": {}}",
            "targets.t: \"type\" must be one of", "unknown target type");
    refused("{\"targets\": {\"t\": {\"type\": \"http\", \"url\": "
            "\"https://x.example\", \"retries\": 3}}, \"buses\": {}}",
            "targets.t: unknown key \"retries\"", "unknown target key");
    refused("{\"targets\": {\"t\": {\"type\": \"http\", \"url\": "
            "\"https://x.example\", \"timeout\": \"5 s\"}}, \"buses\": {}}",
            "targets.t.timeout: must be a duration", "bad duration");
    refused("{\"targets\": {\"t\": {\"type\": \"http\", \"url\": "
            "\"https://x.example\", \"retry\": {\"strategy\": \"linear\"}}}, "
            "\"buses\": {}}",
            "targets.t.retry.strategy: must be one of \"backoff\", "
            "\"exponential\"", "bad retry strategy");
    refused("{\"targets\": {\"d\": {\"type\": \"postgresql\", \"host\": "
            "\"h\", \"user\": \"u\", \"database\": \"d\", \"table\": \"t\", "
            "\"columns\": {\"c\": \"data.x\"}}}, \"buses\": {}}",
            "targets.d.columns.c: invalid JSONPath \"data.x\"",
            "bad column JSONPath");
    refused("{\"targets\": {\"d\": {\"type\": \"mysql\", \"host\": \"h\", "
            "\"user\": \"u\", \"database\": \"d\", \"table\": \"t\"}}, "
            "\"buses\": {}}",
            "targets.d: missing key \"columns\"", "missing columns");
    refused("{\"connections\": {\"c\": {\"type\": \"oauth2\", "
            "\"token_url\": \"https://id.example/token\", \"client_id\": "
            "\"i\"}}, \"buses\": {}}",
            "connections.c: missing key \"client_secret\"",
            "oauth2 without secret");
    refused("{\"connections\": {\"c\": {\"type\": \"basic\", "
            "\"username\": \"u\", \"password\": \"p\"}}, "
            "\"targets\": {\"t\": {\"type\": \"http\", \"url\": "
            "\"http://x.example\", \"connection\": \"c\"}}, \"buses\": {}}",
            "targets.t.connection: target \"t\" would send the credentials "
            "of connection \"c\" (basic) in clear: its url is http://",
            "credentials to a plain http:// url");
    refused("{\"connections\": {\"c\": {\"type\": \"oauth2\", "
            "\"token_url\": \"http://id.example/token\", \"client_id\": "
            "\"i\", \"client_secret\": \"s\"}}, "
            "\"targets\": {\"t\": {\"type\": \"cloudevents\", \"url\": "
            "\"https://x.example\", \"connection\": \"c\"}}, \"buses\": {}}",
            "targets.t.connection: connection \"c\" (oauth2) would send its "
            "client secret in clear: its token_url is http://",
            "a client secret to a plain http:// token_url");
    refused("{\"connections\": {\"c\": {\"type\": \"oauth2\", "
            "\"token_url\": \"https://id.example/token\", \"client_id\": "
            "\"i\", \"client_secret\": \"s\", \"method\": \"DELETE\", "
            "\"client_auth\": \"post\"}}, \"buses\": {}}",
            "connections.c.client_auth: \"post\" with method DELETE would "
            "put the client secret in the token URL",
            "client_auth post with DELETE");
    refused("{\"connections\": {\"c\": {\"type\": \"oauth2\", "
            "\"token_url\": \"https://id.example/token\", \"client_id\": "
            "\"i\", \"client_secret\": \"s\", \"client_auth\": "
            "\"jwt\"}}, \"buses\": {}}",
            "connections.c.client_auth: must be one of \"basic\", \"post\"",
            "unknown client_auth");
    refused("{\"targets\": {\"t\": {\"type\": \"http\", \"url\": "
            "\"https://x.example\"}}, \"buses\": {\"b\": {\"rules\": {\"r\": "
            "{\"pattern\": {\"source\": [\"x\"]}, \"targets\": [{\"target\": "
            "\"t\", \"transform\": {\"form\": \"TEMPLATE\", \"value\": "
            "{\"a\": \"$.x\"}, \"template\": \"${b}\"}}]}}}}}",
            "buses.b.rules.r.targets[0].transform: ",
            "template with an unknown variable");
    refused("{\"targets\": {\"t\": {\"type\": \"http\", \"url\": "
            "\"https://x.example\"}}, \"buses\": {\"b\": {\"rules\": {\"r\": "
            "{\"pattern\": {\"source\": [\"x\"]}, \"targets\": [{\"target\": "
            "\"t\", \"transform\": {\"form\": \"SOMETHING\"}}]}}}}}",
            "transform.form: must be one of", "unknown transform form");
}


static void
test_load_file(void)
{
    char          err[EB_CONFIG_ERROR_MAX];
    eb_config_t  *cf;

    cf = eb_config_load("/nonexistent/buses.json", err, sizeof(err));
    ok(cf == NULL && strstr(err, "/nonexistent/buses.json: cannot open")
                     != NULL,
       "missing file named in the message");
}


/* An empty text (UBSan: no memcpy from NULL); JSON yajl's tree would take */
static void
test_empty(void)
{
    char          err[EB_CONFIG_ERROR_MAX];
    eb_config_t  *cf;

    cf = eb_config_parse("buses.json", NULL, 0, err, sizeof(err));
    ok(cf == NULL, "an empty file is refused");
    eb_config_free(cf);

    cf = eb_config_parse("buses.json", S("{\"buses\":{}}\"x"), err,
                         sizeof(err));
    ok(cf == NULL && strstr(err, "a string left open") != NULL,
       "a string left open after the object is refused");
    eb_config_free(cf);

    cf = eb_config_parse("buses.json", S("{\"buses\":{},\"buses\":{}}"), err,
                         sizeof(err));
    ok(cf == NULL && strstr(err, "duplicate key \"buses\"") != NULL,
       "a key twice is refused");
    eb_config_free(cf);
}


/* "retention" of a bus: age, length or both, checked with the file */
static void
test_retention(void)
{
    char                    err[EB_CONFIG_ERROR_MAX];
    eb_config_t            *cf;
    const eb_config_bus_t  *b;

    cf = parse("{\"buses\": {\"a\": {\"retention\": {\"age\": \"7d\", "
               "\"length\": 1000000}}, \"b\": {\"retention\": {\"age\": "
               "2500}}, \"c\": {}}}", err, sizeof(err));
    ok(cf != NULL, "retention: age and length load");
    if (cf == NULL) {
        printf("#   %s\n", err);
        return;
    }

    b = eb_config_bus(cf, "a", 1);
    ok(b->retention_age_ms == 7ULL * 86400 * 1000, "retention: 7d in ms");
    ok(b->retention_length == 1000000, "retention: length");
    b = eb_config_bus(cf, "b", 1);
    ok(b->retention_age_ms == 2500 && b->retention_length == 0,
       "retention: an age in ms alone");
    b = eb_config_bus(cf, "c", 1);
    ok(b->retention_age_ms == 0 && b->retention_length == 0,
       "retention: none when absent");
    eb_config_free(cf);

    refused("{\"buses\": {\"a\": {\"retention\": {}}}}",
            "buses.a.retention: set \"age\" (a duration), \"length\"",
            "retention without age or length");
    refused("{\"buses\": {\"a\": {\"retention\": {\"age\": \"7 days\"}}}}",
            "buses.a.retention.age: must be a duration",
            "retention: a bad age");
    refused("{\"buses\": {\"a\": {\"retention\": {\"age\": \"0s\"}}}}",
            "buses.a.retention.age: must be above 0",
            "retention: an age of 0");
    refused("{\"buses\": {\"a\": {\"retention\": {\"length\": 0}}}}",
            "buses.a.retention.length: must be an integer from 1 to",
            "retention: a length of 0");
    refused("{\"buses\": {\"a\": {\"retention\": {\"length\": 1.5}}}}",
            "buses.a.retention.length: must be an integer from 1 to",
            "retention: a fractional length");
    refused("{\"buses\": {\"a\": {\"retention\": {\"length\": \"10\"}}}}",
            "buses.a.retention.length: must be an integer from 1 to",
            "retention: a length as a string");
    refused("{\"buses\": {\"a\": {\"retention\": {\"days\": 7}}}}",
            "buses.a.retention: unknown key \"days\" (known: age, length)",
            "retention: an unknown key");
    refused("{\"buses\": {\"a\": {\"retention\": 7}}}",
            "buses.a.retention: must be an object", "retention: not an object");
}


/* credentials over plain http:// pass only when the connection says so */
static void
test_insecure(void)
{
    char          err[EB_CONFIG_ERROR_MAX];
    eb_config_t  *cf;

    cf = parse("{\"connections\": {\"c\": {\"type\": \"oauth2\", "
               "\"insecure\": true, \"token_url\": \"http://127.0.0.1/t\", "
               "\"client_id\": \"i\", \"client_secret\": \"s\"}}, "
               "\"targets\": {\"t\": {\"type\": \"http\", \"url\": "
               "\"http://127.0.0.1/h\", \"connection\": \"c\"}}, "
               "\"buses\": {}}", err, sizeof(err));
    ok(cf != NULL, "plain http:// with \"insecure\": true is accepted");
    if (cf == NULL) {
        printf("#   message: %s\n", err);
    }
    eb_config_free(cf);
}


/* every secret of the file: inline, KEY_env or KEY_file, one of them */
static void
test_secret_sources(void)
{
    char          err[EB_CONFIG_ERROR_MAX];
    eb_config_t  *cf;

    cf = parse("{\"connections\": {"
               "\"b\": {\"type\": \"basic\", \"username\": \"u\", "
               "\"password_env\": \"CRM_PASSWORD\"}, "
               "\"k\": {\"type\": \"api_key\", \"header\": \"X-Key\", "
               "\"value_file\": \"/etc/eventbridge/key\"}, "
               "\"o\": {\"type\": \"oauth2\", \"token_url\": "
               "\"https://id.example/t\", \"client_id\": \"i\", "
               "\"client_secret_file\": \"/etc/eventbridge/o\"}}, "
               "\"targets\": {"
               "\"m\": {\"type\": \"mysql\", \"host\": \"h\", "
               "\"user\": \"u\", \"password_file\": \"/run/pw\", "
               "\"database\": \"d\", \"table\": \"t\", "
               "\"columns\": {\"c\": \"$.id\"}}, "
               "\"r\": {\"type\": \"redis\", \"address\": \"h:6379\", "
               "\"stream\": \"s\", \"password_env\": \"R\"}, "
               "\"d\": {\"type\": \"dingtalk\", \"url\": "
               "\"https://oapi.example/robot/send\", \"secret_file\": "
               "\"/etc/eventbridge/robot\", \"msgtype\": \"text\", "
               "\"text\": \"hi\"}}, "
               "\"buses\": {}}", err, sizeof(err));
    ok(cf != NULL, "secrets from KEY_env and KEY_file are accepted");
    if (cf == NULL) {
        printf("#   message: %s\n", err);
    }
    eb_config_free(cf);

    refused("{\"connections\": {\"b\": {\"type\": \"basic\", "
            "\"username\": \"u\", \"password\": \"p\", "
            "\"password_file\": \"/f\"}}, \"buses\": {}}",
            "connections.b: \"password\", \"password_env\" and "
            "\"password_file\" exclude each other: give one",
            "a secret given twice");
    refused("{\"connections\": {\"b\": {\"type\": \"basic\", "
            "\"username\": \"u\"}}, \"buses\": {}}",
            "connections.b: missing key \"password\" (or \"password_env\", "
            "\"password_file\")", "a required secret missing");
    refused("{\"connections\": {\"b\": {\"type\": \"basic\", "
            "\"username\": \"u\", \"password_env\": \"\"}}, "
            "\"buses\": {}}",
            "connections.b.password_env: must be a non-empty string",
            "an empty variable name");
    refused("{\"connections\": {\"b\": {\"type\": \"basic\", "
            "\"username\": \"u\", \"password_vault\": \"x\"}}, "
            "\"buses\": {}}",
            "connections.b: unknown key \"password_vault\"",
            "other suffixes stay unknown");
}


int
main(void)
{
    test_seed();
    test_retention();
    test_errors();
    test_insecure();
    test_secret_sources();
    test_load_file();
    test_empty();

    return tap_done();
}
