/*
 * Webhook signatures: what eb_sig_scheme.c (configuration) and
 * eb_sig_verify.c (the request path) share.
 */

#ifndef EB_SIG_INT_H
#define EB_SIG_INT_H

#include "eb_signature.h"


#define EB_SIG_MAC_MAX      64      /* SHA-512 */
#define EB_SIG_ED25519_LEN  64      /* an Ed25519 signature */
#define EB_SIG_ED25519_KEY  32      /* an Ed25519 public key */
#define EB_SIG_TOLERANCE_MAX  (366 * 86400)


#define eb_sig_err(err, errlen, ...)                                          \
    do {                                                                      \
        if ((err) != NULL && (errlen) > 0) {                                  \
            snprintf((err), (errlen), __VA_ARGS__);                           \
        }                                                                     \
    } while (0)


/* MAC lengths by EB_SIG_SHA1 / _SHA256 / _SHA512 */
extern const size_t  eb_sig_mac_lens[];

/* hex to bytes; returns the length, or -1 (not hex, too long) */
long eb_sig_hex_decode(unsigned char *dst, size_t dstlen,
    const unsigned char *src, size_t len);

#endif /* EB_SIG_INT_H */
