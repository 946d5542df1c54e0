-- citytwin's PostGIS schema, version 3: access control.
-- API keys citytwin issued (only the hash of each secret), revocations of users and keys in
-- the order they were made, and the audit log: append-only, hash-chained by the server, with
-- entries kept at least 180 days. The guard below refuses updates, truncation and early
-- deletes; someone who drops it still cannot forge the chain without the audit key.
CREATE TABLE citytwin_keys (
    id text PRIMARY KEY,
    body jsonb NOT NULL
);

CREATE TABLE citytwin_revocations (
    seq bigserial PRIMARY KEY,
    body jsonb NOT NULL
);

CREATE TABLE citytwin_audit (
    seq bigint PRIMARY KEY,
    at bigint NOT NULL,
    principal text NOT NULL,
    action text NOT NULL,
    target text NOT NULL,
    channel text NOT NULL,
    decision text NOT NULL,
    count bigint,
    client text NOT NULL,
    request_id text NOT NULL,
    detail text NOT NULL,
    hash text NOT NULL
);
CREATE INDEX citytwin_audit_at ON citytwin_audit (at);

CREATE FUNCTION citytwin_audit_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' OR TG_OP = 'TRUNCATE' THEN
        RAISE EXCEPTION 'the audit log is append-only';
    END IF;
    IF OLD.at > (extract(epoch FROM now()) * 1000)::bigint - 180::bigint * 86400000 THEN
        RAISE EXCEPTION 'audit entries are kept at least 180 days';
    END IF;
    RETURN OLD;
END
$$;
CREATE TRIGGER citytwin_audit_guard BEFORE UPDATE OR DELETE ON citytwin_audit
    FOR EACH ROW EXECUTE FUNCTION citytwin_audit_guard();
CREATE TRIGGER citytwin_audit_no_truncate BEFORE TRUNCATE ON citytwin_audit
    FOR EACH STATEMENT EXECUTE FUNCTION citytwin_audit_guard();
