#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <yajl/yajl_gen.h>
#include <yajl/yajl_parse.h>

#include "eb_buf.h"
#include "eb_config.h"
#include "eb_json.h"
#include "eb_jsonpath.h"
#include "eb_order.h"


#define EB_CONFIG_MAX_SIZE   (16 * 1024 * 1024)
#define EB_PATH_MAX          512
/* nesting of the file; patterns have their own, lower bound */
#define EB_CONFIG_MAX_DEPTH  1000


typedef enum {
    EB_K_STRING = 0,        /* any string */
    EB_K_NAME,              /* non-empty string */
    EB_K_URL,               /* http:// or https:// URL */
    EB_K_INT,               /* integer within min..max */
    EB_K_NUMBER,            /* number > 0 */
    EB_K_BOOL,
    EB_K_DURATION,
    EB_K_ENUM,
    EB_K_STRMAP,            /* object of strings */
    EB_K_STRINGS,           /* non-empty string, or an array of them */
    EB_K_PATHMAP,           /* object of JSONPath strings */
    EB_K_OBJECT,            /* checked by the caller */
    EB_K_ANY,               /* checked by the caller */
    EB_K_SECRET             /* a string as KEY, or the name of an
                               environment variable as KEY_env, or a
                               file as KEY_file: one of the three
                               (ebd reads them: ebd_secret.c) */
} eb_kind_t;


typedef struct {
    const char          *key;
    eb_kind_t            kind;
    int                  required;
    const char *const   *enums;
    long long            min;
    long long            max;
} eb_key_t;


typedef struct {
    const char  *file;
    char        *err;
    size_t       errlen;
    char         path[EB_PATH_MAX];
} eb_ctx_t;


static const char *const  eb_connection_types[] = {
    "basic", "api_key", "oauth2", NULL
};

static const char *const  eb_target_types[] = {
    "http", "cloudevents", "mysql", "postgresql", "redis", "dingtalk", NULL
};

static const char *const  eb_http_methods[] = {
    "GET", "POST", "PUT", "PATCH", "DELETE", NULL
};

static const char *const  eb_client_auths[] = { "basic", "post", NULL };

static const char *const  eb_strategies[] = {
    "backoff", "exponential", NULL
};

static const char *const  eb_fault_tolerance[] = { "ALL", "NONE", NULL };
static const char *const  eb_limits[] = { "shared", "process", NULL };
static const char *const  eb_http_versions[] = { "1.1", "2", NULL };

static const char *const  eb_ce_modes[] = { "binary", "structured", NULL };
static const char *const  eb_ce_delivery[] = { "sync", "async", NULL };
static const char *const  eb_on_duplicate[] = { "reject", "ignore", NULL };
static const char *const  eb_tls_modes[] = {
    "disable", "require", "verify-full", NULL
};
static const char *const  eb_sign_schemes[] = { "standard", "hmac", NULL };
static const char *const  eb_sign_algs[] = {
    "sha256", "sha512", "sha1", NULL
};
static const char *const  eb_sign_encodings[] = { "hex", "base64", NULL };

static const char *const  eb_transform_forms[] = {
    "ORIGINAL", "JSONPATH", "CONSTANT", "TEMPLATE", NULL
};


static const eb_key_t  eb_top_keys[] = {
    { "connections", EB_K_OBJECT, 0, NULL, 0, 0 },
    { "targets", EB_K_OBJECT, 0, NULL, 0, 0 },
    { "buses", EB_K_OBJECT, 1, NULL, 0, 0 },
    { NULL, 0, 0, NULL, 0, 0 }
};

static const eb_key_t  eb_basic_keys[] = {
    { "type", EB_K_ENUM, 1, eb_connection_types, 0, 0 },
    { "username", EB_K_NAME, 1, NULL, 0, 0 },
    { "password", EB_K_SECRET, 1, NULL, 0, 0 },
    { "insecure", EB_K_BOOL, 0, NULL, 0, 0 },
    { NULL, 0, 0, NULL, 0, 0 }
};

static const eb_key_t  eb_api_key_keys[] = {
    { "type", EB_K_ENUM, 1, eb_connection_types, 0, 0 },
    { "header", EB_K_NAME, 1, NULL, 0, 0 },
    { "value", EB_K_SECRET, 1, NULL, 0, 0 },
    { "insecure", EB_K_BOOL, 0, NULL, 0, 0 },
    { NULL, 0, 0, NULL, 0, 0 }
};

static const eb_key_t  eb_oauth2_keys[] = {
    { "type", EB_K_ENUM, 1, eb_connection_types, 0, 0 },
    { "token_url", EB_K_URL, 1, NULL, 0, 0 },
    { "client_id", EB_K_NAME, 1, NULL, 0, 0 },
    { "client_secret", EB_K_SECRET, 1, NULL, 0, 0 },
    { "scope", EB_K_STRING, 0, NULL, 0, 0 },
    { "method", EB_K_ENUM, 0, eb_http_methods, 0, 0 },
    { "client_auth", EB_K_ENUM, 0, eb_client_auths, 0, 0 },
    { "params", EB_K_STRMAP, 0, NULL, 0, 0 },
    { "insecure", EB_K_BOOL, 0, NULL, 0, 0 },
    { NULL, 0, 0, NULL, 0, 0 }
};

/* keys every target may have, then each type's own */
#define EB_TARGET_COMMON_KEYS                                                 \
    { "type", EB_K_ENUM, 1, eb_target_types, 0, 0 },                          \
    { "description", EB_K_STRING, 0, NULL, 0, 0 },                            \
    { "retry", EB_K_OBJECT, 0, NULL, 0, 0 },                                  \
    { "fault_tolerance", EB_K_ENUM, 0, eb_fault_tolerance, 0, 0 },            \
    { "dead_letter", EB_K_BOOL, 0, NULL, 0, 0 },                              \
    { "concurrency", EB_K_INT, 0, NULL, 1, 1024 },                            \
    { "limits", EB_K_ENUM, 0, eb_limits, 0, 0 },                              \
    { "memory_mb", EB_K_INT, 0, NULL, 1, 65536 },                             \
    { "timeout", EB_K_DURATION, 0, NULL, 0, 0 },                              \
    { "circuit_breaker", EB_K_OBJECT, 0, NULL, 0, 0 },                        \
    { "ordering_key", EB_K_STRING, 0, NULL, 0, 0 },                           \
    { "partitions", EB_K_INT, 0, NULL, 1, EB_ORDER_PARTITIONS_MAX }

static const char *const  eb_dingtalk_msgtypes[] = {
    "text", "markdown", "actionCard", NULL
};

static const eb_key_t  eb_dingtalk_keys[] = {
    EB_TARGET_COMMON_KEYS,
    { "url", EB_K_URL, 1, NULL, 0, 0 },
    { "secret", EB_K_SECRET, 0, NULL, 0, 0 },
    { "msgtype", EB_K_ENUM, 1, eb_dingtalk_msgtypes, 0, 0 },
    { "variables", EB_K_PATHMAP, 0, NULL, 0, 0 },
    { "title", EB_K_STRING, 0, NULL, 0, 0 },
    { "text", EB_K_STRING, 1, NULL, 0, 0 },
    { "single_title", EB_K_STRING, 0, NULL, 0, 0 },
    { "single_url", EB_K_STRING, 0, NULL, 0, 0 },
    { "at", EB_K_OBJECT, 0, NULL, 0, 0 },
    { "limit", EB_K_INT, 0, NULL, 1, 1000 },
    { "window", EB_K_DURATION, 0, NULL, 0, 0 },
    { NULL, 0, 0, NULL, 0, 0 }
};

