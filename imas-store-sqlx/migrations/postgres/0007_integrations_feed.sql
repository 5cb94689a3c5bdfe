-- Every node's engine caches integration keys against a generation that moves
-- with each change to them (a new key, a revoke); this trigger tells the other
-- nodes, on commit, through the change feed of migration 0003, so a key
-- revoked on one node is refused by every node at once.
CREATE TRIGGER integrations_changed AFTER INSERT OR UPDATE OR DELETE ON integrations
    FOR EACH STATEMENT EXECUTE FUNCTION notify_change();
