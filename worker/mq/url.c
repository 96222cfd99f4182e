/* rabbitmq-c wrapper: broker URLs as kombu writes them (failover lists, the "//" vhost). */
#include "base/xalloc.h"
#include "mq/conn.h"
#include "mq/conn_internal.h"

#include <stdlib.h>
#include <string.h>

/* Celery/kombu URLs name the default vhost "/" as "amqp://host//" (or leave the path empty)
 * and may carry ?options; rabbitmq-c wants "/" percent-encoded and no query. Returns a copy
 * rabbitmq-c parses the way kombu reads the original. */
char *mq_url_for_rabbitmq_c(const char *url)
{
    char *copy = cw_xstrdup(url);
    char *query = strchr(copy, '?');
    if (query)
        *query = '\0';
    char *scheme_end = strstr(copy, "://");
    char *path = scheme_end ? strchr(scheme_end + 3, '/') : NULL;
    if (path && (strcmp(path, "/") == 0 || strcmp(path, "//") == 0))
        *path = '\0'; /* no path: rabbitmq-c's default vhost is "/" */
    return copy;
}

unsigned mq_conn_url_count(const char *urls)
{
    unsigned n = 1;
    for (const char *p = urls; p && *p; p++)
        n += *p == ';';
    return n;
}

char *mq_conn_url_at(const char *urls, unsigned i)
{
    const char *start = urls ? urls : "";
    for (unsigned k = 0; k < i; k++) {
        start = strchr(start, ';');
        if (!start)
            return NULL;
        start++;
    }
    size_t len = strcspn(start, ";");
    char *url = cw_xmalloc(len + 1);
    memcpy(url, start, len);
    url[len] = '\0';
    /* kombu allows blanks around the separators */
    char *b = url;
    while (*b == ' ')
        b++;
    memmove(url, b, strlen(b) + 1);
    for (size_t n = strlen(url); n > 0 && url[n - 1] == ' '; n--)
        url[n - 1] = '\0';
    return url;
}

int mq_conn_parse_url(const char *url, struct amqp_connection_info *info, char **storage)
{
    char *first = mq_conn_url_at(url, 0); /* of a failover list, the first */
    *storage = mq_url_for_rabbitmq_c(first);
    free(first);
    amqp_default_connection_info(info);
    return amqp_parse_url(*storage, info) == AMQP_STATUS_OK ? 0 : -1;
}

bool mq_conn_url_valid(const char *urls)
{
    bool ok = true;
    for (unsigned i = 0; ok && i < mq_conn_url_count(urls); i++) {
        struct amqp_connection_info info;
        char *url = mq_conn_url_at(urls, i);
        char *copy = mq_url_for_rabbitmq_c(url);
        ok = amqp_parse_url(copy, &info) == AMQP_STATUS_OK;
        free(copy);
        free(url);
    }
    return ok;
}
