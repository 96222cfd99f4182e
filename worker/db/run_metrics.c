/* The metrics of a failed run (see db/run_metrics.h). */
#include "db/run_metrics.h"

json_object *run_failure_metrics(double duration_seconds, int retry_count, const char *error_type)
{
    json_object *m = json_object_new_object();
    json_object_object_add(m, "duration_seconds", json_object_new_double(duration_seconds));
    json_object_object_add(m, "retry_count", json_object_new_int(retry_count));
    json_object_object_add(m, "error_type",
                           json_object_new_string(error_type ? error_type : "transient"));
    return m;
}
