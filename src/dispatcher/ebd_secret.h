/*
 * Secrets of the configuration (passwords, API keys, client secrets,
 * signing keys): given inline as NAME, or read from the environment
 * variable named by NAME_env, or from the file named by NAME_file.
 * eb_config.c allows at most one of the three (EB_K_SECRET).
 */

#ifndef EBD_SECRET_H
#define EBD_SECRET_H

#include <stddef.h>
#include <yajl/yajl_tree.h>


#define EBD_SECRET_MAX  (64 * 1024)


/* *out: the secret (malloc'ed, NUL-terminated), or NULL when the spec
 * has none of the three; -1 and err (naming NAME_env / NAME_file and the
 * variable or path, never the secret) when it cannot be read */
int ebd_secret_load(yajl_val spec, const char *name, char **out,
    size_t *len, char *err, size_t errlen);
/* the contents of a secret file without the line end an editor or echo
 * leaves (malloc'ed, NUL-terminated) */
char *ebd_secret_read_file(const char *path, size_t *len, char *err,
    size_t errlen);
/* wiped, then freed */
void ebd_secret_free(char *s);

#endif /* EBD_SECRET_H */
