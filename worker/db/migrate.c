/* `cworker migrate`: applies migrations/NNN_*.sql in order, each once, under a lock. */
#include "db/migrate.h"

#include "base/log.h"
#include "base/strbuf.h"
#include "base/xalloc.h"

#include <dirent.h>
#include <errno.h>
#include <libpq-fe.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Created here rather than by a migration file: it must exist before any file runs. */
static const char CREATE_LEDGER_SQL[] =
    "CREATE TABLE IF NOT EXISTS cworker_schema_migrations ("
    " filename text NOT NULL PRIMARY KEY,"
    " checksum varchar(64) NOT NULL,"
    " applied_at timestamp with time zone NOT NULL DEFAULT now())";

struct sql_files {
    struct dirent **entries; /* from scandir; owned, freed by sql_files_free */
    int count;
};

static int is_sql_name(const struct dirent *d);
static int compare_names(const struct dirent **a, const struct dirent **b);
static CW_MUST_CHECK int list_sql_files(const char *dir, struct sql_files *out,
                                        struct cw_error *err);
static void sql_files_free(struct sql_files *files);
static CW_MUST_CHECK int read_whole_file(const char *path, struct strbuf *out,
                                         struct cw_error *err);
static void sha256_hex(const char *data, size_t len, char out[65]);
static char *libpq_url(const char *database_url);
static void notice_to_debug(void *arg, const char *message);
static CW_MUST_CHECK int connect_db(const char *database_url, PGconn **out, struct cw_error *err);
static enum cw_error_class classify(PGconn *conn, const char *sqlstate);
static int error_line(const char *sql, const char *position);
static void fail_from_result(PGconn *conn, PGresult *res, const char *sql, const char *what,
                             struct cw_error *err);
static CW_MUST_CHECK int exec_command(PGconn *conn, const char *sql, const char *what,
                                      struct cw_error *err);
static CW_MUST_CHECK int take_lock(PGconn *conn, struct cw_error *err);
static CW_MUST_CHECK int recorded_checksum(PGconn *conn, const char *name, char out[65], int *found,
                                           struct cw_error *err);
static CW_MUST_CHECK int apply_file(PGconn *conn, const char *name, const char *sql,
                                    const char *checksum, struct cw_error *err);
static CW_MUST_CHECK int migrate_one(PGconn *conn, const char *dir, const char *name, int *applied,
                                     struct cw_error *err);

int migrate_run(const char *database_url, const char *migrations_dir, struct cw_error *err)
{
    struct sql_files files = {NULL, 0};
    PGconn *conn = NULL;
    int applied = 0, rc = -1;

    if (database_url == NULL || database_url[0] == '\0') {
        CW_FAIL(err, CW_ERR_PERMANENT, "DATABASE_URL is not set");
        return -1;
    }
    if (list_sql_files(migrations_dir, &files, err) != 0)
        goto out;
    if (connect_db(database_url, &conn, err) != 0)
        goto out;
    /* The lock comes before the ledger is created or read: a second worker starting at
     * the same moment waits here, then finds every file recorded. */
    if (take_lock(conn, err) != 0)
        goto out;
    if (exec_command(conn, CREATE_LEDGER_SQL, "creating cworker_schema_migrations", err) != 0)
        goto out;
    for (int i = 0; i < files.count; i++) {
        if (migrate_one(conn, migrations_dir, files.entries[i]->d_name, &applied, err) != 0)
            goto out;
    }
    log_info("migrations: %d applied, %d already up to date", applied, files.count - applied);
    rc = 0;
out:
    if (rc != 0)
        CW_WRAP(err, "migrating from %s", migrations_dir ? migrations_dir : "(null)");
    /* Closing the session also releases the advisory lock. */
    PQfinish(conn);
    sql_files_free(&files);
    return rc;
}

