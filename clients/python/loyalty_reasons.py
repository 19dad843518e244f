"""loyalty_reasons.py -- the suite's error reasons (trailing metadata
loyalty-error-reason) as constants, with their usual gRPC code and meaning.

Written by tools/reasons.py from lib/reasons.def; do not edit by hand.
See docs/reasons.md."""

# Every reason: (usual gRPC code name, meaning).
REASONS = {
    'UNAUTHENTICATED': ('UNAUTHENTICATED', 'No bearer token, or one that matches no credential'),
    'ROLE_NOT_ALLOWED': ('PERMISSION_DENIED', "The credential's role may not call this method"),
    'MERCHANT_NOT_ALLOWED': ('PERMISSION_DENIED', 'The credential may not act for this merchant, or read across merchants'),
    'ON_BEHALF_OF_NOT_ALLOWED': ('PERMISSION_DENIED', "The call says it acts on behalf of another credential (metadata loyalty-on-behalf-of), which only the service credential (the gateway relaying an admin's call) may say"),
    'ON_BEHALF_OF_MALFORMED': ('INVALID_ARGUMENT', 'The metadata loyalty-on-behalf-of is not a credential id'),
    'MALFORMED_REQUEST': ('INVALID_ARGUMENT', 'The request message is missing or cannot be decoded'),
    'UNKNOWN_METHOD': ('UNIMPLEMENTED', 'The service has no such method'),
    'BATCH_NOT_SUPPORTED': ('INVALID_ARGUMENT', 'BatchService/Run was asked to batch a method that is not a mutating method of that service; make the calls one by one'),
    'UNKNOWN_SERVICE': ('NOT_FOUND', 'Health check for a service this server does not serve'),
    'STARTING': ('UNAVAILABLE', 'The service is still starting; retry'),
    'SHUTTING_DOWN': ('UNAVAILABLE', 'The service is shutting down; retry on another instance'),
    'NOT_MIGRATED': ('UNAVAILABLE', 'The database schema is not migrated to what this build needs'),
    'DEADLINE_EXCEEDED': ('DEADLINE_EXCEEDED', "The call's deadline passed before it was served"),
    'CANCELLED': ('CANCELLED', 'The stream was cancelled or ended'),
    'IDEMPOTENCY_KEY_REUSED': ('ALREADY_EXISTS', 'The idempotency key was used with a different request'),
    'UPDATE_MASK_REQUIRED': ('INVALID_ARGUMENT', 'An update without an update_mask (an empty mask changes nothing and is refused)'),
    'UPDATE_MASK_UNKNOWN_FIELD': ('INVALID_ARGUMENT', 'An update_mask path names no field of the message'),
    'UPDATE_MASK_IMMUTABLE_FIELD': ('INVALID_ARGUMENT', 'An update_mask path names an output-only field'),
    'DATABASE_UNAVAILABLE': ('UNAVAILABLE', 'PostgreSQL cannot be reached; safe to retry'),
    'DB_POOL_EXHAUSTED': ('UNAVAILABLE', "Every database connection stayed busy for the pool's wait; safe to retry"),
    'WAL_NOT_FLUSHED': ('UNAVAILABLE', 'A write is not yet durable on disk; retry'),
    'STATEMENT_TIMEOUT': ('DEADLINE_EXCEEDED', 'A database statement ran past its time limit'),
    'CONCURRENCY_CONFLICT': ('ABORTED', 'A concurrent change to the same data; safe to retry'),
    'DUPLICATE': ('ALREADY_EXISTS', 'The record already exists; in a checkout, the same code or coupon twice in the cart (FAILED_PRECONDITION)'),
    'CONSTRAINT_VIOLATION': ('FAILED_PRECONDITION', 'The change would break a rule of the stored data'),
    'INVALID_VALUE': ('INVALID_ARGUMENT', 'A value is out of the range the database accepts'),
    'REFUSED': ('FAILED_PRECONDITION', 'A statement refused the change without naming why'),
    'DATABASE_ERROR': ('INTERNAL', 'An unexpected database error, or a stored row that cannot be read'),
    'REDIS_UNAVAILABLE': ('UNAVAILABLE', 'Redis (the events stream) cannot be reached'),
    'EVENT_TOO_LARGE': ('INTERNAL', "An outbox event's payload is over its limit"),
    'STREAM_BACKLOG': ('RESOURCE_EXHAUSTED', 'Too many responses queued for one message of a stream'),
    'STREAM_TOO_LONG': ('RESOURCE_EXHAUSTED', 'Too many messages on one stream; open a new one'),
    'TOO_MANY_WATCHES': ('RESOURCE_EXHAUSTED', 'Too many watches open on one stream'),
    'WATCH_KEY_TOO_LONG': ('INVALID_ARGUMENT', 'A watch key is longer than allowed'),
    'NOT_A_STREAM': ('INTERNAL', 'A stream operation outside a streaming call (a bug)'),
    'MALFORMED_RESPONSE': ('INTERNAL', 'A called service answered no valid response'),
    'CLIENT_ERROR': ('INTERNAL', 'A call to another service could not be started'),
    'INVALID_CONFIG': ('INVALID_ARGUMENT', 'A configuration value (environment or settings) is out of its range'),
    'INVALID_CREDENTIALS': ('INVALID_ARGUMENT', 'The credentials file cannot be read or is malformed'),
    'CONFIG_INVALID': ('INTERNAL', "The server's configuration is inconsistent (at start)"),
    'BAD_SERVICE_TABLE': ('INTERNAL', "A service's method table does not match its .proto (at start)"),
    'BAD_DESCRIPTOR_SET': ('INTERNAL', 'The embedded descriptor set is malformed (at start)'),
    'LISTEN_FAILED': ('UNAVAILABLE', 'The server cannot listen on its address (at start)'),
    'ALREADY_STARTED': ('INTERNAL', 'The metrics endpoint was started twice (a bug)'),
    'SAGA_EXISTS': ('ALREADY_EXISTS', 'A saga with this idempotency key exists'),
    'SAGA_IN_PROGRESS': ('ABORTED', 'The same checkout or saga is being run by another call; retry later'),
    'SAGA_NOT_FOUND': ('NOT_FOUND', 'No saga has this id or key'),
    'SAGA_NOT_RETRYABLE': ('FAILED_PRECONDITION', 'The saga does not need attention, so it cannot be retried'),
    'SAGA_LEASE_LOST': ('FAILED_PRECONDITION', 'Another executor took over the saga'),
    'SAGA_FAILED': ('INTERNAL', 'The saga ended without a recorded error'),
    'CORRUPT_SAGA': ('DATA_LOSS', 'A stored saga lacks what its kind needs'),
    'CORRUPT_STEP': ('DATA_LOSS', "A stored saga step's response cannot be read"),
    'STEP_NOT_RUN': ('UNAVAILABLE', 'A step was not run because its group stopped first'),
    'STEP_NOT_STARTED': ('FAILED_PRECONDITION', 'Resolving a saga reached a step that was never started'),
    'STEP_TOO_OLD': ('FAILED_PRECONDITION', 'A step started too long ago to be called again (its participant no longer keeps the key)'),
    'TOO_MANY_STEPS': ('INTERNAL', 'A saga has more steps than allowed (a bug)'),
    'CHECKOUT_NOT_FOUND': ('NOT_FOUND', 'No checkout with this id or order id'),
    'CHECKOUT_NOT_RESERVED': ('FAILED_PRECONDITION', 'The checkout is not in state RESERVED (the message says which)'),
    'CHECKOUT_ALREADY_COMPLETED': ('FAILED_PRECONDITION', 'The checkout was completed; refund the order instead'),
    'CHECKOUT_CANCELLED': ('FAILED_PRECONDITION', 'The checkout was cancelled by the storefront'),
    'CHECKOUT_EXPIRED': ('FAILED_PRECONDITION', 'The checkout expired before it was completed; it is cancelled'),
    'EXPIRED': ('FAILED_PRECONDITION', "A checkout's reservation ran out before completion (a cancelled checkout's reason)"),
    'INTERRUPTED': ('FAILED_PRECONDITION', "The checkout was interrupted before it was reserved (a cancelled checkout's reason)"),
    'ORDER_ALREADY_CHECKED_OUT': ('ALREADY_EXISTS', 'The order already has a checkout that is not cancelled'),
    'PAYMENT_REF_REQUIRED': ('FAILED_PRECONDITION', 'An amount is still due: completing needs the payment_ref of its payment'),
    'PAYMENT_REF_MISMATCH': ('ALREADY_EXISTS', 'The checkout was completed with another payment_ref'),
    'PLAN_NOT_FOUND': ('NOT_FOUND', 'No membership or top-up plan with this id'),
    'PLAN_INACTIVE': ('FAILED_PRECONDITION', 'The membership plan is not on sale'),
    'PLAN_NOT_ACTIVE': ('FAILED_PRECONDITION', 'The top-up plan is disabled or outside its active window'),
    'PLAN_AMOUNT_MISMATCH': ('FAILED_PRECONDITION', "The line's price is not the plan's price"),
    'REDEMPTION_RATE_CHANGED': ('FAILED_PRECONDITION', 'points-svc valued the points otherwise than quoted; retry'),
    'POINTS_HOLD_INCONSISTENT': ('INTERNAL', "points-svc valued the points above the order's total"),
    'WALLET_HOLD_INCONSISTENT': ('INTERNAL', 'wallet-svc held another amount than asked'),
    'PROMO_QUOTE_INCONSISTENT': ('INTERNAL', 'promo-svc answered without a quote'),
    'PROMO_RESERVE_INCONSISTENT': ('INTERNAL', 'promo-svc reserved without a quote'),
    'REFERRAL_CODE_NOT_FOUND': ('NOT_FOUND', 'No member has the referral code given at registration'),
    'ORDER_NOT_COMPLETED': ('FAILED_PRECONDITION', 'A refund of an order without a completed checkout'),
    'LINE_NOT_FOUND': ('NOT_FOUND', 'The order has no line with this id'),
    'LINE_NOT_REFUNDABLE': ('FAILED_PRECONDITION', 'The line is a membership or a wallet top-up, which are not refunded by line'),
    'REFUND_EXCEEDS_LINE': ('FAILED_PRECONDITION', 'More units refunded than the line has left'),
    'REFUND_EXCEEDS_ORDER': ('FAILED_PRECONDITION', 'More refunded than the order has left to refund'),
    'NOTHING_TO_REFUND': ('FAILED_PRECONDITION', 'The refund amounts to nothing'),
    'REFUND_SPLIT_FAILED': ('INTERNAL', "The order's payment figures are inconsistent"),
    'TIME_ZONE_REQUIRED': ('FAILED_PRECONDITION', "A merchant's first settings update must name time_zone"),
    'CAMPAIGN_NOT_FOUND': ('NOT_FOUND', 'No campaign of this kind is configured'),
    'CAMPAIGN_DISABLED': ('FAILED_PRECONDITION', 'The campaign is disabled; enable it first (a dry run is allowed)'),
    'DELIVERY_NOT_CLAIMED': ('NOT_FOUND', 'A campaign delivery was finished by another runner'),
    'RELAY_METHOD_NOT_ALLOWED': ('INVALID_ARGUMENT', 'The relay passes configuration methods only'),
    'RELAY_MERCHANT_MISMATCH': ('INVALID_ARGUMENT', "The relayed request's merchant_id is not the call's"),
    'MEMBER_NOT_FOUND': ('NOT_FOUND', 'No member with this id (for this merchant)'),
    'PHONE_TAKEN': ('ALREADY_EXISTS', 'Another member has this phone number'),
    'EMAIL_TAKEN': ('ALREADY_EXISTS', 'Another member has this e-mail address'),
    'EXTERNAL_ID_TAKEN': ('ALREADY_EXISTS', 'Another member has this external id'),
    'VERSION_MISMATCH': ('ABORTED', 'The member or programme changed since the expected version; re-read and retry'),
    'ORDER_ALREADY_RECORDED': ('ALREADY_EXISTS', 'The order id was recorded with other figures or for another purchase'),
    'ORDER_NOT_FOUND': ('NOT_FOUND', 'No order (purchase, or points earned or redeemed) with this reference'),
    'RETURN_EXCEEDS_ORDER': ('FAILED_PRECONDITION', 'A return of more spend or growth than the order holds'),
    'TIER_NOT_FOUND': ('NOT_FOUND', 'No tier with this id'),
    'TIER_LIMIT_REACHED': ('FAILED_PRECONDITION', 'The merchant has the most tiers allowed'),
    'TIERS_EXIST': ('FAILED_PRECONDITION', 'The tier basis cannot change once tiers are configured'),
    'INVALID_LADDER': ('INVALID_ARGUMENT', 'The tiers would not form a valid ladder (ranks, thresholds, limits)'),
    'BATCH_ID_REUSED': ('ALREADY_EXISTS', 'A member-list batch id was used for other items'),
    'INSUFFICIENT_POINTS': ('FAILED_PRECONDITION', 'Fewer points available than asked'),
    'INSUFFICIENT_GROWTH': ('FAILED_PRECONDITION', 'An adjustment would take growth below 0'),
    'ALREADY_EARNED': ('ALREADY_EXISTS', 'Points were already earned for this source and reference'),
    'ALREADY_CHECKED_IN': ('ALREADY_EXISTS', 'The member already checked in on that date'),
    'CHECK_IN_DATE_NOT_TODAY': ('FAILED_PRECONDITION', "A check-in for a date other than today in the merchant's time zone"),
    'HOLD_EXISTS': ('ALREADY_EXISTS', 'An active or committed hold already uses this reference'),
    'HOLD_NOT_FOUND': ('NOT_FOUND', 'No hold with this reference (points or wallet)'),
    'HOLD_EXPIRED': ('FAILED_PRECONDITION', "The hold's TTL passed and it was released; nothing was taken"),
    'HOLD_RELEASED': ('FAILED_PRECONDITION', 'A commit of a released hold; hold the points again'),
    'HOLD_COMMITTED': ('FAILED_PRECONDITION', 'A release of a committed hold; reverse the order to give points back'),
    'REDEMPTION_DISABLED': ('FAILED_PRECONDITION', 'Redeeming points as cash is not enabled for this merchant'),
    'BELOW_MINIMUM_REDEMPTION': ('FAILED_PRECONDITION', 'Fewer points than the minimum per redemption'),
    'EXCEEDS_ORDER_SHARE': ('FAILED_PRECONDITION', "The points are worth more than the order's share allowed for points"),
    'REVERSAL_EXCEEDS_ORDER': ('FAILED_PRECONDITION', 'The reversals of a reference would pass 100%'),
    'REFERENCE_MEMBER_MISMATCH': ('FAILED_PRECONDITION', 'The reference belongs to another member'),
    'AMOUNT_OVERFLOW': ('OUT_OF_RANGE', 'An amount is out of range (an order would earn more than 10^12 points)'),
    'BATCH_REUSED': ('ALREADY_EXISTS', 'An import batch id was used with other content'),
    'SETTINGS_VERSION_MISMATCH': ('ABORTED', 'The settings changed since the expected version; re-read and retry'),
    'LEDGER_MISMATCH': ('INTERNAL', 'A points ledger write did not touch the rows it must (the change is undone)'),
    'INSUFFICIENT_FUNDS': ('FAILED_PRECONDITION', 'Less money available in the wallet than asked'),
    'BALANCE_LIMIT_EXCEEDED': ('FAILED_PRECONDITION', 'The wallet would hold more than its limit'),
    'HOLD_TOO_FRAGMENTED': ('RESOURCE_EXHAUSTED', 'The amount spans more deposits than one operation may touch'),
    'CAPTURE_EXCEEDS_HOLD': ('FAILED_PRECONDITION', 'A capture of more than the hold holds'),
    'HOLD_ALREADY_CAPTURED': ('FAILED_PRECONDITION', 'The hold was captured; refund it instead'),
    'HOLD_VOIDED': ('FAILED_PRECONDITION', 'The hold was voided; nothing was charged'),
    'BAD_HOLD_STATE': ('INTERNAL', 'A stored hold is in an unknown state'),
    'PAYMENT_REF_TAKEN': ('ALREADY_EXISTS', 'The payment_ref was already credited by another top-up'),
    'REFERENCE_NOT_FOUND': ('NOT_FOUND', 'No spend with this reference'),
    'REFUND_EXCEEDS_CAPTURED': ('FAILED_PRECONDITION', 'A refund of more than was captured and not yet refunded for the reference'),
    'TOP_UP_NOT_FOUND': ('NOT_FOUND', 'No top-up with this id'),
    'REFUND_EXCEEDS_TOP_UP': ('FAILED_PRECONDITION', "A refund of more than is left of the top-up's payment"),
    'TOP_UP_FUNDS_SPENT': ('FAILED_PRECONDITION', 'Less of the top-up is unspent, not held and not expired than the refund asks'),
    'TOP_UP_BONUS_SPENT': ('FAILED_PRECONDITION', "The refund would forfeit more of the top-up's bonus than is left"),
    'LEDGER_INVARIANT': ('INTERNAL', "A wallet ledger write would break the ledger's invariants (the change is undone)"),
    'PROGRAM_DISABLED': ('FAILED_PRECONDITION', 'The referral programme is not enabled'),
    'CODE_NOT_FOUND': ('NOT_FOUND', 'No such referral code'),
    'SELF_REFERRAL': ('FAILED_PRECONDITION', 'A member cannot use its own referral code'),
    'ALREADY_REFERRED': ('ALREADY_EXISTS', 'The member already has a referrer'),
    'REFERRAL_CYCLE': ('FAILED_PRECONDITION', "The referrer is in the member's own downline"),
    'REFEREE_HAS_DOWNLINE': ('FAILED_PRECONDITION', 'A member who has referred others cannot be attached to a referrer'),
    'ATTACH_LOST': ('INTERNAL', "A referee's row changed under its lock (a bug)"),
    'EVENT_REFERENCE_REUSED': ('ALREADY_EXISTS', 'The event reference was recorded for another member or amount'),
    'EVENT_NOT_FOUND': ('NOT_FOUND', 'No rewards were computed for this event reference'),
    'REGISTRATION_ALREADY_REWARDED': ('FAILED_PRECONDITION', "The member's registration rewards were computed under another reference"),
    'PROMOTION_NOT_FOUND': ('NOT_FOUND', 'No promotion with this id'),
    'TOO_MANY_PROMOTIONS': ('RESOURCE_EXHAUSTED', 'The merchant has the most active promotions allowed; pause one first'),
    'CODE_TAKEN': ('ALREADY_EXISTS', 'Another promotion uses this code'),
    'NOT_CODE_PROMOTION': ('FAILED_PRECONDITION', 'Codes are only for promotions with trigger CODE'),
    'NOT_UNIQUE_CODES': ('FAILED_PRECONDITION', 'The promotion uses one shared code, not unique codes'),
    'UNIQUE_CODES_EXIST': ('FAILED_PRECONDITION', 'A promotion with unique codes keeps its trigger and code kind'),
    'TOO_MANY_CODES': ('RESOURCE_EXHAUSTED', 'More unique codes than a promotion may have'),
    'CODE_GENERATION_FAILED': ('INTERNAL', 'Unique codes could not be generated'),
    'CODE_COLLISION': ('ABORTED', 'A freshly drawn coupon or referral code collided; safe to retry'),
    'INVALID_TIME_ZONE': ('FAILED_PRECONDITION', 'PostgreSQL knows no such time zone'),
    'TEMPLATE_NOT_FOUND': ('NOT_FOUND', 'No coupon template with this id'),
    'TEMPLATE_PAUSED': ('FAILED_PRECONDITION', 'The coupon template is paused'),
    'TEMPLATE_EXPIRED': ('FAILED_PRECONDITION', 'Coupons of this template are no longer valid'),
    'TEMPLATE_OUT_OF_STOCK': ('FAILED_PRECONDITION', 'Every coupon of this template has been issued'),
    'COUPON_LIMIT_REACHED': ('FAILED_PRECONDITION', 'The member holds the most coupons of this template allowed'),
    'COUPON_NOT_FOUND': ('NOT_FOUND', "No such coupon, or not the cart member's"),
    'COUPON_ALREADY_USED': ('FAILED_PRECONDITION', 'The coupon was used, or is held by another checkout'),
    'COUPON_EXPIRED': ('FAILED_PRECONDITION', 'The coupon has expired'),
    'COUPON_NOT_YET_VALID': ('FAILED_PRECONDITION', 'The coupon is not valid yet'),
    'CODE_UNKNOWN': ('FAILED_PRECONDITION', "The cart's code matches no promotion"),
    'CODE_USED_UP': ('FAILED_PRECONDITION', "The cart's code has no uses left"),
    'NOT_STARTED': ('FAILED_PRECONDITION', 'The requested promotion has not started'),
    'ENDED': ('FAILED_PRECONDITION', 'The requested promotion has ended'),
    'PAUSED': ('FAILED_PRECONDITION', 'The requested promotion is paused'),
    'TIER_NOT_ELIGIBLE': ('FAILED_PRECONDITION', "The member's tier is not eligible for the requested promotion"),
    'SEGMENT_NOT_ELIGIBLE': ('FAILED_PRECONDITION', "The member's segment is not eligible for the requested promotion"),
    'STORE_NOT_ELIGIBLE': ('FAILED_PRECONDITION', 'The store is not eligible for the requested promotion'),
    'NO_ELIGIBLE_ITEMS': ('FAILED_PRECONDITION', 'The cart has no items the requested promotion applies to'),
    'BELOW_MIN_SPEND': ('FAILED_PRECONDITION', "The cart is below the requested promotion's minimum spend"),
    'NOT_ENOUGH_ITEMS': ('FAILED_PRECONDITION', 'Fewer eligible units than a BUY_X_GET_Y needs'),
    'NOT_STACKABLE': ('FAILED_PRECONDITION', 'The requested promotion lost to an exclusive promotion or another coupon'),
    'NO_DISCOUNT': ('FAILED_PRECONDITION', 'Nothing left for the requested promotion to discount'),
    'LIMIT_REACHED': ('FAILED_PRECONDITION', "The requested promotion's usage limit is reached"),
    'BUDGET_EXHAUSTED': ('FAILED_PRECONDITION', "The requested promotion's budget is spent"),
    'MEMBER_REQUIRED': ('FAILED_PRECONDITION', 'The requested promotion has a per-member limit and the cart no member'),
    'STORE_REQUIRED': ('FAILED_PRECONDITION', 'The requested promotion has a per-store limit and the cart no store'),
    'ORDER_ID_TAKEN': ('ALREADY_EXISTS', 'Another checkout already has this order id'),
    'RESERVATION_EXISTS': ('ALREADY_EXISTS', 'The checkout already has a reservation'),
    'RESERVATION_NOT_FOUND': ('NOT_FOUND', 'No reservation for this checkout'),
    'RESERVATION_EXPIRED': ('FAILED_PRECONDITION', 'The reservation expired before it was confirmed'),
    'RESERVATION_RELEASED': ('FAILED_PRECONDITION', 'The reservation was released'),
    'RESERVATION_CONFIRMED': ('FAILED_PRECONDITION', 'The reservation was confirmed; use ReleaseUsage after a refund'),
    'RESERVATION_NOT_CONFIRMED': ('FAILED_PRECONDITION', 'Only a confirmed reservation can give its usage back'),
}

