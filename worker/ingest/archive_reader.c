/* Streaming, bounded walk over an uploaded archive with libarchive (format by content). */
#include "ingest/archive_reader.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <archive.h>
#include <archive_entry.h>

#include "ingest/archive_path.h"
#include "ingest/archive_walk.h"
#include "ingest/gzip_source.h"
#include "base/utf8.h"
#include "base/xalloc.h"

/* One read buffer per walk: the only per-entry memory besides libarchive's own. */
#define ARCHIVE_CHUNK (64 * 1024)
#define INVALID       "Invalid archive format: "
#define LIMIT         "Archive limit exceeded: "

struct walker {
    struct archive *a;
    const struct archive_limits *lim;
    const struct archive_visitor *v;
    struct archive_stats *st;
    const char *upload_name;
    unsigned char *buf; /* ARCHIVE_CHUNK bytes, owned by the walker */
    bool kind_known;
    struct gzip_source *gz; /* our gzip layer under libarchive, or NULL */
    bool zip_magic;         /* the upload starts like a zip */
    bool tar_magic;         /* ... or like a tar */
    char *bare_name;        /* a bare .conf upload's entry name, owned */
    bool bare_renamed;      /* ... which got ".conf" appended */
};

struct upload_magic archive_sniff(const unsigned char *p, size_t n)
{
    bool pk = n >= 4 && p[0] == 'P' && p[1] == 'K';
    struct upload_magic m = {
        .gzip = gzip_source_detect(p, n),
        .zip = pk && ((p[2] == 3 && p[3] == 4) || (p[2] == 5 && p[3] == 6)),
        .empty_zip = pk && p[2] == 5 && p[3] == 6,
    };
    /* Entries on this disk and in total (offsets 8 and 10). */
    m.empty_zip_lies = m.empty_zip && (n < 12 || p[8] || p[9] || p[10] || p[11]);
    m.tar = n >= 262 && memcmp(p + 257, "ustar", 5) == 0;
    return m;
}

/* The seekable zip reader does not take a zip of no entries (its end record first). */
int archive_walk_empty_zip(const struct upload_magic *m, struct archive_stats *stats,
                           struct cw_error *err)
{
    if (m->empty_zip_lies) {
        CW_FAIL(err, CW_ERR_PERMANENT,
                INVALID "damaged zip: its end record claims entries it does not have");
        return -1;
    }
    if (stats) {
        memset(stats, 0, sizeof *stats);
        stats->kind = ARCHIVE_KIND_ZIP;
    }
    return 0;
}

/* An entry being walked: its names and how much data it has produced. */
struct entry_walk {
    const char *raw;  /* the name as stored (archive-owned) */
    const char *path; /* normalised name (walker-owned copy) */
    /* raw as messages, warnings and the database may show it (any bytes can be in raw) */
    char shown[ARCHIVE_PATH_DISPLAY_MAX];
    bool wanted;
    bool check_text; /* bare .conf: refuse binary content */
    uint64_t bytes;
};

const char *archive_kind_name(enum archive_kind k)
{
    switch (k) {
    case ARCHIVE_KIND_TAR:
        return "tar";
    case ARCHIVE_KIND_TAR_GZIP:
        return "tar.gz";
    case ARCHIVE_KIND_TAR_BZIP2:
        return "tar.bz2";
    case ARCHIVE_KIND_TAR_XZ:
        return "tar.xz";
    case ARCHIVE_KIND_ZIP:
        return "zip";
    case ARCHIVE_KIND_SINGLE_CONF:
        return "conf";
    }
    return "unknown";
}

/* libarchive's message, said so a person can act on it where libarchive's is cryptic. */
static const char *libarchive_msg(struct archive *a)
{
    const char *m = archive_error_string(a);
    if (m == NULL)
        return "unknown libarchive error";
    if (strstr(m, "Lzma library error"))
        return "xz data is truncated or corrupt";
    return m;
}

/* Only the compressions the contract names: filter_all would also enable uudecode (a
 * text file starting "begin 644" would be decoded) and external programs (lrzip, lzop). */
