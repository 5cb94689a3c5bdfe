-- People on call (issue 18): rotations, schedules (their rules and overrides
-- inside them, written whole by one versioned update), escalation policies
-- (their steps inside them), a service's policy and acknowledgement timeout,
-- an incident's policy-escalation state, a user's time zone. Only columns are
-- added to existing tables (nullable or with a default), so no rebuild.

ALTER TABLE users ADD COLUMN time_zone TEXT NOT NULL DEFAULT 'UTC';
CREATE INDEX users_by_created ON users (created_at, id);

CREATE TABLE rotations (
    id           BLOB PRIMARY KEY NOT NULL,
    name         TEXT NOT NULL,
    description  TEXT NOT NULL,
    kind         TEXT NOT NULL,
    shift_length INTEGER NOT NULL,
    start        INTEGER NOT NULL,
    time_zone    TEXT NOT NULL,
    -- The ordered participants' ids, a JSON array (text).
    participants TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL,
    version      INTEGER NOT NULL
);
CREATE INDEX rotations_by_created ON rotations (created_at, id);

CREATE TABLE schedules (
    id          BLOB PRIMARY KEY NOT NULL,
    name        TEXT NOT NULL,
    description TEXT NOT NULL,
    time_zone   TEXT NOT NULL,
    -- JSON arrays (text): the rules in order, the overrides by start then
    -- creation.
    rules       TEXT NOT NULL,
    overrides   TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    version     INTEGER NOT NULL
);
CREATE INDEX schedules_by_created ON schedules (created_at, id);

CREATE TABLE escalation_policies (
    id          BLOB PRIMARY KEY NOT NULL,
    name        TEXT NOT NULL,
    description TEXT NOT NULL,
    repeat      INTEGER NOT NULL,
    -- The steps in order, a JSON array (text).
    steps       TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    version     INTEGER NOT NULL
);
CREATE INDEX escalation_policies_by_created ON escalation_policies (created_at, id);

-- A policy a service uses cannot be deleted, even by a delete racing the
-- service's write (the engine checks first; this is what holds in a race).
-- Every connection of the store enables foreign keys. NO ACTION (the default)
-- rather than RESTRICT: both refuse the delete (the constraint is immediate),
-- but SQLite reports RESTRICT as SQLITE_CONSTRAINT_TRIGGER, the code of any
-- trigger's RAISE, and NO ACTION as SQLITE_CONSTRAINT_FOREIGNKEY, which says
-- what it is.
ALTER TABLE services ADD COLUMN escalation_policy_id BLOB
    REFERENCES escalation_policies (id);
ALTER TABLE services ADD COLUMN ack_timeout_seconds INTEGER;
CREATE INDEX services_by_escalation_policy ON services (escalation_policy_id)
    WHERE escalation_policy_id IS NOT NULL;

-- The policy is a snapshot of the service's when the incident opened; it may
-- be deleted later (the escalation then ends), so no foreign key.
ALTER TABLE incidents ADD COLUMN escalation_policy_id BLOB;
ALTER TABLE incidents ADD COLUMN escalation_step INTEGER NOT NULL DEFAULT 0;
ALTER TABLE incidents ADD COLUMN next_escalation_at INTEGER;
ALTER TABLE incidents ADD COLUMN ack_expires_at INTEGER;
