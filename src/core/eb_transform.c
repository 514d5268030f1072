#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/types.h>

#include "eb_json.h"
#include "eb_json_string.h"
#include "eb_jsonpath.h"
#include "eb_event_scan.h"
#include "eb_transform.h"


/* the nesting bound for checking a JSON template and TEMPLATE variables
 * (the bound of eventbridge_max_json_depth) */
#define EB_TRANSFORM_MAX_DEPTH  1024


typedef enum {
    EB_TPL_LITERAL,
    EB_TPL_TEXT,                 /* plain text: the value as text */
    EB_TPL_JSON_VALUE,           /* JSON, outside quotes: a JSON value */
    EB_TPL_JSON_STRING           /* JSON, inside quotes: escaped text */
} eb_tpl_kind_t;


typedef struct {
    eb_tpl_kind_t  kind;
    size_t         off;          /* LITERAL: text[off..off + len) */
    size_t         len;
    size_t         var;          /* others: vars[var] */
    int            in_string;    /* while compiling: inside JSON quotes */
} eb_tpl_part_t;


typedef struct {
    char           *name;
    eb_jsonpath_t  *path;
} eb_tpl_var_t;


struct eb_transform_s {
    eb_transform_form_t   form;
    int                   json;          /* TEMPLATE: the template is JSON */
    eb_jsonpath_t        *path;          /* JSONPATH */
    unsigned char        *text;          /* CONSTANT: value; TEMPLATE:
                                          * the literal parts */
    size_t                text_len;
    eb_tpl_var_t         *vars;
    size_t                nvars;
    eb_tpl_part_t        *parts;
    size_t                nparts;
    const eb_jsonpath_t **scan;          /* TEMPLATE: the variables'
                                          * paths, all simple; or NULL */
};


static const char  *eb_transform_forms[] = {
    "ORIGINAL",
    "JSONPATH",
    "CONSTANT",
    "TEMPLATE"
};


static void
eb_transform_err(char *err, size_t errlen, const char *fmt, ...)
{
    va_list  ap;

    if (err == NULL || errlen == 0) {
        return;
    }

    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}


static int
eb_transform_var_char(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
           || (c >= '0' && c <= '9') || c == '_';
}


static int
eb_transform_space(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}


const char *
eb_transform_form_name(eb_transform_form_t form)
{
    if ((size_t) form < sizeof(eb_transform_forms) / sizeof(char *)) {
        return eb_transform_forms[form];
    }

    return "?";
}


void
eb_transform_free(eb_transform_t *t)
{
    size_t  i;

    if (t == NULL) {
        return;
    }

    for (i = 0; i < t->nvars; i++) {
        free(t->vars[i].name);
        eb_jsonpath_free(t->vars[i].path);
    }

    free(t->vars);
    free(t->scan);
    free(t->parts);
    free(t->text);
    eb_jsonpath_free(t->path);
    free(t);
}


static unsigned char *
eb_transform_dup(const unsigned char *p, size_t len)
{
    unsigned char  *d;

    d = malloc(len + 1);
    if (d == NULL) {
        return NULL;
    }

    if (len) {
        memcpy(d, p, len);
    }

    d[len] = '\0';

    return d;
}


