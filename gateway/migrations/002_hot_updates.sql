-- A saga and its steps are rewritten at every step: leave room in each page for HOT updates
-- (flushes that do not change an indexed column stay on the page), and drop an index that
-- duplicated the primary key.
ALTER TABLE sagas SET (fillfactor = 70);
ALTER TABLE saga_steps SET (fillfactor = 70);
DROP INDEX sagas_by_merchant;
