/* Shared by the archive reader's entry points (fd, memory, upload_source): the walk
 * itself and what the first bytes of an upload say. Not for callers outside ingest/. */
#ifndef CWORKER_ARCHIVE_WALK_H
#define CWORKER_ARCHIVE_WALK_H

#include "ingest/archive_reader.h"
#include "ingest/gzip_source.h"

struct archive;

/* What the first bytes of an upload say, before libarchive looks at it. */
struct upload_magic {
    bool gzip, zip;
    bool empty_zip;      /* starts with the end record: a zip of no entries */
    bool empty_zip_lies; /* ... whose end record claims entries all the same */
    bool tar;            /* "ustar" where a tar header has it */
};

#define MAGIC_BYTES 263

struct upload_magic archive_sniff(const unsigned char *p, size_t n);
/* A zip of no entries (end record first): ok, or damaged when the record lies. */
int archive_walk_empty_zip(const struct upload_magic *m, struct archive_stats *stats,
                           struct cw_error *err);
/* A reader with the formats and filters the contract names; NULL when out of memory. */
struct archive *archive_new_reader(void);
/* Walks a, opened with open_rc, over our gzip layer gz (or NULL); frees a. */
int archive_walk(struct archive *a, int open_rc, struct gzip_source *gz,
                 const struct upload_magic *m, const char *upload_name,
                 const struct archive_limits *limits, const struct archive_visitor *v,
                 struct archive_stats *stats, struct cw_error *err);
/* "Invalid archive format: empty file". */
int archive_fail_empty(struct archive_stats *stats, struct cw_error *err);

#endif
