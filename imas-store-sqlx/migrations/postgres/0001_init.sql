-- IMAS schema for PostgreSQL. Every object lives in IMAS's own schema (the
-- connection's search_path), apart from the host application's tables.

CREATE TABLE users (
    id            UUID PRIMARY KEY,
    name          TEXT NOT NULL,
    username      TEXT NOT NULL,
    email         TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    role          TEXT NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL,
    CONSTRAINT users_username_key UNIQUE (username),
    CONSTRAINT users_email_key UNIQUE (email)
);
CREATE INDEX users_by_role ON users (role, created_at, id);

CREATE TABLE incidents (
    id                   UUID PRIMARY KEY,
    title                TEXT NOT NULL,
    description          TEXT NOT NULL,
    kind                 TEXT NOT NULL,
    priority             TEXT NOT NULL,
    status               TEXT NOT NULL,
    assigned_to          UUID,
    reported_by          UUID NOT NULL,
    created_at           TIMESTAMPTZ NOT NULL,
    updated_at           TIMESTAMPTZ NOT NULL,
    sla_target_ms        BIGINT NOT NULL,
    sla_deadline         TIMESTAMPTZ NOT NULL,
    response_target_ms   BIGINT NOT NULL,
    response_deadline    TIMESTAMPTZ NOT NULL,
    response_breached_at TIMESTAMPTZ,
    at_risk_at           TIMESTAMPTZ,
    sla_breached         BOOLEAN NOT NULL,
    breached_at          TIMESTAMPTZ,
    escalation_level     BIGINT NOT NULL,
    escalated_at         TIMESTAMPTZ,
    acknowledged_at      TIMESTAMPTZ,
    resolved_at          TIMESTAMPTZ,
    closed_at            TIMESTAMPTZ,
    held_ms              BIGINT NOT NULL,
    hold_started_at      TIMESTAMPTZ,
    next_due_at          TIMESTAMPTZ,
    version              BIGINT NOT NULL,
    -- IMAS's own search terms (imas_core::model::search_terms) as lexemes.
    search               TSVECTOR NOT NULL
);
CREATE INDEX incidents_by_created ON incidents (created_at, id);
CREATE INDEX incidents_by_status ON incidents (status, created_at, id);
CREATE INDEX incidents_by_priority ON incidents (priority, created_at, id);
CREATE INDEX incidents_by_assignee ON incidents (assigned_to, created_at, id);
CREATE INDEX incidents_by_reporter ON incidents (reported_by, created_at, id);
CREATE INDEX incidents_escalated ON incidents (created_at, id) WHERE escalation_level > 0;
CREATE INDEX incidents_due ON incidents (next_due_at) WHERE next_due_at IS NOT NULL;
CREATE INDEX incidents_open_deadline ON incidents (sla_deadline) WHERE status NOT IN ('resolved', 'closed');
-- fastupdate off: no pending list for searches to scan after a burst of updates.
CREATE INDEX incidents_search ON incidents USING GIN (search) WITH (fastupdate = off);

CREATE TABLE audit_log (
    id          UUID PRIMARY KEY,
    action      TEXT NOT NULL,
    actor       TEXT NOT NULL,
    target      TEXT,
    description TEXT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL
);
CREATE INDEX audit_by_created ON audit_log (created_at, id);
CREATE INDEX audit_by_action ON audit_log (action, created_at, id);
CREATE INDEX audit_by_actor ON audit_log (actor, created_at, id);
CREATE INDEX audit_by_target ON audit_log (target, created_at, id);
CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the audit log is append-only';
END;
$$;
CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();

CREATE TABLE notifications (
    id          UUID PRIMARY KEY,
    key         TEXT NOT NULL UNIQUE,
    user_id     UUID NOT NULL,
    message     TEXT NOT NULL,
    kind        TEXT NOT NULL,
    incident_id UUID,
    read        BOOLEAN NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL
);
CREATE INDEX notifications_by_user ON notifications (user_id, created_at, id);

CREATE TABLE outbox (
    seq          BIGSERIAL PRIMARY KEY,
    key          TEXT NOT NULL UNIQUE,
    intent       TEXT NOT NULL,
    attempts     BIGINT NOT NULL DEFAULT 0,
    available_at TIMESTAMPTZ NOT NULL,
    delivered_at TIMESTAMPTZ
);
CREATE INDEX outbox_pending ON outbox (available_at, seq) WHERE delivered_at IS NULL;