/* the variables of a TEMPLATE: a JSON object of name: JSONPath */
static int
eb_transform_vars(eb_transform_t *t, const unsigned char *value, size_t len,
    char *err, size_t errlen)
{
    char            msg[256];
    size_t          i, j, n;
    yajl_val        root, v;
    const char     *name;
    unsigned char  *copy;

    for (i = 0; i < len && eb_transform_space(value[i]); i++) {
        /* void */
    }

    if (i == len) {
        return 0;
    }

    /* a name twice is refused below, by name */
    if (eb_json_validate_keys(value, len, EB_TRANSFORM_MAX_DEPTH,
                              EB_JSON_DUP_ANY, NULL, msg, sizeof(msg))
        != EB_JSON_OK)
    {
        eb_transform_err(err, errlen, "TEMPLATE variables: %s", msg);
        return -1;
    }

    copy = eb_transform_dup(value, len);
    if (copy == NULL) {
        eb_transform_err(err, errlen, "out of memory");
        return -1;
    }

    root = yajl_tree_parse((const char *) copy, NULL, 0);
    free(copy);

    if (root == NULL) {
        eb_transform_err(err, errlen, "out of memory");
        return -1;
    }

    if (!YAJL_IS_OBJECT(root)) {
        eb_transform_err(err, errlen, "TEMPLATE variables: expected a JSON "
                         "object of names and JSONPaths, "
                         "like {\"name\":\"$.data.name\"}");
        goto failed;
    }

    n = root->u.object.len;

    t->vars = calloc(n ? n : 1, sizeof(eb_tpl_var_t));
    if (t->vars == NULL) {
        eb_transform_err(err, errlen, "out of memory");
        goto failed;
    }

    for (i = 0; i < n; i++) {
        name = root->u.object.keys[i];
        v = root->u.object.values[i];

        for (j = 0; eb_transform_var_char((unsigned char) name[j]); j++) {
            /* void */
        }

        if (j == 0 || name[j] != '\0') {
            eb_transform_err(err, errlen, "TEMPLATE variables: invalid name "
                             "\"%.64s\" (ASCII letters, digits and \"_\")",
                             name);
            goto failed;
        }

        for (j = 0; j < t->nvars; j++) {
            if (strcmp(t->vars[j].name, name) == 0) {
                eb_transform_err(err, errlen, "TEMPLATE variables: \"%.64s\" "
                                 "is defined twice", name);
                goto failed;
            }
        }

        if (!YAJL_IS_STRING(v)) {
            eb_transform_err(err, errlen, "TEMPLATE variable \"%.64s\": "
                             "the JSONPath must be a string", name);
            goto failed;
        }

        t->vars[t->nvars].name = strdup(name);
        if (t->vars[t->nvars].name == NULL) {
            eb_transform_err(err, errlen, "out of memory");
            goto failed;
        }

        t->vars[t->nvars].path = eb_jsonpath_compile(v->u.string,
                                                     strlen(v->u.string),
                                                     msg, sizeof(msg));
        t->nvars++;

        if (t->vars[t->nvars - 1].path == NULL) {
            eb_transform_err(err, errlen, "TEMPLATE variable \"%.64s\": %s",
                             name, msg);
            goto failed;
        }
    }

    yajl_tree_free(root);
    return 0;

failed:

    yajl_tree_free(root);
    return -1;
}


static ssize_t
eb_transform_find_var(eb_transform_t *t, const unsigned char *name,
    size_t len)
{
    size_t  i;

    for (i = 0; i < t->nvars; i++) {
        if (strlen(t->vars[i].name) == len
            && memcmp(t->vars[i].name, name, len) == 0)
        {
            return (ssize_t) i;
        }
    }

    return -1;
}


static int
eb_transform_add_part(eb_buf_t *parts, eb_tpl_kind_t kind, size_t off,
    size_t len, size_t var, int in_string)
{
    eb_tpl_part_t  part;

    if (kind == EB_TPL_LITERAL && len == 0) {
        return 0;
    }

    part.kind = kind;
    part.off = off;
    part.len = len;
    part.var = var;
    part.in_string = in_string;

    return eb_buf_append(parts, &part, sizeof(part));
}


/* Splits the template into literal parts (with "$$" made "$") and
 * placeholders, noting which placeholders are inside JSON quotes. */
static int
eb_transform_scan(eb_transform_t *t, const unsigned char *tmpl, size_t len,
    eb_buf_t *lit, eb_buf_t *parts, char *err, size_t errlen)
{
    int            in_string, escaped;
    size_t         i, j, start;
    ssize_t        var;
    unsigned char  c;

    in_string = 0;
    escaped = 0;
    start = 0;
    i = 0;

    while (i < len) {
        c = tmpl[i];

        if (c == '$' && i + 1 < len && tmpl[i + 1] == '$') {
            if (eb_buf_append(lit, "$", 1) != 0) {
                goto nomem;
            }

            i += 2;
            continue;
        }

        if (c == '$' && i + 1 < len && tmpl[i + 1] == '{') {
            for (j = i + 2; j < len && eb_transform_var_char(tmpl[j]); j++) {
                /* void */
            }

            if (j == len) {
                eb_transform_err(err, errlen, "TEMPLATE template at offset "
                                 "%zu: \"${\" without \"}\" (write \"$${\" "
                                 "for a literal \"${\")", i);
                return -1;
            }

            if (tmpl[j] != '}') {
                eb_transform_err(err, errlen, "TEMPLATE template at offset "
                                 "%zu: invalid character in a variable name "
                                 "(ASCII letters, digits and \"_\"; write "
                                 "\"$${\" for a literal \"${\")", j);
                return -1;
            }

            if (j == i + 2) {
                eb_transform_err(err, errlen, "TEMPLATE template at offset "
                                 "%zu: empty placeholder \"${}\"", i);
                return -1;
            }

            var = eb_transform_find_var(t, tmpl + i + 2, j - i - 2);

            if (var < 0) {
                eb_transform_err(err, errlen, "TEMPLATE template at offset "
                                 "%zu: unknown variable \"%.*s\"", i,
                                 (int) (j - i - 2 > 64 ? 64 : j - i - 2),
                                 (const char *) tmpl + i + 2);
                return -1;
            }

            if (eb_transform_add_part(parts, EB_TPL_LITERAL, start,
                                      lit->len - start, 0, 0) != 0
                || eb_transform_add_part(parts, EB_TPL_TEXT, 0, 0,
                                         (size_t) var, in_string) != 0)
            {
                goto nomem;
            }

            start = lit->len;
            i = j + 1;
            continue;
        }

        /* JSON string state; only used if the template is JSON */

        if (in_string) {
            if (escaped) {
                escaped = 0;

            } else if (c == '\\') {
                escaped = 1;

            } else if (c == '"') {
                in_string = 0;
            }

        } else if (c == '"') {
            in_string = 1;
        }

        if (eb_buf_append(lit, &c, 1) != 0) {
            goto nomem;
        }

        i++;
    }

    if (eb_transform_add_part(parts, EB_TPL_LITERAL, start, lit->len - start,
                              0, 0) != 0)
    {
        goto nomem;
    }

    return 0;

nomem:

    eb_transform_err(err, errlen, "out of memory");
    return -1;
}


