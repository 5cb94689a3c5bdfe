-- Alerts in (issue 17): services, their integration keys, alerts, and what
-- incidents gain from them. At most one open alert per (service, dedup key) and
-- one unresolved incident per (service, Alertmanager group key): unique partial
-- indexes, so racing requests on any number of nodes open one, never two.

CREATE TABLE services (
    id           UUID PRIMARY KEY,
    name         TEXT NOT NULL,
    description  TEXT NOT NULL,
    auto_resolve BOOLEAN NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL,
    updated_at   TIMESTAMPTZ NOT NULL,
    version      BIGINT NOT NULL,
    CONSTRAINT services_name_key UNIQUE (name)
);
CREATE INDEX services_by_created ON services (created_at, id);

CREATE TABLE integrations (
    id         UUID PRIMARY KEY,
    service_id UUID NOT NULL,
    name       TEXT NOT NULL,
    kind       TEXT NOT NULL,
    key_hash   TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    revoked_at TIMESTAMPTZ,
    CONSTRAINT integrations_key_hash_key UNIQUE (key_hash)
);
CREATE INDEX integrations_by_service ON integrations (service_id, created_at, id)
    WHERE revoked_at IS NULL;

CREATE TABLE alerts (
    id             UUID PRIMARY KEY,
    incident_id    UUID NOT NULL,
    service_id     UUID NOT NULL,
    integration_id UUID NOT NULL,
    dedup_key      TEXT NOT NULL,
    status         TEXT NOT NULL,
    summary        TEXT NOT NULL,
    severity       TEXT NOT NULL,
    source         TEXT NOT NULL,
    component      TEXT,
    alert_group    TEXT,
    class          TEXT,
    labels         JSONB NOT NULL,
    details        JSONB NOT NULL,
    links          JSONB NOT NULL,
    started_at     TIMESTAMPTZ NOT NULL,
    last_event_at  TIMESTAMPTZ NOT NULL,
    event_count    BIGINT NOT NULL,
    resolved_at    TIMESTAMPTZ,
    -- The summary's search terms (imas_core::model::search_terms).
    terms          TEXT[] NOT NULL
);
CREATE UNIQUE INDEX alerts_open_dedup ON alerts (service_id, dedup_key)
    WHERE status <> 'resolved';
CREATE INDEX alerts_by_started ON alerts (started_at, id);
CREATE INDEX alerts_by_service ON alerts (service_id, started_at, id);
CREATE INDEX alerts_by_incident ON alerts (incident_id, started_at, id);
CREATE INDEX alerts_by_status ON alerts (status, started_at, id);
CREATE INDEX alerts_terms ON alerts USING GIN (terms);

ALTER TABLE incidents ALTER COLUMN reported_by DROP NOT NULL;
ALTER TABLE incidents ADD COLUMN service_id UUID;
ALTER TABLE incidents ADD COLUMN source TEXT NOT NULL DEFAULT 'manual';
ALTER TABLE incidents ADD COLUMN alert_count BIGINT NOT NULL DEFAULT 0;
ALTER TABLE incidents ADD COLUMN group_key TEXT;
CREATE INDEX incidents_by_service ON incidents (service_id, created_at, id)
    WHERE service_id IS NOT NULL;
CREATE UNIQUE INDEX incidents_open_group ON incidents (service_id, group_key)
    WHERE group_key IS NOT NULL AND status NOT IN ('resolved', 'closed');

-- The change feed (0003): an alert's insert or status change is part of what
-- its incident's readers see, so it notifies as `schema.alerts` (read as an
-- incident change). Once per statement, and not for the repeated trigger's
-- counter (it sets neither status nor incident).
CREATE TRIGGER alerts_changed AFTER INSERT OR DELETE OR UPDATE OF status, incident_id ON alerts
    FOR EACH STATEMENT EXECUTE FUNCTION notify_change();