struct archive *archive_new_reader(void)
{
    struct archive *a = archive_read_new();
    if (a == NULL)
        return NULL;
    archive_read_support_filter_gzip(a);
    archive_read_support_filter_bzip2(a);
    archive_read_support_filter_xz(a);
    archive_read_support_format_tar(a);
    /* The central directory is the zip's table of contents: without a valid one the
     * streaming reader would walk whatever local headers it finds in a truncated or
     * damaged file and call it complete. */
    archive_read_support_format_zip_seekable(a);
    /* raw bids lowest: it only wins when nothing else recognised the data, which is how a
     * bare .conf text file (or garbage, told apart by its content) shows up. */
    archive_read_support_format_raw(a);
    return a;
}

/* The outermost compression: ours (gzip) or the first filter libarchive found. */
static int outer_filter(struct walker *w, const char **name)
{
    if (w->gz) {
        *name = "gzip";
        return ARCHIVE_FILTER_GZIP;
    }
    *name = archive_filter_name(w->a, 0);
    return archive_filter_code(w->a, 0);
}

/* Decides the kind from the format and filter chain libarchive settled on. */
static int detect_kind(struct walker *w, struct cw_error *err)
{
    int fmt = archive_format(w->a) & ARCHIVE_FORMAT_BASE_MASK;
    const char *filter_name;
    int filter = outer_filter(w, &filter_name);
    /* The count includes the bottom "none" filter: more than two means nested compression. */
    if (archive_filter_count(w->a) + (w->gz ? 1 : 0) > 2) {
        CW_FAIL(err, CW_ERR_PERMANENT, INVALID "nested compression (%s over %s)", filter_name,
                archive_filter_name(w->a, w->gz ? 0 : 1));
        return -1;
    }
    if (fmt == ARCHIVE_FORMAT_RAW) {
        if (filter != ARCHIVE_FILTER_NONE) {
            CW_FAIL(err, CW_ERR_PERMANENT, INVALID "%s-compressed data is not a tar archive",
                    filter_name);
            return -1;
        }
        if (w->tar_magic) {
            CW_FAIL(err, CW_ERR_PERMANENT,
                    INVALID "damaged tar: the first header fails its checksum");
            return -1;
        }
        if (w->zip_magic) {
            CW_FAIL(err, CW_ERR_PERMANENT,
                    INVALID "damaged zip: its central directory is missing or unreadable "
                            "(truncated upload?)");
            return -1;
        }
        w->st->kind = ARCHIVE_KIND_SINGLE_CONF;
    } else if (fmt == ARCHIVE_FORMAT_ZIP) {
        if (filter != ARCHIVE_FILTER_NONE) {
            CW_FAIL(err, CW_ERR_PERMANENT, INVALID "%s-compressed zip is not supported",
                    filter_name);
            return -1;
        }
        w->st->kind = ARCHIVE_KIND_ZIP;
    } else if (fmt == ARCHIVE_FORMAT_TAR) {
        switch (filter) {
        case ARCHIVE_FILTER_NONE:
            w->st->kind = ARCHIVE_KIND_TAR;
            break;
        case ARCHIVE_FILTER_GZIP:
            w->st->kind = ARCHIVE_KIND_TAR_GZIP;
            break;
        case ARCHIVE_FILTER_BZIP2:
            w->st->kind = ARCHIVE_KIND_TAR_BZIP2;
            break;
        case ARCHIVE_FILTER_XZ:
            w->st->kind = ARCHIVE_KIND_TAR_XZ;
            break;
        default:
            CW_FAIL(err, CW_ERR_PERMANENT, INVALID "unsupported compression %s", filter_name);
            return -1;
        }
    } else {
        CW_FAIL(err, CW_ERR_PERMANENT, INVALID "unsupported format %s", archive_format_name(w->a));
        return -1;
    }
    w->kind_known = true;
    return 0;
}

/* Real conf files are text; garbage that only the raw format accepted is not. High bytes
 * are allowed (a non-UTF-8 conf file is the parser's partial failure, not ours). */
