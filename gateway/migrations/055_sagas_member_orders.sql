-- A member's recent checkouts and refunds for operators (Gateway.GetMemberDetail, `loyaltyctl
-- member show`): partial, so the other kinds of saga (registrations, check-ins) add nothing to it.
-- member_id never changes after the insert, so updates of a saga stay HOT.
CREATE INDEX sagas_member_orders ON sagas (merchant_id, member_id, id)
    WHERE kind IN (2, 3) AND member_id IS NOT NULL;
