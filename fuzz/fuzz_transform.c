/*
 * libFuzzer harness: transforms (eb_transform.h). The first byte picks
 * the form; then three lines: the value, the template, and the event
 * the compiled transform is applied to, from text and from a tree. A
 * TEMPLATE of names and indexes applied to what the event's scan found
 * (eb_transform_apply_found) must give the tree's output byte for byte.
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
    size_t           vlen, tlen, n;
    eb_buf_t         out, found;
    eb_event_scan_t  s;
    eb_transform_rc_t  rc;
    const eb_jsonpath_t *const  *paths;
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
        eb_buf_reset(&out);
        rc = eb_transform_apply_tree(t, root, NULL, 0, &out, err,
                                     sizeof(err));
        n = eb_transform_scan_paths(t, &paths);

        if (n && rc == EB_TRANSFORM_OK
            && eb_event_scan_paths(p, (size_t) (end - p), &s, paths, n, err,
                                   sizeof(err)) == 0)
        {
            eb_buf_init(&found);
            rc = eb_transform_apply_found(t, &s, 0, &found, err, sizeof(err));
            if (rc == EB_TRANSFORM_OK
                && (found.len != out.len
                    || (out.len && memcmp(found.data, out.data, out.len))))
            {
                abort();
            }
            if (rc != EB_TRANSFORM_OK && rc != EB_TRANSFORM_TREE) {
                abort();
            }
            eb_buf_free(&found);
            eb_event_scan_free(&s);
        }
        yajl_tree_free(root);
    }

    eb_buf_free(&out);
    eb_transform_free(t);

    return 0;
}