static bool looks_like_text(const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = p[i];
        if ((c < 0x20 && c != '\t' && c != '\n' && c != '\r' && c != '\f' && c != '\v') ||
            c == 0x7f)
            return false;
    }
    return true;
}

static void warn(struct walker *w, const struct entry_walk *ew, const char *reason)
{
    if (w->v->warning)
        w->v->warning(w->v->ctx, ew->shown, reason);
}

static void warn_skip(struct walker *w, const struct entry_walk *ew, const char *reason)
{
    w->st->entries_skipped++;
    warn(w, ew, reason);
}

/* Counts n freshly produced bytes against the limits. */
static int account(struct walker *w, struct entry_walk *ew, size_t n, struct cw_error *err)
{
    ew->bytes += n;
    w->st->bytes_uncompressed += n;
    if (ew->bytes > w->lim->max_entry_bytes) {
        CW_FAIL(err, CW_ERR_PERMANENT, LIMIT "entry %s inflates beyond %llu bytes", ew->shown,
                (unsigned long long)w->lim->max_entry_bytes);
        return -1;
    }
    if (w->st->bytes_uncompressed > w->lim->max_total_bytes) {
        CW_FAIL(err, CW_ERR_PERMANENT, LIMIT "archive inflates beyond %llu bytes in total",
                (unsigned long long)w->lim->max_total_bytes);
        return -1;
    }
    return 0;
}

/* Reads the next chunk into w->buf: bytes read, 0 at the end, -1 (err filled). Skipped
 * entries are read too (not archive_read_data_skip) so that what it costs to move past
 * them is bounded by the same byte limits as wanted data. */
static ssize_t read_chunk(struct walker *w, struct entry_walk *ew, struct cw_error *err)
{
    la_ssize_t n = archive_read_data(w->a, w->buf, ARCHIVE_CHUNK);
    if (n < 0) {
        CW_FAIL(err, CW_ERR_PERMANENT, INVALID "%s", libarchive_msg(w->a));
        CW_WRAP(err, "reading entry %s", ew->shown);
        return -1;
    }
    return (ssize_t)n;
}

/* Checks a chunk just read: limits, and text-ness for a bare upload. */
static int check_chunk(struct walker *w, struct entry_walk *ew, size_t n, struct cw_error *err)
{
    if (account(w, ew, n, err) < 0)
        return -1;
    if (ew->check_text && !looks_like_text(w->buf, n)) {
        CW_FAIL(err, CW_ERR_PERMANENT,
                INVALID "not a tar, zip or text .conf file (binary content)");
        return -1;
    }
    return 0;
}

/* Reads (and delivers, when wanted) the whole data of the current entry. The first chunk
 * is read and checked before want_entry, so a bare upload is known to be text before the
 * visitor sees it. */
static int walk_data(struct walker *w, struct entry_walk *ew, bool regular, struct cw_error *err)
{
    ssize_t n = read_chunk(w, ew, err);
    if (n > 0 && check_chunk(w, ew, (size_t)n, err) < 0)
        return -1;
    ew->wanted = regular && w->v->want_entry && w->v->want_entry(w->v->ctx, ew->path);
    while (n > 0) {
        if (ew->wanted && w->v->entry_data &&
            w->v->entry_data(w->v->ctx, w->buf, (size_t)n, err) < 0) {
            CW_WRAP(err, "delivering data of entry %s", ew->shown);
            return -1;
        }
        n = read_chunk(w, ew, err);
        if (n > 0 && check_chunk(w, ew, (size_t)n, err) < 0)
            return -1;
    }
    if (n < 0)
        return -1;
    if (ew->wanted && w->v->entry_end && w->v->entry_end(w->v->ctx, err) < 0) {
        CW_WRAP(err, "finishing entry %s", ew->shown);
        return -1;
    }
    return 0;
}

