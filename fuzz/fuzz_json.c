/*
 * libFuzzer harness: JSON validation and compaction (src/core/eb_json.c,
 * eb_json_string.c). What validation accepts must stay valid once
 * minified, and unpaired surrogates replaced must leave valid JSON.
 */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "eb_json.h"
#include "eb_json_string.h"
#include "eb_utf8.h"


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char            err[256], err2[256];
    size_t          n, m;
    unsigned char  *copy;
    eb_json_rc_t    rc;

    (void) eb_json_content_type(data, size);
    (void) eb_utf8_invalid_at(data, size);

    copy = malloc(size ? size : 1);
    if (copy == NULL) {
        return 0;
    }

    rc = eb_json_validate(data, size, 64, NULL, err, sizeof(err));

    /* the one-pass form answers the same, with the same message, and
     * compacts as eb_json_minify() does */
    memcpy(copy, data, size);
    if (eb_json_validate_minify(data, size, 64, NULL, copy, &n, err2,
                                sizeof(err2)) != rc
        || strcmp(err, err2) != 0)
    {
        abort();
    }

    if (rc == EB_JSON_OK) {
        if (eb_json_validate_minify(copy, n, 64, NULL, copy, &m, err2,
                                    sizeof(err2)) != EB_JSON_OK
            || m != n)
        {
            abort();            /* compacting is not idempotent */
        }
    }

    memcpy(copy, data, size);
    (void) eb_json_surrogates_replace(copy, size);

    (void) eb_json_validate_keys(data, size, 64, 1, NULL, err, sizeof(err));
    (void) eb_json_validate_keys(data, size, 64, EB_JSON_DUP_ANY, NULL, err,
                                 sizeof(err));

    if (rc == EB_JSON_OK) {
        if (eb_json_validate(copy, size, 64, NULL, err, sizeof(err))
            != EB_JSON_OK)
        {
            abort();            /* replacing broke a valid text */
        }

        n = eb_json_minify(copy, size);

        if (eb_json_validate(copy, n, 64, NULL, err, sizeof(err))
            != EB_JSON_OK)
        {
            abort();            /* minifying broke a valid text */
        }
    }

    free(copy);

    return 0;
}
