-- People on call (issue 18): rotations, schedules (their rules and overrides
-- inside them, written whole by one versioned update), escalation policies
-- (their steps inside them), a service's policy and acknowledgement timeout,
-- an incident's policy-escalation state, a user's time zone.

ALTER TABLE users ADD COLUMN time_zone TEXT NOT NULL DEFAULT 'UTC';
CREATE INDEX users_by_created ON users (created_at, id);

CREATE TABLE rotations (
    id           UUID PRIMARY KEY,
    name         TEXT NOT NULL,
    description  TEXT NOT NULL,
    kind         TEXT NOT NULL,
    shift_length BIGINT NOT NULL,
    start        TIMESTAMPTZ NOT NULL,
    time_zone    TEXT NOT NULL,
    -- The ordered participants' ids, a JSON array.
    participants JSONB NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL,
    updated_at   TIMESTAMPTZ NOT NULL,
    version      BIGINT NOT NULL
);
CREATE INDEX rotations_by_created ON rotations (created_at, id);

CREATE TABLE schedules (
    id          UUID PRIMARY KEY,
    name        TEXT NOT NULL,
    description TEXT NOT NULL,
    time_zone   TEXT NOT NULL,
    -- JSON arrays: the rules in order, the overrides by start then creation.
    rules       JSONB NOT NULL,
    overrides   JSONB NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL,
    version     BIGINT NOT NULL
);
CREATE INDEX schedules_by_created ON schedules (created_at, id);

CREATE TABLE escalation_policies (
    id          UUID PRIMARY KEY,
    name        TEXT NOT NULL,
    description TEXT NOT NULL,
    repeat      BIGINT NOT NULL,
    -- The steps in order, a JSON array.
    steps       JSONB NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL,
    version     BIGINT NOT NULL
);
CREATE INDEX escalation_policies_by_created ON escalation_policies (created_at, id);

-- A policy a service uses cannot be deleted, even by a delete racing the
-- service's write (the engine checks first; this is what holds in a race).
ALTER TABLE services ADD COLUMN escalation_policy_id UUID
    CONSTRAINT services_escalation_policy_fkey
    REFERENCES escalation_policies (id) ON DELETE RESTRICT;
ALTER TABLE services ADD COLUMN ack_timeout_seconds BIGINT;
CREATE INDEX services_by_escalation_policy ON services (escalation_policy_id)
    WHERE escalation_policy_id IS NOT NULL;

-- The policy is a snapshot of the service's when the incident opened; it may
-- be deleted later (the escalation then ends), so no foreign key.
ALTER TABLE incidents ADD COLUMN escalation_policy_id UUID;
ALTER TABLE incidents ADD COLUMN escalation_step BIGINT NOT NULL DEFAULT 0;
ALTER TABLE incidents ADD COLUMN next_escalation_at TIMESTAMPTZ;
ALTER TABLE incidents ADD COLUMN ack_expires_at TIMESTAMPTZ;
