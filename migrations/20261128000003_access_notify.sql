-- Any change to who holds which token, role or policy notifies `directrix_access`, so every
-- instance drops its cached token lookups at once (from our API, psql or another instance).
create function directrix.notify_access_change() returns trigger
language plpgsql as $$
begin
    perform pg_notify('directrix_access', tg_table_name);
    return null;
end
$$;

create trigger users_changed after insert or update or delete or truncate on directrix.users
    for each statement execute function directrix.notify_access_change();
create trigger roles_changed after insert or update or delete or truncate on directrix.roles
    for each statement execute function directrix.notify_access_change();
create trigger policies_changed after insert or update or delete or truncate on directrix.policies
    for each statement execute function directrix.notify_access_change();
create trigger access_changed after insert or update or delete or truncate on directrix.access
    for each statement execute function directrix.notify_access_change();
