-- Refresh-token sessions (Directus's `directus_sessions`) and permission rows
-- (`directus_permissions`), in Directus v11 shape.

create table directrix.sessions (
    -- SHA-256 hex of the opaque refresh token: a leaked table does not leak live tokens.
    token varchar(64) primary key,
    "user" uuid not null references directrix.users (id) on delete cascade,
    -- Every rotation of one login shares its family, so reusing a rotated token can end them
    -- all (beyond Directus, which only lets the rotated row expire).
    family uuid not null,
    expires timestamptz not null,
    ip varchar(255),
    user_agent text,
    origin varchar(255),
    -- Set when this token has been rotated: the digest of its successor.
    next_token varchar(64),
    rotated_at timestamptz
);
create index sessions_family on directrix.sessions (family);
create index sessions_user on directrix.sessions ("user");

create table directrix.permissions (
    id serial primary key,
    policy uuid not null references directrix.policies (id) on delete cascade,
    collection varchar(64) not null,
    action varchar(10) not null check (action in ('create', 'read', 'update', 'delete', 'share')),
    -- Directus stores these as JSON text and CSV; native types here, same JSON on the wire.
    permissions jsonb,
    validation jsonb,
    presets jsonb,
    fields text[]
);
create index permissions_policy on directrix.permissions (policy);

create trigger permissions_changed after insert or update or delete or truncate on directrix.permissions
    for each statement execute function directrix.notify_access_change();

-- Logins stamp `last_access`; that alone must not empty every instance's access caches.
drop trigger users_changed on directrix.users;
create trigger users_changed after insert or delete or truncate on directrix.users
    for each statement execute function directrix.notify_access_change();
create trigger users_updated after update of id, first_name, last_name, email, password, location,
    title, description, tags, avatar, language, tfa_secret, status, role, token, provider,
    external_identifier, auth_data, email_notifications on directrix.users
    for each statement execute function directrix.notify_access_change();

-- Field metadata of the system collections that the items engine serves under Directus's names:
-- passwords are argon2 hashes (masked on read), static tokens are stored as digests (masked too).
insert into directrix.fields (collection, field, special, hidden, searchable) values
    ('directus_users', 'password', '{hash}', false, false),
    ('directus_users', 'token', '{hash}', false, false),
    ('directus_users', 'tfa_secret', '{hash}', true, false);
