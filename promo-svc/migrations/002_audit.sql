-- Audit triggers of the configuration tables (README "Audit trail", lib/migrations/004_audit.sql):
-- settings, promotions and coupon templates (generated codes are recorded by their CALL row only).
CREATE TRIGGER audit AFTER INSERT OR UPDATE OR DELETE ON settings
    FOR EACH ROW WHEN (audit_active()) EXECUTE FUNCTION audit_row();
CREATE TRIGGER audit AFTER INSERT OR UPDATE OR DELETE ON promotions
    FOR EACH ROW WHEN (audit_active()) EXECUTE FUNCTION audit_row();
CREATE TRIGGER audit AFTER INSERT OR UPDATE OR DELETE ON coupon_templates
    FOR EACH ROW WHEN (audit_active()) EXECUTE FUNCTION audit_row();
