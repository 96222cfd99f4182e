/* Strict UTF-8 validation and character-counted prefixes (for varchar(n) widths). */
#include "base/utf8.h"

/* Length of the sequence starting at s[0] if it is well-formed, else 0. The
 * second-byte ranges follow the table in RFC 3629 section 4, which excludes
 * overlongs, surrogates and code points above U+10FFFF in one place. */
static size_t sequence_len(const unsigned char *s, size_t avail)
{
    unsigned char c = s[0];
    size_t n;
    unsigned char lo = 0x80, hi = 0xBF;

    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF) {
        n = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
        n = 3;
        if (c == 0xE0)
            lo = 0xA0; /* overlong */
        else if (c == 0xED)
            hi = 0x9F; /* surrogates */
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4;
        if (c == 0xF0)
            lo = 0x90; /* overlong */
        else if (c == 0xF4)
            hi = 0x8F; /* above U+10FFFF */
    } else {
        return 0; /* continuation byte, C0/C1 overlong leads, F5..FF */
    }
    if (avail < n || s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < n; i++)
        if ((s[i] & 0xC0) != 0x80)
            return 0;
    return n;
}

bool utf8_valid(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;

    while (i < len) {
        if (p[i] < 0x80) { /* fast path for ASCII, which most .conf text is */
            i++;
            continue;
        }
        size_t n = sequence_len(p + i, len - i);
        if (n == 0)
            return false;
        i += n;
    }
    return true;
}

static bool is_continuation(unsigned char c)
{
    return (c & 0xC0) == 0x80;
}

size_t utf8_prefix_chars(const char *s, size_t len, size_t max_chars)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t chars = 0;

    for (size_t i = 0; i < len; i++) {
        if (is_continuation(p[i]))
            continue;
        if (chars == max_chars)
            return i;
        chars++;
    }
    return len;
}

size_t utf8_char_count(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t chars = 0;

    for (size_t i = 0; i < len; i++)
        if (!is_continuation(p[i]))
            chars++;
    return chars;
}

size_t utf8_cut_bytes(const char *s, size_t len, size_t max_bytes)
{
    if (len <= max_bytes)
        return len;
    size_t n = max_bytes;
    while (n > 0 && is_continuation((unsigned char)s[n]))
        n--;
    return n;
}

size_t utf8_repair(char *s, size_t len)
{
    unsigned char *p = (unsigned char *)s;
    size_t replaced = 0;
    size_t i = 0;

    while (i < len) {
        size_t n = sequence_len(p + i, len - i);
        if (n == 0) {
            p[i] = '?';
            replaced++;
            n = 1;
        }
        i += n;
    }
    return replaced;
}
