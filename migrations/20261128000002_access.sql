-- Users, roles and policies as Directus v11 shapes them (directus_users, directus_roles,
-- directus_policies, directus_access). The auth issue builds sessions and permissions on these.

create table directrix.roles (
    id uuid primary key default gen_random_uuid(),
    name varchar(100) not null,
    icon varchar(64) not null default 'supervised_user_circle',
    description text,
    parent uuid references directrix.roles (id) on delete set null
);

create table directrix.policies (
    id uuid primary key default gen_random_uuid(),
    name varchar(100) not null,
    icon varchar(64) not null default 'badge',
    description text,
    ip_access text[],
    enforce_tfa boolean not null default false,
    admin_access boolean not null default false,
    app_access boolean not null default false
);

create table directrix.users (
    id uuid primary key default gen_random_uuid(),
    first_name varchar(50),
    last_name varchar(50),
    email varchar(128),
    -- An argon2id PHC string; Directus's own hashes verify as they are.
    password varchar(255),
    location varchar(255),
    title varchar(50),
    description text,
    tags jsonb,
    avatar uuid,
    language varchar(255),
    tfa_secret varchar(255),
    status varchar(16) not null default 'active',
    role uuid references directrix.roles (id) on delete set null,
    -- SHA-256 (hex) of the static token. Directus stores the token itself; a leaked row here
    -- does not leak a credential. Static tokens are long random strings, so a fast hash is enough.
    token varchar(64) unique,
    last_access timestamptz,
    last_page varchar(255),
    provider varchar(128) not null default 'default',
    external_identifier varchar(255),
    auth_data jsonb,
    email_notifications boolean not null default true
);

-- Emails are compared case-insensitively, as Directus lower-cases them on write.
create unique index users_email_key on directrix.users (lower(email));

create table directrix.access (
    id uuid primary key default gen_random_uuid(),
    role uuid references directrix.roles (id) on delete cascade,
    "user" uuid references directrix.users (id) on delete cascade,
    policy uuid not null references directrix.policies (id) on delete cascade,
    sort integer
);
