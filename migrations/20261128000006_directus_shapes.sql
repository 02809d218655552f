-- Directus's shapes for two system collections, found by running @directus/sdk against us.

-- `directus_permissions.fields` is CSV text with the `cast-csv` special in Directus: clients
-- send an array or a CSV string and read an array back.
alter table directrix.permissions alter column fields type text using array_to_string(fields, ',');
insert into directrix.fields (collection, field, special) values ('directus_permissions', 'fields', '{cast-csv}');

-- `directus_policies.ip_access` is CSV (`cast-csv`) in Directus as well.
alter table directrix.policies alter column ip_access type text using array_to_string(ip_access, ',');
insert into directrix.fields (collection, field, special) values ('directus_policies', 'ip_access', '{cast-csv}');

-- Directus 11's appearance settings on users.
alter table directrix.users
    add column appearance varchar(255),
    add column text_direction varchar(255) not null default 'auto',
    add column theme_dark varchar(255),
    add column theme_light varchar(255),
    add column theme_light_overrides json,
    add column theme_dark_overrides json;
