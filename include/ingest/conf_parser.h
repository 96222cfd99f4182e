/* Streaming parser for Splunk .conf files (CONTRACT 1.6): bytes in, stanzas out. */
#ifndef CWORKER_CONF_PARSER_H
#define CWORKER_CONF_PARSER_H

#include "base/error.h"
#include "base/strbuf.h"

#include <stdbool.h>
#include <stddef.h>

#define CONF_PARSER_DEFAULT_MAX_LINE (1024 * 1024)
/* What one stanza may hold. Only the stanza being filled is in memory when stanzas are
 * streamed (conf_parser_set_sink), so these bound the parser's memory whatever the file's
 * size: a stanza of a million settings, or of 100 MB of long lines, is a parse error.
 * Real stanzas have hundreds of settings and kilobytes of text at most. The bytes bound is
 * the tighter one: a stanza's COPY row can take over ten times its text (control characters
 * become \u0001 in JSON, then COPY doubles the backslash), so 4 MiB keeps the worst stanza
 * of a hostile file near 64 MB. */
#define CONF_PARSER_DEFAULT_MAX_SETTINGS     100000     /* distinct keys per stanza */
#define CONF_PARSER_DEFAULT_MAX_STANZA_BYTES (4u << 20) /* name, keys and values of one stanza */

/* All strings are NUL-terminated, valid UTF-8 without NUL bytes, owned by the
 * enclosing conf_file (or, handed to a sink, by the parser until the sink returns). */
struct conf_setting {
    char *key;
    char *value; /* may be ""; continued lines joined with "\n" */
};

struct conf_stanza {
    char *name;                    /* "default" for settings before the first header */
    struct conf_setting *settings; /* file order of each key's first occurrence */
    size_t nsettings, cap;
    int order_in_file; /* 0, 1, 2, ... in the order stanzas appear in the file */
};

struct conf_file {
    struct conf_stanza *stanzas; /* none when a sink took them */
    size_t nstanzas, cap;
    size_t warnings; /* lines ignored: "[" without "]", text without "=", empty key */
};

/* Receives each stanza once it is complete (the next header, or the end of the file); st
 * and its strings are released when it returns. Non-zero (with err set) stops the parse:
 * feed or finish then return -1 with that error. */
typedef int (*conf_stanza_fn)(void *ctx, const struct conf_stanza *st, struct cw_error *err);

/* Key -> setting index for the stanza being filled, so duplicate keys are found in
 * O(1) even in hostile files with huge stanzas. Private to the parser. */
struct conf_key_index {
    size_t *slots; /* setting index + 1; 0 = empty */
    size_t cap;    /* power of two, or 0 */
    size_t used;
};

/* Lives on the caller's stack; all fields are private. Everything it allocates is
 * released by conf_parser_finish (moved out) and conf_parser_free. */
struct conf_parser {
    size_t max_line;         /* logical line limit in bytes, terminators excluded */
    size_t max_settings;     /* distinct keys per stanza */
    size_t max_stanza_bytes; /* name, keys and values of one stanza */
    const char *over_limit;  /* "settings"/"bytes" when one was exceeded: the line fails */
    conf_stanza_fn sink;     /* NULL: stanzas are collected into `file` */
    void *sink_ctx;
    bool have_stanza;          /* `stanza` is being filled */
    struct conf_stanza stanza; /* the stanza being filled */
    bool have_done;            /* `done` waits for the sink (see end_stanza) */
    struct conf_stanza done;   /* completed by the current line */
    size_t stanza_bytes;       /* its name, keys and values */
    size_t nstanzas;           /* stanzas started in this file */
    struct strbuf line;        /* the physical line being accumulated */
    size_t lineno;             /* physical lines completed so far */
    bool in_continuation;      /* the previous physical line ended in "\" */
    size_t logical_len;        /* bytes of the logical line before `line` */
    size_t logical_start;      /* line number where the continued logical line began */
    struct strbuf value;       /* the continued value being joined */
    char *cont_key;            /* its key (owned) */
    bool failed;               /* a parse error was reported; feed/finish refuse */
    struct conf_file file;     /* warnings, and the stanzas collected when there is no sink */
    struct conf_key_index keys;
};

void conf_parser_init(struct conf_parser *p, size_t max_line_bytes);

/* Overrides the per-stanza limits (0 keeps the default); call after init. */
void conf_parser_set_limits(struct conf_parser *p, size_t max_settings, size_t max_stanza_bytes);

/* Streams: each complete stanza goes to fn instead of being collected, so the parser holds
 * one stanza at a time. Call after init, before the first feed. */
void conf_parser_set_sink(struct conf_parser *p, conf_stanza_fn fn, void *ctx);

/* Feeds any chunk of the file; chunk boundaries never change the result. On a parse
 * error (invalid UTF-8, NUL byte, logical line over the limit, a stanza over the
 * per-stanza limits) returns -1 with a CW_ERR_PERMANENT error "line N: ..."; the parser is
 * then unusable except for conf_parser_free. Stanzas completed before the error were
 * already handed to the sink: a caller that must not keep part of a failed file undoes
 * them itself. A sink's error is returned as it is. */
CW_MUST_CHECK int conf_parser_feed(struct conf_parser *p, const void *data, size_t len,
                                   struct cw_error *err);

/* Ends the input (a final line without newline counts; the last stanza goes to the sink)
 * and moves the results (the warnings, and the stanzas without a sink) into *out, which
 * the caller owns and releases with conf_file_free. */
CW_MUST_CHECK int conf_parser_finish(struct conf_parser *p, struct conf_file *out,
                                     struct cw_error *err);

/* Releases what the parser still holds; safe after finish, after an error, and twice. */
void conf_parser_free(struct conf_parser *p);

void conf_file_free(struct conf_file *f);

/* One-shot: init, feed, finish, free. *out is filled only on success. */
CW_MUST_CHECK int conf_parse_buffer(const void *data, size_t len, size_t max_line_bytes,
                                    struct conf_file *out, struct cw_error *err);

/* Value of key in stanza (exact match), or NULL. */
const char *conf_stanza_get(const struct conf_stanza *st, const char *key);

#endif
