-- The worker's own record of each task's outcome, and the trigger that uses it to
-- undo the application's late PARSING commit (CONTRACT 1.5).
--
-- cworker_tasks is the worker's table: the application never reads or writes it.
-- One row per Celery task id (a retry keeps the id, so it is the same row).

CREATE TABLE IF NOT EXISTS cworker_tasks (
    task_id varchar(255) NOT NULL,
    run_id integer NOT NULL,
    -- Executions started for this task id (redeliveries included): lets the worker stop
    -- a message that kills its executor every time instead of looping forever.
    attempts integer NOT NULL DEFAULT 0,
    -- The final status (COMPLETE or FAILED) once the task finished; NULL while it runs
    -- or waits for a retry. Only a non-NULL status is ever restored by the trigger below.
    status varchar(50),
    error_message text,
    error_traceback text,
    metrics json,
    result json,
    completed_at timestamp with time zone,
    updated_at timestamp with time zone NOT NULL DEFAULT now(),
    CONSTRAINT cworker_tasks_pkey PRIMARY KEY (task_id),
    CONSTRAINT cworker_tasks_run_id_fkey FOREIGN KEY (run_id)
        REFERENCES ingestion_runs (id) ON DELETE CASCADE
);
CREATE INDEX IF NOT EXISTS ix_cworker_tasks_run_id ON cworker_tasks (run_id);

-- Why this trigger exists: the application calls parse_run.delay(run_id) and only
-- afterwards commits status=PARSING with the task id. A fast worker can finish the run
-- first, and the application's commit then overwrites COMPLETE/FAILED with PARSING,
-- leaving the run looking PARSING forever. A BEFORE UPDATE trigger fixes this inside
-- the application's own UPDATE, with no window and no polling: when a row that is
-- finished goes back to PARSING under a task id whose outcome the worker has already
-- recorded, the recorded final state wins. A re-parse has a new task id with no
-- recorded outcome, so its PARSING stays. Everything else in NEW (task_id, started_at,
-- last_heartbeat, retry_count, ...) is left as the application wrote it.
--
-- SECURITY DEFINER so the application's role needs no rights on cworker_tasks; the
-- search_path is pinned (below) so a definer-rights function cannot be tricked into
-- resolving cworker_tasks to some other schema's table.
CREATE OR REPLACE FUNCTION cworker_restore_final_state() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER AS $$
DECLARE
    outcome record;
BEGIN
    IF NEW.task_id IS NULL
       OR upper(NEW.status) <> 'PARSING'
       OR upper(OLD.status) NOT IN ('COMPLETE', 'FAILED') THEN
        RETURN NEW;
    END IF;
    SELECT t.status, t.completed_at, t.error_message, t.error_traceback, t.metrics
      INTO outcome
      FROM cworker_tasks t
     WHERE t.task_id = NEW.task_id AND t.run_id = NEW.id AND t.status IS NOT NULL;
    IF NOT FOUND THEN
        RETURN NEW;
    END IF;
    NEW.status := outcome.status;
    NEW.completed_at := outcome.completed_at;
    NEW.error_message := outcome.error_message;
    NEW.error_traceback := outcome.error_traceback;
    NEW.metrics := outcome.metrics;
    RETURN NEW;
END
$$;

-- Pin the search_path to the schema these tables were created in (usually public),
-- with pg_temp last so a temporary table cannot shadow cworker_tasks.
DO $$
BEGIN
    EXECUTE format('ALTER FUNCTION cworker_restore_final_state() SET search_path = %I, pg_temp',
                   current_schema());
END
$$;

DROP TRIGGER IF EXISTS cworker_restore_final_state ON ingestion_runs;
-- The WHEN clause keeps the function off the hot path: heartbeat and progress updates
-- never call it.
CREATE TRIGGER cworker_restore_final_state
    BEFORE UPDATE ON ingestion_runs
    FOR EACH ROW
    WHEN (upper(NEW.status) = 'PARSING' AND upper(OLD.status) IN ('COMPLETE', 'FAILED'))
    EXECUTE FUNCTION cworker_restore_final_state();