/* Whether the template is JSON: it starts with "{" or "[" and parses with
 * null for each placeholder outside quotes. Returns 1, 0, or -1 (out of
 * memory). */
static int
eb_transform_template_json(eb_transform_t *t, const unsigned char *tmpl,
    size_t len)
{
    size_t          i;
    char            msg[64];
    eb_buf_t        doc;
    eb_tpl_part_t  *part;
    eb_json_rc_t    rc;

    for (i = 0; i < len && eb_transform_space(tmpl[i]); i++) {
        /* void */
    }

    if (i == len || (tmpl[i] != '{' && tmpl[i] != '[')) {
        return 0;
    }

    eb_buf_init(&doc);

    for (i = 0; i < t->nparts; i++) {
        part = &t->parts[i];

        if (part->kind == EB_TPL_LITERAL) {
            (void) eb_buf_append(&doc, t->text + part->off, part->len);

        } else if (!part->in_string) {
            (void) eb_buf_append(&doc, "null", 4);
        }
    }

    if (doc.failed) {
        eb_buf_free(&doc);
        return -1;
    }

    rc = eb_json_validate(doc.data, doc.len, EB_TRANSFORM_MAX_DEPTH, NULL,
                          msg, sizeof(msg));
    eb_buf_free(&doc);

    if (rc == EB_JSON_NOMEM) {
        return -1;
    }

    return rc == EB_JSON_OK;
}


static int
eb_transform_compile_template(eb_transform_t *t, const unsigned char *value,
    size_t value_len, const unsigned char *tmpl, size_t tmpl_len,
    char *err, size_t errlen)
{
    int       json;
    size_t    i;
    eb_buf_t  lit, parts;

    if (tmpl_len == 0) {
        eb_transform_err(err, errlen, "TEMPLATE needs a template");
        return -1;
    }

    if (eb_transform_vars(t, value, value_len, err, errlen) != 0) {
        return -1;
    }

    eb_buf_init(&lit);
    eb_buf_init(&parts);

    if (eb_transform_scan(t, tmpl, tmpl_len, &lit, &parts, err, errlen) != 0)
    {
        eb_buf_free(&lit);
        eb_buf_free(&parts);
        return -1;
    }

    /* the transform owns the buffers from here */
    t->text = lit.data;
    t->text_len = lit.len;
    t->parts = (eb_tpl_part_t *) parts.data;
    t->nparts = parts.len / sizeof(eb_tpl_part_t);

    json = eb_transform_template_json(t, tmpl, tmpl_len);

    if (json < 0) {
        eb_transform_err(err, errlen, "out of memory");
        return -1;
    }

    t->json = json;

    for (i = 0; i < t->nparts; i++) {
        if (t->parts[i].kind != EB_TPL_LITERAL) {
            t->parts[i].kind = !json ? EB_TPL_TEXT
                               : t->parts[i].in_string ? EB_TPL_JSON_STRING
                               : EB_TPL_JSON_VALUE;
        }
    }

    /* variables of names and indexes only: found by a scan of the event
     * (eb_transform_scan_paths()) */
    for (i = 0; i < t->nvars; i++) {
        if (!eb_jsonpath_is_simple(t->vars[i].path)) {
            return 0;
        }
    }

    if (t->nvars) {
        t->scan = malloc(t->nvars * sizeof(eb_jsonpath_t *));
        if (t->scan == NULL) {
            eb_transform_err(err, errlen, "out of memory");
            return -1;
        }

        for (i = 0; i < t->nvars; i++) {
            t->scan[i] = t->vars[i].path;
        }
    }

    return 0;
}


