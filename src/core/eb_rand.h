/*
 * A small, fast PRNG (xoshiro256**) for ebd's retry jitter, seeded from
 * the kernel. Not for anything a peer could profit from predicting: event
 * ids come from the kernel's CSPRNG (eb_uuid.h).
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

#endif /* EB_RAND_H */
