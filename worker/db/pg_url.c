/* PostgreSQL URLs as the application writes them, checked and made libpq's (see
 * db/pg_url.h). No I/O: libpq only parses here. */
#include "db/pg_url.h"

#include "base/strbuf.h"
#include "base/xalloc.h"
#include "db/pg_error.h"

#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

char *pg_libpq_url(const char *url)
{
    const char *plus = strchr(url, '+');
    const char *scheme_end = strstr(url, "://");
    if (!plus || !scheme_end || plus > scheme_end ||
        (strncmp(url, "postgresql+", 11) != 0 && strncmp(url, "postgres+", 9) != 0))
        return cw_xstrdup(url);
    struct strbuf sb = STRBUF_INIT;
    strbuf_append(&sb, url, (size_t)(plus - url));
    strbuf_append_str(&sb, scheme_end);
    return strbuf_steal(&sb);
}

/* A URL whose scheme libpq does not know is parsed by it as key=value text, and its
 * complaint then quotes the URL back: say what is wrong instead. */
static bool foreign_scheme(const char *url)
{
    const char *sep = strstr(url, "://");
    if (!sep)
        return false;
    size_t n = (size_t)(sep - url);
    return !((n == 8 && strncmp(url, "postgres", 8) == 0) ||
             (n == 10 && strncmp(url, "postgresql", 10) == 0));
}

bool pg_url_valid(const char *url, char *why, size_t len)
{
    char *libpq_url = pg_libpq_url(url);
    if (foreign_scheme(libpq_url)) {
        snprintf(why, len, "the scheme is not postgresql:// or postgres://");
        free(libpq_url);
        return false;
    }
    char *msg = NULL;
    PQconninfoOption *opts = PQconninfoParse(libpq_url, &msg);
    if (!opts)
        pg_describe_conninfo_error(libpq_url, msg, why, len);
    PQconninfoFree(opts);
    PQfreemem(msg);
    free(libpq_url);
    return opts != NULL;
}
