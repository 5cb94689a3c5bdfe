-- Every node's engine caches services for the alert events (the SLA and
-- escalation policy of the incident a first trigger opens, the auto-resolve of
-- the last alert's resolve) under the integrations generation; this trigger
-- tells the other nodes of each change to a service, as integrations_changed
-- does for keys.
CREATE TRIGGER services_changed AFTER INSERT OR UPDATE OR DELETE ON services
    FOR EACH STATEMENT EXECUTE FUNCTION notify_change();
