-- IMAS schema for SQLite. Instants are INTEGER milliseconds since the Unix epoch,
-- ids are 16-byte UUID BLOBs (their byte order is their time order).

CREATE TABLE users (
    id            BLOB PRIMARY KEY NOT NULL,
    name          TEXT NOT NULL,
    username      TEXT NOT NULL,
    email         TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    role          TEXT NOT NULL,
    created_at    INTEGER NOT NULL,
    CONSTRAINT users_username_key UNIQUE (username),
    CONSTRAINT users_email_key UNIQUE (email)
);
CREATE INDEX users_by_role ON users (role, created_at, id);

CREATE TABLE incidents (
    seq                  INTEGER PRIMARY KEY AUTOINCREMENT,
    id                   BLOB NOT NULL UNIQUE,
    title                TEXT NOT NULL,
    description          TEXT NOT NULL,
    kind                 TEXT NOT NULL,
    priority             TEXT NOT NULL,
    status               TEXT NOT NULL,
    assigned_to          BLOB,
    reported_by          BLOB NOT NULL,
    created_at           INTEGER NOT NULL,
    updated_at           INTEGER NOT NULL,
    sla_target_ms        INTEGER NOT NULL,
    sla_deadline         INTEGER NOT NULL,
    response_target_ms   INTEGER NOT NULL,
    response_deadline    INTEGER NOT NULL,
    response_breached_at INTEGER,
    at_risk_at           INTEGER,
    sla_breached         INTEGER NOT NULL,
    breached_at          INTEGER,
    escalation_level     INTEGER NOT NULL,
    escalated_at         INTEGER,
    acknowledged_at      INTEGER,
    resolved_at          INTEGER,
    closed_at            INTEGER,
    held_ms              INTEGER NOT NULL,
    hold_started_at      INTEGER,
    next_due_at          INTEGER,
    version              INTEGER NOT NULL
);
CREATE INDEX incidents_by_created ON incidents (created_at, id);
CREATE INDEX incidents_by_status ON incidents (status, created_at, id);
CREATE INDEX incidents_by_priority ON incidents (priority, created_at, id);
CREATE INDEX incidents_by_assignee ON incidents (assigned_to, created_at, id);
CREATE INDEX incidents_by_reporter ON incidents (reported_by, created_at, id);
CREATE INDEX incidents_escalated ON incidents (created_at, id) WHERE escalation_level > 0;
CREATE INDEX incidents_due ON incidents (next_due_at) WHERE next_due_at IS NOT NULL;
CREATE INDEX incidents_open_deadline ON incidents (sla_deadline) WHERE status NOT IN ('resolved', 'closed');

-- Full-text search: one row per incident (rowid = incidents.seq) holding its
-- search terms (see imas_core::model::search_terms) separated by spaces. The
-- ascii tokenizer splits on those spaces only, so FTS5 tokens are exactly IMAS's.
CREATE VIRTUAL TABLE incident_search USING fts5 (terms, tokenize = 'ascii');

CREATE TABLE audit_log (
    id          BLOB PRIMARY KEY NOT NULL,
    action      TEXT NOT NULL,
    actor       TEXT NOT NULL,
    target      TEXT,
    description TEXT NOT NULL,
    created_at  INTEGER NOT NULL
);
CREATE INDEX audit_by_created ON audit_log (created_at, id);
CREATE INDEX audit_by_action ON audit_log (action, created_at, id);
CREATE INDEX audit_by_actor ON audit_log (actor, created_at, id);
CREATE INDEX audit_by_target ON audit_log (target, created_at, id);
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'the audit log is append-only');
END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'the audit log is append-only');
END;

CREATE TABLE notifications (
    id          BLOB PRIMARY KEY NOT NULL,
    key         TEXT NOT NULL UNIQUE,
    user_id     BLOB NOT NULL,
    message     TEXT NOT NULL,
    kind        TEXT NOT NULL,
    incident_id BLOB,
    read        INTEGER NOT NULL,
    created_at  INTEGER NOT NULL
);
CREATE INDEX notifications_by_user ON notifications (user_id, created_at, id);

-- The transactional outbox. Delivered rows keep their key (delivered_at set) so
-- that an intent is never written twice.
CREATE TABLE outbox (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    key          TEXT NOT NULL UNIQUE,
    intent       TEXT NOT NULL,
    attempts     INTEGER NOT NULL DEFAULT 0,
    available_at INTEGER NOT NULL,
    delivered_at INTEGER
);
CREATE INDEX outbox_pending ON outbox (available_at, seq) WHERE delivered_at IS NULL;
