-- Directus 11's `directus_activity` and `directus_revisions`: one activity row per item per
-- action, and for creates and updates a revision with the item's data and the change. Written
-- by the items service in the same transaction as the change, so a rolled-back write leaves
-- neither. Writes made outside the API (psql) leave no activity, as in Directus.

create table directrix.activity (
    id serial primary key,
    action varchar(45) not null,
    -- No foreign key, as in Directus (its relation to users is metadata only, below): a
    -- deleted user's history stays, and a tracked write pays no extra lookup.
    "user" uuid,
    timestamp timestamptz not null default current_timestamp,
    ip varchar(50),
    user_agent text,
    collection varchar(64) not null,
    item varchar(255) not null,
    origin varchar(255)
);
-- Directus's index set: by time (the activity feed, retention). An item's history is read
-- through its revisions; every further index here is paid by every tracked write.
create index activity_timestamp on directrix.activity (timestamp);

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

insert into directrix.relations (many_collection, many_field, one_collection)
values ('directus_activity', 'user', 'directus_users');

-- Directus's meta for both: their own writes are not tracked.
insert into directrix.collections (collection, accountability, hidden)
values ('directus_activity', null, true), ('directus_revisions', null, true)
on conflict (collection) do update set accountability = null;