/* Reads, checksums and applies one file unless the ledger already has it. */
static int migrate_one(PGconn *conn, const char *dir, const char *name, int *applied,
                       struct cw_error *err)
{
    struct strbuf path = STRBUF_INIT, sql = STRBUF_INIT;
    char checksum[65], recorded[65];
    int found = 0, rc = -1;

    strbuf_appendf(&path, "%s/%s", dir, name);
    if (read_whole_file(strbuf_cstr(&path), &sql, err) != 0)
        goto out;
    sha256_hex(strbuf_cstr(&sql), sql.len, checksum);
    if (recorded_checksum(conn, name, recorded, &found, err) != 0)
        goto out;
    if (found) {
        /* Never re-run an applied file: it may not be idempotent. A changed file is an
         * operator's mistake worth seeing, but not worth refusing to start over. */
        if (strcmp(recorded, checksum) != 0)
            log_warn("migration %s changed since it was applied (checksum %.12s, was %.12s); "
                     "not re-applied",
                     name, checksum, recorded);
        rc = 0;
        goto out;
    }
    log_info("applying migration %s", name);
    if (apply_file(conn, name, strbuf_cstr(&sql), checksum, err) != 0)
        goto out;
    (*applied)++;
    rc = 0;
out:
    strbuf_free(&sql);
    strbuf_free(&path);
    return rc;
}

/* One transaction for the file and its ledger row: both land or neither does. */
static int apply_file(PGconn *conn, const char *name, const char *sql, const char *checksum,
                      struct cw_error *err)
{
    const char *params[2] = {name, checksum};
    struct strbuf what = STRBUF_INIT;
    PGresult *res;
    int rc = -1;

    strbuf_appendf(&what, "migration %s", name);
    if (exec_command(conn, "BEGIN", strbuf_cstr(&what), err) != 0)
        goto out;
    if (exec_command(conn, sql, strbuf_cstr(&what), err) != 0)
        goto rollback;
    res = PQexecParams(conn,
                       "INSERT INTO cworker_schema_migrations (filename, checksum) "
                       "VALUES ($1, $2)",
                       2, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        fail_from_result(conn, res, NULL, strbuf_cstr(&what), err);
        PQclear(res);
        goto rollback;
    }
    PQclear(res);
    if (exec_command(conn, "COMMIT", strbuf_cstr(&what), err) != 0)
        goto out;
    rc = 0;
    goto out;
rollback:
    /* Best effort: on a dead connection the server rolls back by itself. */
    PQclear(PQexec(conn, "ROLLBACK"));
out:
    strbuf_free(&what);
    return rc;
}

static int recorded_checksum(PGconn *conn, const char *name, char out[65], int *found,
                             struct cw_error *err)
{
    const char *params[1] = {name};
    PGresult *res = PQexecParams(conn,
                                 "SELECT checksum FROM cworker_schema_migrations "
                                 "WHERE filename = $1",
                                 1, NULL, params, NULL, NULL, 0);

    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        fail_from_result(conn, res, NULL, "reading cworker_schema_migrations", err);
        PQclear(res);
        return -1;
    }
    *found = PQntuples(res) > 0;
    out[0] = '\0';
    if (*found)
        snprintf(out, 65, "%s", PQgetvalue(res, 0, 0));
    PQclear(res);
    return 0;
}

static int take_lock(PGconn *conn, struct cw_error *err)
{
    char sql[96];
    PGresult *res;
    int got;

    snprintf(sql, sizeof sql, "SELECT pg_try_advisory_lock(%lld)", MIGRATE_LOCK_KEY);
    res = PQexec(conn, sql);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        fail_from_result(conn, res, NULL, "taking the migration lock", err);
        PQclear(res);
        return -1;
    }
    got = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
    PQclear(res);
    if (got)
        return 0;
    /* Only to tell the operator why we sit still: another worker is migrating. */
    log_info("another process is migrating; waiting for its lock");
    snprintf(sql, sizeof sql, "SELECT pg_advisory_lock(%lld)", MIGRATE_LOCK_KEY);
    res = PQexec(conn, sql);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        fail_from_result(conn, res, NULL, "waiting for the migration lock", err);
        PQclear(res);
        return -1;
    }
    PQclear(res);
    return 0;
}

