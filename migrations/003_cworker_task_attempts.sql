-- Crash-loop counting per retry: cworker_tasks.attempts counts the executions started at
-- the retry number in attempt_retries. A retry (same task id, retries+1) starts a fresh
-- count, so only redeliveries of the same message (an executor that died) add up.
ALTER TABLE cworker_tasks ADD COLUMN IF NOT EXISTS attempt_retries integer NOT NULL DEFAULT 0;
