/* Which conf type a file is and where in Splunk's layering it sits, from its path. */
#ifndef CWORKER_PROVENANCE_H
#define CWORKER_PROVENANCE_H

#include <stdbool.h>

enum conf_type {
    CONF_TYPE_INPUTS,
    CONF_TYPE_PROPS,
    CONF_TYPE_TRANSFORMS,
    CONF_TYPE_INDEXES,
    CONF_TYPE_OUTPUTS,
    CONF_TYPE_SERVERCLASSES,
    CONF_TYPE_OTHER,
};

/* "inputs", "props", "transforms", "indexes", "outputs", "serverclasses", "other". */
const char *conf_type_name(enum conf_type t);

/* From the file name (case-sensitive, as Splunk on Linux): inputs.conf -> INPUTS,
 * serverclass.conf -> SERVERCLASSES, anything else -> OTHER. */
enum conf_type conf_type_from_path(const char *path);

/* "" means NULL in the database. Values are cut on a UTF-8 boundary to fit. */
struct provenance {
    char app[256];      /* stanzas.app varchar(255) */
    char scope[16];     /* "default" | "local" */
    char layer[16];     /* "system" | "app" | "user" */
    bool app_truncated; /* the app folder name was longer than 255 characters/bytes */
};

/* From a normalised path inside an archive (no leading "./" or "/", no ".."), where
 * the directory holding the file must be "default" or "local" (its scope):
 *   .../system/<scope>/f.conf                          layer system, no app
 *   .../apps/<app>/<scope>/f.conf  (also shcluster/apps, deployment-apps,
 *   manager-apps, master-apps, slave-apps, peer-apps)  layer app
 *   .../users/<user>/<app>/<scope>/f.conf               layer user (Splunk's user
 *                                                       precedence level), app <app>
 *   <app>/<scope>/f.conf (an app bundle's top folder)   layer app
 * Anything else: all empty. */
void provenance_from_path(const char *normalized_path, struct provenance *out);

#endif