static const eb_key_t  eb_http_keys[] = {
    EB_TARGET_COMMON_KEYS,
    { "url", EB_K_URL, 1, NULL, 0, 0 },
    { "method", EB_K_ENUM, 0, eb_http_methods, 0, 0 },
    { "headers", EB_K_STRMAP, 0, NULL, 0, 0 },
    { "query", EB_K_STRMAP, 0, NULL, 0, 0 },
    { "connection", EB_K_NAME, 0, NULL, 0, 0 },
    { "rate", EB_K_NUMBER, 0, NULL, 0, 0 },
    { "http_version", EB_K_ENUM, 0, eb_http_versions, 0, 0 },
    { "signing", EB_K_OBJECT, 0, NULL, 0, 0 },
    { NULL, 0, 0, NULL, 0, 0 }
};

static const eb_key_t  eb_cloudevents_keys[] = {
    EB_TARGET_COMMON_KEYS,
    { "url", EB_K_URL, 1, NULL, 0, 0 },
    { "mode", EB_K_ENUM, 0, eb_ce_modes, 0, 0 },
    { "delivery", EB_K_ENUM, 0, eb_ce_delivery, 0, 0 },
    { "headers", EB_K_STRMAP, 0, NULL, 0, 0 },
    { "connection", EB_K_NAME, 0, NULL, 0, 0 },
    { "rate", EB_K_NUMBER, 0, NULL, 0, 0 },
    { "http_version", EB_K_ENUM, 0, eb_http_versions, 0, 0 },
    { "signing", EB_K_OBJECT, 0, NULL, 0, 0 },
    { NULL, 0, 0, NULL, 0, 0 }
};

static const eb_key_t  eb_sql_keys[] = {
    EB_TARGET_COMMON_KEYS,
    { "host", EB_K_NAME, 1, NULL, 0, 0 },
    { "port", EB_K_INT, 0, NULL, 1, 65535 },
    { "user", EB_K_NAME, 1, NULL, 0, 0 },
    { "password", EB_K_SECRET, 0, NULL, 0, 0 },
    { "database", EB_K_NAME, 1, NULL, 0, 0 },
    { "table", EB_K_NAME, 1, NULL, 0, 0 },
    { "columns", EB_K_PATHMAP, 1, NULL, 0, 0 },
    { "batch", EB_K_INT, 0, NULL, 1, 10000 },
    { "on_duplicate", EB_K_ENUM, 0, eb_on_duplicate, 0, 0 },
    { "pool", EB_K_INT, 0, NULL, 1, 256 },
    { "tls", EB_K_OBJECT, 0, NULL, 0, 0 },
    { NULL, 0, 0, NULL, 0, 0 }
};

/* "tls" of mysql and postgresql targets: files ebd reads at connect */
static const eb_key_t  eb_tls_keys[] = {
    { "mode", EB_K_ENUM, 1, eb_tls_modes, 0, 0 },
    { "ca", EB_K_NAME, 0, NULL, 0, 0 },
    { "cert", EB_K_NAME, 0, NULL, 0, 0 },
    { "key", EB_K_NAME, 0, NULL, 0, 0 },
    { NULL, 0, 0, NULL, 0, 0 }
};

static const eb_key_t  eb_redis_keys[] = {
    EB_TARGET_COMMON_KEYS,
    { "address", EB_K_NAME, 1, NULL, 0, 0 },
    { "stream", EB_K_NAME, 1, NULL, 0, 0 },
    { "maxlen", EB_K_INT, 0, NULL, 1, 1000000000 },
    { "password", EB_K_SECRET, 0, NULL, 0, 0 },
    { "db", EB_K_INT, 0, NULL, 0, 65535 },
    { NULL, 0, 0, NULL, 0, 0 }
};

/* outbound signing of http and cloudevents targets; the secrets
 * themselves are read and checked by ebd (src/dispatcher/ebd_sign.c) */
static const eb_key_t  eb_signing_keys[] = {
    { "scheme", EB_K_ENUM, 1, eb_sign_schemes, 0, 0 },
    { "secret", EB_K_STRINGS, 0, NULL, 0, 0 },
    { "secret_env", EB_K_STRINGS, 0, NULL, 0, 0 },
    { "secret_file", EB_K_STRINGS, 0, NULL, 0, 0 },
    { "header", EB_K_NAME, 0, NULL, 0, 0 },
    { "algorithm", EB_K_ENUM, 0, eb_sign_algs, 0, 0 },
    { "encoding", EB_K_ENUM, 0, eb_sign_encodings, 0, 0 },
    { "prefix", EB_K_STRING, 0, NULL, 0, 0 },
    { "timestamp_header", EB_K_NAME, 0, NULL, 0, 0 },
    { NULL, 0, 0, NULL, 0, 0 }
};

static const eb_key_t  eb_breaker_keys[] = {
    { "failures", EB_K_INT, 0, NULL, 1, 10000 },
    { "cooldown", EB_K_DURATION, 0, NULL, 0, 0 },
    { NULL, 0, 0, NULL, 0, 0 }
};

static const eb_key_t  eb_retry_keys[] = {
    { "strategy", EB_K_ENUM, 0, eb_strategies, 0, 0 },
    { "attempts", EB_K_INT, 0, NULL, 0, 10000 },
    { "interval", EB_K_DURATION, 0, NULL, 0, 0 },
    { "max_interval", EB_K_DURATION, 0, NULL, 0, 0 },
    { "max_age", EB_K_DURATION, 0, NULL, 0, 0 },
    { NULL, 0, 0, NULL, 0, 0 }
};

static const eb_key_t  eb_bus_keys[] = {
    { "description", EB_K_STRING, 0, NULL, 0, 0 },
    { "rules", EB_K_OBJECT, 0, NULL, 0, 0 },
    { "retention", EB_K_OBJECT, 0, NULL, 0, 0 },
    { NULL, 0, 0, NULL, 0, 0 }
};

static const eb_key_t  eb_retention_keys[] = {
    { "age", EB_K_DURATION, 0, NULL, 0, 0 },
    { "length", EB_K_INT, 0, NULL, 1, EB_CONFIG_RETENTION_LENGTH_MAX },
    { NULL, 0, 0, NULL, 0, 0 }
};

static const eb_key_t  eb_rule_keys[] = {
    { "description", EB_K_STRING, 0, NULL, 0, 0 },
    { "enabled", EB_K_BOOL, 0, NULL, 0, 0 },
    { "pattern", EB_K_OBJECT, 1, NULL, 0, 0 },
    { "targets", EB_K_ANY, 1, NULL, 0, 0 },
    { NULL, 0, 0, NULL, 0, 0 }
};

static const eb_key_t  eb_rule_target_keys[] = {
    { "target", EB_K_NAME, 1, NULL, 0, 0 },
    { "transform", EB_K_OBJECT, 0, NULL, 0, 0 },
    { "ordering_key", EB_K_STRING, 0, NULL, 0, 0 },
    { NULL, 0, 0, NULL, 0, 0 }
};

static const eb_key_t  eb_transform_keys[] = {
    { "form", EB_K_ENUM, 1, eb_transform_forms, 0, 0 },
    { "value", EB_K_ANY, 0, NULL, 0, 0 },
    { "template", EB_K_STRING, 0, NULL, 0, 0 },
    { NULL, 0, 0, NULL, 0, 0 }
};




