-- Stable read-only views for operators (psql, Grafana, `cworker status`/`cworker metrics`
-- and the worker's HTTP endpoints, which all read these so they can never disagree).
-- Nothing here changes the application's tables. CREATE OR REPLACE keeps this file
-- re-runnable; later migrations may only append columns (PostgreSQL refuses to drop or
-- reorder the columns of a replaced view, which is what keeps them stable).

-- ISO-8601 in UTC with microseconds, the form Python's datetime.isoformat() prints for an
-- aware UTC timestamp. Independent of the session's TimeZone and DateStyle, so every
-- client sees the same text.
CREATE OR REPLACE FUNCTION cworker_iso8601(ts timestamp with time zone) RETURNS text
    LANGUAGE sql STABLE AS $$
    SELECT to_char(ts AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"')
$$;

-- One row per run. status and type are upper-cased, so a lower-case value another tool
-- wrote reads as the member name the application stores. progress is what the worker's
-- heartbeat last recorded for the run's current task id ({"files_total", "files_done",
-- "conf_files_parsed", "stanzas_so_far", "bytes_parsed"}), NULL when it recorded none.
-- duration_seconds: completed_at - started_at once finished; the time so far while
-- PARSING/NORMALIZED; NULL otherwise.
CREATE OR REPLACE VIEW cworker_run_status AS
SELECT r.id,
       upper(r.type)::varchar(50) AS type,
       r.label,
       upper(r.status)::varchar(50) AS status,
       r.retry_count,
       r.error_message,
       r.last_heartbeat,
       extract(epoch FROM now() - r.last_heartbeat)::double precision AS heartbeat_age_seconds,
       r.started_at,
       r.completed_at,
       (CASE
            WHEN r.completed_at IS NOT NULL THEN extract(epoch FROM r.completed_at - r.started_at)
            WHEN upper(r.status) IN ('PARSING', 'NORMALIZED')
                THEN extract(epoch FROM now() - r.started_at)
        END)::double precision AS duration_seconds,
       r.task_id,
       t.progress,
       r.notes,
       r.created_at,
       r.error_traceback,
       r.metrics
  FROM ingestion_runs r
  LEFT JOIN cworker_tasks t ON t.task_id = r.task_id AND t.run_id = r.id;

-- One row: the aggregate of the application's GET /v1/worker/metrics.
--   status_counts        {"<STATUS>": n} over all runs
--   avg_retries          mean retry_count over all runs (0 without runs)
--   max_retries          highest retry_count (0 without runs)
--   avg_duration_seconds mean completed_at - started_at of COMPLETE runs (0 without any)
--   recent_failures      up to 10 FAILED runs, latest completed_at first (runs that never
--                        completed last, then newest id first):
--                        [{"run_id", "error_message", "retry_count", "completed_at"}]
CREATE OR REPLACE VIEW cworker_worker_metrics AS
SELECT (SELECT coalesce(json_object_agg(s.status, s.n ORDER BY s.status), '{}'::json)
          FROM (SELECT upper(status) AS status, count(*) AS n
                  FROM ingestion_runs GROUP BY upper(status)) s) AS status_counts,
       (SELECT coalesce(avg(retry_count), 0)::double precision FROM ingestion_runs)
           AS avg_retries,
       (SELECT coalesce(max(retry_count), 0) FROM ingestion_runs) AS max_retries,
       (SELECT coalesce(avg(extract(epoch FROM completed_at - started_at)), 0)::double precision
          FROM ingestion_runs
         WHERE upper(status) = 'COMPLETE' AND started_at IS NOT NULL
           AND completed_at IS NOT NULL) AS avg_duration_seconds,
       (SELECT coalesce(json_agg(json_build_object('run_id', f.id,
                                                   'error_message', f.error_message,
                                                   'retry_count', f.retry_count,
                                                   'completed_at', cworker_iso8601(f.completed_at))
                                 ORDER BY f.completed_at DESC NULLS LAST, f.id DESC), '[]'::json)
          FROM (SELECT id, error_message, retry_count, completed_at
                  FROM ingestion_runs
                 WHERE upper(status) = 'FAILED'
                 ORDER BY completed_at DESC NULLS LAST, id DESC
                 LIMIT 10) f) AS recent_failures;
