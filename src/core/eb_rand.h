/*
 * A small, fast PRNG (xoshiro256**) for event ids. Each nginx worker
 * seeds its own state from the kernel (getrandom) when it starts, so
 * ids stay unique across workers and restarts without a syscall per id.
 */

#ifndef EB_RAND_H
#define EB_RAND_H

#include <stdint.h>
#include <stddef.h>


typedef struct {
    uint64_t  s[4];
} eb_rand_t;


/* Seeds from the kernel's CSPRNG; returns 0 on success, -1 on failure. */
int eb_rand_seed_os(eb_rand_t *r);
/* Seeds deterministically (tests). */
void eb_rand_seed(eb_rand_t *r, uint64_t seed);
uint64_t eb_rand_next(eb_rand_t *r);

#define EB_UUID_LEN  36

/* Writes a random (version 4, RFC 9562) UUID in canonical lower-case
 * form: exactly EB_UUID_LEN bytes, no terminating NUL. */
void eb_uuid_v4(eb_rand_t *r, char *out);

#endif /* EB_RAND_H */