/* Runs a command (several statements allowed); any result but an error is success. */
static int exec_command(PGconn *conn, const char *sql, const char *what, struct cw_error *err)
{
    PGresult *res = PQexec(conn, sql);

    switch (PQresultStatus(res)) {
    case PGRES_COMMAND_OK:
    case PGRES_TUPLES_OK:
    case PGRES_EMPTY_QUERY:
        PQclear(res);
        return 0;
    default:
        fail_from_result(conn, res, sql, what, err);
        PQclear(res);
        return -1;
    }
}

/* Transient when the connection is gone or the server says "try again" (connection
 * exceptions 08xxx, shutdown 57P0x, resources 53xxx, serialization/deadlock 40xxx);
 * any other SQL error is a defect in the migration and permanent. */
static enum cw_error_class classify(PGconn *conn, const char *sqlstate)
{
    if (PQstatus(conn) == CONNECTION_BAD || sqlstate == NULL)
        return CW_ERR_TRANSIENT;
    if (strncmp(sqlstate, "08", 2) == 0 || strncmp(sqlstate, "57P0", 4) == 0 ||
        strncmp(sqlstate, "53", 2) == 0 || strncmp(sqlstate, "40", 2) == 0)
        return CW_ERR_TRANSIENT;
    return CW_ERR_PERMANENT;
}

/* The line of `sql` holding the server's 1-based character position (0 if unknown). */
static int error_line(const char *sql, const char *position)
{
    long chars = position ? strtol(position, NULL, 10) : 0;
    int line = 1;

    if (sql == NULL || chars <= 0)
        return 0;
    /* The position counts characters, so skip UTF-8 continuation bytes. */
    for (const char *p = sql; *p && chars > 1; p++) {
        if (((unsigned char)*p & 0xC0) != 0x80)
            chars--;
        if (*p == '\n')
            line++;
    }
    return line;
}

/* One line for the log: "<what>: <primary> [at line N] [(detail)] (SQLSTATE x)".
 * `sql` is the text that ran, to turn the error position into a line number. */
static void fail_from_result(PGconn *conn, PGresult *res, const char *sql, const char *what,
                             struct cw_error *err)
{
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    const char *primary = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    const char *detail = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL) : NULL;
    int line = res ? error_line(sql, PQresultErrorField(res, PG_DIAG_STATEMENT_POSITION)) : 0;
    char text[CW_ERROR_DETAIL_MAX], where[32] = "";

    if (line > 0)
        snprintf(where, sizeof where, " at line %d", line);
    /* No server message: libpq's own (connection lost), which ends in a newline. */
    snprintf(text, sizeof text, "%s", primary ? primary : PQerrorMessage(conn));
    text[strcspn(text, "\n")] = '\0';
    CW_FAIL(err, classify(conn, state), "%s: %s%s%s%s%s (SQLSTATE %s)", what, text, where,
            detail ? " (" : "", detail ? detail : "", detail ? ")" : "", state ? state : "none");
}

static int connect_db(const char *database_url, PGconn **out, struct cw_error *err)
{
    char *url = libpq_url(database_url);
    /* expand_dbname: the URL's own settings override connect_timeout set before it. */
    const char *keys[] = {"connect_timeout", "dbname", "application_name", NULL};
    const char *values[] = {"10", url, "cworker-migrate", NULL};
    PGconn *conn = PQconnectdbParams(keys, values, 1);
    char text[CW_ERROR_DETAIL_MAX];

    free(url);
    if (conn == NULL) {
        CW_FAIL(err, CW_ERR_TRANSIENT, "connecting to PostgreSQL: out of memory");
        return -1;
    }
    if (PQstatus(conn) != CONNECTION_OK) {
        /* libpq's message names host and user, never the password or the URL. */
        snprintf(text, sizeof text, "%s", PQerrorMessage(conn));
        text[strcspn(text, "\n")] = '\0';
        CW_FAIL(err, CW_ERR_TRANSIENT, "connecting to PostgreSQL: %s", text);
        PQfinish(conn);
        return -1;
    }
    PQsetNoticeProcessor(conn, notice_to_debug, NULL);
    *out = conn;
    return 0;
}

