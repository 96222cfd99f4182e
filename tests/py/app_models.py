"""The Python application's SQLAlchemy 1.4 models (CONTRACT 1.4), for tests.

This stands in for the application's own models and Alembic migrations 001-006:
`metadata.create_all` on an empty database produces the schema Alembic would have
produced, so tests can (a) compare it with what `cworker migrate` creates and (b) load
rows the worker wrote exactly the way the application does (an Enum column refuses
values that are not member names).

Where the application's ORM model and its Alembic migrations differ, the migrations
win, because they made the real database: `retry_count` has the server default '0'
(migration 005), and the run indexes of migration 001/003 are declared here.
`created_at` has only a Python-side default (no server default), as in the app.

Import from a test with:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "py"))
    import app_models
"""

import enum
from datetime import datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Enum,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import declarative_base, relationship

Base = declarative_base()
metadata = Base.metadata

APP_TABLES = (
    "ingestion_runs",
    "files",
    "stanzas",
    "inputs",
    "props",
    "transforms",
    "indexes",
    "outputs",
    "serverclasses",
)


class IngestionType(str, enum.Enum):
    DS_ETC = "ds_etc"
    INSTANCE_ETC = "instance_etc"
    APP_BUNDLE = "app_bundle"
    SINGLE_CONF = "single_conf"


class IngestionStatus(str, enum.Enum):
    PENDING = "pending"
    STORED = "stored"
    PARSING = "parsing"
    NORMALIZED = "normalized"
    FAILED = "failed"
    COMPLETE = "complete"


def _run_fk():
    return Column(
        Integer, ForeignKey("ingestion_runs.id", ondelete="CASCADE"), nullable=False
    )


class IngestionRun(Base):
    __tablename__ = "ingestion_runs"

    id = Column(Integer, primary_key=True, autoincrement=True)
    created_at = Column(DateTime(timezone=True), default=datetime.utcnow, nullable=False)
    # native_enum=False: a VARCHAR(50) holding member NAMES; 1.4's create_constraint
    # defaults to False, so no CHECK constraint (as in the app's database).
    type = Column(Enum(IngestionType, native_enum=False, length=50), nullable=False)
    label = Column(String(255), nullable=True)
    status = Column(
        Enum(IngestionStatus, native_enum=False, length=50),
        default=IngestionStatus.PENDING,
        nullable=False,
    )
    notes = Column(Text, nullable=True)
    task_id = Column(String(255), nullable=True)
    retry_count = Column(Integer, default=0, server_default="0", nullable=False)
    error_message = Column(Text, nullable=True)
    error_traceback = Column(Text, nullable=True)
    last_heartbeat = Column(DateTime(timezone=True), nullable=True)
    started_at = Column(DateTime(timezone=True), nullable=True)
    completed_at = Column(DateTime(timezone=True), nullable=True)
    metrics = Column(JSON, nullable=True)

    files = relationship("File", back_populates="ingestion_run", cascade="all, delete-orphan")
    stanzas = relationship("Stanza", back_populates="ingestion_run", cascade="all, delete-orphan")

    __table_args__ = (
        Index("ix_ingestion_runs_created_at", "created_at"),
        Index("ix_ingestion_runs_status", "status"),
        Index("idx_ingestion_runs_task_id", "task_id"),
    )


class File(Base):
    __tablename__ = "files"

    id = Column(Integer, primary_key=True, autoincrement=True)
    run_id = _run_fk()
    path = Column(String(1024), nullable=False)
    sha256 = Column(String(64), nullable=False)
    size_bytes = Column(BigInteger, nullable=False)
    stored_object_key = Column(String(512), nullable=False)

    ingestion_run = relationship("IngestionRun", back_populates="files")

    __table_args__ = (
        Index("ix_files_run_id", "run_id"),
        Index("ix_files_sha256", "sha256"),
    )


