/* Strict UTF-8 validation and character-counted prefixes (for varchar(n) widths). */
#ifndef CWORKER_UTF8_H
#define CWORKER_UTF8_H

#include <stdbool.h>
#include <stddef.h>

/* True when s[0..len) is well-formed UTF-8 (RFC 3629): no overlong forms, no
 * surrogates (U+D800..U+DFFF), nothing above U+10FFFF. NUL bytes are valid UTF-8;
 * callers that need text without NUL check for it themselves. */
bool utf8_valid(const char *s, size_t len);

/* Byte length of the first max_chars characters of s[0..len), never splitting a
 * character. Characters are counted by their lead bytes, so on invalid input the
 * result is still a safe cut (it never ends inside a well-formed sequence). */
size_t utf8_prefix_chars(const char *s, size_t len, size_t max_chars);

/* Largest length <= max_bytes that does not end inside a character of s[0..len). */
size_t utf8_cut_bytes(const char *s, size_t len, size_t max_bytes);

/* Number of characters in s[0..len) (lead bytes counted, as above). */
size_t utf8_char_count(const char *s, size_t len);

/* Replaces every byte that is not part of a well-formed sequence by '?', in place, so
 * the text can be stored in a UTF-8 database. Returns how many bytes were replaced. */
size_t utf8_repair(char *s, size_t len);

#endif