static int
eb_fail(eb_ctx_t *ctx, const char *fmt, ...)
{
    int      n;
    va_list  args;

    n = snprintf(ctx->err, ctx->errlen, "%s: %s: ", ctx->file,
                 ctx->path[0] ? ctx->path : "(top level)");

    if (n < 0 || (size_t) n >= ctx->errlen) {
        return -1;
    }

    va_start(args, fmt);
    vsnprintf(ctx->err + n, ctx->errlen - n, fmt, args);
    va_end(args);

    return -1;
}


/* Appends ".key" (or "key" at the top) to the path; returns the old
 * length so that the caller can cut it back. */
static size_t
eb_path_push(eb_ctx_t *ctx, const char *key)
{
    size_t  len;

    len = strlen(ctx->path);

    snprintf(ctx->path + len, sizeof(ctx->path) - len, "%s%s",
             len ? "." : "", key);

    return len;
}


static size_t
eb_path_push_index(eb_ctx_t *ctx, size_t i)
{
    size_t  len;

    len = strlen(ctx->path);
    snprintf(ctx->path + len, sizeof(ctx->path) - len, "[%zu]", i);

    return len;
}


static void
eb_path_pop(eb_ctx_t *ctx, size_t len)
{
    ctx->path[len] = '\0';
}


static int
eb_is_name(const char *s)
{
    const char  *p;

    if (*s == '\0' || strlen(s) > 128) {
        return 0;
    }

    for (p = s; *p; p++) {
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z')
              || (*p >= '0' && *p <= '9') || *p == '-' || *p == '_'
              || *p == '.'))
        {
            return 0;
        }
    }

    return 1;
}


int
eb_config_duration(yajl_val v, uint64_t *ms)
{
    const char  *s;

    if (YAJL_IS_INTEGER(v)) {
        if (YAJL_GET_INTEGER(v) < 0) {
            return -1;
        }
        *ms = (uint64_t) YAJL_GET_INTEGER(v);
        return 0;
    }

    s = YAJL_GET_STRING(v);

    return s ? eb_config_duration_str(s, ms) : -1;
}


int
eb_config_duration_str(const char *s, uint64_t *ms)
{
    char                *end;
    unsigned long long   n;

    if (*s < '0' || *s > '9') {
        return -1;
    }

    errno = 0;
    n = strtoull(s, &end, 10);
    if (errno || n > 1000ULL * 86400 * 3650) {
        return -1;
    }

    if (strcmp(end, "ms") == 0) {
        *ms = n;
    } else if (strcmp(end, "s") == 0) {
        *ms = n * 1000;
    } else if (strcmp(end, "m") == 0) {
        *ms = n * 60 * 1000;
    } else if (strcmp(end, "h") == 0) {
        *ms = n * 3600 * 1000;
    } else if (strcmp(end, "d") == 0) {
        *ms = n * 86400 * 1000;
    } else {
        return -1;
    }

    return 0;
}


static int
eb_check_value(eb_ctx_t *ctx, const eb_key_t *k, yajl_val v)
{
    size_t               i;
    uint64_t             ms;
    const char          *s;
    const char *const   *e;
    eb_jsonpath_t       *jp;
    char                 jerr[256];

    switch (k->kind) {

    case EB_K_STRING:
        if (!YAJL_IS_STRING(v)) {
            return eb_fail(ctx, "must be a string");
        }
        return 0;

    case EB_K_NAME:
        if (!YAJL_IS_STRING(v) || YAJL_GET_STRING(v)[0] == '\0') {
            return eb_fail(ctx, "must be a non-empty string");
        }
        return 0;

    case EB_K_SECRET:
        if (!YAJL_IS_STRING(v)) {
            return eb_fail(ctx, "must be a string");
        }
        return 0;

    case EB_K_URL:
        s = YAJL_GET_STRING(v);
        if (s == NULL
            || (strncmp(s, "http://", 7) != 0
                && strncmp(s, "https://", 8) != 0)
            || strlen(s) < 9)
        {
            return eb_fail(ctx, "must be an http:// or https:// URL");
        }
        return 0;

    case EB_K_INT:
        if (!YAJL_IS_INTEGER(v)
            || YAJL_GET_INTEGER(v) < k->min || YAJL_GET_INTEGER(v) > k->max)
        {
            return eb_fail(ctx, "must be an integer from %lld to %lld",
                           k->min, k->max);
        }
        return 0;

    case EB_K_NUMBER:
        if (!YAJL_IS_NUMBER(v) || !(YAJL_GET_DOUBLE(v) > 0)) {
            return eb_fail(ctx, "must be a number above 0");
        }
        return 0;

    case EB_K_BOOL:
        if (!YAJL_IS_TRUE(v) && !YAJL_IS_FALSE(v)) {
            return eb_fail(ctx, "must be true or false");
        }
        return 0;

    case EB_K_DURATION:
        if (eb_config_duration(v, &ms) != 0) {
            return eb_fail(ctx, "must be a duration: milliseconds, or a "
                           "string such as \"250ms\", \"10s\", \"5m\", "
                           "\"2h\", \"1d\"");
        }
        return 0;

    case EB_K_ENUM:
        s = YAJL_GET_STRING(v);
        for (e = k->enums; s && *e; e++) {
            if (strcmp(s, *e) == 0) {
                return 0;
            }
        }
        {
            char    list[256];
            size_t  n = 0;

            list[0] = '\0';
            for (e = k->enums; *e && n < sizeof(list); e++) {
                n += snprintf(list + n, sizeof(list) - n, "%s\"%s\"",
                              e == k->enums ? "" : ", ", *e);
            }
            return eb_fail(ctx, "must be one of %s", list);
        }

    case EB_K_STRMAP:
    case EB_K_PATHMAP:
        if (!YAJL_IS_OBJECT(v)) {
            return eb_fail(ctx, "must be an object of strings");
        }
        for (i = 0; i < v->u.object.len; i++) {
            size_t  old = eb_path_push(ctx, v->u.object.keys[i]);
            yajl_val  m = v->u.object.values[i];

            if (!YAJL_IS_STRING(m)) {
                return eb_fail(ctx, "must be a string");
            }

            if (k->kind == EB_K_PATHMAP) {
                s = m->u.string;
                jp = eb_jsonpath_compile(s, strlen(s), jerr, sizeof(jerr));
                if (jp == NULL) {
                    return eb_fail(ctx, "invalid JSONPath \"%s\": %s", s,
                                   jerr);
                }
                eb_jsonpath_free(jp);
            }

            eb_path_pop(ctx, old);
        }
        return 0;

    case EB_K_STRINGS:
        if (YAJL_IS_STRING(v) && YAJL_GET_STRING(v)[0] != '\0') {
            return 0;
        }
        if (!YAJL_IS_ARRAY(v) || v->u.array.len == 0) {
            return eb_fail(ctx, "must be a non-empty string or an array of "
                           "them");
        }
        for (i = 0; i < v->u.array.len; i++) {
            if (!YAJL_IS_STRING(v->u.array.values[i])
                || YAJL_GET_STRING(v->u.array.values[i])[0] == '\0')
            {
                return eb_fail(ctx, "must be a non-empty string or an array "
                               "of them");
            }
        }
        return 0;

    case EB_K_OBJECT:
        if (!YAJL_IS_OBJECT(v)) {
            return eb_fail(ctx, "must be an object");
        }
        return 0;

    case EB_K_ANY:
        return 0;
    }

    return 0;
}


