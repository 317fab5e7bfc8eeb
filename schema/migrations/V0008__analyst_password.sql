-- Creates an analyst login or sets its password (`monitor-hub analysts add NAME --password-file F`, run again
-- at every deployment: compose's grafana-login service makes Grafana's login this way). Needs CREATEROLE. A role that exists
-- but is not a plain analyst login (a superuser, the hub's role) is refused, never changed.
CREATE FUNCTION fleetwatch_ensure_analyst(login text, password text) RETURNS boolean
LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = login) THEN
        IF NOT EXISTS (SELECT 1 FROM pg_auth_members m
                       JOIN pg_roles g ON g.oid = m.roleid AND g.rolname = 'fleetwatch_analyst'
                       JOIN pg_roles u ON u.oid = m.member AND u.rolname = login AND NOT u.rolsuper AND NOT u.rolcreaterole) THEN
            RAISE EXCEPTION 'role % exists and is not an analyst login (a member of fleetwatch_analyst): choose another name', login;
        END IF;
        EXECUTE format('ALTER ROLE %I PASSWORD %L', login, password);
        RETURN false;
    END IF;
    PERFORM fleetwatch_create_analyst(login, password);
    RETURN true;
END
$$;
