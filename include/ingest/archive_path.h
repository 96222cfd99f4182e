/* Normalising and vetting the entry names found inside uploaded archives. */
#ifndef CWORKER_ARCHIVE_PATH_H
#define CWORKER_ARCHIVE_PATH_H

#include <stdbool.h>
#include <stddef.h>

/* Normalises an entry path: strips leading "./", collapses "//" and "." components and
 * strips a trailing "/". Returns 0 with the result in out, or -1 (out untouched) for an
 * unsafe path: absolute, containing a ".." component, empty once normalised, or holding
 * control bytes (0x01-0x1f, 0x7f). out must have room for strlen(raw)+1 bytes (outlen);
 * a smaller outlen also returns -1. depth_out (may be NULL) receives the number of
 * components. Backslashes are ordinary bytes: nothing is ever extracted to disk. */
int archive_path_normalize(const char *raw, char *out, size_t outlen, int *depth_out);

/* The entry name of a bare .conf upload (a text file, not an archive), malloc'd: the
 * upload's base name, "upload.conf" when that is not a safe path (NULL, "..", control
 * bytes), with ".conf" appended when it does not end so (*renamed is then true): the
 * content said it is a .conf file, whatever the name says. */
char *archive_path_bare_conf_name(const char *upload_name, bool *renamed);

/* Room for what archive_path_display writes at most, NUL included. */
#define ARCHIVE_PATH_DISPLAY_MAX 160

/* Writes a rendering of raw that is safe in an error message, a JSON string and a UTF-8
 * database column: well-formed UTF-8 is kept, every control byte and every byte outside a
 * well-formed sequence becomes "\xNN", and a name that does not fit outlen-1 bytes is cut
 * at a character boundary and ends in "...". NULL renders as "(no name)". outlen >= 16. */
void archive_path_display(const char *raw, char *out, size_t outlen);

#endif
