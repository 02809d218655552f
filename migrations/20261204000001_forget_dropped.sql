-- Deleting a field or a collection takes its permissions with it (Directus advisory
-- GHSA-9x5g-62gj-wqf2's class): left behind, a grant made for a deleted field or collection
-- would apply to a new one created later under the same name. The API calls these functions
-- inside its delete's transaction; with a superuser, an event trigger calls them inside any
-- DROP's transaction too, psql's included.

-- Which schema holds user collections (`DB_SEARCH_PATH`), written by each start, so the
-- event trigger knows which drops are of collections.
create table directrix.settings (
    key varchar(64) primary key,
    value text not null
);

-- `rule` (a permission's filter or validation) without conditions on `field` of its own
-- collection; `_and`/`_or` branches left empty are dropped. `{}` when nothing is left.
create function directrix.filter_without(rule jsonb, field text) returns jsonb
language plpgsql immutable as $$
declare
    kept jsonb := '{}'::jsonb;
    branches jsonb;
    branch jsonb;
    key text;
    value jsonb;
begin
    if rule is null or jsonb_typeof(rule) <> 'object' then
        return rule;
    end if;
    for key, value in select * from jsonb_each(rule) loop
        if key = field then
            continue;
        end if;
        if key in ('_and', '_or') and jsonb_typeof(value) = 'array' then
            branches := '[]'::jsonb;
            for branch in select * from jsonb_array_elements(value) loop
                branch := directrix.filter_without(branch, field);
                if branch <> '{}'::jsonb then
                    branches := branches || jsonb_build_array(branch);
                end if;
            end loop;
            if jsonb_array_length(branches) > 0 then
                kept := kept || jsonb_build_object(key, branches);
            end if;
        else
            kept := kept || jsonb_build_object(key, value);
        end if;
    end loop;
    return kept;
end
$$;

-- A deleted field: out of every permission's field list, presets and validation. Item rules
-- (`permissions`) keep their conditions: dropping one would widen what the rule admits.
-- `fields` is CSV text, as in Directus; an emptied list is null (no field), as Directus leaves it.
create function directrix.forget_field(collection_name text, field_name text) returns void
language sql as $$
    update directrix.permissions set
        fields = nullif(array_to_string(array_remove(string_to_array(fields, ','), field_name), ','), ''),
        presets = nullif(presets - field_name, '{}'::jsonb),
        validation = nullif(directrix.filter_without(validation, field_name), '{}'::jsonb)
    where collection = collection_name
      and (field_name = any(string_to_array(fields, ',')) or presets ? field_name
           or validation is distinct from directrix.filter_without(validation, field_name));
$$;

-- A deleted collection: its permissions go.
create function directrix.forget_collection(collection_name text) returns void
language sql as $$
    delete from directrix.permissions where collection = collection_name;
$$;

create function directrix.forget_dropped() returns event_trigger
language plpgsql as $$
declare
    user_schema text := coalesce(
        (select value from directrix.settings where key = 'user_schema'), 'public');
    dropped record;
begin
    for dropped in select * from pg_event_trigger_dropped_objects() loop
        if dropped.object_type = 'table' and dropped.schema_name = user_schema then
            perform directrix.forget_collection(dropped.address_names[2]);
        elsif dropped.object_type = 'table column' and dropped.address_names[1] = user_schema then
            perform directrix.forget_field(dropped.address_names[2], dropped.address_names[3]);
        end if;
    end loop;
end
$$;

-- Event triggers need a superuser. Without one, drops made outside the API keep their
-- permissions (the README says so).
do $$
begin
    create event trigger directrix_forget_dropped on sql_drop
        execute function directrix.forget_dropped();
exception when insufficient_privilege then
    raise warning 'directrix: no superuser, so permissions of tables and columns dropped outside the API are kept';
end
$$;
