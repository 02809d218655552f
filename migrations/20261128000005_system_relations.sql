-- Directus's O2M alias fields on the system collections, so `/roles?fields=users.email`,
-- `/policies?fields=permissions.*` and friends read as they do in Directus. The foreign keys
-- exist already; these rows name their "one" side.
insert into directrix.relations (many_collection, many_field, one_collection, one_field, junction_field) values
    ('directus_users', 'role', 'directus_roles', 'users', null),
    ('directus_roles', 'parent', 'directus_roles', 'children', null),
    ('directus_permissions', 'policy', 'directus_policies', 'permissions', null),
    ('directus_access', 'role', 'directus_roles', 'policies', 'policy'),
    ('directus_access', 'user', 'directus_users', 'policies', 'policy'),
    ('directus_access', 'policy', 'directus_policies', 'roles', 'role');

insert into directrix.fields (collection, field, special) values
    ('directus_roles', 'users', '{o2m}'),
    ('directus_roles', 'children', '{o2m}'),
    ('directus_roles', 'policies', '{m2m}'),
    ('directus_users', 'policies', '{m2m}'),
    ('directus_policies', 'permissions', '{o2m}'),
    ('directus_policies', 'roles', '{m2m}');
