/* Streaming parser for Splunk .conf files (CONTRACT 1.6): bytes in, stanzas out. */
#ifndef CWORKER_CONF_PARSER_H
#define CWORKER_CONF_PARSER_H

#include "base/error.h"
#include "base/strbuf.h"

#include <stdbool.h>
#include <stddef.h>

#define CONF_PARSER_DEFAULT_MAX_LINE (1024 * 1024)
/* What one file may hold: every stanza and setting is kept in memory until the run's one
 * transaction, so a 100 MB file of "[a]" lines must not become 25 million rows. Real
 * files have thousands at most. */
#define CONF_PARSER_DEFAULT_MAX_STANZAS  100000
#define CONF_PARSER_DEFAULT_MAX_SETTINGS 1000000

/* All strings are NUL-terminated, valid UTF-8 without NUL bytes, owned by the
 * enclosing conf_file. */
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
    struct conf_stanza *stanzas;
    size_t nstanzas, cap;
    size_t warnings; /* lines ignored: "[" without "]", text without "=", empty key */
};

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
    size_t max_line;        /* logical line limit in bytes, terminators excluded */
    size_t max_stanzas;     /* stanzas per file */
    size_t max_settings;    /* distinct keys per file, all stanzas together */
    size_t nsettings;       /* distinct keys so far */
    const char *over_limit; /* "stanzas"/"settings" when one was refused: the line fails */
    struct strbuf line;     /* the physical line being accumulated */
    size_t lineno;          /* physical lines completed so far */
    bool in_continuation;   /* the previous physical line ended in "\" */
    size_t logical_len;     /* bytes of the logical line before `line` */
    size_t logical_start;   /* line number where the continued logical line began */
    struct strbuf value;    /* the continued value being joined */
    char *cont_key;         /* its key (owned) */
    bool failed;            /* a parse error was reported; feed/finish refuse */
    bool have_header;       /* a [header] was seen: no more implicit "default" */
    struct conf_file file;  /* results so far */
    struct conf_key_index keys;
};

void conf_parser_init(struct conf_parser *p, size_t max_line_bytes);

/* Overrides the stanza and setting limits (0 keeps the default); call after init. */
void conf_parser_set_limits(struct conf_parser *p, size_t max_stanzas, size_t max_settings);

/* Feeds any chunk of the file; chunk boundaries never change the result. On a parse
 * error (invalid UTF-8, NUL byte, logical line over the limit, more stanzas or
 * settings than the limits) returns -1 with a
 * CW_ERR_PERMANENT error "line N: ..."; the parser is then unusable except for
 * conf_parser_free. */
CW_MUST_CHECK int conf_parser_feed(struct conf_parser *p, const void *data, size_t len,
                                   struct cw_error *err);

/* Ends the input (a final line without newline counts) and moves the results into
 * *out, which the caller owns and releases with conf_file_free. */
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
