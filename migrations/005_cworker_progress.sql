-- Progress of a running task, written with each heartbeat:
-- {"files_total", "files_done", "stanzas_so_far", "entries_seen"}.
ALTER TABLE cworker_tasks ADD COLUMN IF NOT EXISTS progress json;
