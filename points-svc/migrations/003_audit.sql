-- Audit triggers of the configuration tables (README "Audit trail", lib/migrations/004_audit.sql):
-- settings, campaigns, and entries (manual adjustments).
CREATE TRIGGER audit AFTER INSERT OR UPDATE OR DELETE ON settings
    FOR EACH ROW WHEN (audit_active()) EXECUTE FUNCTION audit_row();
CREATE TRIGGER audit AFTER INSERT OR UPDATE OR DELETE ON campaigns
    FOR EACH ROW WHEN (audit_active()) EXECUTE FUNCTION audit_row();
CREATE TRIGGER audit AFTER INSERT OR UPDATE OR DELETE ON entries
    FOR EACH ROW WHEN (audit_active()) EXECUTE FUNCTION audit_row();
