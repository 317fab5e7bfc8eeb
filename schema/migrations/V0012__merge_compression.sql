-- fleetwatch schema 0012: merged minutes are compressed with pglz, whatever the writing session's default.
--
-- The hub's write connections set `default_toast_compression = lz4` where the server has it
-- (`hub.toast_compression`): a large batch costs PostgreSQL far less CPU to store, as rows about half again as
-- large. Those rows live for minutes only; the review upkeep merges each bot's closed minutes into one row on a
-- connection of the same pool, and this keeps the rows that stay as small as before (pglz packs the merged,
-- metric-ordered arrays tighter). The columns keep no compression of their own, so each writer's setting decides.
--
-- A later CREATE OR REPLACE of fleetwatch_rechunk resets this setting: repeat it after any.
ALTER FUNCTION fleetwatch_rechunk(timestamptz, timestamptz) SET default_toast_compression = pglz;
