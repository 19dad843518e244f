-- Audit triggers of the configuration tables (README "Audit trail", lib/migrations/004_audit.sql):
-- the programmes and their levels.
CREATE TRIGGER audit AFTER INSERT OR UPDATE OR DELETE ON programs
    FOR EACH ROW WHEN (audit_active()) EXECUTE FUNCTION audit_row();
CREATE TRIGGER audit AFTER INSERT OR UPDATE OR DELETE ON program_levels
    FOR EACH ROW WHEN (audit_active()) EXECUTE FUNCTION audit_row();
