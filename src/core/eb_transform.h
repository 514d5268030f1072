/*
 * Event transforms: what a rule target receives instead of the event
 * (Alibaba EventBridge "event transformation", AWS input transformers).
 * A transform is compiled once from the rule's configuration and applied
 * to every matching event.
 *
 * Forms ("form" in the configuration, case-insensitive):
 *
 *  ORIGINAL   The complete event, byte for byte as stored. value and
 *             template are ignored.
 *
 *  JSONPATH   A part of the event: value is a JSONPath (eb_jsonpath.h).
 *             A definite path (no wildcard, "..", or union) delivers the
 *             value it selects as text: a string's characters without
 *             quotes or escapes, any other value as compact JSON (null as
 *             null). When it selects nothing the output is empty and
 *             apply returns EB_TRANSFORM_NO_MATCH (err says which path),
 *             so the caller can deliver an empty body or skip the target.
 *             Any other path delivers a JSON array of all its matches,
 *             "[]" when there are none. template is ignored.
 *
 *  CONSTANT   value, delivered as is whatever the event. template is
 *             ignored.
 *
 *  TEMPLATE   value is a JSON object of variables, each a name (ASCII
 *             letters, digits, "_") and a JSONPath, e.g.
 *               {"name":"$.data.body.name","dept":"$.data.body.department"}
 *             (empty value: no variables); template is the text to
 *             deliver, in which ${name} stands for the value of a
 *             variable. Every ${name} must be a defined variable; "$$"
 *             stands for one "$", so "$${name}" is the literal text
 *             "${name}" and "$$${name}" a "$" then the value; any other
 *             "$" is literal. An empty template is an error.
 *
 *             The template is JSON when its first non-white-space
 *             character is "{" or "[" and it is valid JSON with each
 *             placeholder outside quotes read as null (and those inside
 *             quotes as nothing). Then, so that the output is always
 *             valid JSON:
 *               - inside quotes ("Hello ${name}!") a value is inserted as
 *                 text (string characters, other values as compact JSON),
 *                 escaped for a JSON string; missing: nothing;
 *               - outside quotes ({"id": ${id}}) a value is inserted as
 *                 JSON: a string in quotes, escaped; others compact JSON;
 *                 missing: null.
 *             Any other template is plain text ("[alert] ${name} joined"
 *             included): a value is inserted as text, as is; missing:
 *             nothing. A variable whose path is not definite is a JSON
 *             array of its matches, in any template.
 */

#ifndef EB_TRANSFORM_H
#define EB_TRANSFORM_H

#include <stddef.h>
#include <yajl/yajl_tree.h>

#include "eb_buf.h"
#include "eb_event_scan.h"
#include "eb_jsonpath.h"


typedef enum {
    EB_TRANSFORM_ORIGINAL,
    EB_TRANSFORM_JSONPATH,
    EB_TRANSFORM_CONSTANT,
    EB_TRANSFORM_TEMPLATE
} eb_transform_form_t;


typedef enum {
    EB_TRANSFORM_ERROR = -1,     /* err says why; out is as it was */
    EB_TRANSFORM_OK = 0,
    EB_TRANSFORM_NO_MATCH = 1,   /* JSONPATH selected nothing; nothing
                                  * appended; err names the path */
    EB_TRANSFORM_TREE = 2        /* eb_transform_apply_found(): a value is
                                  * an object or array; nothing appended:
                                  * apply it to a tree */
} eb_transform_rc_t;


typedef struct eb_transform_s  eb_transform_t;


/* Compiles a transform. form: "ORIGINAL", "JSONPATH", "CONSTANT" or
 * "TEMPLATE"; value and tmpl as the configuration gives them (NULL when
 * their length is 0). On failure returns NULL and err gets a one-line,
 * NUL-terminated reason naming the part that is wrong and, for JSONPaths
 * and templates, the byte offset in it. err may be NULL. */
eb_transform_t *eb_transform_compile(const char *form,
    const unsigned char *value, size_t value_len, const unsigned char *tmpl,
    size_t tmpl_len, char *err, size_t errlen);

/* The same from a parsed configuration (the "value" and "template" keys
 * of a "transform" object; either may be NULL): JSONPATH needs a string
 * value; CONSTANT delivers a string value's characters, any other value
 * as compact JSON; TEMPLATE needs an object value (or none) and a string
 * template. */
eb_transform_t *eb_transform_compile_tree(const char *form, yajl_val value,
    yajl_val tmpl, char *err, size_t errlen);

void eb_transform_free(eb_transform_t *t);

eb_transform_form_t eb_transform_form(const eb_transform_t *t);
const char *eb_transform_form_name(eb_transform_form_t form);
/* Whether TEMPLATE output is JSON (see above); 0 for other forms. */
int eb_transform_is_json(const eb_transform_t *t);
/* Whether applying needs the parsed event (JSONPATH, and TEMPLATE with
 * placeholders); if not, eb_transform_apply_tree() accepts root NULL. */
int eb_transform_needs_tree(const eb_transform_t *t);

/* Applies t to the event event[0..len) (a JSON text; parsed here when
 * needed) and appends the output to out. Returns EB_TRANSFORM_OK,
 * EB_TRANSFORM_NO_MATCH, or EB_TRANSFORM_ERROR (not JSON, out of memory)
 * with out as it was and a reason in err. ORIGINAL, CONSTANT and a
 * TEMPLATE without placeholders never parse the event, so they do not
 * notice an event that is not JSON. */
eb_transform_rc_t eb_transform_apply(const eb_transform_t *t,
    const unsigned char *event, size_t len, eb_buf_t *out, char *err,
    size_t errlen);

/* The same with the event already parsed: root is its yajl_tree. event
 * and len are only read by ORIGINAL; when event is NULL, ORIGINAL writes
 * root as compact JSON instead. */
eb_transform_rc_t eb_transform_apply_tree(const eb_transform_t *t,
    yajl_val root, const unsigned char *event, size_t len, eb_buf_t *out,
    char *err, size_t errlen);

/* Parses an event for eb_transform_apply_tree() or eb_jsonpath_*():
 * event[0..len) need not be NUL-terminated. Returns NULL with a reason in
 * err when it is not JSON. Free with yajl_tree_free(). */
/* A TEMPLATE whose variables are all names and indexes
 * (eb_jsonpath_is_simple()): sets *paths to their paths and returns how
 * many; else 0. eb_event_scan_paths() finds their values in the event's
 * scan, and eb_transform_apply_found() applies the template to them: the
 * output eb_transform_apply_tree() makes, without a tree. */
size_t eb_transform_scan_paths(const eb_transform_t *t,
    const eb_jsonpath_t *const **paths);

/* s: a scan with those paths from index first. EB_TRANSFORM_OK,
 * EB_TRANSFORM_ERROR (out of memory), or EB_TRANSFORM_TREE. */
eb_transform_rc_t eb_transform_apply_found(const eb_transform_t *t,
    const eb_event_scan_t *s, size_t first, eb_buf_t *out, char *err,
    size_t errlen);

yajl_val eb_transform_parse_event(const unsigned char *event, size_t len,
    char *err, size_t errlen);

#endif /* EB_TRANSFORM_H */
