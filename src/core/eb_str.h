/*
 * Small string helpers shared by the module and its tests: byte strings,
 * form decoding, host patterns, constant-time comparison and names.
 */

#ifndef EB_STR_H
#define EB_STR_H

#include <stddef.h>


typedef struct {
    const unsigned char  *data;
    size_t                len;
} eb_bytes_t;

#define eb_bytes(s)  { (const unsigned char *) (s), sizeof(s) - 1 }


/* Decodes application/x-www-form-urlencoded text ('+' is a space, %XX a
 * byte) from src into dst, which must hold len bytes. Malformed escapes
 * are kept literally. Returns the decoded length. */
size_t eb_form_decode(unsigned char *dst, const unsigned char *src,
    size_t len);

/* Matches a host name against a pattern: an exact name, "*.example.com"
 * (any sub-domain of example.com, not example.com itself) or
 * ".example.com" (example.com and any sub-domain). Case-insensitive. */
int eb_host_match(const unsigned char *pat, size_t plen,
    const unsigned char *host, size_t hlen);

/* Compares two byte strings in time that depends only on their lengths. */
int eb_ct_equal(const unsigned char *a, size_t alen,
    const unsigned char *b, size_t blen);

/* A bus, target, rule or replay name: 1 to EB_NAME_MAX of A-Z a-z 0-9
 * - _ . (it becomes part of Redis keys). 0, else -1. */
#define EB_NAME_MAX  128

int eb_name_valid(const unsigned char *p, size_t len);

/* The value of a hex digit, or -1. */
int eb_hex(unsigned char c);

#endif /* EB_STR_H */
