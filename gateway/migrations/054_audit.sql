-- Audit triggers of the configuration tables (README "Audit trail", lib/migrations/004_audit.sql):
-- settings and campaigns.
CREATE TRIGGER audit AFTER INSERT OR UPDATE OR DELETE ON settings
    FOR EACH ROW WHEN (audit_active()) EXECUTE FUNCTION audit_row();
CREATE TRIGGER audit AFTER INSERT OR UPDATE OR DELETE ON campaigns
    FOR EACH ROW WHEN (audit_active()) EXECUTE FUNCTION audit_row();
