/*
 * UTF-8 validation (RFC 3629): no overlong forms, no surrogates,
 * nothing above U+10FFFF.
 */

#ifndef EB_UTF8_H
#define EB_UTF8_H

#include <stddef.h>
#include <sys/types.h>


/* Returns -1 when all of p[0..len) is valid UTF-8, otherwise the offset
 * of the first byte of the first invalid sequence. */
ssize_t eb_utf8_invalid_at(const unsigned char *p, size_t len);

#endif /* EB_UTF8_H */
