/*
 * JSONPath: a documented subset of RFC 9535, compiled once and evaluated
 * against parsed events (yajl_tree) many times; plus the rules that turn
 * the values it selects into text for transforms and column mappings.
 *
 * Grammar (ABNF; a path is UTF-8 text, no white space outside brackets):
 *
 *   path        = "$" *segment
 *   segment     = child / descendant
 *   child       = "." name / "." "*" / bracket
 *   descendant  = ".." name / ".." "*" / ".." bracket
 *   bracket     = "[" S selector *(S "," S selector) S "]"
 *   selector    = quoted / index / "*"
 *   quoted      = "'" *(char / DQUOTE / esc) "'"
 *               / DQUOTE *(char / "'" / esc) DQUOTE
 *   char        = any UTF-8 character but the quotes, "\" and U+0000-001F
 *   esc         = "\" ("'" / DQUOTE / "\" / "/" / "b" / "f" / "n" / "r"
 *                 / "t" / "u" 4HEXDIG)      ; \uD83D\uDE00: a pair
 *   index       = "0" / ["-"] %x31-39 *DIGIT  ; -1 is the last element
 *   name        = 1*(ALPHA / DIGIT / "_" / "-" / "$" / "@" / ":" / "/"
 *                   / non-ASCII UTF-8)
 *   S           = *(SP / HTAB)
 *
 * Examples: $.data.body.name  $.data.headers.content-type  $['a b']
 * $["it's"]  $.data.body.department[0]  $.items[-1]  $.items[*].id
 * $.data.*  $..name  $.data.body['userId','name']
 *
 * Semantics (RFC 9535 where it has one):
 *
 *  - A name selects the member of an object with exactly that key (bytes
 *    compared); when a key is repeated the last one wins, as with most
 *    JSON parsers. It selects nothing from anything but an object.
 *  - An index selects an array element; negative counts from the end. Out
 *    of range, or applied to a non-array, it selects nothing.
 *  - "*" selects every member value of an object or element of an array,
 *    in document order (repeated keys included), nothing from a scalar.
 *  - ".." applies its selector to the node and to all its descendants,
 *    each node before its children, children in document order:
 *    $..a on {"a":{"a":1}} gives {"a":1}, then 1.
 *  - A union [a,b] gives the matches of a, then those of b (duplicates
 *    are kept).
 *  - Not supported (compile errors that say so): slices [1:2] and
 *    filters [?...].
 *
 * A path is definite when it has no wildcard, no "..", and no union of
 * more than one selector: it selects at most one value.
 *
 * yajl_tree keeps strings and keys NUL-terminated without a length, so a
 * string or key containing \u0000 is cut at the NUL on this side.
 */

#ifndef EB_JSONPATH_H
#define EB_JSONPATH_H

#include <stddef.h>
#include <yajl/yajl_tree.h>

#include "eb_buf.h"


typedef struct eb_jsonpath_s  eb_jsonpath_t;


/* Compiles expr[0..len). On failure returns NULL and err gets a one-line,
 * NUL-terminated reason: "invalid JSONPath at offset N: what", N counted
 * in bytes from 0 (or "out of memory"). err may be NULL. */
eb_jsonpath_t *eb_jsonpath_compile(const char *expr, size_t len, char *err,
    size_t errlen);
void eb_jsonpath_free(eb_jsonpath_t *p);

/* The expression as given to eb_jsonpath_compile(), NUL-terminated. */
const char *eb_jsonpath_expr(const eb_jsonpath_t *p);

/* Whether the path can select at most one value (see above). */
int eb_jsonpath_is_definite(const eb_jsonpath_t *p);

/* A path of 1 to EB_JSONPATH_STEPS_MAX steps, each one member name or
 * one index from the front ($.data.body.name, $.a[0]): what
 * eb_event_scan_paths() finds in the event's text without a tree. */
#define EB_JSONPATH_STEPS_MAX  32

int eb_jsonpath_is_simple(const eb_jsonpath_t *p);

/* Such a path's number of steps, and step i: a name (*name, *len; returns
 * 1) or an index (*index; returns 0). */
size_t eb_jsonpath_steps(const eb_jsonpath_t *p);
int eb_jsonpath_step(const eb_jsonpath_t *p, size_t i, const char **name,
    size_t *len, size_t *index);


/* Called for each match, in order; a non-zero return stops the walk. */
typedef int (*eb_jsonpath_cb_pt)(void *ctx, yajl_val v);

/* Walks the matches of p in root (NULL: no matches). Returns 0, or the
 * non-zero value that stopped the walk. */
int eb_jsonpath_walk(const eb_jsonpath_t *p, yajl_val root,
    eb_jsonpath_cb_pt cb, void *ctx);

/* Stores the first max matches in out[] and returns the number of all
 * matches, which may exceed max (out may be NULL when max is 0). */
size_t eb_jsonpath_eval(const eb_jsonpath_t *p, yajl_val root,
    yajl_val *out, size_t max);

/* The first match, or NULL when there is none. */
yajl_val eb_jsonpath_first(const eb_jsonpath_t *p, yajl_val root);


/*
 * Values as text. All of these append to b and return 0, or -1 when
 * memory ran out (b->failed is then set).
 */

/* v as compact JSON: no white space between tokens, numbers with their
 * exact text from the event, strings escaped as below. */
int eb_jsonpath_write_json(eb_buf_t *b, yajl_val v);

/* The bytes p[0..len) escaped for the inside of a JSON string (no quotes
 * added): " and \ and the control characters U+0000-001F (\n, \t, ...,
 * \u001f); everything else, UTF-8 included, as is. */
int eb_jsonpath_write_escaped(eb_buf_t *b, const unsigned char *p,
    size_t len);

/* "The value as text": a string's own characters (unquoted, unescaped),
 * any other value as compact JSON (null as the four letters null). */
int eb_jsonpath_write_text(eb_buf_t *b, yajl_val v);


typedef enum {
    EB_JSONPATH_ERROR = -1,      /* out of memory; b->failed is set */
    EB_JSONPATH_MISSING = 0,     /* nothing matched; b is untouched */
    EB_JSONPATH_FOUND,           /* the text was appended */
    EB_JSONPATH_NULL             /* the value is JSON null; "null" appended */
} eb_jsonpath_rc_t;

/* Evaluates p against root and appends the result as text, the rule of
 * the JSONPATH transform and of column mappings:
 *
 *  - a definite path: the value as text (eb_jsonpath_write_text());
 *    EB_JSONPATH_MISSING when there is no such value, EB_JSONPATH_NULL
 *    when it is JSON null, so that a missing value, a null and the string
 *    "null" can be told apart;
 *  - any other path: a JSON array of all matches, "[]" when there are
 *    none (always EB_JSONPATH_FOUND), so that its output has one shape. */
eb_jsonpath_rc_t eb_jsonpath_text(const eb_jsonpath_t *p, yajl_val root,
    eb_buf_t *b);

#endif /* EB_JSONPATH_H */
