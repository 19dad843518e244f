-- List indexes, second round (after measuring 1,000,000 members next to small merchants):
--
-- "Birthday on May 17" (the birthday campaign's daily scan) walks May in registration order and
-- skips the other days inside the index, without visiting their rows: the day becomes the last
-- key column of the birthday index (it was a filter on the rows).
DROP INDEX members_by_birthday;
CREATE INDEX members_by_birthday ON members (merchant_id, birth_month, created_at, id, birth_day);

-- Tags: a GIN index over the bare tags is shared by every merchant, so a small merchant asking
-- for a tag that a large merchant uses a lot had to visit the large merchant's rows. The keys
-- now carry the merchant ('<merchant>|<tag>'; '|' and ',' are in neither token), in a stored
-- column so that a scan in registration order filters on a plain column (calling the function
-- per row cost ~4 us: array_to_string is only STABLE, so PostgreSQL does not inline it).
DROP INDEX members_by_tag;
CREATE FUNCTION member_tag_keys(merchant text, tags text[]) RETURNS text[]
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT CASE WHEN cardinality(tags) > 0 THEN
              string_to_array(merchant || '|' || array_to_string(tags, ',' || merchant || '|'), ',')
          END $$;
ALTER TABLE members ADD COLUMN tag_keys text[]
    GENERATED ALWAYS AS (member_tag_keys(merchant_id, tags)) STORED;
-- Without fastupdate: the pending list it would keep (up to 4 MB of unmerged entries, scanned
-- by every search until a vacuum merges it) made tag pages cost tens of milliseconds after bulk
-- inserts; rows change indexed columns on most updates anyway, so little would be saved.
CREATE INDEX members_by_tag ON members USING gin (tag_keys) WITH (fastupdate = off);