/* Why an entry of this type is not delivered; NULL for regular files and directories. */
static const char *skip_reason(struct archive_entry *e)
{
    if (archive_entry_hardlink(e) != NULL)
        return "hard link";
    switch (archive_entry_filetype(e)) {
    case AE_IFREG:
    case AE_IFDIR:
        return NULL;
    case AE_IFLNK:
        return "symbolic link";
    case AE_IFCHR:
    case AE_IFBLK:
        return "device";
    case AE_IFIFO:
        return "fifo";
    case AE_IFSOCK:
        return "socket";
    default:
        return "unsupported entry type";
    }
}

static const char *entry_raw_name(struct walker *w, struct archive_entry *e)
{
    if (w->st->kind == ARCHIVE_KIND_SINGLE_CONF) {
        if (w->bare_name == NULL)
            w->bare_name = archive_path_bare_conf_name(w->upload_name, &w->bare_renamed);
        return w->bare_name;
    }
    /* Prefer UTF-8 (the database's encoding); fall back to the stored bytes. */
    const char *raw = archive_entry_pathname_utf8(e);
    return raw ? raw : archive_entry_pathname(e);
}

/* Refuses before inflating anything an entry whose header already says it is too big (a
 * sparse file's hole counts: reading it produces zeros). Headers can lie the other way;
 * account() counts what really comes out. */
static int check_declared_size(struct walker *w, struct archive_entry *e,
                               const struct entry_walk *ew, struct cw_error *err)
{
    if (!archive_entry_size_is_set(e) || archive_entry_size(e) <= 0)
        return 0;
    uint64_t size = (uint64_t)archive_entry_size(e);
    if (size > w->lim->max_entry_bytes) {
        CW_FAIL(err, CW_ERR_PERMANENT, LIMIT "entry %s is %llu bytes, more than %llu", ew->shown,
                (unsigned long long)size, (unsigned long long)w->lim->max_entry_bytes);
        return -1;
    }
    if (w->st->bytes_uncompressed + size > w->lim->max_total_bytes) {
        CW_FAIL(err, CW_ERR_PERMANENT,
                LIMIT "archive inflates beyond %llu bytes in total (at entry %s)",
                (unsigned long long)w->lim->max_total_bytes, ew->shown);
        return -1;
    }
    return 0;
}

/* Walks one entry whose name normalised to ew->path (depth components). */
static int walk_named_entry(struct walker *w, struct archive_entry *e, struct entry_walk *ew,
                            int depth, struct cw_error *err)
{
    const char *reason = skip_reason(e);
    if (depth > w->lim->max_depth) {
        CW_FAIL(err, CW_ERR_PERMANENT, LIMIT "entry path deeper than %d components: %s",
                w->lim->max_depth, ew->shown);
        return -1;
    }
    if (check_declared_size(w, e, ew, err) < 0)
        return -1;
    if (reason != NULL) {
        warn_skip(w, ew, reason);
        return walk_data(w, ew, false, err);
    }
    if (archive_entry_is_encrypted(e)) {
        /* Its data cannot be decrypted, so it cannot be read past either: skip blindly. */
        warn_skip(w, ew, "encrypted");
        if (archive_read_data_skip(w->a) != ARCHIVE_OK) {
            CW_FAIL(err, CW_ERR_PERMANENT, INVALID "%s", libarchive_msg(w->a));
            CW_WRAP(err, "skipping entry %s", ew->shown);
            return -1;
        }
        return 0;
    }
    return walk_data(w, ew, archive_entry_filetype(e) == AE_IFREG, err);
}