class Stanza(Base):
    __tablename__ = "stanzas"

    id = Column(Integer, primary_key=True, autoincrement=True)
    run_id = _run_fk()
    file_id = Column(Integer, ForeignKey("files.id", ondelete="CASCADE"), nullable=True)
    conf_type = Column(String(50), nullable=False)
    name = Column(String(512), nullable=False)
    app = Column(String(255), nullable=True)
    scope = Column(String(50), nullable=True)
    layer = Column(String(50), nullable=True)
    order_in_file = Column(Integer, nullable=True)
    source_path = Column(String(1024), nullable=False)
    raw_kv = Column(JSONB, nullable=True)

    ingestion_run = relationship("IngestionRun", back_populates="stanzas")

    __table_args__ = (
        Index("ix_stanzas_run_id", "run_id"),
        Index("ix_stanzas_run_conf_name", "run_id", "conf_type", "name"),
        Index("ix_stanzas_run_app_scope_layer", "run_id", "app", "scope", "layer"),
        Index("ix_stanzas_raw_kv_gin", "raw_kv", postgresql_using="gin"),
    )


def _gin(table, column):
    return Index(f"ix_{table}_{column}_gin", column, postgresql_using="gin")


class Input(Base):
    __tablename__ = "inputs"

    id = Column(Integer, primary_key=True, autoincrement=True)
    run_id = _run_fk()
    source_path = Column(String(1024), nullable=False)
    stanza_type = Column(String(255), nullable=True)
    index = Column(String(255), nullable=True)
    sourcetype = Column(String(255), nullable=True)
    disabled = Column(Boolean, nullable=True)
    kv = Column(JSONB, nullable=True)
    app = Column(String(255), nullable=True)
    scope = Column(String(50), nullable=True)
    layer = Column(String(50), nullable=True)

    __table_args__ = (Index("ix_inputs_run_id", "run_id"), _gin("inputs", "kv"))


class Props(Base):
    __tablename__ = "props"

    id = Column(Integer, primary_key=True, autoincrement=True)
    run_id = _run_fk()
    target = Column(String(512), nullable=False)
    transforms_list = Column(ARRAY(String(255)), nullable=True)
    sedcmds = Column(ARRAY(String(255)), nullable=True)
    kv = Column(JSONB, nullable=True)

    __table_args__ = (Index("ix_props_run_id", "run_id"), _gin("props", "kv"))


class Transform(Base):
    __tablename__ = "transforms"

    id = Column(Integer, primary_key=True, autoincrement=True)
    run_id = _run_fk()
    name = Column(String(512), nullable=False)
    dest_key = Column(String(255), nullable=True)
    regex = Column(Text, nullable=True)
    format = Column(Text, nullable=True)
    writes_meta_index = Column(Boolean, nullable=True)
    writes_meta_sourcetype = Column(Boolean, nullable=True)
    kv = Column(JSONB, nullable=True)

    __table_args__ = (Index("ix_transforms_run_id", "run_id"), _gin("transforms", "kv"))


class IndexConf(Base):
    """indexes.conf projection (named IndexConf here so it does not shadow sqlalchemy.Index)."""

    __tablename__ = "indexes"

    id = Column(Integer, primary_key=True, autoincrement=True)
    run_id = _run_fk()
    name = Column(String(255), nullable=False)
    kv = Column(JSONB, nullable=True)

    __table_args__ = (Index("ix_indexes_run_id", "run_id"), _gin("indexes", "kv"))


class Output(Base):
    __tablename__ = "outputs"

    id = Column(Integer, primary_key=True, autoincrement=True)
    run_id = _run_fk()
    group_name = Column(String(255), nullable=False)
    servers = Column(JSONB, nullable=True)
    kv = Column(JSONB, nullable=True)

    __table_args__ = (
        Index("ix_outputs_run_id", "run_id"),
        _gin("outputs", "servers"),
        _gin("outputs", "kv"),
    )


class Serverclass(Base):
    __tablename__ = "serverclasses"

    id = Column(Integer, primary_key=True, autoincrement=True)
    run_id = _run_fk()
    name = Column(String(255), nullable=False)
    whitelist = Column(JSONB, nullable=True)
    blacklist = Column(JSONB, nullable=True)
    app_assignments = Column(JSONB, nullable=True)
    kv = Column(JSONB, nullable=True)

    __table_args__ = (
        Index("ix_serverclasses_run_id", "run_id"),
        _gin("serverclasses", "whitelist"),
        _gin("serverclasses", "blacklist"),
        _gin("serverclasses", "app_assignments"),
        _gin("serverclasses", "kv"),
    )
