-- Alerts in (issue 17): services, their integration keys, alerts, and what
-- incidents gain from them. At most one open alert per (service, dedup key) and
-- one unresolved incident per (service, Alertmanager group key): unique partial
-- indexes.

CREATE TABLE services (
    id           BLOB PRIMARY KEY NOT NULL,
    name         TEXT NOT NULL,
    description  TEXT NOT NULL,
    auto_resolve INTEGER NOT NULL,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL,
    version      INTEGER NOT NULL,
    CONSTRAINT services_name_key UNIQUE (name)
);
CREATE INDEX services_by_created ON services (created_at, id);

CREATE TABLE integrations (
    id         BLOB PRIMARY KEY NOT NULL,
    service_id BLOB NOT NULL,
    name       TEXT NOT NULL,
    kind       TEXT NOT NULL,
    key_hash   TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    revoked_at INTEGER,
    CONSTRAINT integrations_key_hash_key UNIQUE (key_hash)
);
CREATE INDEX integrations_by_service ON integrations (service_id, created_at, id)
    WHERE revoked_at IS NULL;

CREATE TABLE alerts (
    id             BLOB PRIMARY KEY NOT NULL,
    incident_id    BLOB NOT NULL,
    service_id     BLOB NOT NULL,
    integration_id BLOB NOT NULL,
    dedup_key      TEXT NOT NULL,
    status         TEXT NOT NULL,
    summary        TEXT NOT NULL,
    severity       TEXT NOT NULL,
    source         TEXT NOT NULL,
    component      TEXT,
    alert_group    TEXT,
    class          TEXT,
    -- JSON texts.
    labels         TEXT NOT NULL,
    details        TEXT NOT NULL,
    links          TEXT NOT NULL,
    started_at     INTEGER NOT NULL,
    last_event_at  INTEGER NOT NULL,
    event_count    INTEGER NOT NULL,
    resolved_at    INTEGER,
    -- The summary's search terms (imas_core::model::search_terms), separated
    -- by spaces.
    terms          TEXT NOT NULL
);
CREATE UNIQUE INDEX alerts_open_dedup ON alerts (service_id, dedup_key)
    WHERE status <> 'resolved';
CREATE INDEX alerts_by_started ON alerts (started_at, id);
CREATE INDEX alerts_by_service ON alerts (service_id, started_at, id);
CREATE INDEX alerts_by_incident ON alerts (incident_id, started_at, id);
CREATE INDEX alerts_by_status ON alerts (status, started_at, id);

-- Incidents: `reported_by` becomes nullable (an alert's incident has no
-- reporter), which SQLite can only do by rebuilding the table. The rebuild
-- keeps every row's `seq` (the rowid of its `incident_search` row) and the
-- AUTOINCREMENT counter, so search keeps finding every incident and a new one
-- never takes the seq of a deleted one; then every index is made again.
CREATE TABLE incidents_new (
    seq                  INTEGER PRIMARY KEY AUTOINCREMENT,
    id                   BLOB NOT NULL UNIQUE,
    title                TEXT NOT NULL,
    description          TEXT NOT NULL,
    kind                 TEXT NOT NULL,
    priority             TEXT NOT NULL,
    status               TEXT NOT NULL,
    assigned_to          BLOB,
    reported_by          BLOB,
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
    version              INTEGER NOT NULL,
    service_id           BLOB,
    source               TEXT NOT NULL DEFAULT 'manual',
    alert_count          INTEGER NOT NULL DEFAULT 0,
    group_key            TEXT
);
INSERT INTO incidents_new (
    seq, id, title, description, kind, priority, status, assigned_to, reported_by,
    created_at, updated_at, sla_target_ms, sla_deadline, response_target_ms,
    response_deadline, response_breached_at, at_risk_at, sla_breached, breached_at,
    escalation_level, escalated_at, acknowledged_at, resolved_at, closed_at, held_ms,
    hold_started_at, next_due_at, version)
SELECT
    seq, id, title, description, kind, priority, status, assigned_to, reported_by,
    created_at, updated_at, sla_target_ms, sla_deadline, response_target_ms,
    response_deadline, response_breached_at, at_risk_at, sla_breached, breached_at,
    escalation_level, escalated_at, acknowledged_at, resolved_at, closed_at, held_ms,
    hold_started_at, next_due_at, version
FROM incidents;
DELETE FROM sqlite_sequence WHERE name = 'incidents_new';
INSERT INTO sqlite_sequence (name, seq)
    SELECT 'incidents_new', seq FROM sqlite_sequence WHERE name = 'incidents';
DROP TABLE incidents;
ALTER TABLE incidents_new RENAME TO incidents;

CREATE INDEX incidents_by_created ON incidents (created_at, id);
CREATE INDEX incidents_by_status ON incidents (status, created_at, id);
CREATE INDEX incidents_by_priority ON incidents (priority, created_at, id);
CREATE INDEX incidents_by_assignee ON incidents (assigned_to, created_at, id);
CREATE INDEX incidents_by_reporter ON incidents (reported_by, created_at, id);
CREATE INDEX incidents_escalated ON incidents (created_at, id) WHERE escalation_level > 0;
CREATE INDEX incidents_due ON incidents (next_due_at) WHERE next_due_at IS NOT NULL;
CREATE INDEX incidents_open_deadline ON incidents (sla_deadline) WHERE status NOT IN ('resolved', 'closed');
CREATE INDEX incidents_by_status_priority ON incidents (status, priority, sla_breached);
CREATE INDEX incidents_by_service ON incidents (service_id, created_at, id)
    WHERE service_id IS NOT NULL;
CREATE UNIQUE INDEX incidents_open_group ON incidents (service_id, group_key)
    WHERE group_key IS NOT NULL AND status NOT IN ('resolved', 'closed');