static int walk_entry(struct walker *w, struct archive_entry *e, struct cw_error *err)
{
    struct entry_walk ew = {.raw = entry_raw_name(w, e)};
    ew.check_text = w->st->kind == ARCHIVE_KIND_SINGLE_CONF;
    if (ew.raw == NULL) {
        ew.raw = "(undecodable name)";
        archive_path_display(ew.raw, ew.shown, sizeof ew.shown);
        warn_skip(w, &ew, "entry name cannot be decoded");
        return walk_data(w, &ew, false, err);
    }
    archive_path_display(ew.raw, ew.shown, sizeof ew.shown);
    if (ew.check_text && w->bare_renamed)
        warn(w, &ew, "a plain-text upload whose name does not end in .conf: read as this .conf");
    size_t len = strlen(ew.raw);
    char *path = cw_xmalloc(len + 1); /* ours; a normalised path is never longer */
    int depth = 0, rc;
    if (archive_path_normalize(ew.raw, path, len + 1, &depth) < 0) {
        ew.path = ew.raw;
        warn_skip(w, &ew, "unsafe path (absolute, .. or control characters)");
        rc = walk_data(w, &ew, false, err);
    } else {
        /* The visitor gets UTF-8 only: it goes into JSON and a UTF-8 database. */
        if (utf8_repair(path, strlen(path)) > 0)
            warn(w, &ew, "entry name is not valid UTF-8: its bad bytes are read as '?'");
        ew.path = path;
        rc = walk_named_entry(w, e, &ew, depth, err);
    }
    free(path);
    return rc;
}

static int walk_headers(struct walker *w, struct cw_error *err)
{
    for (;;) {
        struct archive_entry *e;
        int r = archive_read_next_header(w->a, &e);
        if (r == ARCHIVE_EOF)
            return w->kind_known ? 0 : detect_kind(w, err);
        /* WARN is survivable (e.g. a name that does not convert); RETRY means libarchive
         * found damage and would resynchronise past it: treat that as corrupt. */
        if (r != ARCHIVE_OK && r != ARCHIVE_WARN) {
            CW_FAIL(err, CW_ERR_PERMANENT, INVALID "%s", libarchive_msg(w->a));
            return -1;
        }
        if (!w->kind_known && detect_kind(w, err) < 0)
            return -1;
        if (++w->st->entries > w->lim->max_entries) {
            CW_FAIL(err, CW_ERR_PERMANENT, LIMIT "more than %llu entries",
                    (unsigned long long)w->lim->max_entries);
            return -1;
        }
        if (walk_entry(w, e, err) < 0)
            return -1;
    }
}

/* libarchive's read callback over our gzip layer. */
static la_ssize_t gzip_read_cb(struct archive *a, void *ctx, const void **buf)
{
    struct gzip_source *g = ctx;
    ssize_t n = gzip_source_read(g, buf);
    if (n < 0)
        archive_set_error(a, EINVAL, "%s", g->error);
    return (la_ssize_t)n;
}

/* After the tar end: the rest of the gzip data must still be whole (its trailers carry
 * the CRC-32 and length) and counts against the total limit like any inflated byte. */
static int drain_gzip(struct walker *w, struct cw_error *err)
{
    const void *chunk;
    ssize_t n;
    while ((n = gzip_source_read(w->gz, &chunk)) > 0) {
        w->st->bytes_uncompressed += (uint64_t)n;
        if (w->st->bytes_uncompressed > w->lim->max_total_bytes) {
            CW_FAIL(err, CW_ERR_PERMANENT, LIMIT "archive inflates beyond %llu bytes in total",
                    (unsigned long long)w->lim->max_total_bytes);
            return -1;
        }
    }
    if (n < 0) {
        CW_FAIL(err, CW_ERR_PERMANENT, INVALID "%s", w->gz->error);
        return -1;
    }
    return 0;
}

/* Runs a walk over an archive handle that open_fn opens; frees everything it made. */
int archive_walk(struct archive *a, int open_rc, struct gzip_source *gz,
                 const struct upload_magic *m, const char *upload_name,
                 const struct archive_limits *limits, const struct archive_visitor *v,
                 struct archive_stats *stats, struct cw_error *err)
{
    static const struct archive_limits defaults = ARCHIVE_LIMITS_DEFAULT;
    static const struct archive_visitor no_visitor = {0};
    struct archive_stats local;
    struct walker w = {
        .a = a,
        .lim = limits ? limits : &defaults,
        .v = v ? v : &no_visitor,
        .st = stats ? stats : &local,
        .upload_name = upload_name,
        .gz = gz,
        .zip_magic = m->zip,
        .tar_magic = m->tar,
    };
    int rc = -1;
    memset(w.st, 0, sizeof *w.st);
    if (open_rc != ARCHIVE_OK) {
        CW_FAIL(err, CW_ERR_PERMANENT, INVALID "%s", libarchive_msg(a));
        goto out;
    }
    w.buf = cw_xmalloc(ARCHIVE_CHUNK);
    rc = walk_headers(&w, err);
    if (rc == 0 && gz)
        rc = drain_gzip(&w, err);
out:
    free(w.buf);
    free(w.bare_name);
    archive_read_free(a);
    return rc;
}

