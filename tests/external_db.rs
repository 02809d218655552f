//! An existing database reached with `DB_CONNECTION_STRING` as a plain (non-superuser) owner,
//! as on managed Postgres: migrations still apply, and without the DDL event trigger the schema
//! actor falls back to polling, so DDL from outside still shows up.

mod common;

use serde_json::json;

#[actix_web::test]
async fn a_non_superuser_database_owner_gets_a_working_server_with_polled_schema_refresh() {
    // Arrange: a role with no special rights that owns an empty database.
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    let (role, database) = (format!("owner_{suffix}"), format!("ext_{suffix}"));
    common::cluster_sql(&format!(
        "create role {role} login nosuperuser nocreatedb nocreaterole noreplication"
    ))
    .await;
    common::cluster_sql(&format!("create database {database} owner {role}")).await;
    let url = format!(
        "postgres://{role}@localhost/{database}?host={}",
        common::cluster().pgdata().display()
    );
    let mut config = common::test_config(&database);
    config.database = directrix::config::DatabaseConfig::External {
        url: url.clone().into(),
    };

    // Act
    let app = common::spawn_app_with(config).await;

    // Assert: the API works, and DDL from outside arrives by polling.
    app.post("/collections", json!({"collection": "pushed", "schema": {}}))
        .await
        .data();
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&url)
        .await
        .unwrap();
    let triggers: i64 = sqlx::query_scalar("select count(*) from pg_event_trigger")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(triggers, 0, "a non-superuser cannot create the DDL event trigger");
    sqlx::raw_sql("create table polled (id serial primary key, note text)")
        .execute(&mut conn)
        .await
        .unwrap();
    app.eventually("the polled table", || async {
        app.get("/collections/polled").await.status == 200
    })
    .await;
    assert_eq!(app.get("/fields/polled/note").await.data()["type"], "text");
    app.stop().await;
}
