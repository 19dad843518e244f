-- roles.sql -- the suite's PostgreSQL roles (README "Database roles"): an owner role that owns the
-- six schemas and runs the migrations (`<service> --migrate`), and one login role per service,
-- loyalty_<schema>, that may read and write the tables of its own schema and nothing else: no
-- other schema, no DDL. Run it as a role that may create roles (a superuser, or the managed
-- database's admin) in the suite's database, before the first migration and again after an
-- upgrade; it is idempotent. The owner role is loyalty_owner unless the setting loyalty.owner
-- names another (`PGOPTIONS='-c loyalty.owner=loyalty' psql -f roles.sql`: the local stack's
-- bootstrap role). Passwords are not set here: `ALTER ROLE loyalty_member PASSWORD '...'`.
DO $roles$
DECLARE
    owner text := coalesce(nullif(current_setting('loyalty.owner', true), ''), 'loyalty_owner');
    schemas text[] := ARRAY['gateway', 'member', 'points', 'wallet', 'referral', 'promo'];
    s text;
    r text;
BEGIN
    -- Roles belong to the whole cluster: a run in another database may create one between the
    -- check and the CREATE (two suites set up at once), which is as good as creating it here.
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = owner) THEN
        BEGIN
            EXECUTE format('CREATE ROLE %I LOGIN', owner);
        EXCEPTION WHEN duplicate_object OR unique_violation THEN
            NULL;
        END;
    END IF;
    -- CREATE SCHEMA IF NOT EXISTS in the migrations needs CREATE on the database.
    EXECUTE format('GRANT CONNECT, CREATE ON DATABASE %I TO %I', current_database(), owner);
    EXECUTE format('REVOKE CREATE ON SCHEMA public FROM PUBLIC');
    FOREACH s IN ARRAY schemas LOOP
        r := 'loyalty_' || s;
        IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = r) THEN
            BEGIN
                EXECUTE format('CREATE ROLE %I LOGIN', r);
            EXCEPTION WHEN duplicate_object OR unique_violation THEN
                NULL;
            END;
        END IF;
        EXECUTE format('GRANT CONNECT ON DATABASE %I TO %I', current_database(), r);
        -- The services' planner costs (docs/operations.md "Planner costs"), also for sessions
        -- through a transaction pooler, where the services cannot set them themselves.
        -- Set only when missing. A run of this script in another database of the cluster may set
        -- it at the same moment ("tuple concurrently updated", or a duplicate key in
        -- pg_db_role_setting when neither run found it): as good as setting it here.
        IF NOT EXISTS (SELECT FROM pg_db_role_setting rs JOIN pg_roles ro ON ro.oid = rs.setrole
                       WHERE ro.rolname = r AND rs.setdatabase = 0
                         AND 'random_page_cost=1.1' = ANY (rs.setconfig)) THEN
            BEGIN
                EXECUTE format('ALTER ROLE %I SET random_page_cost = 1.1', r);
            EXCEPTION WHEN internal_error OR unique_violation THEN
                IF NOT EXISTS (SELECT FROM pg_db_role_setting rs
                               JOIN pg_roles ro ON ro.oid = rs.setrole
                               WHERE ro.rolname = r AND rs.setdatabase = 0
                                 AND 'random_page_cost=1.1' = ANY (rs.setconfig)) THEN
                    RAISE;
                END IF;
            END;
        END IF;
        EXECUTE format('CREATE SCHEMA IF NOT EXISTS %I AUTHORIZATION %I', s, owner);
        EXECUTE format('REVOKE ALL ON SCHEMA %I FROM PUBLIC', s);
        EXECUTE format('GRANT USAGE ON SCHEMA %I TO %I', s, r);
        -- What exists already (an upgrade), and what the owner's migrations create later.
        EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA %I TO %I', s, r);
        EXECUTE format('GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA %I TO %I', s, r);
        EXECUTE format('GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA %I TO %I', s, r);
        EXECUTE format('ALTER DEFAULT PRIVILEGES FOR ROLE %I IN SCHEMA %I '
                       'GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO %I', owner, s, r);
        EXECUTE format('ALTER DEFAULT PRIVILEGES FOR ROLE %I IN SCHEMA %I '
                       'GRANT USAGE, SELECT, UPDATE ON SEQUENCES TO %I', owner, s, r);
        EXECUTE format('ALTER DEFAULT PRIVILEGES FOR ROLE %I IN SCHEMA %I '
                       'GRANT EXECUTE ON FUNCTIONS TO %I', owner, s, r);
        -- The audit trail is append-only (its triggers refuse changes too): once it exists,
        -- the service's role may only add to it.
        IF to_regclass(format('%I.audit_log', s)) IS NOT NULL THEN
            EXECUTE format('REVOKE UPDATE, DELETE, TRUNCATE ON %I.audit_log FROM %I', s, r);
        END IF;
    END LOOP;
END
$roles$;
