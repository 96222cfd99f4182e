-- When a task's scheduled retry is due. The stuck-run sweeper leaves a PARSING run alone
-- while its retry waits in a delay queue (its heartbeat is old by design then).
ALTER TABLE cworker_tasks ADD COLUMN IF NOT EXISTS retry_due_at timestamp with time zone;