# Families of reasons, by prefix: (usual gRPC code name, meaning).
REASON_FAMILIES = {
    'INVALID_': ('INVALID_ARGUMENT', "A request field is missing or malformed: INVALID_ and the field's path upper-cased, dots and brackets as underscores (INVALID_PROFILE_EMAIL); the message says what is wrong"),
}

UNAUTHENTICATED = 'UNAUTHENTICATED'
ROLE_NOT_ALLOWED = 'ROLE_NOT_ALLOWED'
MERCHANT_NOT_ALLOWED = 'MERCHANT_NOT_ALLOWED'
ON_BEHALF_OF_NOT_ALLOWED = 'ON_BEHALF_OF_NOT_ALLOWED'
ON_BEHALF_OF_MALFORMED = 'ON_BEHALF_OF_MALFORMED'
MALFORMED_REQUEST = 'MALFORMED_REQUEST'
UNKNOWN_METHOD = 'UNKNOWN_METHOD'
BATCH_NOT_SUPPORTED = 'BATCH_NOT_SUPPORTED'
UNKNOWN_SERVICE = 'UNKNOWN_SERVICE'
STARTING = 'STARTING'
SHUTTING_DOWN = 'SHUTTING_DOWN'
NOT_MIGRATED = 'NOT_MIGRATED'
DEADLINE_EXCEEDED = 'DEADLINE_EXCEEDED'
CANCELLED = 'CANCELLED'
IDEMPOTENCY_KEY_REUSED = 'IDEMPOTENCY_KEY_REUSED'
UPDATE_MASK_REQUIRED = 'UPDATE_MASK_REQUIRED'
UPDATE_MASK_UNKNOWN_FIELD = 'UPDATE_MASK_UNKNOWN_FIELD'
UPDATE_MASK_IMMUTABLE_FIELD = 'UPDATE_MASK_IMMUTABLE_FIELD'
DATABASE_UNAVAILABLE = 'DATABASE_UNAVAILABLE'
DB_POOL_EXHAUSTED = 'DB_POOL_EXHAUSTED'
WAL_NOT_FLUSHED = 'WAL_NOT_FLUSHED'
STATEMENT_TIMEOUT = 'STATEMENT_TIMEOUT'
CONCURRENCY_CONFLICT = 'CONCURRENCY_CONFLICT'
DUPLICATE = 'DUPLICATE'
CONSTRAINT_VIOLATION = 'CONSTRAINT_VIOLATION'
INVALID_VALUE = 'INVALID_VALUE'
REFUSED = 'REFUSED'
DATABASE_ERROR = 'DATABASE_ERROR'
REDIS_UNAVAILABLE = 'REDIS_UNAVAILABLE'
EVENT_TOO_LARGE = 'EVENT_TOO_LARGE'
STREAM_BACKLOG = 'STREAM_BACKLOG'
STREAM_TOO_LONG = 'STREAM_TOO_LONG'
TOO_MANY_WATCHES = 'TOO_MANY_WATCHES'
WATCH_KEY_TOO_LONG = 'WATCH_KEY_TOO_LONG'
NOT_A_STREAM = 'NOT_A_STREAM'
MALFORMED_RESPONSE = 'MALFORMED_RESPONSE'
CLIENT_ERROR = 'CLIENT_ERROR'
INVALID_CONFIG = 'INVALID_CONFIG'
INVALID_CREDENTIALS = 'INVALID_CREDENTIALS'
CONFIG_INVALID = 'CONFIG_INVALID'
BAD_SERVICE_TABLE = 'BAD_SERVICE_TABLE'
BAD_DESCRIPTOR_SET = 'BAD_DESCRIPTOR_SET'
LISTEN_FAILED = 'LISTEN_FAILED'
ALREADY_STARTED = 'ALREADY_STARTED'
SAGA_EXISTS = 'SAGA_EXISTS'
SAGA_IN_PROGRESS = 'SAGA_IN_PROGRESS'
SAGA_NOT_FOUND = 'SAGA_NOT_FOUND'
SAGA_NOT_RETRYABLE = 'SAGA_NOT_RETRYABLE'
SAGA_LEASE_LOST = 'SAGA_LEASE_LOST'
SAGA_FAILED = 'SAGA_FAILED'
CORRUPT_SAGA = 'CORRUPT_SAGA'
CORRUPT_STEP = 'CORRUPT_STEP'
STEP_NOT_RUN = 'STEP_NOT_RUN'
STEP_NOT_STARTED = 'STEP_NOT_STARTED'
STEP_TOO_OLD = 'STEP_TOO_OLD'
TOO_MANY_STEPS = 'TOO_MANY_STEPS'
CHECKOUT_NOT_FOUND = 'CHECKOUT_NOT_FOUND'
CHECKOUT_NOT_RESERVED = 'CHECKOUT_NOT_RESERVED'
CHECKOUT_ALREADY_COMPLETED = 'CHECKOUT_ALREADY_COMPLETED'
CHECKOUT_CANCELLED = 'CHECKOUT_CANCELLED'
CHECKOUT_EXPIRED = 'CHECKOUT_EXPIRED'
EXPIRED = 'EXPIRED'
INTERRUPTED = 'INTERRUPTED'
ORDER_ALREADY_CHECKED_OUT = 'ORDER_ALREADY_CHECKED_OUT'
PAYMENT_REF_REQUIRED = 'PAYMENT_REF_REQUIRED'
PAYMENT_REF_MISMATCH = 'PAYMENT_REF_MISMATCH'
PLAN_NOT_FOUND = 'PLAN_NOT_FOUND'
PLAN_INACTIVE = 'PLAN_INACTIVE'
PLAN_NOT_ACTIVE = 'PLAN_NOT_ACTIVE'
PLAN_AMOUNT_MISMATCH = 'PLAN_AMOUNT_MISMATCH'
REDEMPTION_RATE_CHANGED = 'REDEMPTION_RATE_CHANGED'
POINTS_HOLD_INCONSISTENT = 'POINTS_HOLD_INCONSISTENT'
WALLET_HOLD_INCONSISTENT = 'WALLET_HOLD_INCONSISTENT'
PROMO_QUOTE_INCONSISTENT = 'PROMO_QUOTE_INCONSISTENT'
PROMO_RESERVE_INCONSISTENT = 'PROMO_RESERVE_INCONSISTENT'
REFERRAL_CODE_NOT_FOUND = 'REFERRAL_CODE_NOT_FOUND'
ORDER_NOT_COMPLETED = 'ORDER_NOT_COMPLETED'
LINE_NOT_FOUND = 'LINE_NOT_FOUND'
LINE_NOT_REFUNDABLE = 'LINE_NOT_REFUNDABLE'
REFUND_EXCEEDS_LINE = 'REFUND_EXCEEDS_LINE'
REFUND_EXCEEDS_ORDER = 'REFUND_EXCEEDS_ORDER'
NOTHING_TO_REFUND = 'NOTHING_TO_REFUND'
REFUND_SPLIT_FAILED = 'REFUND_SPLIT_FAILED'
TIME_ZONE_REQUIRED = 'TIME_ZONE_REQUIRED'
CAMPAIGN_NOT_FOUND = 'CAMPAIGN_NOT_FOUND'
CAMPAIGN_DISABLED = 'CAMPAIGN_DISABLED'
DELIVERY_NOT_CLAIMED = 'DELIVERY_NOT_CLAIMED'
RELAY_METHOD_NOT_ALLOWED = 'RELAY_METHOD_NOT_ALLOWED'
RELAY_MERCHANT_MISMATCH = 'RELAY_MERCHANT_MISMATCH'
MEMBER_NOT_FOUND = 'MEMBER_NOT_FOUND'
PHONE_TAKEN = 'PHONE_TAKEN'
EMAIL_TAKEN = 'EMAIL_TAKEN'
EXTERNAL_ID_TAKEN = 'EXTERNAL_ID_TAKEN'
VERSION_MISMATCH = 'VERSION_MISMATCH'
ORDER_ALREADY_RECORDED = 'ORDER_ALREADY_RECORDED'
ORDER_NOT_FOUND = 'ORDER_NOT_FOUND'
RETURN_EXCEEDS_ORDER = 'RETURN_EXCEEDS_ORDER'
TIER_NOT_FOUND = 'TIER_NOT_FOUND'
TIER_LIMIT_REACHED = 'TIER_LIMIT_REACHED'
TIERS_EXIST = 'TIERS_EXIST'
INVALID_LADDER = 'INVALID_LADDER'
BATCH_ID_REUSED = 'BATCH_ID_REUSED'
INSUFFICIENT_POINTS = 'INSUFFICIENT_POINTS'
INSUFFICIENT_GROWTH = 'INSUFFICIENT_GROWTH'
ALREADY_EARNED = 'ALREADY_EARNED'
ALREADY_CHECKED_IN = 'ALREADY_CHECKED_IN'
CHECK_IN_DATE_NOT_TODAY = 'CHECK_IN_DATE_NOT_TODAY'
HOLD_EXISTS = 'HOLD_EXISTS'
HOLD_NOT_FOUND = 'HOLD_NOT_FOUND'
HOLD_EXPIRED = 'HOLD_EXPIRED'
HOLD_RELEASED = 'HOLD_RELEASED'
HOLD_COMMITTED = 'HOLD_COMMITTED'
REDEMPTION_DISABLED = 'REDEMPTION_DISABLED'
BELOW_MINIMUM_REDEMPTION = 'BELOW_MINIMUM_REDEMPTION'
EXCEEDS_ORDER_SHARE = 'EXCEEDS_ORDER_SHARE'
REVERSAL_EXCEEDS_ORDER = 'REVERSAL_EXCEEDS_ORDER'
REFERENCE_MEMBER_MISMATCH = 'REFERENCE_MEMBER_MISMATCH'
AMOUNT_OVERFLOW = 'AMOUNT_OVERFLOW'
BATCH_REUSED = 'BATCH_REUSED'
SETTINGS_VERSION_MISMATCH = 'SETTINGS_VERSION_MISMATCH'
LEDGER_MISMATCH = 'LEDGER_MISMATCH'
INSUFFICIENT_FUNDS = 'INSUFFICIENT_FUNDS'
BALANCE_LIMIT_EXCEEDED = 'BALANCE_LIMIT_EXCEEDED'
HOLD_TOO_FRAGMENTED = 'HOLD_TOO_FRAGMENTED'
CAPTURE_EXCEEDS_HOLD = 'CAPTURE_EXCEEDS_HOLD'
HOLD_ALREADY_CAPTURED = 'HOLD_ALREADY_CAPTURED'
HOLD_VOIDED = 'HOLD_VOIDED'
BAD_HOLD_STATE = 'BAD_HOLD_STATE'
PAYMENT_REF_TAKEN = 'PAYMENT_REF_TAKEN'
REFERENCE_NOT_FOUND = 'REFERENCE_NOT_FOUND'
REFUND_EXCEEDS_CAPTURED = 'REFUND_EXCEEDS_CAPTURED'
TOP_UP_NOT_FOUND = 'TOP_UP_NOT_FOUND'
REFUND_EXCEEDS_TOP_UP = 'REFUND_EXCEEDS_TOP_UP'
TOP_UP_FUNDS_SPENT = 'TOP_UP_FUNDS_SPENT'
TOP_UP_BONUS_SPENT = 'TOP_UP_BONUS_SPENT'
LEDGER_INVARIANT = 'LEDGER_INVARIANT'
PROGRAM_DISABLED = 'PROGRAM_DISABLED'
CODE_NOT_FOUND = 'CODE_NOT_FOUND'
SELF_REFERRAL = 'SELF_REFERRAL'
ALREADY_REFERRED = 'ALREADY_REFERRED'
REFERRAL_CYCLE = 'REFERRAL_CYCLE'
REFEREE_HAS_DOWNLINE = 'REFEREE_HAS_DOWNLINE'
ATTACH_LOST = 'ATTACH_LOST'
EVENT_REFERENCE_REUSED = 'EVENT_REFERENCE_REUSED'
EVENT_NOT_FOUND = 'EVENT_NOT_FOUND'
REGISTRATION_ALREADY_REWARDED = 'REGISTRATION_ALREADY_REWARDED'
PROMOTION_NOT_FOUND = 'PROMOTION_NOT_FOUND'
TOO_MANY_PROMOTIONS = 'TOO_MANY_PROMOTIONS'
CODE_TAKEN = 'CODE_TAKEN'
NOT_CODE_PROMOTION = 'NOT_CODE_PROMOTION'
NOT_UNIQUE_CODES = 'NOT_UNIQUE_CODES'
UNIQUE_CODES_EXIST = 'UNIQUE_CODES_EXIST'
TOO_MANY_CODES = 'TOO_MANY_CODES'
CODE_GENERATION_FAILED = 'CODE_GENERATION_FAILED'
CODE_COLLISION = 'CODE_COLLISION'
INVALID_TIME_ZONE = 'INVALID_TIME_ZONE'
TEMPLATE_NOT_FOUND = 'TEMPLATE_NOT_FOUND'
TEMPLATE_PAUSED = 'TEMPLATE_PAUSED'
TEMPLATE_EXPIRED = 'TEMPLATE_EXPIRED'
TEMPLATE_OUT_OF_STOCK = 'TEMPLATE_OUT_OF_STOCK'
COUPON_LIMIT_REACHED = 'COUPON_LIMIT_REACHED'
COUPON_NOT_FOUND = 'COUPON_NOT_FOUND'
COUPON_ALREADY_USED = 'COUPON_ALREADY_USED'
COUPON_EXPIRED = 'COUPON_EXPIRED'
COUPON_NOT_YET_VALID = 'COUPON_NOT_YET_VALID'
CODE_UNKNOWN = 'CODE_UNKNOWN'
CODE_USED_UP = 'CODE_USED_UP'
NOT_STARTED = 'NOT_STARTED'
ENDED = 'ENDED'
PAUSED = 'PAUSED'
TIER_NOT_ELIGIBLE = 'TIER_NOT_ELIGIBLE'
SEGMENT_NOT_ELIGIBLE = 'SEGMENT_NOT_ELIGIBLE'
STORE_NOT_ELIGIBLE = 'STORE_NOT_ELIGIBLE'
NO_ELIGIBLE_ITEMS = 'NO_ELIGIBLE_ITEMS'
BELOW_MIN_SPEND = 'BELOW_MIN_SPEND'
NOT_ENOUGH_ITEMS = 'NOT_ENOUGH_ITEMS'
NOT_STACKABLE = 'NOT_STACKABLE'
NO_DISCOUNT = 'NO_DISCOUNT'
LIMIT_REACHED = 'LIMIT_REACHED'
BUDGET_EXHAUSTED = 'BUDGET_EXHAUSTED'
MEMBER_REQUIRED = 'MEMBER_REQUIRED'
STORE_REQUIRED = 'STORE_REQUIRED'
ORDER_ID_TAKEN = 'ORDER_ID_TAKEN'
RESERVATION_EXISTS = 'RESERVATION_EXISTS'
RESERVATION_NOT_FOUND = 'RESERVATION_NOT_FOUND'
RESERVATION_EXPIRED = 'RESERVATION_EXPIRED'
RESERVATION_RELEASED = 'RESERVATION_RELEASED'
RESERVATION_CONFIRMED = 'RESERVATION_CONFIRMED'
RESERVATION_NOT_CONFIRMED = 'RESERVATION_NOT_CONFIRMED'
