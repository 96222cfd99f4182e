/* `cworker migrate`: applies migrations/NNN_*.sql in order, each once, under a lock. */
#include "db/migrate.h"
#include "db/pg.h"

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
    conn = pg_connect(database_url, PG_ROLE_MIGRATE, err);
    if (!conn)
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

    strbuf_appendf(&what, "applying migration %s", name);
    if (exec_command(conn, "BEGIN", strbuf_cstr(&what), err) != 0)
        goto out;
    if (exec_command(conn, sql, strbuf_cstr(&what), err) != 0)
        goto rollback;
    res = PQexecParams(conn,
                       "INSERT INTO cworker_schema_migrations (filename, checksum) "
                       "VALUES ($1, $2)",
                       2, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        pg_fail(err, conn, res, strbuf_cstr(&what), NULL);
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
        pg_fail(err, conn, res, "reading cworker_schema_migrations", NULL);
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
        pg_fail(err, conn, res, "taking the migration lock", NULL);
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
        pg_fail(err, conn, res, "waiting for the migration lock", NULL);
        PQclear(res);
        return -1;
    }
    PQclear(res);
    return 0;
}

/* Runs a command (several statements allowed); any result but an error is success. */
static int exec_command(PGconn *conn, const char *sql, const char *what, struct cw_error *err)
{
    PGresult *res = pg_exec(conn, what, sql, 0, NULL, err);
    if (!res)
        return -1;
    PQclear(res);
    return 0;
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
