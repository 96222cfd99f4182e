/* Streaming reader for uploaded Splunk archives (libarchive): detects the format by
 * content, walks the entries under hard limits and hands safe regular files to a visitor.
 * Nothing is extracted to disk and memory stays bounded by one chunk per walk. gzip is
 * inflated by gzip_source (CRC-32 and length verified, to the end of the upload), zip is
 * read through its central directory only. */
#ifndef CWORKER_ARCHIVE_READER_H
#define CWORKER_ARCHIVE_READER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/error.h"

struct archive_limits {
    uint64_t max_entry_bytes; /* uncompressed bytes actually produced by one entry */
    uint64_t max_total_bytes; /* uncompressed bytes of all entries, skipped ones included */
    uint64_t max_entries;     /* headers read, directories and skipped entries included */
    int max_depth;            /* path components of a (normalised) entry path */
};

#define ARCHIVE_LIMITS_DEFAULT                                                                     \
    {                                                                                              \
        100ull << 20, 1ull << 30, 10000, 20                                                        \
    }

enum archive_kind {
    ARCHIVE_KIND_TAR,
    ARCHIVE_KIND_TAR_GZIP,
    ARCHIVE_KIND_TAR_BZIP2,
    ARCHIVE_KIND_TAR_XZ,
    ARCHIVE_KIND_ZIP,
    ARCHIVE_KIND_SINGLE_CONF, /* a bare text file: one entry, named after the upload */
};

/* "tar", "tar.gz", "tar.bz2", "tar.xz", "zip", "conf" (static strings). */
const char *archive_kind_name(enum archive_kind k);

/* Every callback may be NULL: no want_entry means no entry is wanted. */
struct archive_visitor {
    void *ctx;
    /* A regular, safe entry, path normalised and valid UTF-8 (bytes that are not are
     * replaced by '?'; valid only during the call); return true to receive its data. */
    bool (*want_entry)(void *ctx, const char *path);
    /* Data of a wanted entry, in order, in chunks of at most 64 KiB; return -1 (err filled)
     * to abort the whole walk. Not called for an empty entry. */
    int (*entry_data)(void *ctx, const void *chunk, size_t len, struct cw_error *err);
    /* End of a wanted entry (also for an empty one); return -1 (err filled) to abort. */
    int (*entry_end)(void *ctx, struct cw_error *err);
    /* An entry that was skipped (unsafe path, link, device, fifo, encrypted...) or whose
     * name had to be repaired (not UTF-8), with the reason. path is the name as stored,
     * rendered by archive_path_display: valid UTF-8, control and bad bytes as \xNN, cut
     * to ARCHIVE_PATH_DISPLAY_MAX. */
    void (*warning)(void *ctx, const char *path, const char *reason);
};

struct archive_stats {
    enum archive_kind kind;
    uint64_t entries;            /* every header read */
    uint64_t entries_skipped;    /* entries reported through warning() */
    uint64_t bytes_uncompressed; /* all entries' data bytes produced */
};

/* Walks the archive read from fd (from its current offset; the caller keeps and closes
 * the fd). upload_name (files.path, may be NULL) only names the entry of a bare .conf
 * upload: its base name. Errors:
 *  - CW_ERR_PERMANENT "Invalid archive format: <detail>" for an empty, unsupported or
 *    corrupt upload (libarchive's message as detail where it has one);
 *  - CW_ERR_PERMANENT "Archive limit exceeded: <detail>" when a limit is passed, by what
 *    an entry's header declares (before anything is inflated) or by what it produces;
 *  - a callback's own error, wrapped with the entry's path;
 *  - CW_ERR_TRANSIENT when the fd itself cannot be read (fstat).
 * stats (may be NULL) is filled as far as the walk got, also on error. */
CW_MUST_CHECK int archive_reader_walk_fd(int fd, const char *upload_name,
                                         const struct archive_limits *limits,
                                         const struct archive_visitor *v,
                                         struct archive_stats *stats, struct cw_error *err);

struct upload_source;
/* The same over an upload read as a stream (ingest/upload_source.h), so that the bytes are
 * hashed as they are read and no second pass is needed: gzip, tar, bzip2, xz and bare
 * uploads are read front to back once. A zip is read through its central directory, at
 * the end of the file: with positional reads on the local file (the stream, and so its
 * digest, is left alone and is read by upload_source_drain afterwards), or, for a backend
 * without a file, from memory (up to ARCHIVE_ZIP_MEMORY_MAX bytes). A failed read of the
 * upload is the source's own error (CW_ERR_TRANSIENT for the store's reasons). The walk
 * may stop before the end of the upload: drain the source before taking its digest. */
#define ARCHIVE_ZIP_MEMORY_MAX (256ull << 20)
CW_MUST_CHECK int archive_reader_walk_source(struct upload_source *src, const char *upload_name,
                                             const struct archive_limits *limits,
                                             const struct archive_visitor *v,
                                             struct archive_stats *stats, struct cw_error *err);

/* The same over a buffer the caller owns (tests, small uploads). */
CW_MUST_CHECK int archive_reader_walk_memory(const void *buf, size_t len, const char *upload_name,
                                             const struct archive_limits *limits,
                                             const struct archive_visitor *v,
                                             struct archive_stats *stats, struct cw_error *err);

#endif
