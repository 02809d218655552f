-- Access changes ride the change feed. Each write to users, roles, policies, access,
-- permissions or sessions emits a transactional logical decoding message (prefix
-- `directrix.access`), which the slot delivers inside its transaction, in commit order with the
-- item changes around it. The replication actor re-plans the open subscriptions it touches
-- before anything committed later is delivered. (The `directrix_access` notifications stay:
-- they reach instances with realtime off.)
--
-- Payload, JSON: `{"t":"users","ids":[…]}` (users whose row changed, beyond the stamps a login
-- or a page view writes), `{"t":"sessions","ids":[…]}` (refresh sessions that ended), or
-- `{"t":"<table>"}` (anything else: every subscription is re-planned).

create function directrix.emit_access_change() returns trigger
language plpgsql as $$
declare
    ids jsonb;
begin
    if tg_table_name = 'users' and tg_op = 'UPDATE' then
        select jsonb_agg(n.id) into ids
        from new_rows n join old_rows o on o.id = n.id
        where to_jsonb(n) - 'last_access' - 'last_page' is distinct from to_jsonb(o) - 'last_access' - 'last_page';
    elsif tg_table_name = 'users' and tg_op = 'DELETE' then
        select jsonb_agg(id) into ids from old_rows;
    elsif tg_table_name = 'sessions' and tg_op = 'DELETE' then
        select jsonb_agg(token) into ids from old_rows;
    else
        perform pg_logical_emit_message(true, 'directrix.access',
            jsonb_build_object('t', tg_table_name)::text);
        return null;
    end if;
    if ids is not null then
        perform pg_logical_emit_message(true, 'directrix.access',
            jsonb_build_object('t', tg_table_name, 'ids', ids)::text);
    end if;
    return null;
end
$$;

-- A new user has no session yet: inserts need no message.
create trigger users_access_updated after update on directrix.users
    referencing old table as old_rows new table as new_rows
    for each statement execute function directrix.emit_access_change();
create trigger users_access_deleted after delete on directrix.users
    referencing old table as old_rows
    for each statement execute function directrix.emit_access_change();
create trigger users_access_truncated after truncate on directrix.users
    for each statement execute function directrix.emit_access_change();
-- A session that ends ends the access tokens of session mode; a new or rotated one changes
-- nobody's rights.
create trigger sessions_access_deleted after delete on directrix.sessions
    referencing old table as old_rows
    for each statement execute function directrix.emit_access_change();
create trigger sessions_access_truncated after truncate on directrix.sessions
    for each statement execute function directrix.emit_access_change();
create trigger roles_access_changed after insert or update or delete or truncate on directrix.roles
    for each statement execute function directrix.emit_access_change();
create trigger policies_access_changed after insert or update or delete or truncate on directrix.policies
    for each statement execute function directrix.emit_access_change();
create trigger access_access_changed after insert or update or delete or truncate on directrix.access
    for each statement execute function directrix.emit_access_change();
create trigger permissions_access_changed after insert or update or delete or truncate on directrix.permissions
    for each statement execute function directrix.emit_access_change();
