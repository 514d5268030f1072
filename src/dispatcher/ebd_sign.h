/*
 * Outbound signing of the requests of http and cloudevents targets
 * ("signing" of a target; docs/configuration.md):
 *
 *   standard  Standard Webhooks: webhook-id, webhook-timestamp and
 *             webhook-signature, the content signed "{id}.{ts}.{body}";
 *             v1 (HMAC-SHA256, "whsec_" secrets) and v1a (Ed25519,
 *             "whsk_" keys or a PEM private key), one signature per
 *             secret, space-separated (key rotation).
 *   hmac      one header: PREFIX + hex or base64 of HMAC-SHA256/512/1
 *             of the body, or of "{ts}.{body}" with a timestamp header;
 *             several secrets: comma-separated.
 *
 * Secrets come from the file itself, the environment or files; they are
 * read, decoded and made into OpenSSL objects (a keyed HMAC context, an
 * Ed25519 key) once, when the target is opened and when the
 * configuration is checked; a request only runs the MAC or the signature.
 * No message ever shows a secret.
 *
 * Crypto is OpenSSL's (EVP_MAC, EVP_DigestSign, EVP_EncodeBlock); the
 * strict base64 decoder is the one of the inbound signatures
 * (eb_signature.h).
 */

#ifndef EBD_SIGN_H
#define EBD_SIGN_H

#include <stddef.h>
#include <stdint.h>

#include "eb_buf.h"
#include "eb_config.h"


typedef struct ebd_sign_s  ebd_sign_t;


/* The signer of target t, from its "signing" (already checked by
 * eb_config.c): *out is NULL when t has none. Returns 0, or -1 with err
 * "signing.FIELD: what is wrong" (a name or a path, never a secret). */
int ebd_sign_open(const eb_config_target_t *t, ebd_sign_t **out, char *err,
    size_t errlen);

/* What ebd checks of a configuration beyond eb_config_load(): the
 * signing secrets of every http and cloudevents target (present, the
 * right form and length). Returns 0, or -1 with err
 * "FILE: targets.NAME.signing.FIELD: what is wrong". */
int ebd_sign_check(const eb_config_t *cf, char *err, size_t errlen);

/* Appends the signature's header lines for one request, each
 * "Name: value" and NUL-terminated, to hdr and counts them in *n. id is
 * the webhook-id (standard), now the Unix time in seconds, body the
 * bytes sent. Returns 0, or -1 (out of memory, OpenSSL failed). */
int ebd_sign_request(const ebd_sign_t *s, eb_buf_t *hdr, unsigned *n,
    const char *id, int64_t now, const unsigned char *body, size_t len);

void ebd_sign_free(ebd_sign_t *s);


#endif /* EBD_SIGN_H */
