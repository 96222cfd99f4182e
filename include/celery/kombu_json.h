/* Unwrapping of kombu's JSON type markers {"__type__": T, "__value__": V}.
 *
 * kombu 5.3+ serializes Python values JSON cannot hold as such a two-key object and its
 * loads() turns them back (object_hook). A C task has no datetime or Decimal, so each
 * becomes the plain JSON value a Python task would most naturally be handed as text:
 *   datetime, date, time -> the ISO-8601 string as sent
 *   decimal              -> its string (exact; "42" still reads as an integer)
 *   uuid                 -> canonical 8-4-4-4-12 string (from {"hex": ..., "version": ...})
 *   bytes                -> the (UTF-8) string as sent
 *   base64               -> the base64 text as sent (kombu only uses it for bytes that
 *                           are not UTF-8, which a JSON string cannot carry)
 * Like kombu, only objects whose keys are exactly __type__ and __value__ are markers,
 * and an unknown marker type is an error (kombu raises ValueError). Pure module. */
#ifndef CWORKER_KOMBU_JSON_H
#define CWORKER_KOMBU_JSON_H

#include "base/error.h"

#include <json-c/json.h>

/* Replaces, inside *j (recursively, bottom-up like kombu's object_hook), every marker by
 * its plain value. *j itself may be replaced (when it is a marker); the old value is
 * released. On failure (CW_ERR_PERMANENT, e.g. "unsupported kombu type \"x\"") *j is
 * left valid but partly converted; the caller still owns and frees it. */
CW_MUST_CHECK int kombu_json_unwrap(json_object **j, struct cw_error *err);

#endif
