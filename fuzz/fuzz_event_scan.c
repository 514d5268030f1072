/*
 * libFuzzer harness: eb_event_scan (src/core/eb_event_scan.c). Every
 * member's span must lie inside the text, in order, and parse alone as
 * one JSON value of the member's kind; a string's text is its decoded
 * value (unpaired surrogates as U+FFFD); the scan accepts the objects yajl's tree reader does, except
 * that it takes no comments (the tree reader allows them). The values it
 * finds at simple JSONPaths (eb_event_scan_paths) are those of the tree
 * the transforms read (eb_transform_parse_event): the same value, or
 * none.
 */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_tree.h>

#include "eb_buf.h"
#include "eb_event_scan.h"
#include "eb_json_string.h"
#include "eb_jsonpath.h"
#include "eb_transform.h"


/* names and indexes short inputs reach; escaped, repeated, deep */
static const char  *exprs[] = {
    "$.a", "$.b", "$.a.b", "$.a.a", "$.a[0]", "$.a[1]", "$.a[0].b",
    "$.a.b[2]", "$.b[0][1]", "$['']", "$.a.b.c.d", "$['\u00e9']",
    "$['a\\b']", "$.a[0][0][0]", "$.id", "$.data.body.name",
    "$.a[10]", "$.b.a", "$['\"']",
};
#define NEXPRS  (sizeof(exprs) / sizeof(exprs[0]))

static eb_jsonpath_t  *paths[NEXPRS];


/* the value as compact JSON, the tree's writer */
static char *
json_of(yajl_val v)
{
    eb_buf_t  b;

    eb_buf_init(&b);
    if (eb_jsonpath_write_json(&b, v) != 0 || eb_buf_append(&b, "", 1) != 0)
    {
        abort();
    }
    return (char *) b.data;
}


/* what the scan found at each path against the reference tree */
static void
check_paths(const uint8_t *data, size_t size)
{
    size_t                    i;
    char                      err[256], *a, *b;
    yajl_val                  tree, v, w;
    eb_event_scan_t           s;
    const eb_event_member_t  *m;

    if (paths[0] == NULL) {
        for (i = 0; i < NEXPRS; i++) {
            paths[i] = eb_jsonpath_compile(exprs[i], strlen(exprs[i]),
                                           NULL, 0);
            if (paths[i] == NULL || !eb_jsonpath_is_simple(paths[i])) {
                abort();
            }
        }
    }

    if (eb_event_scan_paths(data, size, &s,
                            (const eb_jsonpath_t *const *) paths, NEXPRS,
                            err, sizeof(err)) != 0)
    {
        return;
    }

    tree = eb_transform_parse_event(data, size, err, sizeof(err));
    if (tree == NULL) {
        abort();            /* the scan took it: so must the tree */
    }

    for (i = 0; i < NEXPRS; i++) {
        v = eb_jsonpath_first(paths[i], tree);
        m = eb_event_scan_found(&s, i);

        if ((v == NULL) != (m == NULL)) {
            abort();
        }
        if (m == NULL) {
            continue;
        }
        if (m->start >= m->end || m->end > size) {
            abort();
        }

        switch (m->kind) {
        case EB_EV_STRING:
            if (!YAJL_IS_STRING(v) || strcmp(v->u.string, m->text) != 0) {
                abort();
            }
            break;
        case EB_EV_NUMBER:
            if (!YAJL_IS_NUMBER(v) || strcmp(v->u.number.r, m->text) != 0) {
                abort();
            }
            break;
        case EB_EV_TRUE:
        case EB_EV_FALSE:
        case EB_EV_NULL:
            a = json_of(v);
            if (m->kind == EB_EV_NULL ? strcmp(a, "null") != 0
                                      : strcmp(a, m->text) != 0)
            {
                abort();
            }
            free(a);
            break;
        default:
            /* a container: its span reads as the tree's value */
            w = eb_transform_parse_event(data + m->start, m->end - m->start,
                                         err, sizeof(err));
            if (w == NULL) {
                abort();
            }
            a = json_of(v);
            b = json_of(w);
            if (strcmp(a, b) != 0) {
                abort();
            }
            free(a);
            free(b);
            yajl_tree_free(w);
        }
    }

    yajl_tree_free(tree);
    eb_event_scan_free(&s);
}


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
        check_paths(data, size);
    }
    yajl_tree_free(tree);
    free(text);
    return 0;
}