/* Checks the members of obj against the key table: unknown keys, value
 * kinds, then required keys. */
/* "KEY_env" or "KEY_file" of a secret KEY */
static int
eb_secret_source(const char *key, const char *name)
{
    size_t  n = strlen(key);

    return strncmp(name, key, n) == 0
           && (strcmp(name + n, "_env") == 0 || strcmp(name + n, "_file") == 0);
}


/* one of KEY, KEY_env, KEY_file; none only if the secret is optional */
static int
eb_check_secret(eb_ctx_t *ctx, yajl_val obj, const eb_key_t *k)
{
    int   n;
    char  env[64], file[64];

    snprintf(env, sizeof(env), "%s_env", k->key);
    snprintf(file, sizeof(file), "%s_file", k->key);

    n = (eb_config_get(obj, k->key) != NULL)
        + (eb_config_get(obj, env) != NULL)
        + (eb_config_get(obj, file) != NULL);

    if (n > 1) {
        return eb_fail(ctx, "\"%s\", \"%s\" and \"%s\" exclude each "
                       "other: give one", k->key, env, file);
    }

    if (n == 0 && k->required) {
        return eb_fail(ctx, "missing key \"%s\" (or \"%s\", \"%s\")",
                       k->key, env, file);
    }

    return 0;
}


static int
eb_check_object(eb_ctx_t *ctx, yajl_val obj, const eb_key_t *keys)
{
    size_t           i, old;
    const eb_key_t  *k;

    if (!YAJL_IS_OBJECT(obj)) {
        return eb_fail(ctx, "must be an object");
    }

    for (i = 0; i < obj->u.object.len; i++) {

        for (k = keys; k->key; k++) {
            if (strcmp(k->key, obj->u.object.keys[i]) == 0
                || (k->kind == EB_K_SECRET
                    && eb_secret_source(k->key, obj->u.object.keys[i])))
            {
                break;
            }
        }

        if (k->key == NULL) {
            char    list[512];
            size_t  n = 0;

            list[0] = '\0';
            for (k = keys; k->key && n < sizeof(list); k++) {
                n += snprintf(list + n, sizeof(list) - n, "%s%s",
                              k == keys ? "" : ", ", k->key);
            }

            return eb_fail(ctx, "unknown key \"%s\" (known: %s)",
                           obj->u.object.keys[i], list);
        }

        old = eb_path_push(ctx, obj->u.object.keys[i]);

        if (eb_check_value(ctx, k, obj->u.object.values[i]) != 0) {
            return -1;
        }

        /* a variable's or a file's name is never empty */
        if (k->kind == EB_K_SECRET
            && strcmp(k->key, obj->u.object.keys[i]) != 0
            && YAJL_GET_STRING(obj->u.object.values[i])[0] == '\0')
        {
            return eb_fail(ctx, "must be a non-empty string");
        }

        eb_path_pop(ctx, old);
    }

    for (k = keys; k->key; k++) {
        if (k->kind == EB_K_SECRET) {
            if (eb_check_secret(ctx, obj, k) != 0) {
                return -1;
            }
            continue;
        }

        if (k->required && eb_config_get(obj, k->key) == NULL) {
            return eb_fail(ctx, "missing key \"%s\"", k->key);
        }
    }

    return 0;
}


yajl_val
eb_config_get(yajl_val obj, const char *key)
{
    const char  *path[2];

    path[0] = key;
    path[1] = NULL;

    return yajl_tree_get(obj, path, yajl_t_any);
}


static int
eb_enum_index(const char *const *enums, const char *s)
{
    int  i;

    for (i = 0; enums[i]; i++) {
        if (strcmp(enums[i], s) == 0) {
            return i;
        }
    }

    return -1;
}


/* RFC 6749 2.3.1: the client's credentials never in the token URL */
static int
eb_check_oauth2(eb_ctx_t *ctx, yajl_val spec)
{
    const char  *method, *auth;

    method = YAJL_GET_STRING(eb_config_get(spec, "method"));
    auth = YAJL_GET_STRING(eb_config_get(spec, "client_auth"));

    if (method != NULL && auth != NULL && strcmp(auth, "post") == 0
        && (strcmp(method, "GET") == 0 || strcmp(method, "DELETE") == 0))
    {
        (void) eb_path_push(ctx, "client_auth");
        return eb_fail(ctx, "\"post\" with method %s would put the client "
                       "secret in the token URL: use \"basic\"", method);
    }

    return 0;
}


static int
eb_load_connections(eb_ctx_t *ctx, eb_config_t *cf, yajl_val obj)
{
    size_t           i, old;
    yajl_val         spec, type;
    const eb_key_t  *keys;

    if (obj == NULL) {
        return 0;
    }

    cf->connections = calloc(obj->u.object.len + 1,
                             sizeof(eb_config_connection_t));
    if (cf->connections == NULL) {
        return eb_fail(ctx, "out of memory");
    }

    for (i = 0; i < obj->u.object.len; i++) {
        old = eb_path_push(ctx, "connections");
        eb_path_push(ctx, obj->u.object.keys[i]);

        if (!eb_is_name(obj->u.object.keys[i])) {
            return eb_fail(ctx, "invalid name: use 1 to 128 letters, "
                           "digits, \"-\", \"_\" or \".\"");
        }

        spec = obj->u.object.values[i];
        type = eb_config_get(spec, "type");

        if (!YAJL_IS_OBJECT(spec)) {
            return eb_fail(ctx, "must be an object");
        }

        if (!YAJL_IS_STRING(type)
            || eb_enum_index(eb_connection_types, YAJL_GET_STRING(type)) < 0)
        {
            return eb_fail(ctx, "\"type\" must be one of \"basic\", "
                           "\"api_key\", \"oauth2\"");
        }

        cf->connections[i].type = eb_enum_index(eb_connection_types,
                                                YAJL_GET_STRING(type));
        keys = cf->connections[i].type == EB_CONNECTION_BASIC ? eb_basic_keys
               : cf->connections[i].type == EB_CONNECTION_API_KEY
                 ? eb_api_key_keys : eb_oauth2_keys;

        if (eb_check_object(ctx, spec, keys) != 0
            || (cf->connections[i].type == EB_CONNECTION_OAUTH2
                && eb_check_oauth2(ctx, spec) != 0))
        {
            return -1;
        }

        cf->connections[i].name = obj->u.object.keys[i];
        cf->connections[i].spec = spec;
        cf->nconnections++;

        eb_path_pop(ctx, old);
    }

    return 0;
}


/* Credentials in clear over the network are refused, unless the
 * connection says "insecure": true (a peer on the loopback, a test). */
static int
eb_check_cleartext(eb_ctx_t *ctx, const eb_config_target_t *t,
    const eb_config_connection_t *c)
{
    const char  *url;

    if (YAJL_IS_TRUE(eb_config_get(c->spec, "insecure"))) {
        return 0;
    }

    url = YAJL_GET_STRING(eb_config_get(t->spec, "url"));
    if (url != NULL && strncmp(url, "http://", 7) == 0) {
        (void) eb_path_push(ctx, "connection");
        return eb_fail(ctx, "target \"%s\" would send the credentials of "
                       "connection \"%s\" (%s) in clear: its url is "
                       "http://; use https://, or set \"insecure\": true in "
                       "connections.%s", t->name, c->name,
                       eb_connection_types[c->type], c->name);
    }

    url = YAJL_GET_STRING(eb_config_get(c->spec, "token_url"));
    if (c->type == EB_CONNECTION_OAUTH2 && url != NULL
        && strncmp(url, "http://", 7) == 0)
    {
        (void) eb_path_push(ctx, "connection");
        return eb_fail(ctx, "connection \"%s\" (oauth2) would send its "
                       "client secret in clear: its token_url is http://; "
                       "use https://, or set \"insecure\": true in "
                       "connections.%s", c->name, c->name);
    }

    return 0;
}


