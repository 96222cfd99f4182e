-- The delay queue (Q.retry.<N>s) a task's scheduled retry waits in, next to retry_due_at:
-- the dashboard shows, per delay queue, how many retries wait and when the next one is
-- due, whichever worker published them (every worker records its retries here, and the
-- broker cannot say when a message will leave a queue without taking it out). NULL
-- once the retry started, for a final outcome, and for retries a worker of an earlier
-- version scheduled.
ALTER TABLE cworker_tasks ADD COLUMN IF NOT EXISTS retry_queue varchar(255);
-- The dashboard reads the few rows with a retry waiting, not the whole table.
CREATE INDEX IF NOT EXISTS ix_cworker_tasks_retry_queue ON cworker_tasks (retry_queue)
    WHERE retry_queue IS NOT NULL;
