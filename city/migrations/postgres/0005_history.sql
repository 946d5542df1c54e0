-- citytwin's PostGIS schema, version 5: the live twin's history kept bounded.
-- Raw readings past their retention are folded per sensor and interval (count, min, max, sum
-- and the last reading) and leave the change log; checkpoints hold the live twin at a time
-- (the latest change of each thing, the latest reading of each sensor), so the past is read
-- from the nearest one instead of the whole log.
CREATE TABLE citytwin_reading_rollups (
    entity text NOT NULL,
    bucket bigint NOT NULL,
    n bigint NOT NULL,
    lo double precision NOT NULL,
    hi double precision NOT NULL,
    total double precision NOT NULL,
    last_at bigint NOT NULL,
    last_value double precision NOT NULL,
    PRIMARY KEY (entity, bucket)
);
CREATE INDEX citytwin_reading_rollups_last ON citytwin_reading_rollups (last_at);
CREATE TABLE citytwin_checkpoints (
    at bigint PRIMARY KEY,
    seq bigint NOT NULL
);
CREATE TABLE citytwin_checkpoint_changes (
    checkpoint bigint NOT NULL,
    seq bigint NOT NULL,
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
CREATE INDEX citytwin_checkpoint_changes_at ON citytwin_checkpoint_changes (checkpoint);
