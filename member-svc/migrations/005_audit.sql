-- Audit triggers of the configuration tables (README "Audit trail", lib/migrations/004_audit.sql):
-- settings, tiers, plans, and members (a tier assigned by hand).
CREATE TRIGGER audit AFTER INSERT OR UPDATE OR DELETE ON settings
    FOR EACH ROW WHEN (audit_active()) EXECUTE FUNCTION audit_row();
CREATE TRIGGER audit AFTER INSERT OR UPDATE OR DELETE ON tiers
    FOR EACH ROW WHEN (audit_active()) EXECUTE FUNCTION audit_row();
CREATE TRIGGER audit AFTER INSERT OR UPDATE OR DELETE ON plans
    FOR EACH ROW WHEN (audit_active()) EXECUTE FUNCTION audit_row();
CREATE TRIGGER audit AFTER INSERT OR UPDATE OR DELETE ON members
    FOR EACH ROW WHEN (audit_active()) EXECUTE FUNCTION audit_row();
