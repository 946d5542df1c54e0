-- citytwin's PostGIS schema, version 2: the live change log.
-- Every change of an event, sensor or unit (with the thing's snapshot as JSON) and every
-- reading, numbered without gaps; the live state is the latest snapshot of each thing.
CREATE TABLE citytwin_changes (
    seq bigint PRIMARY KEY,
    at bigint NOT NULL,
    layer text NOT NULL,
    kind text NOT NULL,
    entity text NOT NULL,
    lon double precision NOT NULL,
    lat double precision NOT NULL,
    grid text,
    value double precision,
    body text
);
CREATE INDEX citytwin_changes_at ON citytwin_changes (at);
CREATE INDEX citytwin_changes_entity ON citytwin_changes (layer, entity, at);
