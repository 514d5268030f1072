/*
 * libFuzzer harness: event patterns (eb_pattern.h). The first line is a
 * pattern, compiled alone and into a ruleset with a fixed one; the rest
 * is an event matched against it, both ways (JSON text, parsed event),
 * which must agree.
 */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "eb_pattern.h"


#define EB_FUZZ_IDS  8

static const char  eb_fuzz_fixed[] =
    "{\"source\":[\"s\"],\"data\":{\"n\":[{\"numeric\":[\">\",0,\"<\",100]}],"
    "\"s\":[{\"prefix\":\"a\"},{\"equals-ignore-case\":\"\"},"
    "{\"suffix\":\"\"},{\"anything-but\":[\"x\"]},{\"exists\":true}]}}";


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int                   n1, n2;
    char                  err[512];
    size_t                plen;
    uint32_t              ids1[EB_FUZZ_IDS], ids2[EB_FUZZ_IDS];
    eb_ruleset_t         *rs;
    const uint8_t        *nl, *ev;
    eb_match_scratch_t   *s;
    eb_pattern_event_t   *pe;

    nl = memchr(data, '\n', size);
    plen = nl ? (size_t) (nl - data) : size;
    ev = nl ? nl + 1 : data + size;

    (void) eb_pattern_check(data, plen, err, sizeof(err));

    rs = eb_ruleset_new();
    if (rs == NULL) {
        return 0;
    }

    (void) eb_ruleset_add(rs, 1, (const unsigned char *) eb_fuzz_fixed,
                          sizeof(eb_fuzz_fixed) - 1, err, sizeof(err));
    (void) eb_ruleset_add(rs, 2, data, plen, err, sizeof(err));

    if (eb_ruleset_compile(rs, err, sizeof(err)) != 0) {
        eb_ruleset_free(rs);
        return 0;
    }

    s = eb_match_scratch_new();
    pe = eb_pattern_event_new();

    if (s && pe) {
        n1 = eb_ruleset_match_json(rs, s, ev, (size_t) (data + size - ev),
                                   ids1, EB_FUZZ_IDS);

        if (eb_pattern_event_parse(pe, rs, ev, (size_t) (data + size - ev))
            == 0)
        {
            n2 = eb_ruleset_match_event(rs, s, pe, ids2, EB_FUZZ_IDS);

            if (n1 != n2 || (n1 > 0 && memcmp(ids1, ids2, n1 * 4) != 0)) {
                abort();
            }
        }
    }

    eb_pattern_event_free(pe);
    eb_match_scratch_free(s);
    eb_ruleset_free(rs);

    return 0;
}
