/* Which conf type a file is and where in Splunk's layering it sits, from its path. */
#include "ingest/provenance.h"
#include "base/utf8.h"

#include <stddef.h>
#include <string.h>

#define MAX_COMPONENTS 64

static const char *const TYPE_NAMES[] = {
    [CONF_TYPE_INPUTS] = "inputs",         [CONF_TYPE_PROPS] = "props",
    [CONF_TYPE_TRANSFORMS] = "transforms", [CONF_TYPE_INDEXES] = "indexes",
    [CONF_TYPE_OUTPUTS] = "outputs",       [CONF_TYPE_SERVERCLASSES] = "serverclasses",
    [CONF_TYPE_OTHER] = "other",
};

/* Folders whose children are apps, each with its own default/ and local/. */
static const char *const APP_CONTAINERS[] = {
    "apps", "deployment-apps", "manager-apps", "master-apps", "slave-apps", "peer-apps",
};

const char *conf_type_name(enum conf_type t)
{
    if ((unsigned)t > CONF_TYPE_OTHER)
        return "other";
    return TYPE_NAMES[t];
}

enum conf_type conf_type_from_path(const char *path)
{
    const char *slash = strrchr(path, '/');
    const char *base = slash ? slash + 1 : path;

    if (strcmp(base, "serverclass.conf") == 0)
        return CONF_TYPE_SERVERCLASSES;
    for (int t = CONF_TYPE_INPUTS; t < CONF_TYPE_SERVERCLASSES; t++) {
        size_t n = strlen(TYPE_NAMES[t]);
        if (strncmp(base, TYPE_NAMES[t], n) == 0 && strcmp(base + n, ".conf") == 0)
            return (enum conf_type)t;
    }
    return CONF_TYPE_OTHER;
}

/* A path component: not NUL-terminated, it points into the caller's path. */
struct comp {
    const char *s;
    size_t n;
};

static int comp_is(struct comp c, const char *word)
{
    return c.n == strlen(word) && memcmp(c.s, word, c.n) == 0;
}

static size_t split_path(const char *path, struct comp *out, size_t max)
{
    size_t n = 0;
    const char *p = path;
    while (*p && n < max) {
        const char *end = strchrnul(p, '/');
        if (end > p) /* "a//b" has no empty component */
            out[n++] = (struct comp){p, (size_t)(end - p)};
        p = *end ? end + 1 : end;
    }
    return *p ? 0 : n; /* too deep to be a Splunk layout: no provenance */
}

static void set_app(struct provenance *out, struct comp app)
{
    /* 255 characters for the column, and the buffer bounds the bytes as well. */
    size_t n = utf8_prefix_chars(app.s, app.n, sizeof out->app - 1);
    n = utf8_cut_bytes(app.s, n, sizeof out->app - 1);
    out->app_truncated = n < app.n;
    memcpy(out->app, app.s, n);
    out->app[n] = '\0';
}

static void set_scope_layer(struct provenance *out, struct comp scope, const char *layer)
{
    memcpy(out->scope, scope.s, scope.n); /* "default" or "local": fits */
    out->scope[scope.n] = '\0';
    strcpy(out->layer, layer);
}

static int is_app_container(struct comp c)
{
    for (size_t i = 0; i < sizeof APP_CONTAINERS / sizeof APP_CONTAINERS[0]; i++)
        if (comp_is(c, APP_CONTAINERS[i]))
            return 1;
    return 0;
}

void provenance_from_path(const char *normalized_path, struct provenance *out)
{
    struct comp c[MAX_COMPONENTS];
    size_t n = split_path(normalized_path, c, MAX_COMPONENTS);

    memset(out, 0, sizeof *out);
    if (n < 3)
        return;       /* at least <something>/<scope>/<file> */
    size_t s = n - 2; /* the scope folder */
    if (!comp_is(c[s], "default") && !comp_is(c[s], "local"))
        return;
    /* Order matters: a container rule is more specific than the bare-bundle rule. */
    if (s >= 2 && is_app_container(c[s - 2])) {
        set_app(out, c[s - 1]);
        set_scope_layer(out, c[s], "app");
    } else if (comp_is(c[s - 1], "system")) {
        set_scope_layer(out, c[s], "system");
    } else if (s >= 3 && comp_is(c[s - 3], "users")) {
        set_app(out, c[s - 1]);
        set_scope_layer(out, c[s], "user");
    } else if (s == 1 && !comp_is(c[0], "etc")) {
        set_app(out, c[0]);
        set_scope_layer(out, c[s], "app");
    }
}
