/*
 * libFuzzer harness: the bus configuration file (eb_config.h), with its
 * patterns, transforms and column JSONPaths.
 */

#include <stdint.h>
#include <stdlib.h>

#include "eb_config.h"


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char          err[EB_CONFIG_ERROR_MAX];
    eb_config_t  *cf;

    cf = eb_config_parse("fuzz.json", data, size, err, sizeof(err));
    if (cf == NULL) {
        return 0;
    }

    (void) eb_config_bus(cf, "bus", 3);
    eb_config_free(cf);

    return 0;
}