int archive_fail_empty(struct archive_stats *stats, struct cw_error *err)
{
    if (stats)
        memset(stats, 0, sizeof *stats);
    CW_FAIL(err, CW_ERR_PERMANENT, INVALID "empty file");
    return -1;
}

/* Opens a over the upload: through our gzip layer when it is gzip, else directly. */
static int open_fd(struct archive *a, int fd, const struct upload_magic *m, struct gzip_source *gz)
{
    if (!m->gzip)
        return archive_read_open_fd(a, fd, ARCHIVE_CHUNK);
    gzip_source_init_fd(gz, fd);
    return archive_read_open(a, gz, NULL, gzip_read_cb, NULL);
}

int archive_reader_walk_fd(int fd, const char *upload_name, const struct archive_limits *limits,
                           const struct archive_visitor *v, struct archive_stats *stats,
                           struct cw_error *err)
{
    struct stat st;
    if (fstat(fd, &st) < 0) {
        CW_FAIL(err, CW_ERR_TRANSIENT, "cannot stat upload: %s", strerror(errno));
        return -1;
    }
    /* libarchive would only say "Unrecognized archive format"; say what it is. */
    if (S_ISREG(st.st_mode) && st.st_size == 0)
        return archive_fail_empty(stats, err);
    unsigned char head[MAGIC_BYTES];
    off_t at = lseek(fd, 0, SEEK_CUR);
    ssize_t nhead = at < 0 ? -1 : pread(fd, head, sizeof head, at);
    if (nhead < 0) {
        CW_FAIL(err, CW_ERR_TRANSIENT, "cannot read upload: %s", strerror(errno));
        return -1;
    }
    struct upload_magic m = archive_sniff(head, (size_t)nhead);
    if (m.empty_zip)
        return archive_walk_empty_zip(&m, stats, err);
    struct archive *a = archive_new_reader();
    if (a == NULL) {
        CW_FAIL(err, CW_ERR_INTERNAL, "archive_read_new failed");
        return -1;
    }
    struct gzip_source gz;
    int open_rc = open_fd(a, fd, &m, &gz);
    int rc = archive_walk(a, open_rc, m.gzip ? &gz : NULL, &m, upload_name, limits, v, stats, err);
    if (m.gzip)
        gzip_source_free(&gz);
    return rc;
}

int archive_reader_walk_memory(const void *buf, size_t len, const char *upload_name,
                               const struct archive_limits *limits, const struct archive_visitor *v,
                               struct archive_stats *stats, struct cw_error *err)
{
    if (len == 0)
        return archive_fail_empty(stats, err);
    struct upload_magic m = archive_sniff(buf, len);
    if (m.empty_zip)
        return archive_walk_empty_zip(&m, stats, err);
    struct archive *a = archive_new_reader();
    if (a == NULL) {
        CW_FAIL(err, CW_ERR_INTERNAL, "archive_read_new failed");
        return -1;
    }
    struct gzip_source gz;
    int open_rc;
    if (m.gzip) {
        gzip_source_init_memory(&gz, buf, len);
        open_rc = archive_read_open(a, &gz, NULL, gzip_read_cb, NULL);
    } else {
        open_rc = archive_read_open_memory(a, buf, len);
    }
    int rc = archive_walk(a, open_rc, m.gzip ? &gz : NULL, &m, upload_name, limits, v, stats, err);
    if (m.gzip)
        gzip_source_free(&gz);
    return rc;
}
