/*
 * libFuzzer harness: matching only (eb_pattern.h). A ruleset of every
 * operator is compiled once; each input is an event, matched both ways
 * (JSON text, parsed event), which must agree. fuzz_pattern compiles a
 * pattern per input; this one spends its executions on the event parser
 * and the matcher, the request path.
 */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "eb_pattern.h"


#define EB_FUZZ_IDS  64

static const char  *eb_fuzz_rules[] = {
    "{\"source\":[\"s\",\"my.dingtalk\"]}",
    "{\"type\":[{\"prefix\":\"user\"}],\"data\":{\"n\":[{\"exists\":true}]}}",
    "{\"data\":{\"s\":[{\"suffix\":\".json\"},{\"equals-ignore-case\":\"\\u00c9T\\u00c9\"}]}}",
    "{\"data\":{\"s\":[{\"wildcard\":\"*/lib/*\"}]}}",
    "{\"data\":{\"s\":[{\"anything-but\":[\"x\",\"y\"]}]}}",
    "{\"data\":{\"s\":[{\"anything-but\":{\"prefix\":\"a\"}}]}}",
    "{\"data\":{\"n\":[{\"numeric\":[\">\",0,\"<=\",100]}]}}",
    "{\"data\":{\"n\":[{\"numeric\":[\">\",9007199254740992]}]}}",
    "{\"data\":{\"n\":[9007199254740993,-0,1e3]}}",
    "{\"data\":{\"ip\":[{\"cidr\":\"10.0.0.0/24\"},{\"cidr\":\"2001:db8::/32\"}]}}",
    "{\"data\":{\"s\":[{\"regex\":\"^a[0-9]+$\"}]}}",
    "{\"data\":{\"a\":{\"b\":[{\"exists\":false}]}}}",
    "{\"$or\":[{\"data\":{\"n\":[1]}},{\"data\":{\"s\":[\"1\"]}}]}",
    "{\"data\":{\"b\":[true,null],\"s\":[\"\"]}}",
    "{\"data\":{\"arr\":{\"k\":[\"v\"],\"n\":[{\"numeric\":[\"<\",0]}]}}}",
    "{\"data\":{\"s\":[{\"equals-ignore-case\":\"\"}]}}",
    NULL
};

static eb_ruleset_t        *eb_fuzz_rs;
static eb_match_scratch_t  *eb_fuzz_scratch;
static eb_pattern_event_t  *eb_fuzz_event;


int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    char      err[512];
    uint32_t  i;

    eb_fuzz_rs = eb_ruleset_new();
    eb_fuzz_scratch = eb_match_scratch_new();
    eb_fuzz_event = eb_pattern_event_new();

    if (eb_fuzz_rs == NULL || eb_fuzz_scratch == NULL || eb_fuzz_event == NULL)
    {
        abort();
    }

    for (i = 0; eb_fuzz_rules[i]; i++) {
        if (eb_ruleset_add(eb_fuzz_rs, i + 1,
                           (const unsigned char *) eb_fuzz_rules[i],
                           strlen(eb_fuzz_rules[i]), err, sizeof(err))
            != 0)
        {
            abort();                    /* a rule of this file is wrong */
        }
    }

    if (eb_ruleset_compile(eb_fuzz_rs, err, sizeof(err)) != 0) {
        abort();
    }

    return 0;
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int       n1, n2;
    uint32_t  ids1[EB_FUZZ_IDS], ids2[EB_FUZZ_IDS];

    n1 = eb_ruleset_match_json(eb_fuzz_rs, eb_fuzz_scratch, data, size,
                               ids1, EB_FUZZ_IDS);

    if (eb_pattern_event_parse(eb_fuzz_event, eb_fuzz_rs, data, size) == 0) {
        n2 = eb_ruleset_match_event(eb_fuzz_rs, eb_fuzz_scratch,
                                    eb_fuzz_event, ids2, EB_FUZZ_IDS);

        if (n1 != n2 || (n1 > 0 && memcmp(ids1, ids2, n1 * 4) != 0)) {
            abort();
        }
    }

    return 0;
}
