/*
 * Minimal TAP producer for the C unit tests: each binary prints a plan,
 * "ok N - name" lines, and exits non-zero if anything failed.
 */

#ifndef EB_TAP_H
#define EB_TAP_H

#include <stdio.h>
#include <string.h>

static int  tap_n;
static int  tap_failed;

#define ok(cond, ...)                                                         \
    do {                                                                      \
        int tap_ok_ = (cond) ? 1 : 0;                                         \
        printf("%sok %d - ", tap_ok_ ? "" : "not ", ++tap_n);                 \
        printf(__VA_ARGS__);                                                  \
        printf("\n");                                                         \
        if (!tap_ok_) {                                                       \
            tap_failed++;                                                     \
            printf("#   failed at %s line %d\n", __FILE__, __LINE__);         \
        }                                                                     \
    } while (0)

#define is_str(got, want, ...)                                                \
    do {                                                                      \
        const char *tap_g_ = (got), *tap_w_ = (want);                         \
        ok(tap_g_ && strcmp(tap_g_, tap_w_) == 0, __VA_ARGS__);               \
        if (!(tap_g_ && strcmp(tap_g_, tap_w_) == 0)) {                       \
            printf("#   got:      '%s'\n#   expected: '%s'\n",                \
                   tap_g_ ? tap_g_ : "(null)", tap_w_);                       \
        }                                                                     \
    } while (0)

#define is_int(got, want, ...)                                                \
    do {                                                                      \
        long long tap_g_ = (long long) (got), tap_w_ = (long long) (want);    \
        ok(tap_g_ == tap_w_, __VA_ARGS__);                                    \
        if (tap_g_ != tap_w_) {                                               \
            printf("#   got: %lld, expected: %lld\n", tap_g_, tap_w_);        \
        }                                                                     \
    } while (0)

static int
tap_done(void)
{
    printf("1..%d\n", tap_n);
    return tap_failed ? 1 : 0;
}

#endif /* EB_TAP_H */
