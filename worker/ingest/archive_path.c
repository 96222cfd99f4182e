/* Normalising and vetting archive entry names (pure, no I/O). */
#include "ingest/archive_path.h"

#include "base/utf8.h"
#include "base/xalloc.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
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

/* Length of the well-formed UTF-8 sequence at s (1 for printable ASCII), or 0 when the
 * byte must be escaped (control byte, stray or invalid byte, truncated sequence). */
static size_t printable_len(const unsigned char *s, size_t left)
{
    size_t n;
    if (*s < 0x20 || *s == 0x7f)
        return 0;
    if (*s < 0x80)
        return 1;
    if (*s >= 0xc2 && *s <= 0xdf)
        n = 2;
    else if (*s >= 0xe0 && *s <= 0xef)
        n = 3;
    else if (*s >= 0xf0 && *s <= 0xf4)
        n = 4;
    else
        return 0;
    return n <= left && utf8_valid((const char *)s, n) ? n : 0;
}

/* Bytes the rendering of s[0..left) takes in full. */
static size_t rendered_len(const unsigned char *s, size_t left)
{
    size_t total = 0;
    while (left > 0) {
        size_t n = printable_len(s, left);
        total += n ? n : 4;
        s += n ? n : 1;
        left -= n ? n : 1;
    }
    return total;
}

void archive_path_display(const char *raw, char *out, size_t outlen)
{
    static const char ellipsis[] = "...";
    if (raw == NULL) {
        snprintf(out, outlen, "(no name)");
        return;
    }
    const unsigned char *s = (const unsigned char *)raw;
    size_t left = strlen(raw), o = 0;
    bool cut = rendered_len(s, left) > outlen - 1;
    size_t limit = cut ? outlen - sizeof ellipsis : outlen - 1;
    while (left > 0) {
        size_t n = printable_len(s, left);
        size_t need = n ? n : 4;
        if (o + need > limit)
            break;
        if (n)
            memcpy(out + o, s, n);
        else
            snprintf(out + o, 5, "\\x%02x", *s);
        o += need;
        s += n ? n : 1;
        left -= n ? n : 1;
    }
    if (cut)
        memcpy(out + o, ellipsis, sizeof ellipsis);
    else
        out[o] = '\0';
}

char *archive_path_bare_conf_name(const char *upload_name, bool *renamed)
{
    static const char fallback[] = "upload.conf", suffix[] = ".conf";
    *renamed = false;
    if (upload_name == NULL)
        return cw_xstrdup(fallback);
    const char *slash = strrchr(upload_name, '/');
    const char *base = slash ? slash + 1 : upload_name;
    size_t len = strlen(base);
    char *name = cw_xmalloc(len + sizeof suffix);
    if (archive_path_normalize(base, name, len + 1, NULL) != 0) {
        free(name);
        return cw_xstrdup(fallback);
    }
    len = strlen(name);
    if (len <= 5 || strcmp(name + len - 5, suffix) != 0) { /* ".conf" alone names nothing */
        memcpy(name + len, suffix, sizeof suffix);
        *renamed = true;
    }
    return name;
}
