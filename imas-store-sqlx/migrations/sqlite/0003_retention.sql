-- Retention (SPEC §8): delivered outbox rows are found by the end of their last
-- lease, pending ones in the order they were written, without a scan.
CREATE INDEX outbox_delivered ON outbox (available_at) WHERE delivered_at IS NOT NULL;
CREATE INDEX outbox_pending_seq ON outbox (seq) WHERE delivered_at IS NULL;
-- /metrics counts open incidents per (status, priority) and the breached ones
-- at every scrape: index-only counts of those rows, not of the whole table.
-- Not partial, so that it serves the statements with bound parameters.
CREATE INDEX incidents_by_status_priority ON incidents (status, priority, sla_breached);
