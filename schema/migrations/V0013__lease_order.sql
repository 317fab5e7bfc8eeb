-- fleetwatch schema 0013: lease moves are numbered.
--
-- Every hello that takes a bot's lease gives the bot the next number of one sequence, under the bot's row lock,
-- and the lease-move notification carries it. A replica that hears of a move closes only the bot's connections
-- with a lower number: a notification delivered late (after a newer connection of the same bot registered) no
-- longer closes that newer connection with 4007. One sequence for every bot, so a bot removed and added again
-- under its old name still numbers its moves above the old ones. The sequence's cache must stay at 1: with a larger
-- cache, sessions would hand out numbers out of commit order.
CREATE SEQUENCE lease_moves AS bigint;
ALTER TABLE bots ADD COLUMN lease_order bigint NOT NULL DEFAULT 0;
COMMENT ON COLUMN bots.lease_order IS 'Number of the lease move that gave the current (or last) connection the bot (sequence lease_moves)';