static int
eb_find_connection(const eb_config_t *cf, const char *name)
{
    size_t  i;

    for (i = 0; i < cf->nconnections; i++) {
        if (strcmp(cf->connections[i].name, name) == 0) {
            return (int) i;
        }
    }

    return -1;
}


/* A dingtalk target: each field its msgtype needs, each a template
 * over "variables" that compiles (ebd_dingtalk.c builds the message). */
static int
eb_check_dingtalk(eb_ctx_t *ctx, yajl_val spec)
{
    size_t           i, sub;
    char             terr[512];
    yajl_val         f;
    const char      *msgtype;
    eb_transform_t  *tr;

    static const char *const  fields[] = {
        "text", "title", "single_title", "single_url"
    };

    msgtype = YAJL_GET_STRING(eb_config_get(spec, "msgtype"));

    for (i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
        f = eb_config_get(spec, fields[i]);
        sub = eb_path_push(ctx, fields[i]);

        if (f == NULL) {
            if ((i == 1 && strcmp(msgtype, "text") != 0)
                || (i > 1 && strcmp(msgtype, "actionCard") == 0))
            {
                return eb_fail(ctx, "required with msgtype \"%s\"", msgtype);
            }

            eb_path_pop(ctx, sub);
            continue;
        }

        tr = eb_transform_compile_tree("TEMPLATE",
                                       eb_config_get(spec, "variables"), f,
                                       terr, sizeof(terr));
        if (tr == NULL) {
            return eb_fail(ctx, "%s", terr);
        }

        eb_transform_free(tr);
        eb_path_pop(ctx, sub);
    }

    return 0;
}


/* an HTTP token: what a header name may be */
static int
eb_is_header_name(const char *s)
{
    for ( /* void */ ; *s; s++) {
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z')
              || (*s >= '0' && *s <= '9') || strchr("!#$%&'*+-.^_`|~", *s)))
        {
            return 0;
        }
    }

    return 1;
}


/* the number of strings of an EB_K_STRINGS value (0 when absent) */
static size_t
eb_strings_len(yajl_val v)
{
    return v == NULL ? 0 : YAJL_IS_ARRAY(v) ? v->u.array.len : 1;
}


/* "signing" of an http or cloudevents target: its shape; the secrets
 * are ebd's to read and check */
/* verify-full checks the server against a CA the file names (no
 * library's default store); a client certificate comes with its key */
static int
eb_check_tls(eb_ctx_t *ctx, yajl_val v)
{
    const char  *mode = YAJL_GET_STRING(eb_config_get(v, "mode"));

    if (strcmp(mode, "verify-full") == 0 && eb_config_get(v, "ca") == NULL) {
        return eb_fail(ctx, "\"verify-full\" needs \"ca\", the file of "
                       "the certificate authorities to trust");
    }

    if ((eb_config_get(v, "cert") == NULL)
        != (eb_config_get(v, "key") == NULL))
    {
        return eb_fail(ctx, "\"cert\" and \"key\" go together");
    }

    if (strcmp(mode, "disable") == 0 && v->u.object.len > 1) {
        return eb_fail(ctx, "\"disable\" takes no files");
    }

    return 0;
}


