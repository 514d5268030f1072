/*
 * libFuzzer harness: eb_event_scan (src/core/eb_event_scan.c). Every
 * member's span must lie inside the text, in order, and parse alone as
 * one JSON value of the member's kind; a string's text is its decoded
 * value (unpaired surrogates as U+FFFD); the scan accepts the objects yajl's tree reader does, except
 * that it takes no comments (the tree reader allows them).
 */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_tree.h>

#include "eb_event_scan.h"
#include "eb_json_string.h"


static int
kind_of(yajl_val v)
{
    if (YAJL_IS_STRING(v)) return EB_EV_STRING;
    if (YAJL_IS_NUMBER(v)) return EB_EV_NUMBER;
    if (YAJL_IS_TRUE(v)) return EB_EV_TRUE;
    if (YAJL_IS_FALSE(v)) return EB_EV_FALSE;
    if (YAJL_IS_OBJECT(v)) return EB_EV_OBJECT;
    if (YAJL_IS_ARRAY(v)) return EB_EV_ARRAY;
    return EB_EV_NULL;
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t                    i, prev = 0;
    char                      err[256], *text, *one;
    yajl_val                  tree, v;
    eb_event_scan_t           s;
    const eb_event_member_t  *m;
    int                       rc;

    /* yajl_tree_parse reads a C string: inputs with a NUL are skipped */
    if (memchr(data, '\0', size) != NULL) {
        return 0;
    }

    text = malloc(size + 1);
    if (text == NULL) {
        return 0;
    }
    memcpy(text, data, size);
    text[size] = '\0';

    rc = eb_event_scan(data, size, &s, err, sizeof(err));
    tree = yajl_tree_parse(text, NULL, 0);

    if (rc == 0 ? !(tree != NULL && YAJL_IS_OBJECT(tree))
                : (tree != NULL && YAJL_IS_OBJECT(tree)
                   && memchr(data, '/', size) == NULL))
    {
        abort();
    }

    for (i = 0; rc == 0 && i < s.n; i++) {
        m = &s.members[i];
        if (m->start < prev || m->end <= m->start || m->end > size) {
            abort();
        }
        prev = m->end;

        /* the reference reads unpaired surrogates as the project does:
         * U+FFFD (yajl alone writes '?' or bytes that are not UTF-8) */
        one = strndup(text + m->start, m->end - m->start);
        if (one != NULL) {
            (void) eb_json_surrogates_replace((unsigned char *) one,
                                              strlen(one));
        }
        v = one ? yajl_tree_parse(one, NULL, 0) : NULL;
        if (one != NULL && (v == NULL || kind_of(v) != (int) m->kind)) {
            abort();
        }
        if (v != NULL && m->kind == EB_EV_STRING
            && (strlen(v->u.string) != strlen(m->text)
                || strcmp(v->u.string, m->text) != 0))
        {
            abort();
        }
        yajl_tree_free(v);
        free(one);
    }

    if (rc == 0) {
        eb_event_scan_free(&s);
    }
    yajl_tree_free(tree);
    free(text);
    return 0;
}