eb_transform_t *
eb_transform_compile(const char *form, const unsigned char *value,
    size_t value_len, const unsigned char *tmpl, size_t tmpl_len,
    char *err, size_t errlen)
{
    size_t           i, n;
    char             msg[256];
    eb_transform_t  *t;

    if (form == NULL) {
        eb_transform_err(err, errlen, "no transform form (ORIGINAL, "
                         "JSONPATH, CONSTANT or TEMPLATE)");
        return NULL;
    }

    n = sizeof(eb_transform_forms) / sizeof(char *);

    for (i = 0; i < n; i++) {
        if (strcasecmp(form, eb_transform_forms[i]) == 0) {
            break;
        }
    }

    if (i == n) {
        eb_transform_err(err, errlen, "unknown transform form \"%.32s\" "
                         "(ORIGINAL, JSONPATH, CONSTANT or TEMPLATE)", form);
        return NULL;
    }

    t = calloc(1, sizeof(eb_transform_t));
    if (t == NULL) {
        eb_transform_err(err, errlen, "out of memory");
        return NULL;
    }

    t->form = (eb_transform_form_t) i;

    switch (t->form) {

    case EB_TRANSFORM_ORIGINAL:
        break;

    case EB_TRANSFORM_JSONPATH:
        if (value_len == 0) {
            eb_transform_err(err, errlen, "JSONPATH needs a JSONPath value");
            goto failed;
        }

        t->path = eb_jsonpath_compile((const char *) value, value_len, msg,
                                      sizeof(msg));
        if (t->path == NULL) {
            eb_transform_err(err, errlen, "JSONPATH: %s", msg);
            goto failed;
        }

        break;

    case EB_TRANSFORM_CONSTANT:
        t->text = eb_transform_dup(value, value_len);
        if (t->text == NULL) {
            eb_transform_err(err, errlen, "out of memory");
            goto failed;
        }

        t->text_len = value_len;
        break;

    case EB_TRANSFORM_TEMPLATE:
        if (eb_transform_compile_template(t, value, value_len, tmpl,
                                          tmpl_len, err, errlen)
            != 0)
        {
            goto failed;
        }

        break;
    }

    return t;

failed:

    eb_transform_free(t);
    return NULL;
}


eb_transform_t *
eb_transform_compile_tree(const char *form, yajl_val value, yajl_val tmpl,
    char *err, size_t errlen)
{
    const char      *what;
    eb_buf_t         v;
    eb_transform_t  *t;

    if (form == NULL) {
        return eb_transform_compile(NULL, NULL, 0, NULL, 0, err, errlen);
    }

    what = NULL;

    if (strcasecmp(form, "JSONPATH") == 0) {
        if (value && !YAJL_IS_STRING(value)) {
            what = "the JSONPath value must be a string";
        }

    } else if (strcasecmp(form, "TEMPLATE") == 0) {
        if (value && !YAJL_IS_OBJECT(value)) {
            what = "the value must be an object of variables";

        } else if (tmpl && !YAJL_IS_STRING(tmpl)) {
            what = "the template must be a string";
        }

    } else {
        tmpl = NULL;                /* ignored */
    }

    if (what) {
        eb_transform_err(err, errlen, "%s: %s", form, what);
        return NULL;
    }

    eb_buf_init(&v);

    if (value && YAJL_IS_STRING(value)) {
        (void) eb_buf_append_str(&v, value->u.string);

    } else if (value) {
        (void) eb_jsonpath_write_json(&v, value);
    }

    if (v.failed) {
        eb_buf_free(&v);
        eb_transform_err(err, errlen, "out of memory");
        return NULL;
    }

    t = eb_transform_compile(form, v.data, v.len,
                             tmpl ? (const unsigned char *) tmpl->u.string
                                  : NULL,
                             tmpl ? strlen(tmpl->u.string) : 0, err, errlen);
    eb_buf_free(&v);

    return t;
}


