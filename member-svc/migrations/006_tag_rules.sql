-- Automatic tags (member.proto MemberTagRule, member_tags.c). The merchant's rules live in its
-- settings row, so that every change of a member reads them with the settings it reads anyway
-- (no extra round trip on RecordOrder); one text per rule ("orders_count >= 5 regular"), so the
-- audit log shows them as written. A change of the rules starts the settings' re-evaluation
-- walk (resegment_after = ''), which re-tags every member in batches.
ALTER TABLE settings ADD COLUMN tag_rules text[] NOT NULL DEFAULT '{}';

-- A member's automatic tags (sorted; apart from the manual `tags`, which a rule never touches)
-- and the points balance member-svc last learnt (RecordOrder/RecordReturn points_balance).
ALTER TABLE members
    ADD COLUMN auto_tags      text[] NOT NULL DEFAULT '{}',
    ADD COLUMN points_balance bigint NOT NULL DEFAULT 0;

-- ListMembers' tag filter matches manual and automatic tags: the index keys (migration 003)
-- now cover both.
DROP INDEX members_by_tag;
ALTER TABLE members DROP COLUMN tag_keys;
ALTER TABLE members ADD COLUMN tag_keys text[]
    GENERATED ALWAYS AS (member_tag_keys(merchant_id, tags || auto_tags)) STORED;
CREATE INDEX members_by_tag ON members USING gin (tag_keys) WITH (fastupdate = off);
