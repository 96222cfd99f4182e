-- The Python application's schema (CONTRACT 1.4), as its Alembic migrations 001-006
-- create it: same types, nullability, defaults, and the names PostgreSQL/SQLAlchemy
-- give by default (<table>_pkey, <table>_<column>_fkey, <table>_id_seq).
--
-- Every statement is IF NOT EXISTS: on a database where Alembic already made these
-- tables this file changes nothing, and on an empty one it makes exactly what Alembic
-- would. Never alter the application's columns here or in later files; the worker's
-- own additions go in later migrations.
--
-- Runs inside one transaction (cworker migrate); no transaction control here.

CREATE TABLE IF NOT EXISTS ingestion_runs (
    id serial NOT NULL,
    created_at timestamp with time zone NOT NULL,
    type varchar(50) NOT NULL,
    label varchar(255),
    status varchar(50) NOT NULL,
    notes text,
    task_id varchar(255),
    retry_count integer DEFAULT 0 NOT NULL,
    error_message text,
    error_traceback text,
    last_heartbeat timestamp with time zone,
    started_at timestamp with time zone,
    completed_at timestamp with time zone,
    metrics json,
    CONSTRAINT ingestion_runs_pkey PRIMARY KEY (id)
);
CREATE INDEX IF NOT EXISTS ix_ingestion_runs_created_at ON ingestion_runs (created_at);
CREATE INDEX IF NOT EXISTS ix_ingestion_runs_status ON ingestion_runs (status);
CREATE INDEX IF NOT EXISTS idx_ingestion_runs_task_id ON ingestion_runs (task_id);

CREATE TABLE IF NOT EXISTS files (
    id serial NOT NULL,
    run_id integer NOT NULL,
    path varchar(1024) NOT NULL,
    sha256 varchar(64) NOT NULL,
    size_bytes bigint NOT NULL,
    stored_object_key varchar(512) NOT NULL,
    CONSTRAINT files_pkey PRIMARY KEY (id),
    CONSTRAINT files_run_id_fkey FOREIGN KEY (run_id)
        REFERENCES ingestion_runs (id) ON DELETE CASCADE
);
CREATE INDEX IF NOT EXISTS ix_files_run_id ON files (run_id);
CREATE INDEX IF NOT EXISTS ix_files_sha256 ON files (sha256);

CREATE TABLE IF NOT EXISTS stanzas (
    id serial NOT NULL,
    run_id integer NOT NULL,
    file_id integer,
    conf_type varchar(50) NOT NULL,
    name varchar(512) NOT NULL,
    app varchar(255),
    scope varchar(50),
    layer varchar(50),
    order_in_file integer,
    source_path varchar(1024) NOT NULL,
    raw_kv jsonb,
    CONSTRAINT stanzas_pkey PRIMARY KEY (id),
    CONSTRAINT stanzas_run_id_fkey FOREIGN KEY (run_id)
        REFERENCES ingestion_runs (id) ON DELETE CASCADE,
    CONSTRAINT stanzas_file_id_fkey FOREIGN KEY (file_id)
        REFERENCES files (id) ON DELETE CASCADE
);
CREATE INDEX IF NOT EXISTS ix_stanzas_run_id ON stanzas (run_id);
CREATE INDEX IF NOT EXISTS ix_stanzas_run_conf_name ON stanzas (run_id, conf_type, name);
CREATE INDEX IF NOT EXISTS ix_stanzas_run_app_scope_layer ON stanzas (run_id, app, scope, layer);
CREATE INDEX IF NOT EXISTS ix_stanzas_raw_kv_gin ON stanzas USING gin (raw_kv);

CREATE TABLE IF NOT EXISTS inputs (
    id serial NOT NULL,
    run_id integer NOT NULL,
    source_path varchar(1024) NOT NULL,
    stanza_type varchar(255),
    "index" varchar(255),
    sourcetype varchar(255),
    disabled boolean,
    kv jsonb,
    app varchar(255),
    scope varchar(50),
    layer varchar(50),
    CONSTRAINT inputs_pkey PRIMARY KEY (id),
    CONSTRAINT inputs_run_id_fkey FOREIGN KEY (run_id)
        REFERENCES ingestion_runs (id) ON DELETE CASCADE
);
CREATE INDEX IF NOT EXISTS ix_inputs_run_id ON inputs (run_id);
CREATE INDEX IF NOT EXISTS ix_inputs_kv_gin ON inputs USING gin (kv);

