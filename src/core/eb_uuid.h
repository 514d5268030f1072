/*
 * Event ids: RFC 9562 UUIDs from the kernel's CSPRNG. getrandom() is read
 * a pool at a time, so that an id costs no syscall; each process starts
 * with an empty pool (call eb_uuid_gen_init after fork), so no two
 * processes share random bytes. Version 4 is random; version 7 puts the
 * Unix time in milliseconds first, so ids sort by acceptance time.
 */

#ifndef EB_UUID_H
#define EB_UUID_H

#include <stdint.h>
#include <stddef.h>


#define EB_UUID_LEN   36
#define EB_UUID_POOL  4096


typedef enum {
    EB_UUID_V4 = 4,
    EB_UUID_V7 = 7
} eb_uuid_version_t;


typedef struct {
    size_t          pos;                /* next unused byte of buf */
    unsigned char   buf[EB_UUID_POOL];
} eb_uuid_gen_t;


/* Empties the pool: the next id reads the kernel. */
void eb_uuid_gen_init(eb_uuid_gen_t *g);

/* Writes a UUID of the version in canonical lower-case form: exactly
 * EB_UUID_LEN bytes, no NUL. unix_ms is used by version 7 only. Returns 0,
 * or -1 (errno set) if the kernel gave no random bytes. */
int eb_uuid(eb_uuid_gen_t *g, eb_uuid_version_t version, uint64_t unix_ms,
    char *out);

/* len (at most EB_UUID_POOL) random bytes from the pool, for other ids
 * (trace ids); 0, or -1 (errno set) if the kernel gave none. */
int eb_uuid_random(eb_uuid_gen_t *g, unsigned char *dst, size_t len);

/* The canonical text of 16 bytes, as above. */
void eb_uuid_format(const unsigned char b[16], char *out);

#endif /* EB_UUID_H */
