-- citytwin's PostGIS schema, version 1: the layer catalogue.
-- Runs with search_path set to citytwin's schema first; feature tables are created beside this
-- one by the store, one per layer (fid, geom, attribute columns), each with a GiST index.
CREATE EXTENSION IF NOT EXISTS postgis WITH SCHEMA public;

CREATE TABLE citytwin_layers (
    name text PRIMARY KEY,
    meta jsonb NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);
