/*
 * Secrets from the configuration file, the environment or a file: one
 * reader for every driver, so each secret of the file can be kept out
 * of it the same way. A secret is read when its target opens (start,
 * SIGHUP, `ebd -t`), so a missing variable or unreadable file fails
 * there, never at delivery time.
 */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/crypto.h>

#include "ebd_secret.h"


char *
ebd_secret_read_file(const char *path, size_t *len, char *err,
    size_t errlen)
{
    FILE    *f;
    char    *buf;
    size_t   n;

    f = fopen(path, "rb");
    if (f == NULL) {
        snprintf(err, errlen, "cannot open \"%.200s\": %s", path,
                 strerror(errno));
        return NULL;
    }

    buf = malloc(EBD_SECRET_MAX + 1);
    if (buf == NULL) {
        fclose(f);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }

    n = fread(buf, 1, EBD_SECRET_MAX + 1, f);

    if (ferror(f) || n > EBD_SECRET_MAX) {
        snprintf(err, errlen, ferror(f) ? "cannot read \"%.200s\""
                                        : "\"%.200s\" is larger than 64 KiB",
                 path);
        fclose(f);
        OPENSSL_cleanse(buf, n);
        free(buf);
        return NULL;
    }

    fclose(f);

    while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r')) {
        n--;
    }

    buf[n] = '\0';
    *len = n;
    return buf;
}


int
ebd_secret_load(yajl_val spec, const char *name, char **out, size_t *len,
    char *err, size_t errlen)
{
    char         key[64], e[256];
    size_t       n;
    const char  *v, *text;
    const char  *path[2] = { key, NULL };

    *out = NULL;
    *len = 0;

    path[0] = name;
    v = YAJL_GET_STRING(yajl_tree_get(spec, path, yajl_t_string));
    if (v != NULL) {
        *out = strdup(v);
        *len = strlen(v);
        goto done;
    }

    path[0] = key;
    snprintf(key, sizeof(key), "%s_env", name);
    v = YAJL_GET_STRING(yajl_tree_get(spec, path, yajl_t_string));
    if (v != NULL) {
        text = getenv(v);
        if (text == NULL) {
            snprintf(err, errlen, "%s: the environment variable \"%.64s\" "
                     "is not set", key, v);
            return -1;
        }
        *out = strdup(text);
        *len = strlen(text);
        goto done;
    }

    snprintf(key, sizeof(key), "%s_file", name);
    v = YAJL_GET_STRING(yajl_tree_get(spec, path, yajl_t_string));
    if (v != NULL) {
        *out = ebd_secret_read_file(v, &n, e, sizeof(e));
        if (*out == NULL) {
            snprintf(err, errlen, "%s: %s", key, e);
            return -1;
        }
        *len = n;
        return 0;
    }

    return 0;                   /* none of the three */

done:

    if (*out == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }

    return 0;
}


void
ebd_secret_free(char *s)
{
    if (s != NULL) {
        OPENSSL_cleanse(s, strlen(s));
        free(s);
    }
}