/* "relation already exists, skipping" is the expected outcome on an Alembic-made
 * database; keep such notices out of the operator's way. */
static void notice_to_debug(void *arg, const char *message)
{
    (void)arg;
    log_debug("postgres: %.*s", (int)strcspn(message, "\n"), message);
}

/* The Python application's DATABASE_URL may name a SQLAlchemy driver
 * (postgresql+psycopg2://); libpq only knows postgresql:// and postgres://.
 * Returns a new string the caller frees. */
static char *libpq_url(const char *database_url)
{
    const char *sep = strstr(database_url, "://");
    const char *plus = strchr(database_url, '+');
    struct strbuf sb = STRBUF_INIT;

    if (sep == NULL || plus == NULL || plus > sep ||
        (strncmp(database_url, "postgresql+", 11) != 0 &&
         strncmp(database_url, "postgres+", 9) != 0))
        return cw_xstrdup(database_url);
    strbuf_append_str(&sb, "postgresql");
    strbuf_append_str(&sb, sep);
    return strbuf_steal(&sb);
}

static void sha256_hex(const char *data, size_t len, char out[65])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;

    /* EVP_Digest only fails on allocation failure; abort like cw_xmalloc would. */
    if (EVP_Digest(data, len, md, &mdlen, EVP_sha256(), NULL) != 1)
        abort();
    for (unsigned int i = 0; i < mdlen && i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
    out[64] = '\0';
}

static int read_whole_file(const char *path, struct strbuf *out, struct cw_error *err)
{
    char buf[8192];
    size_t n;
    FILE *f = fopen(path, "rb");

    if (f == NULL) {
        CW_FAIL(err, CW_ERR_PERMANENT, "opening %s: %s", path, strerror(errno));
        return -1;
    }
    while ((n = fread(buf, 1, sizeof buf, f)) > 0)
        strbuf_append(out, buf, n);
    if (ferror(f)) {
        CW_FAIL(err, CW_ERR_PERMANENT, "reading %s: %s", path, strerror(errno));
        fclose(f);
        return -1;
    }
    fclose(f);
    if (strlen(strbuf_cstr(out)) != out->len) {
        CW_FAIL(err, CW_ERR_PERMANENT, "%s contains a NUL byte", path);
        return -1;
    }
    return 0;
}

static int list_sql_files(const char *dir, struct sql_files *out, struct cw_error *err)
{
    if (dir == NULL || dir[0] == '\0') {
        CW_FAIL(err, CW_ERR_PERMANENT, "no migrations directory given");
        return -1;
    }
    out->count = scandir(dir, &out->entries, is_sql_name, compare_names);
    if (out->count < 0) {
        CW_FAIL(err, CW_ERR_PERMANENT, "listing %s: %s", dir, strerror(errno));
        out->entries = NULL;
        out->count = 0;
        return -1;
    }
    return 0;
}

/* `NNN_name.sql`, not hidden (editor swap files and the like start with a dot). */
static int is_sql_name(const struct dirent *d)
{
    size_t len = strlen(d->d_name);

    return d->d_name[0] != '.' && len > 4 && strcmp(d->d_name + len - 4, ".sql") == 0;
}

/* Byte order, not the locale's collation: the order must be the same everywhere. */
static int compare_names(const struct dirent **a, const struct dirent **b)
{
    return strcmp((*a)->d_name, (*b)->d_name);
}

static void sql_files_free(struct sql_files *files)
{
    for (int i = 0; i < files->count; i++)
        free(files->entries[i]);
    free(files->entries);
    files->entries = NULL;
    files->count = 0;
}