static int
eb_check_signing(eb_ctx_t *ctx, yajl_val v)
{
    size_t       i, n;
    yajl_val     e;
    const char  *s, *p, *hmac_only[] = { "header", "algorithm", "encoding",
                                         "prefix", "timestamp_header" };

    if (eb_check_object(ctx, v, eb_signing_keys) != 0) {
        return -1;
    }

    n = eb_strings_len(eb_config_get(v, "secret"))
        + eb_strings_len(eb_config_get(v, "secret_env"))
        + eb_strings_len(eb_config_get(v, "secret_file"));

    if (n == 0) {
        return eb_fail(ctx, "needs \"secret\", \"secret_env\" or "
                       "\"secret_file\"");
    }

    if (n > EB_CONFIG_SIGNING_KEYS_MAX) {
        return eb_fail(ctx, "more than %d secrets",
                       EB_CONFIG_SIGNING_KEYS_MAX);
    }

    e = eb_config_get(v, "secret_env");
    for (i = 0; i < eb_strings_len(e); i++) {
        s = YAJL_GET_STRING(YAJL_IS_ARRAY(e) ? e->u.array.values[i] : e);
        for (p = s; *p; p++) {
            if (!((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z')
                  || *p == '_' || (p > s && *p >= '0' && *p <= '9')))
            {
                (void) eb_path_push(ctx, "secret_env");
                return eb_fail(ctx, "\"%.64s\" is not an environment "
                               "variable name", s);
            }
        }
    }

    e = eb_config_get(v, "secret_file");
    for (i = 0; i < eb_strings_len(e); i++) {
        s = YAJL_GET_STRING(YAJL_IS_ARRAY(e) ? e->u.array.values[i] : e);
        if (s[0] != '/') {
            (void) eb_path_push(ctx, "secret_file");
            return eb_fail(ctx, "\"%.200s\" is not an absolute path", s);
        }
    }

    s = YAJL_GET_STRING(eb_config_get(v, "scheme"));

    if (strcmp(s, "standard") == 0) {
        for (i = 0; i < sizeof(hmac_only) / sizeof(hmac_only[0]); i++) {
            if (eb_config_get(v, hmac_only[i]) != NULL) {
                (void) eb_path_push(ctx, hmac_only[i]);
                return eb_fail(ctx, "only with \"scheme\": \"hmac\" "
                               "(Standard Webhooks sets its own headers)");
            }
        }
        return 0;
    }

    if (eb_config_get(v, "header") == NULL) {
        return eb_fail(ctx, "\"scheme\": \"hmac\" needs \"header\"");
    }

    for (i = 0; i < 2; i++) {
        s = YAJL_GET_STRING(eb_config_get(v, i ? "timestamp_header"
                                                : "header"));
        if (s != NULL && (!eb_is_header_name(s) || strlen(s) > 64)) {
            (void) eb_path_push(ctx, i ? "timestamp_header" : "header");
            return eb_fail(ctx, "\"%.64s\" is not a header name (1 to 64 "
                           "characters of an HTTP token)", s);
        }
    }

    s = YAJL_GET_STRING(eb_config_get(v, "timestamp_header"));
    p = YAJL_GET_STRING(eb_config_get(v, "header"));
    if (s != NULL && p != NULL && strcasecmp(s, p) == 0) {
        (void) eb_path_push(ctx, "timestamp_header");
        return eb_fail(ctx, "must not be \"header\"");
    }

    s = YAJL_GET_STRING(eb_config_get(v, "prefix"));
    for (p = s; p != NULL && *p; p++) {
        if ((unsigned char) *p < 0x20 || *p == 0x7f || *p == ','
            || p - s >= 32)
        {
            (void) eb_path_push(ctx, "prefix");
            return eb_fail(ctx, "at most 32 characters, no commas or "
                           "control characters");
        }
    }

    return 0;
}


/* "ordering_key" (of a target or a rule's target entry) compiles;
 * "partitions" only with one */
static int
eb_check_ordering(eb_ctx_t *ctx, yajl_val spec)
{
    char            err[256];
    yajl_val        v;
    eb_jsonpath_t  *jp;

    v = eb_config_get(spec, "ordering_key");

    if (v) {
        jp = eb_order_path(YAJL_GET_STRING(v), err, sizeof(err));
        if (jp == NULL) {
            (void) eb_path_push(ctx, "ordering_key");
            return eb_fail(ctx, "invalid ordering key \"%s\": %s",
                           YAJL_GET_STRING(v), err);
        }
        eb_jsonpath_free(jp);

    } else if (eb_config_get(spec, "partitions")) {
        (void) eb_path_push(ctx, "partitions");
        return eb_fail(ctx, "needs \"ordering_key\": partitions are of "
                       "the ordering key's hash");
    }

    return 0;
}


/* Whether and how a (rule, target) keeps order: the entry's own
 * "ordering_key", else the target's; a NONE target without one is in
 * order as a whole (one partition, one key). */
static int
eb_load_ordering(eb_ctx_t *ctx, const eb_config_target_t *t, yajl_val entry,
    eb_config_rule_target_t *rt)
{
    char       err[256];
    yajl_val   key, p, ft;

    key = eb_config_get(entry, "ordering_key");
    if (key == NULL) {
        key = eb_config_get(t->spec, "ordering_key");
    }

    if (key) {
        rt->order_path = eb_order_path(YAJL_GET_STRING(key), err,
                                       sizeof(err));
        if (rt->order_path == NULL) {
            return eb_fail(ctx, "out of memory");   /* checked before */
        }

        p = eb_config_get(t->spec, "partitions");
        rt->partitions = p && YAJL_IS_INTEGER(p)
                         ? (unsigned) YAJL_GET_INTEGER(p)
                         : EB_ORDER_PARTITIONS_DEFAULT;
        return 0;
    }

    ft = eb_config_get(t->spec, "fault_tolerance");
    if (ft && YAJL_IS_STRING(ft) && strcmp(ft->u.string, "NONE") == 0)
    {
        rt->partitions = 1;
    }

    return 0;
}


static int
eb_load_targets(eb_ctx_t *ctx, eb_config_t *cf, yajl_val obj)
{
    size_t               i, old, sub;
    yajl_val             spec, type, v;
    const eb_key_t      *keys;
    eb_config_target_t  *t;

    static const eb_key_t  *type_keys[] = {
        eb_http_keys, eb_cloudevents_keys, eb_sql_keys, eb_sql_keys,
        eb_redis_keys, eb_dingtalk_keys
    };

    if (obj == NULL) {
        return 0;
    }

    cf->targets = calloc(obj->u.object.len + 1, sizeof(eb_config_target_t));
    if (cf->targets == NULL) {
        return eb_fail(ctx, "out of memory");
    }

    for (i = 0; i < obj->u.object.len; i++) {
        old = eb_path_push(ctx, "targets");
        eb_path_push(ctx, obj->u.object.keys[i]);

        if (!eb_is_name(obj->u.object.keys[i])) {
            return eb_fail(ctx, "invalid name: use 1 to 128 letters, "
                           "digits, \"-\", \"_\" or \".\"");
        }

        spec = obj->u.object.values[i];

        if (!YAJL_IS_OBJECT(spec)) {
            return eb_fail(ctx, "must be an object");
        }

        type = eb_config_get(spec, "type");

        if (!YAJL_IS_STRING(type)
            || eb_enum_index(eb_target_types, YAJL_GET_STRING(type)) < 0)
        {
            return eb_fail(ctx, "\"type\" must be one of \"http\", "
                           "\"cloudevents\", \"mysql\", \"postgresql\", "
                           "\"redis\", \"dingtalk\"");
        }

        t = &cf->targets[i];
        t->name = obj->u.object.keys[i];
        t->type = eb_enum_index(eb_target_types, YAJL_GET_STRING(type));
        t->spec = spec;
        t->connection = -1;

        keys = type_keys[t->type];

        if (eb_check_object(ctx, spec, keys) != 0) {
            return -1;
        }

        v = eb_config_get(spec, "retry");
        if (v) {
            sub = eb_path_push(ctx, "retry");
            if (eb_check_object(ctx, v, eb_retry_keys) != 0) {
                return -1;
            }
            eb_path_pop(ctx, sub);
        }

        if (t->type == EB_TARGET_DINGTALK && eb_check_dingtalk(ctx, spec) != 0) {
            return -1;
        }

        if (eb_check_ordering(ctx, spec) != 0) {
            return -1;
        }

        v = eb_config_get(spec, "circuit_breaker");
        if (v) {
            sub = eb_path_push(ctx, "circuit_breaker");
            if (eb_check_object(ctx, v, eb_breaker_keys) != 0) {
                return -1;
            }
            eb_path_pop(ctx, sub);
        }

        v = eb_config_get(spec, "tls");
        if (v) {
            sub = eb_path_push(ctx, "tls");
            if (eb_check_object(ctx, v, eb_tls_keys) != 0
                || eb_check_tls(ctx, v) != 0)
            {
                return -1;
            }
            eb_path_pop(ctx, sub);
        }

        v = eb_config_get(spec, "signing");
        if (v) {
            sub = eb_path_push(ctx, "signing");
            if (eb_check_signing(ctx, v) != 0) {
                return -1;
            }
            eb_path_pop(ctx, sub);
        }

        v = eb_config_get(spec, "connection");
        if (v) {
            t->connection = eb_find_connection(cf, YAJL_GET_STRING(v));

            if (t->connection < 0) {
                (void) eb_path_push(ctx, "connection");
                return eb_fail(ctx, "undefined connection \"%s\"",
                               YAJL_GET_STRING(v));
            }

            if (eb_check_cleartext(ctx, t, &cf->connections[t->connection])
                != 0)
            {
                return -1;
            }
        }

        cf->ntargets++;
        eb_path_pop(ctx, old);
    }

    return 0;
}


static int
eb_find_target(const eb_config_t *cf, const char *name)
{
    size_t  i;

    for (i = 0; i < cf->ntargets; i++) {
        if (strcmp(cf->targets[i].name, name) == 0) {
            return (int) i;
        }
    }

    return -1;
}


/* Regenerates a parsed value as JSON text; numbers keep their text. */
static int
eb_gen_tree(yajl_gen g, yajl_val v)
{
    size_t  i;

    switch (v->type) {
    case yajl_t_string:
        return yajl_gen_string(g, (const unsigned char *) v->u.string,
                               strlen(v->u.string));
    case yajl_t_number:
        return yajl_gen_number(g, v->u.number.r, strlen(v->u.number.r));
    case yajl_t_true:
        return yajl_gen_bool(g, 1);
    case yajl_t_false:
        return yajl_gen_bool(g, 0);
    case yajl_t_null:
        return yajl_gen_null(g);
    case yajl_t_array:
        if (yajl_gen_array_open(g) != yajl_gen_status_ok) {
            return -1;
        }
        for (i = 0; i < v->u.array.len; i++) {
            if (eb_gen_tree(g, v->u.array.values[i]) != yajl_gen_status_ok) {
                return -1;
            }
        }
        return yajl_gen_array_close(g);
    case yajl_t_object:
        if (yajl_gen_map_open(g) != yajl_gen_status_ok) {
            return -1;
        }
        for (i = 0; i < v->u.object.len; i++) {
            if (yajl_gen_string(g, (const unsigned char *) v->u.object.keys[i],
                                strlen(v->u.object.keys[i]))
                != yajl_gen_status_ok
                || eb_gen_tree(g, v->u.object.values[i]) != yajl_gen_status_ok)
            {
                return -1;
            }
        }
        return yajl_gen_map_close(g);
    default:
        return -1;
    }
}


static int
eb_to_json(yajl_val v, eb_buf_t *out)
{
    int       rc;
    yajl_gen  g;

    g = yajl_gen_alloc(NULL);
    if (g == NULL) {
        return -1;
    }

    yajl_gen_config(g, yajl_gen_print_callback, eb_buf_yajl_print, out);

    rc = (eb_gen_tree(g, v) == yajl_gen_status_ok && !out->failed) ? 0 : -1;

    yajl_gen_free(g);
    return rc;
}


static int
eb_load_transform(eb_ctx_t *ctx, yajl_val spec, eb_transform_t **tp)
{
    char             terr[512];
    eb_transform_t  *tr;

    if (eb_check_object(ctx, spec, eb_transform_keys) != 0) {
        return -1;
    }

    tr = eb_transform_compile_tree(YAJL_GET_STRING(eb_config_get(spec, "form")),
                                   eb_config_get(spec, "value"),
                                   eb_config_get(spec, "template"),
                                   terr, sizeof(terr));
    if (tr == NULL) {
        return eb_fail(ctx, "%s", terr);
    }

    *tp = tr;
    return 0;
}


static int
eb_load_rule(eb_ctx_t *ctx, eb_config_t *cf, eb_config_bus_t *bus,
    const char *name, yajl_val spec)
{
    int                       idx;
    char                      perr[512];
    size_t                    i, old;
    yajl_val                  targets, pattern, v;
    eb_buf_t                  text;
    eb_config_rule_t         *rule;
    eb_config_rule_target_t  *rt;

    if (!eb_is_name(name)) {
        return eb_fail(ctx, "invalid rule name: use 1 to 128 letters, "
                       "digits, \"-\", \"_\" or \".\"");
    }

    if (eb_check_object(ctx, spec, eb_rule_keys) != 0) {
        return -1;
    }

    rule = &bus->rules[bus->nrules];
    rule->name = name;
    rule->id = (uint32_t) bus->nrules;
    v = eb_config_get(spec, "enabled");
    rule->enabled = v ? YAJL_IS_TRUE(v) : 1;

    targets = eb_config_get(spec, "targets");

    old = eb_path_push(ctx, "targets");

    if (!YAJL_IS_ARRAY(targets) || targets->u.array.len == 0) {
        return eb_fail(ctx, "must be a non-empty array of "
                       "{\"target\": NAME, \"transform\": {...}}");
    }

    rule->targets = calloc(targets->u.array.len,
                           sizeof(eb_config_rule_target_t));
    if (rule->targets == NULL) {
        return eb_fail(ctx, "out of memory");
    }

    bus->nrules++;      /* from here on freed with the bus */

    for (i = 0; i < targets->u.array.len; i++) {
        size_t  sub = eb_path_push_index(ctx, i);

        v = targets->u.array.values[i];

        if (eb_check_object(ctx, v, eb_rule_target_keys) != 0) {
            return -1;
        }

        idx = eb_find_target(cf, YAJL_GET_STRING(eb_config_get(v, "target")));
        if (idx < 0) {
            return eb_fail(ctx, "undefined target \"%s\"",
                           YAJL_GET_STRING(eb_config_get(v, "target")));
        }

        rt = &rule->targets[rule->ntargets];
        rt->target = (size_t) idx;

        if (eb_check_ordering(ctx, v) != 0
            || eb_load_ordering(ctx, &cf->targets[idx], v, rt) != 0)
        {
            return -1;
        }

        if (eb_config_get(v, "transform")) {
            size_t  t = eb_path_push(ctx, "transform");

            if (eb_load_transform(ctx, eb_config_get(v, "transform"),
                                  &rt->transform)
                != 0)
            {
                return -1;
            }

            eb_path_pop(ctx, t);
        }

        rule->ntargets++;
        eb_path_pop(ctx, sub);
    }

    eb_path_pop(ctx, old);

    pattern = eb_config_get(spec, "pattern");
    old = eb_path_push(ctx, "pattern");

    eb_buf_init(&text);

    if (eb_to_json(pattern, &text) != 0) {
        eb_buf_free(&text);
        return eb_fail(ctx, "out of memory");
    }

    /* a disabled rule is checked all the same, but matches nothing */
    if ((rule->enabled
         ? eb_ruleset_add(bus->ruleset, rule->id, text.data, text.len,
                          perr, sizeof(perr))
         : eb_pattern_check(text.data, text.len, perr, sizeof(perr)))
        != 0)
    {
        eb_buf_free(&text);
        return eb_fail(ctx, "%s", perr);
    }

    eb_buf_free(&text);
    eb_path_pop(ctx, old);

    return 0;
}


/* "retention" of a bus: how long and how many of eb:{BUS}:events ebd
 * keeps; at least one of the two */
static int
eb_load_retention(eb_ctx_t *ctx, eb_config_bus_t *bus, yajl_val v)
{
    size_t    old;
    yajl_val  age, length;

    if (eb_check_object(ctx, v, eb_retention_keys) != 0) {
        return -1;
    }

    age = eb_config_get(v, "age");
    length = eb_config_get(v, "length");

    if (age == NULL && length == NULL) {
        return eb_fail(ctx, "set \"age\" (a duration), \"length\" (a "
                       "number of events) or both");
    }

    if (age) {
        old = eb_path_push(ctx, "age");
        (void) eb_config_duration(age, &bus->retention_age_ms);
        if (bus->retention_age_ms == 0) {
            return eb_fail(ctx, "must be above 0: an age of 0 would remove "
                           "every event");
        }
        eb_path_pop(ctx, old);
    }

    if (length) {
        bus->retention_length = (uint64_t) YAJL_GET_INTEGER(length);
    }

    return 0;
}


static int
eb_load_buses(eb_ctx_t *ctx, eb_config_t *cf, yajl_val obj)
{
    char              perr[512];
    size_t            i, j, old, sub;
    yajl_val          spec, rules;
    eb_config_bus_t  *bus;

    cf->buses = calloc(obj->u.object.len + 1, sizeof(eb_config_bus_t));
    if (cf->buses == NULL) {
        return eb_fail(ctx, "out of memory");
    }

    for (i = 0; i < obj->u.object.len; i++) {
        old = eb_path_push(ctx, "buses");
        eb_path_push(ctx, obj->u.object.keys[i]);

        if (!eb_is_name(obj->u.object.keys[i])) {
            return eb_fail(ctx, "invalid bus name: use 1 to 128 letters, "
                           "digits, \"-\", \"_\" or \".\"");
        }

        spec = obj->u.object.values[i];

        if (eb_check_object(ctx, spec, eb_bus_keys) != 0) {
            return -1;
        }

        bus = &cf->buses[i];
        bus->name = obj->u.object.keys[i];
        bus->ruleset = eb_ruleset_new();
        cf->nbuses++;

        if (bus->ruleset == NULL) {
            return eb_fail(ctx, "out of memory");
        }

        if (eb_config_get(spec, "retention")) {
            sub = eb_path_push(ctx, "retention");
            if (eb_load_retention(ctx, bus, eb_config_get(spec, "retention"))
                != 0)
            {
                return -1;
            }
            eb_path_pop(ctx, sub);
        }

        rules = eb_config_get(spec, "rules");

        if (rules) {
            bus->rules = calloc(rules->u.object.len + 1,
                                sizeof(eb_config_rule_t));
            if (bus->rules == NULL) {
                return eb_fail(ctx, "out of memory");
            }

            for (j = 0; j < rules->u.object.len; j++) {
                sub = eb_path_push(ctx, "rules");
                eb_path_push(ctx, rules->u.object.keys[j]);

                if (eb_load_rule(ctx, cf, bus, rules->u.object.keys[j],
                                 rules->u.object.values[j])
                    != 0)
                {
                    return -1;
                }

                eb_path_pop(ctx, sub);
            }
        }

        if (eb_ruleset_compile(bus->ruleset, perr, sizeof(perr)) != 0) {
            return eb_fail(ctx, "%s", perr);
        }

        eb_path_pop(ctx, old);
    }

    return 0;
}


/* For a JSON syntax error: yajl's message and the line and column of the
 * byte where parsing stopped. */
static void
eb_syntax_error(const char *file, const unsigned char *text, size_t len,
    char *err, size_t errlen)
{
    size_t          at, i, line, col;
    yajl_handle     h;
    yajl_status     st;
    unsigned char  *msg, *nl;

    h = yajl_alloc(NULL, NULL, NULL);
    if (h == NULL) {
        snprintf(err, errlen, "%s: out of memory", file);
        return;
    }

    st = yajl_parse(h, text, len);

    /* yajl counts the offending byte as consumed */
    at = yajl_get_bytes_consumed(h);
    at = at ? at - 1 : 0;

    if (st == yajl_status_ok) {
        st = yajl_complete_parse(h);
        at = len;
    }

    msg = yajl_get_error(h, 0, text, len);

    line = 1;
    col = 1;

    for (i = 0; i < at && i < len; i++) {
        if (text[i] == '\n') {
            line++;
            col = 1;

        } else {
            col++;
        }
    }

    if (msg) {
        nl = (unsigned char *) strchr((char *) msg, '\n');
        if (nl) {
            *nl = '\0';
        }
    }

    snprintf(err, errlen, "%s:%zu:%zu: invalid JSON: %s", file, line, col,
             msg ? (char *) msg : "syntax error");

    if (msg) {
        yajl_free_error(h, msg);
    }

    yajl_free(h);
}


eb_config_t *
eb_config_parse(const char *file, const unsigned char *text, size_t len,
    char *err, size_t errlen)
{
    char          *copy, yerr[256];
    eb_ctx_t       ctx;
    yajl_val       root;
    eb_config_t   *cf;

    ctx.file = file;
    ctx.err = err;
    ctx.errlen = errlen;
    ctx.path[0] = '\0';

    /* yajl_tree_parse wants a NUL-terminated string */
    copy = malloc(len + 1);
    if (copy == NULL) {
        snprintf(err, errlen, "%s: out of memory", file);
        return NULL;
    }

    if (len) {
        memcpy(copy, text, len);
    }

    copy[len] = '\0';

    if (len && memchr(text, '\0', len) != NULL) {
        free(copy);
        snprintf(err, errlen, "%s: contains a NUL byte", file);
        return NULL;
    }

    root = yajl_tree_parse(copy, yerr, sizeof(yerr));
    free(copy);

    if (root == NULL) {
        eb_syntax_error(file, text, len, err, errlen);
        return NULL;
    }

    /* what yajl lets through: a string left open after the value,
     * unpaired surrogate escapes, a key twice in an object */
    if (eb_json_validate(text, len, EB_CONFIG_MAX_DEPTH, NULL, yerr,
                         sizeof(yerr))
        != EB_JSON_OK)
    {
        yajl_tree_free(root);
        snprintf(err, errlen, "%s: %s", file, yerr);
        return NULL;
    }

    cf = calloc(1, sizeof(eb_config_t));
    if (cf == NULL) {
        yajl_tree_free(root);
        snprintf(err, errlen, "%s: out of memory", file);
        return NULL;
    }

    cf->root = root;
    cf->file = strdup(file);

    if (cf->file == NULL
        || eb_check_object(&ctx, root, eb_top_keys) != 0
        || eb_load_connections(&ctx, cf, eb_config_get(root, "connections")) != 0
        || eb_load_targets(&ctx, cf, eb_config_get(root, "targets")) != 0
        || eb_load_buses(&ctx, cf, eb_config_get(root, "buses")) != 0)
    {
        if (cf->file == NULL) {
            snprintf(err, errlen, "%s: out of memory", file);
        }

        eb_config_free(cf);
        return NULL;
    }

    err[0] = '\0';
    return cf;
}


eb_config_t *
eb_config_load(const char *file, char *err, size_t errlen)
{
    FILE           *f;
    long            size;
    size_t          n;
    unsigned char  *text;
    eb_config_t    *cf;

    f = fopen(file, "rb");
    if (f == NULL) {
        snprintf(err, errlen, "%s: cannot open: %s", file, strerror(errno));
        return NULL;
    }

    if (fseek(f, 0, SEEK_END) != 0 || (size = ftell(f)) < 0
        || fseek(f, 0, SEEK_SET) != 0)
    {
        snprintf(err, errlen, "%s: cannot read: %s", file, strerror(errno));
        fclose(f);
        return NULL;
    }

    if (size > EB_CONFIG_MAX_SIZE) {
        snprintf(err, errlen, "%s: larger than %d bytes", file,
                 EB_CONFIG_MAX_SIZE);
        fclose(f);
        return NULL;
    }

    text = malloc((size_t) size + 1);
    if (text == NULL) {
        snprintf(err, errlen, "%s: out of memory", file);
        fclose(f);
        return NULL;
    }

    n = fread(text, 1, (size_t) size, f);
    fclose(f);

    if (n != (size_t) size) {
        snprintf(err, errlen, "%s: cannot read", file);
        free(text);
        return NULL;
    }

    cf = eb_config_parse(file, text, n, err, errlen);
    free(text);

    return cf;
}


const eb_config_bus_t *
eb_config_bus(const eb_config_t *cf, const char *name, size_t len)
{
    size_t  i;

    for (i = 0; i < cf->nbuses; i++) {
        if (strlen(cf->buses[i].name) == len
            && memcmp(cf->buses[i].name, name, len) == 0)
        {
            return &cf->buses[i];
        }
    }

    return NULL;
}


void
eb_config_free(eb_config_t *cf)
{
    size_t             i, j, k;
    eb_config_bus_t   *bus;
    eb_config_rule_t  *rule;

    if (cf == NULL) {
        return;
    }

    for (i = 0; i < cf->nbuses; i++) {
        bus = &cf->buses[i];

        for (j = 0; j < bus->nrules; j++) {
            rule = &bus->rules[j];

            for (k = 0; k < rule->ntargets; k++) {
                if (rule->targets[k].transform) {
                    eb_transform_free(rule->targets[k].transform);
                }
                if (rule->targets[k].order_path) {
                    eb_jsonpath_free(rule->targets[k].order_path);
                }
            }

            free(rule->targets);
        }

        free(bus->rules);

        if (bus->ruleset) {
            eb_ruleset_free(bus->ruleset);
        }
    }

    free(cf->buses);
    free(cf->targets);
    free(cf->connections);
    yajl_tree_free(cf->root);
    free(cf->file);
    free(cf);
}