eb_transform_form_t
eb_transform_form(const eb_transform_t *t)
{
    return t->form;
}


int
eb_transform_is_json(const eb_transform_t *t)
{
    return t->json;
}


int
eb_transform_needs_tree(const eb_transform_t *t)
{
    size_t  i;

    switch (t->form) {

    case EB_TRANSFORM_JSONPATH:
        return 1;

    case EB_TRANSFORM_TEMPLATE:
        for (i = 0; i < t->nparts; i++) {
            if (t->parts[i].kind != EB_TPL_LITERAL) {
                return 1;
            }
        }

        return 0;

    default:
        return 0;
    }
}


yajl_val
eb_transform_parse_event(const unsigned char *event, size_t len, char *err,
    size_t errlen)
{
    char            msg[256], *nl;
    yajl_val        root;
    unsigned char  *copy, *nul;

    if (event == NULL) {
        event = (const unsigned char *) "";
        len = 0;
    }

    /* yajl_tree_parse() reads up to a NUL, which JSON text never has */
    nul = memchr(event, '\0', len);
    if (nul) {
        eb_transform_err(err, errlen, "the event is not JSON: a NUL byte at "
                         "offset %zu", (size_t) (nul - event));
        return NULL;
    }

    copy = eb_transform_dup(event, len);
    if (copy == NULL) {
        eb_transform_err(err, errlen, "out of memory");
        return NULL;
    }

    /* the edge refuses unpaired surrogate escapes; an event that has them
     * anyway (stored before it did, or by hand) reads them as U+FFFD,
     * which yajl would decode to bytes that are not UTF-8 */
    (void) eb_json_surrogates_replace(copy, len);

    msg[0] = '\0';
    root = yajl_tree_parse((const char *) copy, msg, sizeof(msg));
    free(copy);

    if (root == NULL) {
        nl = strchr(msg, '\n');
        if (nl) {
            *nl = '\0';
        }

        eb_transform_err(err, errlen, "the event is not JSON: %s",
                         msg[0] ? msg : "out of memory");
        return NULL;
    }

    return root;
}


static int
eb_transform_template_apply(const eb_transform_t *t, yajl_val root,
    eb_buf_t *out, eb_buf_t *scratch)
{
    size_t          i;
    yajl_val        v;
    eb_tpl_part_t  *part;
    eb_jsonpath_t  *path;

    for (i = 0; i < t->nparts; i++) {
        part = &t->parts[i];

        if (part->kind == EB_TPL_LITERAL) {
            if (eb_buf_append(out, t->text + part->off, part->len) != 0) {
                return -1;
            }

            continue;
        }

        path = t->vars[part->var].path;

        switch (part->kind) {

        case EB_TPL_JSON_VALUE:
            if (eb_jsonpath_is_definite(path)) {
                v = eb_jsonpath_first(path, root);

                /* missing: null */
                if (eb_jsonpath_write_json(out, v) != 0) {
                    return -1;
                }

                break;
            }

            if (eb_jsonpath_text(path, root, out) == EB_JSONPATH_ERROR) {
                return -1;
            }

            break;

        case EB_TPL_JSON_STRING:
            eb_buf_reset(scratch);

            if (eb_jsonpath_text(path, root, scratch) == EB_JSONPATH_ERROR
                || eb_jsonpath_write_escaped(out, scratch->data, scratch->len)
                   != 0)
            {
                return -1;
            }

            break;

        default: /* EB_TPL_TEXT; missing: nothing */
            if (eb_jsonpath_text(path, root, out) == EB_JSONPATH_ERROR) {
                return -1;
            }

            break;
        }
    }

    return 0;
}


eb_transform_rc_t
eb_transform_apply_tree(const eb_transform_t *t, yajl_val root,
    const unsigned char *event, size_t len, eb_buf_t *out, char *err,
    size_t errlen)
{
    int               rc;
    size_t            was;
    eb_buf_t          scratch;
    eb_jsonpath_rc_t  jrc;

    was = out->len;
    rc = 0;

    switch (t->form) {

    case EB_TRANSFORM_ORIGINAL:
        if (event) {
            rc = eb_buf_append(out, event, len);

        } else {
            rc = eb_jsonpath_write_json(out, root);
        }

        break;

    case EB_TRANSFORM_CONSTANT:
        rc = eb_buf_append(out, t->text, t->text_len);
        break;

    case EB_TRANSFORM_JSONPATH:
        jrc = eb_jsonpath_text(t->path, root, out);

        if (jrc == EB_JSONPATH_ERROR) {
            rc = -1;
            break;
        }

        if (jrc == EB_JSONPATH_MISSING) {
            eb_transform_err(err, errlen, "JSONPATH: nothing at %s",
                             eb_jsonpath_expr(t->path));
            return EB_TRANSFORM_NO_MATCH;
        }

        break;

    case EB_TRANSFORM_TEMPLATE:
        eb_buf_init(&scratch);
        rc = eb_transform_template_apply(t, root, out, &scratch);
        rc |= scratch.failed ? -1 : 0;
        eb_buf_free(&scratch);
        break;
    }

    if (rc != 0 || out->failed) {
        out->len = was;
        eb_transform_err(err, errlen, "out of memory");
        return EB_TRANSFORM_ERROR;
    }

    return EB_TRANSFORM_OK;
}


