/*
 * libFuzzer harness: transforms (eb_transform.h). The first byte picks
 * the form; then three lines: the value, the template, and the event
 * the compiled transform is applied to, from text and from a tree.
 */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "eb_transform.h"


static const uint8_t *
eb_fuzz_line(const uint8_t **p, const uint8_t *end, size_t *len)
{
    const uint8_t  *s, *nl;

    s = *p;
    nl = memchr(s, '\n', (size_t) (end - s));

    *len = nl ? (size_t) (nl - s) : (size_t) (end - s);
    *p = nl ? nl + 1 : end;

    return *len ? s : NULL;
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char             err[256];
    size_t           vlen, tlen;
    eb_buf_t         out;
    yajl_val         root;
    const uint8_t   *p, *end, *value, *tmpl;
    eb_transform_t  *t;

    static const char  *forms[] = {
        "ORIGINAL", "JSONPATH", "CONSTANT", "TEMPLATE"
    };

    if (size == 0) {
        return 0;
    }

    p = data + 1;
    end = data + size;

    value = eb_fuzz_line(&p, end, &vlen);
    tmpl = eb_fuzz_line(&p, end, &tlen);

    t = eb_transform_compile(forms[data[0] % 4], value, vlen, tmpl, tlen,
                             err, sizeof(err));
    if (t == NULL) {
        return 0;
    }

    (void) eb_transform_form_name(eb_transform_form(t));
    (void) eb_transform_is_json(t);
    (void) eb_transform_needs_tree(t);

    eb_buf_init(&out);

    (void) eb_transform_apply(t, p, (size_t) (end - p), &out, err,
                              sizeof(err));

    root = eb_transform_parse_event(p, (size_t) (end - p), err, sizeof(err));
    if (root) {
        (void) eb_transform_apply_tree(t, root, NULL, 0, &out, err,
                                       sizeof(err));
        yajl_tree_free(root);
    }

    eb_buf_free(&out);
    eb_transform_free(t);

    return 0;
}
