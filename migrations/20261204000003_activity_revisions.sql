-- Directus 11's `directus_activity` and `directus_revisions`: one activity row per item per
-- action, and for creates and updates a revision with the item's data and the change. Written
-- by the items service in the same transaction as the change, so a rolled-back write leaves
-- neither. Writes made outside the API (psql) leave no activity, as in Directus.

create table directrix.activity (
    id serial primary key,
    action varchar(45) not null,
    -- No foreign key action beyond Directus's: a deleted user's history stays, unowned.
    "user" uuid references directrix.users (id) on delete set null,
    timestamp timestamptz not null default current_timestamp,
    ip varchar(50),
    user_agent text,
    collection varchar(64) not null,
    item varchar(255) not null,
    origin varchar(255)
);
create index activity_collection_item on directrix.activity (collection, item);
create index activity_user on directrix.activity ("user");

create table directrix.revisions (
    id serial primary key,
    activity integer not null references directrix.activity (id) on delete cascade,
    collection varchar(64) not null,
    item varchar(255) not null,
    data json,
    delta json,
    -- The revision of the item whose nested write made this one.
    parent integer references directrix.revisions (id) on delete set null,
    -- Content versions are not built; the column keeps Directus's shape.
    version uuid
);
create index revisions_collection_item on directrix.revisions (collection, item);
create index revisions_activity on directrix.revisions (activity);
create index revisions_parent on directrix.revisions (parent);

-- Directus's meta for both: their own writes are not tracked.
insert into directrix.collections (collection, accountability, hidden)
values ('directus_activity', null, true), ('directus_revisions', null, true)
on conflict (collection) do update set accountability = null;
