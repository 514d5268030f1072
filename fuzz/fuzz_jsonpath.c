/*
 * libFuzzer harness: JSONPath (eb_jsonpath.h). The first line is an
 * expression, the rest an event it is evaluated against every way.
 */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "eb_jsonpath.h"
#include "eb_transform.h"


static int
eb_fuzz_visit(void *ctx, yajl_val v)
{
    return eb_jsonpath_write_json(ctx, v) == 0 ? 0 : -1;
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char            err[256];
    size_t          elen;
    eb_buf_t        b;
    yajl_val        root;
    const uint8_t  *nl, *ev;
    eb_jsonpath_t  *p;

    nl = memchr(data, '\n', size);
    elen = nl ? (size_t) (nl - data) : size;
    ev = nl ? nl + 1 : data + size;

    p = eb_jsonpath_compile((const char *) data, elen, err, sizeof(err));
    if (p == NULL) {
        return 0;
    }

    (void) eb_jsonpath_expr(p);
    (void) eb_jsonpath_is_definite(p);

    root = eb_transform_parse_event(ev, (size_t) (data + size - ev), err,
                                    sizeof(err));
    if (root) {
        eb_buf_init(&b);
        (void) eb_jsonpath_text(p, root, &b);
        (void) eb_jsonpath_walk(p, root, eb_fuzz_visit, &b);
        (void) eb_jsonpath_first(p, root);
        eb_buf_free(&b);
        yajl_tree_free(root);
    }

    eb_jsonpath_free(p);

    return 0;
}
