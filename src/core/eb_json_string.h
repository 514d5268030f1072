/*
 * JSON string escapes (RFC 8259, 7), decoded by one function for every
 * scanner of the tree (validation, CloudEvents, the pattern matcher,
 * JSONPath): a \uD8xx\uDCxx pair is one code point, and a surrogate
 * escape without its pair is refused, as it names no character and
 * would decode to bytes that are not UTF-8.
 */

#ifndef EB_JSON_STRING_H
#define EB_JSON_STRING_H

#include <stddef.h>
#include <stdint.h>


/* Decodes the escape at p[0] == '\\' in p[0..len): sets *cp and returns
 * the bytes it takes (2, 6, or 12 for a pair), or returns 0 and sets
 * *why when it is malformed or an unpaired surrogate. */
size_t eb_json_escape(const unsigned char *p, size_t len, uint32_t *cp,
    const char **why);

/* Replaces, in place, each unpaired surrogate escape of the JSON text
 * p[0..len) with \ufffd (same length), for text read from where the edge
 * did not check it (streams written before it did, or by hand). Returns
 * how many were replaced. */
size_t eb_json_surrogates_replace(unsigned char *p, size_t len);

#endif /* EB_JSON_STRING_H */
