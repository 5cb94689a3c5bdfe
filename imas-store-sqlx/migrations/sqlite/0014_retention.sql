-- Retention (SPEC §8): delivered outbox rows are found by the end of their last
-- lease, pending ones in the order they were written, without a scan.
CREATE INDEX outbox_delivered ON outbox (available_at) WHERE delivered_at IS NOT NULL;
CREATE INDEX outbox_pending_seq ON outbox (seq) WHERE delivered_at IS NULL;
