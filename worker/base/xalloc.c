/* Allocation wrappers: abort with a message instead of returning NULL. */
#include "base/xalloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void *reserve;
static size_t reserve_size;
static bool reserve_used;

static void out_of_memory(size_t size)
{
    fprintf(stderr, "cworker: out of memory allocating %zu bytes\n", size);
    abort();
}

/* True when there was a reserve to give back: the caller retries once. */
static bool release_reserve(void)
{
    if (!reserve)
        return false;
    free(reserve);
    reserve = NULL;
    reserve_used = true;
    return true;
}

void cw_xalloc_reserve(size_t bytes)
{
    if (reserve && reserve_size == bytes)
        return;
    free(reserve);
    reserve = bytes ? malloc(bytes) : NULL;
    reserve_size = reserve ? bytes : 0;
    if (reserve)
        memset(reserve, 0, bytes);
    reserve_used = false;
}

bool cw_xalloc_reserve_used(void)
{
    return reserve_used;
}

void cw_xalloc_failed(size_t size)
{
    if (!release_reserve())
        out_of_memory(size);
}

void *cw_xmalloc(size_t size)
{
    void *p = malloc(size ? size : 1);
    if (!p && release_reserve())
        p = malloc(size ? size : 1);
    if (!p)
        out_of_memory(size);
    return p;
}

void *cw_xcalloc(size_t count, size_t size)
{
    void *p = calloc(count ? count : 1, size ? size : 1);
    if (!p && release_reserve())
        p = calloc(count ? count : 1, size ? size : 1);
    if (!p)
        out_of_memory(count * size);
    return p;
}

void *cw_xrealloc(void *ptr, size_t size)
{
    void *p = realloc(ptr, size ? size : 1);
    if (!p && release_reserve())
        p = realloc(ptr, size ? size : 1);
    if (!p)
        out_of_memory(size);
    return p;
}

char *cw_xstrdup(const char *s)
{
    return cw_xstrndup(s, strlen(s));
}

char *cw_xstrndup(const char *s, size_t n)
{
    size_t len = strnlen(s, n);
    char *p = cw_xmalloc(len + 1);
    memcpy(p, s, len);
    p[len] = '\0';
    return p;
}