size_t
eb_transform_scan_paths(const eb_transform_t *t,
    const eb_jsonpath_t *const **paths)
{
    if (t->scan == NULL) {
        return 0;
    }

    *paths = t->scan;
    return t->nvars;
}


/* The i-th found value as eb_jsonpath_text() writes the tree's
 * (eb_event_scan_text; missing: nothing), or as JSON (json): a string
 * quoted and escaped, missing as null. Never an object or array (the
 * caller took the tree for those). */
static int
eb_transform_found_text(const eb_event_scan_t *s, size_t i, int json,
    eb_buf_t *b)
{
    const eb_event_member_t  *m = eb_event_scan_found(s, i);

    if (json && m == NULL) {
        return eb_buf_append(b, "null", 4);
    }

    if (json && m->kind == EB_EV_STRING) {
        return eb_buf_append(b, "\"", 1) != 0
               || eb_jsonpath_write_escaped(b, (const unsigned char *) m->text,
                                            strlen(m->text)) != 0
               || eb_buf_append(b, "\"", 1) != 0 ? -1 : 0;
    }

    return eb_event_scan_text(s, i, b) == EB_JSONPATH_ERROR ? -1 : 0;
}


eb_transform_rc_t
eb_transform_apply_found(const eb_transform_t *t, const eb_event_scan_t *s,
    size_t first, eb_buf_t *out, char *err, size_t errlen)
{
    int                       rc;
    size_t                    i, v, was;
    eb_buf_t                  scratch;
    eb_tpl_part_t            *part;
    const eb_event_member_t  *m;

    for (i = 0; i < t->nvars; i++) {
        m = eb_event_scan_found(s, first + i);
        if (m && (m->kind == EB_EV_OBJECT || m->kind == EB_EV_ARRAY)) {
            return EB_TRANSFORM_TREE;
        }
    }

    was = out->len;
    rc = 0;
    eb_buf_init(&scratch);

    for (i = 0; rc == 0 && i < t->nparts; i++) {
        part = &t->parts[i];

        if (part->kind == EB_TPL_LITERAL) {
            rc = eb_buf_append(out, t->text + part->off, part->len);
            continue;
        }

        v = first + part->var;

        switch (part->kind) {

        case EB_TPL_JSON_VALUE:
            rc = eb_transform_found_text(s, v, 1, out);
            break;

        case EB_TPL_JSON_STRING:
            eb_buf_reset(&scratch);
            rc = eb_transform_found_text(s, v, 0, &scratch) != 0
                 || eb_jsonpath_write_escaped(out, scratch.data, scratch.len)
                    != 0 ? -1 : 0;
            break;

        default:
            rc = eb_transform_found_text(s, v, 0, out);
        }
    }

    rc |= scratch.failed ? -1 : 0;
    eb_buf_free(&scratch);

    if (rc != 0 || out->failed) {
        out->len = was;
        eb_transform_err(err, errlen, "out of memory");
        return EB_TRANSFORM_ERROR;
    }

    return EB_TRANSFORM_OK;
}


eb_transform_rc_t
eb_transform_apply(const eb_transform_t *t, const unsigned char *event,
    size_t len, eb_buf_t *out, char *err, size_t errlen)
{
    yajl_val           root;
    eb_transform_rc_t  rc;

    if (!eb_transform_needs_tree(t)) {
        return eb_transform_apply_tree(t, NULL, event, len, out, err, errlen);
    }

    root = eb_transform_parse_event(event, len, err, errlen);
    if (root == NULL) {
        return EB_TRANSFORM_ERROR;
    }

    rc = eb_transform_apply_tree(t, root, event, len, out, err, errlen);
    yajl_tree_free(root);

    return rc;
}