CREATE TABLE IF NOT EXISTS props (
    id serial NOT NULL,
    run_id integer NOT NULL,
    target varchar(512) NOT NULL,
    transforms_list varchar(255)[],
    sedcmds varchar(255)[],
    kv jsonb,
    CONSTRAINT props_pkey PRIMARY KEY (id),
    CONSTRAINT props_run_id_fkey FOREIGN KEY (run_id)
        REFERENCES ingestion_runs (id) ON DELETE CASCADE
);
CREATE INDEX IF NOT EXISTS ix_props_run_id ON props (run_id);
CREATE INDEX IF NOT EXISTS ix_props_kv_gin ON props USING gin (kv);

CREATE TABLE IF NOT EXISTS transforms (
    id serial NOT NULL,
    run_id integer NOT NULL,
    name varchar(512) NOT NULL,
    dest_key varchar(255),
    regex text,
    format text,
    writes_meta_index boolean,
    writes_meta_sourcetype boolean,
    kv jsonb,
    CONSTRAINT transforms_pkey PRIMARY KEY (id),
    CONSTRAINT transforms_run_id_fkey FOREIGN KEY (run_id)
        REFERENCES ingestion_runs (id) ON DELETE CASCADE
);
CREATE INDEX IF NOT EXISTS ix_transforms_run_id ON transforms (run_id);
CREATE INDEX IF NOT EXISTS ix_transforms_kv_gin ON transforms USING gin (kv);

CREATE TABLE IF NOT EXISTS indexes (
    id serial NOT NULL,
    run_id integer NOT NULL,
    name varchar(255) NOT NULL,
    kv jsonb,
    CONSTRAINT indexes_pkey PRIMARY KEY (id),
    CONSTRAINT indexes_run_id_fkey FOREIGN KEY (run_id)
        REFERENCES ingestion_runs (id) ON DELETE CASCADE
);
CREATE INDEX IF NOT EXISTS ix_indexes_run_id ON indexes (run_id);
CREATE INDEX IF NOT EXISTS ix_indexes_kv_gin ON indexes USING gin (kv);

CREATE TABLE IF NOT EXISTS outputs (
    id serial NOT NULL,
    run_id integer NOT NULL,
    group_name varchar(255) NOT NULL,
    servers jsonb,
    kv jsonb,
    CONSTRAINT outputs_pkey PRIMARY KEY (id),
    CONSTRAINT outputs_run_id_fkey FOREIGN KEY (run_id)
        REFERENCES ingestion_runs (id) ON DELETE CASCADE
);
CREATE INDEX IF NOT EXISTS ix_outputs_run_id ON outputs (run_id);
CREATE INDEX IF NOT EXISTS ix_outputs_servers_gin ON outputs USING gin (servers);
CREATE INDEX IF NOT EXISTS ix_outputs_kv_gin ON outputs USING gin (kv);

CREATE TABLE IF NOT EXISTS serverclasses (
    id serial NOT NULL,
    run_id integer NOT NULL,
    name varchar(255) NOT NULL,
    whitelist jsonb,
    blacklist jsonb,
    app_assignments jsonb,
    kv jsonb,
    CONSTRAINT serverclasses_pkey PRIMARY KEY (id),
    CONSTRAINT serverclasses_run_id_fkey FOREIGN KEY (run_id)
        REFERENCES ingestion_runs (id) ON DELETE CASCADE
);
CREATE INDEX IF NOT EXISTS ix_serverclasses_run_id ON serverclasses (run_id);
CREATE INDEX IF NOT EXISTS ix_serverclasses_whitelist_gin ON serverclasses USING gin (whitelist);
CREATE INDEX IF NOT EXISTS ix_serverclasses_blacklist_gin ON serverclasses USING gin (blacklist);
CREATE INDEX IF NOT EXISTS ix_serverclasses_app_assignments_gin
    ON serverclasses USING gin (app_assignments);
CREATE INDEX IF NOT EXISTS ix_serverclasses_kv_gin ON serverclasses USING gin (kv);
