-- Coupon codes: what a customer types to put a coupon in the cart (PromoCart.coupon_codes),
-- drawn when the coupon is issued and unique within the merchant. Coupons issued before have
-- none (NULL): they are still given by id.
ALTER TABLE coupons ADD COLUMN code text;
CREATE UNIQUE INDEX coupons_by_code ON coupons (merchant_id, code) WHERE code IS NOT NULL;
