/*
 * UTF-8 (RFC 3629): validation (no overlong forms, no surrogates,
 * nothing above U+10FFFF) and encoding.
 */

#ifndef EB_UTF8_H
#define EB_UTF8_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>


/* Returns -1 when all of p[0..len) is valid UTF-8, otherwise the offset
 * of the first byte of the first invalid sequence. */
ssize_t eb_utf8_invalid_at(const unsigned char *p, size_t len);

/* The length (1 to 4) of the valid UTF-8 sequence at p[0] of p[0..len),
 * len > 0, or 0 when none starts there. */
size_t eb_utf8_valid_len(const unsigned char *p, size_t len);

/* Writes the code point cp (at most U+10FFFF, no surrogate) to u[0..4) as
 * UTF-8; returns the number of bytes. */
size_t eb_utf8_encode(unsigned char *u, uint32_t cp);

#endif /* EB_UTF8_H */
