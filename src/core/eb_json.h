/*
 * JSON checks built on yajl: validation with a nesting bound, and the
 * allocator hooks that let callers put yajl's memory in their own pools.
 */

#ifndef EB_JSON_H
#define EB_JSON_H

#include <stddef.h>
#include <yajl/yajl_common.h>


typedef enum {
    EB_JSON_OK = 0,
    EB_JSON_SYNTAX,          /* not JSON; err says why and where */
    EB_JSON_TOO_DEEP,        /* nesting exceeds the bound */
    EB_JSON_NOMEM
} eb_json_rc_t;


/* Checks that p[0..len) is exactly one JSON value (RFC 8259, strings valid
 * UTF-8, no unpaired surrogate escape, no key twice in an object) nested
 * at most max_depth arrays/objects deep. On failure err gets a one-line,
 * NUL-terminated reason. afs may be NULL (malloc). */
eb_json_rc_t eb_json_validate(const unsigned char *p, size_t len,
    unsigned max_depth, yajl_alloc_funcs *afs, char *err, size_t errlen);

/* The same, except that the objects at nesting level dup_level (1: the
 * top-level value; EB_JSON_DUP_ANY: all) may repeat keys: the caller
 * reports those itself, with a better message. */
#define EB_JSON_DUP_ANY  ((unsigned) -1)

eb_json_rc_t eb_json_validate_keys(const unsigned char *p, size_t len,
    unsigned max_depth, unsigned dup_level, yajl_alloc_funcs *afs,
    char *err, size_t errlen);

/* eb_json_validate() that also compacts, in the same pass: on EB_JSON_OK,
 * out[0..*outlen) is the text as eb_json_minify() leaves it. out has room
 * for len bytes; it may be p itself, but then p is partly compacted after
 * a failure. */
eb_json_rc_t eb_json_validate_minify(const unsigned char *p, size_t len,
    unsigned max_depth, yajl_alloc_funcs *afs, unsigned char *out,
    size_t *outlen, char *err, size_t errlen);

/* Removes the whitespace between the tokens of a valid JSON text, in
 * place; strings, numbers and escapes keep their exact bytes. Returns
 * the new length. Only for text eb_json_validate() accepted. */
size_t eb_json_minify(unsigned char *p, size_t len);

/* Whether a Content-Type value declares JSON: application/json,
 * anything/json or anything+json (case-insensitive, parameters ignored). */
int eb_json_content_type(const unsigned char *p, size_t len);

#endif /* EB_JSON_H */
