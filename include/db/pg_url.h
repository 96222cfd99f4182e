/* The database URL of the configuration: SQLAlchemy's form ("postgresql+psycopg2://")
 * accepted, checked without echoing any of it (it holds the password). Pure: what
 * base/config.c needs from the database layer, without its connections. */
#ifndef CWORKER_PG_URL_H
#define CWORKER_PG_URL_H

#include <stdbool.h>
#include <stddef.h>

/* Checks that url (a libpq URI or key=value string; "postgresql+driver://" accepted) parses.
 * On failure writes a description without any of its text to why and returns false. */
bool pg_url_valid(const char *url, char *why, size_t len);

/* A new string the caller frees: url with a SQLAlchemy driver ("postgresql+psycopg2://")
 * removed, as libpq only knows postgresql:// and postgres://. */
char *pg_libpq_url(const char *url);

#endif
