/* Normalising and vetting archive entry names (pure, no I/O). */
#include "ingest/archive_path.h"

#include <stdbool.h>
#include <string.h>

static bool has_control_bytes(const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (*p < 0x20 || *p == 0x7f)
            return true;
    return false;
}

/* Length of the component starting at s (up to the next '/' or the end). */
static size_t component_len(const char *s)
{
    const char *slash = strchr(s, '/');
    return slash ? (size_t)(slash - s) : strlen(s);
}

int archive_path_normalize(const char *raw, char *out, size_t outlen, int *depth_out)
{
    if (raw == NULL || out == NULL || raw[0] == '/' || has_control_bytes(raw))
        return -1;
    size_t rawlen = strlen(raw);
    if (outlen < rawlen + 1)
        return -1;

    /* Validate everything before writing so that out stays untouched on failure. */
    int depth = 0;
    for (const char *p = raw; *p;) {
        size_t n = component_len(p);
        if (n == 2 && p[0] == '.' && p[1] == '.')
            return -1;
        if (n > 0 && !(n == 1 && p[0] == '.'))
            depth++;
        p += n;
        if (*p == '/')
            p++;
    }
    if (depth == 0)
        return -1;

    size_t o = 0;
    for (const char *p = raw; *p;) {
        size_t n = component_len(p);
        if (n > 0 && !(n == 1 && p[0] == '.')) {
            if (o > 0)
                out[o++] = '/';
            memcpy(out + o, p, n);
            o += n;
        }
        p += n;
        if (*p == '/')
            p++;
    }
    out[o] = '\0';
    if (depth_out)
        *depth_out = depth;
    return 0;
}
