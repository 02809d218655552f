//! Item reads over HTTP: `GET`/`SEARCH /items/:collection` and `GET /items/:collection/:id`,
//! with Directus's query parameters and value shapes, on relational data
//! (authors ← articles ← comments, articles ↔ tags).
#![allow(clippy::unwrap_used)]

mod common;

use common::{TestApp, spawn_app};
use reqwest::Method;
use serde_json::{Value, json};

const DATA: &str = r#"
create table authors (id serial primary key, name varchar(50) not null, born date, rank bigint, fee numeric(8,2));
create table articles (
    id serial primary key, title varchar(100) not null, status varchar(20) default 'draft',
    views integer, published_at timestamptz, updated timestamp, tags_csv text, secret varchar(255),
    author integer references authors (id)
);
create table comments (id serial primary key, body text, article integer references articles (id));
create table tags (id serial primary key, name varchar(30));
create table articles_tags (id serial primary key, articles_id integer references articles (id), tags_id integer references tags (id));
insert into directrix.fields (collection, field, special) values
    ('authors', 'articles', '{o2m}'), ('articles', 'comments', '{o2m}'), ('articles', 'tags', '{m2m}'),
    ('articles', 'tags_csv', '{cast-csv}'), ('articles', 'secret', '{hash}');
insert into directrix.relations (many_collection, many_field, one_collection, one_field, junction_field) values
    ('articles', 'author', 'authors', 'articles', null),
    ('comments', 'article', 'articles', 'comments', null),
    ('articles_tags', 'articles_id', 'articles', 'tags', 'tags_id'),
    ('articles_tags', 'tags_id', 'tags', null, 'articles_id');
insert into authors (name, born, rank, fee) values ('Ann', '1980-02-03', 9007199254740993, 12.5), ('Bob', null, 2, null);
insert into articles (title, status, views, published_at, updated, tags_csv, secret, author) values
    ('Hello world', 'published', 10, '2024-01-02 03:04:05.678+00', '2024-01-02 03:04:05', 'a,b', 'x', 1),
    ('Second post', 'draft', 5, null, null, '', null, 1),
    ('Third 50% off', 'published', 100, '2024-03-01 00:00:00+00', null, null, null, 2),
    ('Fourth', 'archived', null, null, null, null, null, null);
insert into comments (body, article) values ('nice', 1), ('meh', 1), ('first!', 3);
insert into tags (name) values ('rust'), ('sql');
insert into articles_tags (articles_id, tags_id) values (1, 1), (1, 2), (3, 2);
"#;

async fn app() -> TestApp {
    let app = spawn_app().await;
    app.sql(DATA).await;
    app.eventually("schema with data", || async {
        app.get("/fields/articles_tags").await.status == 200
    })
    .await;
    app
}

fn ids(data: &Value) -> Vec<i64> {
    data.as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_i64().unwrap())
        .collect()
}

#[actix_web::test]
async fn list_renders_values_in_directus_shapes() {
    let app = app().await;
    let data = app.get("/items/articles").await.data();
    assert_eq!(ids(&data), vec![1, 2, 3, 4], "default sort is the primary key");
    let first = &data[0];
    assert_eq!(first["title"], "Hello world");
    assert_eq!(first["published_at"], "2024-01-02T03:04:05.678Z");
    assert_eq!(first["updated"], "2024-01-02T03:04:05");
    assert_eq!(first["tags_csv"], json!(["a", "b"]));
    assert_eq!(data[1]["tags_csv"], json!([]));
    assert_eq!(first["secret"], "**********");
    assert_eq!(data[1]["secret"], Value::Null);
    assert_eq!(first["author"], 1);
    assert_eq!(first["comments"], json!([1, 2]), "an O2M field reads as its keys");
    let author = app.get("/items/authors/1").await.data();
    assert_eq!(
        author["rank"], "9007199254740993",
        "bigint is a string, as node-pg gives it"
    );
    assert_eq!(author["fee"], "12.50", "numeric keeps its scale as a string");
    assert_eq!(author["born"], "1980-02-03");
    assert_eq!(author["articles"], json!([1, 2]));
    app.stop().await;
}

#[actix_web::test]
async fn filters_sort_pagination_search_and_meta() {
    let app = app().await;
    let published = app
        .get("/items/articles?filter[status][_eq]=published&sort=-id")
        .await
        .data();
    assert_eq!(ids(&published), vec![3, 1]);
    let json_filter = app
        .get("/items/articles?filter=%7B%22views%22%3A%7B%22_gte%22%3A10%7D%7D")
        .await
        .data();
    assert_eq!(ids(&json_filter), vec![1, 3]);
    let relational = app
        .get("/items/articles?filter[author][name][_eq]=Bob")
        .await
        .data();
    assert_eq!(ids(&relational), vec![3]);
    let some = app
        .get("/items/articles?filter[comments][_some][body][_eq]=meh")
        .await
        .data();
    assert_eq!(ids(&some), vec![1]);
    let none = app
        .get("/items/articles?filter[comments][_none][body][_nnull]=true")
        .await
        .data();
    assert_eq!(ids(&none), vec![2, 4]);
    let paged = app.get("/items/articles?limit=2&page=2").await.data();
    assert_eq!(ids(&paged), vec![3, 4]);
    let offset = app.get("/items/articles?limit=1&offset=1").await.data();
    assert_eq!(ids(&offset), vec![2]);
    let all = app.get("/items/articles?limit=-1&sort=views").await.data();
    assert_eq!(
        ids(&all),
        vec![2, 1, 3, 4],
        "nulls last ascending, as Postgres orders"
    );
    let found = app.get("/items/articles?search=WORLD").await.data();
    assert_eq!(ids(&found), vec![1]);
    let by_number = app.get("/items/articles?search=100").await.data();
    assert_eq!(ids(&by_number), vec![3]);
    let meta = app
        .get("/items/articles?filter[status][_eq]=published&meta=*&limit=1")
        .await
        .json();
    assert_eq!(meta["meta"], json!({"total_count": 4, "filter_count": 2}));
    assert_eq!(meta["data"].as_array().unwrap().len(), 1);
    app.stop().await;
}

#[actix_web::test]
async fn relational_fields_are_read_in_one_query() {
    let app = app().await;
    let data = app
        .get("/items/articles?fields=id,title,author.name,comments.body,tags.tags_id.name&filter[id][_eq]=1")
        .await
        .data();
    assert_eq!(
        data,
        json!([{"id": 1, "title": "Hello world", "author": {"name": "Ann"},
                "comments": [{"body": "nice"}, {"body": "meh"}],
                "tags": [{"tags_id": {"name": "rust"}}, {"tags_id": {"name": "sql"}}]}])
    );
    let nested = app.get("/items/articles/3?fields=*.*").await.data();
    assert_eq!(nested["author"]["name"], "Bob");
    assert_eq!(nested["comments"][0]["body"], "first!");
    let none = app.get("/items/articles/4?fields=id,author.*").await.data();
    assert_eq!(none, json!({"id": 4, "author": null}));
    let year = app
        .get("/items/articles/1?fields=id,year(published_at)")
        .await
        .data();
    assert_eq!(year, json!({"id": 1, "published_at_year": "2024"}));
    app.stop().await;
}

#[actix_web::test]
async fn search_method_takes_the_query_from_the_body() {
    let app = app().await;
    let method = Method::from_bytes(b"SEARCH").unwrap();
    let res = app
        .request(
            method,
            "/items/articles",
            Some(json!({"query": {"filter": {"views": {"_lt": 50}}, "fields": ["id"]}})),
        )
        .await;
    assert_eq!(res.data(), json!([{"id": 1}, {"id": 2}]));
    // `keys` reads those items only, with the query's filter and fields.
    let search = |body: serde_json::Value| {
        let app = &app;
        async move {
            app.request(
                Method::from_bytes(b"SEARCH").unwrap(),
                "/items/articles",
                Some(body),
            )
            .await
        }
    };
    let keyed = search(json!({"keys": [3, 1], "query": {"fields": ["id"], "sort": ["id"]}})).await;
    assert_eq!(keyed.data(), json!([{"id": 1}, {"id": 3}]));
    let narrowed =
        search(json!({"keys": [1, 3], "query": {"fields": ["id"], "filter": {"views": {"_lt": 50}}}})).await;
    assert_eq!(narrowed.data(), json!([{"id": 1}]));
    assert_eq!(search(json!({"keys": []})).await.data(), json!([]));
    search(json!({"keys": ["not a number"]}))
        .await
        .assert_error(403, "FORBIDDEN");
    app.stop().await;
}

#[actix_web::test]
async fn bad_queries_get_directus_errors() {
    let app = app().await;
    let res = app.get("/items/articles?fields=nope").await;
    res.assert_error(403, "FORBIDDEN");
    assert_eq!(
        res.json()["errors"][0]["message"],
        "You don't have permission to access field \"nope\" in collection \"articles\" or it does not exist. Queried in root."
    );
    let nested = app.get("/items/articles?fields=author.nope").await;
    assert!(
        nested.json()["errors"][0]["message"]
            .as_str()
            .unwrap()
            .ends_with("Queried in \"author\".")
    );
    app.get("/items/articles?filter[nope][_eq]=1")
        .await
        .assert_error(403, "FORBIDDEN");
    app.get("/items/articles?sort=-nope")
        .await
        .assert_error(403, "FORBIDDEN");
    let limit = app.get("/items/articles?limit=abc").await;
    limit.assert_error(400, "INVALID_QUERY");
    assert_eq!(
        limit.json()["errors"][0]["message"],
        "Invalid query. \"limit\" must be a number."
    );
    app.get("/items/articles?limit=-2")
        .await
        .assert_error(400, "INVALID_QUERY");
    app.get("/items/articles?offset=-1")
        .await
        .assert_error(400, "INVALID_QUERY");
    app.get("/items/articles?meta=nope")
        .await
        .assert_error(400, "INVALID_QUERY");
    let bad_json = app.get("/items/articles?filter=%7Bnope").await;
    assert_eq!(
        bad_json.json()["errors"][0]["extensions"]["reason"],
        "Invalid JSON for filter object"
    );
    app.get("/items/articles?filter[title][_between]=a,b")
        .await
        .assert_error(400, "INVALID_QUERY");
    app.get("/items/articles?filter[views][_eq]=many")
        .await
        .assert_error(400, "INVALID_QUERY");
    app.get(&format!("/items/articles?filter{}=1", "[a]".repeat(12)))
        .await
        .assert_error(400, "INVALID_QUERY");
    // Unknown collections and items are FORBIDDEN, as in Directus.
    app.get("/items/ghosts").await.assert_error(403, "FORBIDDEN");
    app.get("/items/articles/999")
        .await
        .assert_error(403, "FORBIDDEN");
    app.get("/items/articles/abc")
        .await
        .assert_error(403, "FORBIDDEN");
    // Items need a caller who may read them (permissions land with auth): anonymous is refused.
    app.send(Method::GET, "/items/articles", None, None)
        .await
        .assert_error(403, "FORBIDDEN");
    app.stop().await;
}

#[actix_web::test]
async fn aggregate_and_group_by_follow_directus_shapes() {
    let app = app().await;
    let count = app.get("/items/articles?aggregate[count]=*").await.data();
    assert_eq!(
        count,
        json!([{"count": "4"}]),
        "counts are strings on Postgres, as node-pg returns bigint"
    );
    let by_status = app
        .get("/items/articles?aggregate[count]=id&aggregate[sum]=views&groupBy[]=status")
        .await
        .data();
    assert_eq!(
        by_status,
        json!([
            {"status": "archived", "count": {"id": "1"}, "sum": {"views": null}},
            {"status": "draft", "count": {"id": "1"}, "sum": {"views": "5"}},
            {"status": "published", "count": {"id": "2"}, "sum": {"views": "110"}}
        ])
    );
    let filtered = app
        .get("/items/articles?aggregate=%7B%22max%22%3A%22views%22%2C%22avg%22%3A%22views%22%7D&filter[status][_eq]=published")
        .await
        .data();
    assert_eq!(filtered[0]["max"]["views"], 100);
    assert_eq!(filtered[0]["avg"]["views"], "55.0000000000000000");
    let by_year = app
        .get(
            "/items/articles?aggregate[count]=*&groupBy=year(published_at)&filter[published_at][_nnull]=true",
        )
        .await
        .data();
    assert_eq!(by_year, json!([{"published_at_year": "2024", "count": "2"}]));
    app.get("/items/articles?aggregate[sum]=nope")
        .await
        .assert_error(403, "FORBIDDEN");
    app.get("/items/articles?aggregate=[1]")
        .await
        .assert_error(400, "INVALID_QUERY");
    app.stop().await;
}

#[actix_web::test]
async fn query_limit_max_caps_reads_as_in_directus() {
    let database = common::fresh_database().await;
    let mut config = common::test_config(&database);
    config.query.max_limit = Some(2);
    let app = common::spawn_app_with(config).await;
    app.sql(DATA).await;
    app.eventually("schema", || async {
        app.get("/collections/articles").await.status == 200
    })
    .await;
    assert_eq!(
        ids(&app.get("/items/articles").await.data()),
        vec![1, 2],
        "the default is capped"
    );
    assert_eq!(
        ids(&app.get("/items/articles?limit=-1").await.data()),
        vec![1, 2],
        "-1 means the max"
    );
    let over = app.get("/items/articles?limit=3").await;
    over.assert_error(400, "INVALID_QUERY");
    assert_eq!(
        over.json()["errors"][0]["extensions"]["reason"],
        "\"limit\" must be less than or equal to 2"
    );
    app.stop().await;
}

#[actix_web::test]
async fn deep_narrows_and_orders_related_rows() {
    let app = app().await;
    let data = app
        .get("/items/articles/1?fields=id,comments.body&deep[comments][_sort]=-id&deep[comments][_limit]=1")
        .await
        .data();
    assert_eq!(data, json!({"id": 1, "comments": [{"body": "meh"}]}));
    let filtered = app
        .get("/items/articles/1?fields=comments.body&deep=%7B%22comments%22%3A%7B%22_filter%22%3A%7B%22body%22%3A%7B%22_eq%22%3A%22nice%22%7D%7D%7D%7D")
        .await
        .data();
    assert_eq!(filtered, json!({"comments": [{"body": "nice"}]}));
    let paged = app
        .get("/items/articles/1?fields=comments.id&deep[comments][_limit]=1&deep[comments][_page]=2")
        .await
        .data();
    assert_eq!(paged, json!({"comments": [{"id": 2}]}));
    let searched = app
        .get("/items/authors/1?fields=articles.title&deep[articles][_search]=second")
        .await
        .data();
    assert_eq!(searched, json!({"articles": [{"title": "Second post"}]}));
    let m2o = app
        .get("/items/articles/1?fields=author.name&deep[author][_filter][name][_eq]=Nobody")
        .await
        .data();
    assert_eq!(
        m2o,
        json!({"author": null}),
        "a related row outside the deep filter reads as null"
    );
    let nested_deep = app
        .get("/items/authors/1?fields=articles.comments.body&deep[articles][comments][_filter][body][_eq]=meh&deep[articles][_limit]=1")
        .await
        .data();
    assert_eq!(
        nested_deep,
        json!({"articles": [{"comments": [{"body": "meh"}]}]})
    );
    app.get("/items/articles?fields=comments.body&deep[comments][_filter][nope][_eq]=1")
        .await
        .assert_error(403, "FORBIDDEN");
    app.get("/items/articles?deep=5")
        .await
        .assert_error(400, "INVALID_QUERY");
    app.stop().await;
}

#[actix_web::test]
async fn alias_renames_fields_as_in_directus() {
    let app = app().await;
    let data = app.get("/items/articles/1?fields=id,headline,when,writer.name&alias[headline]=title&alias[when]=year(published_at)&alias[writer]=author").await.data();
    assert_eq!(
        data,
        json!({"id": 1, "headline": "Hello world", "when": "2024", "writer": {"name": "Ann"}})
    );
    let star = app.get("/items/authors/2?fields=*&alias[n]=name").await.data();
    assert_eq!(star["n"], "Bob", "`*` includes every alias");
    let bad = app.get("/items/articles?alias[a.b]=title").await;
    assert_eq!(
        bad.json()["errors"][0]["extensions"]["reason"],
        "\"alias\" key/value can't contain a period character `.`"
    );
    app.get("/items/articles?alias=5")
        .await
        .assert_error(400, "INVALID_QUERY");
    app.stop().await;
}

#[actix_web::test]
async fn export_downloads_json_and_csv() {
    let app = app().await;
    let json_file = app
        .get("/items/articles?fields=id,title&limit=2&export=json")
        .await;
    assert_eq!(json_file.status, 200);
    let disposition = json_file.headers["content-disposition"].to_str().unwrap();
    assert!(
        disposition.starts_with("attachment; filename=\"articles ") && disposition.ends_with(".json\""),
        "{disposition}"
    );
    assert_eq!(
        json_file.text,
        "[\n\t{\n\t\t\"id\": 1,\n\t\t\"title\": \"Hello world\"\n\t},\n\t{\n\t\t\"id\": 2,\n\t\t\"title\": \"Second post\"\n\t}\n]"
    );
    let csv = app
        .get("/items/articles?fields=id,author.name&filter[id][_in]=1,4&export=csv")
        .await;
    assert!(
        csv.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    assert_eq!(csv.text, "\"id\",\"author.name\",\"author\"\n1,\"Ann\",\n4,,");
    app.get("/items/articles?export=pdf")
        .await
        .assert_error(400, "INVALID_QUERY");
    app.stop().await;
}

#[actix_web::test]
async fn sort_follows_many_to_one_relations() {
    let app = app().await;
    let by_author = app
        .get("/items/articles?fields=id&sort=-author.name,id")
        .await
        .data();
    assert_eq!(
        ids(&by_author),
        vec![4, 3, 1, 2],
        "null authors first descending, then Bob, then Ann"
    );
    let nested = app
        .get("/items/comments?fields=id&sort=article.author.name,-id")
        .await
        .data();
    assert_eq!(ids(&nested), vec![2, 1, 3]);
    let bad = app.get("/items/articles?sort=author.nope").await;
    bad.assert_error(403, "FORBIDDEN");
    assert!(
        bad.json()["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("collection \"authors\"")
    );
    app.get("/items/articles?sort=title.x")
        .await
        .assert_error(403, "FORBIDDEN");
    app.stop().await;
}

#[actix_web::test]
async fn current_user_resolves_to_the_caller() {
    let app = app().await;
    app.sql(
        "alter table articles add column owner uuid; \
             update articles set owner = (select id from directrix.users limit 1) where id in (2, 3)",
    )
    .await;
    app.eventually("owner column", || async {
        app.get("/fields/articles/owner").await.status == 200
    })
    .await;
    let mine = app
        .get("/items/articles?fields=id&filter[owner][_eq]=$CURRENT_USER")
        .await
        .data();
    assert_eq!(ids(&mine), vec![2, 3]);
    let role = app
        .get("/items/articles?fields=id&filter[owner][_neq]=$CURRENT_ROLE")
        .await
        .data();
    assert_eq!(ids(&role), vec![2, 3], "the admin's role id is nobody's owner id");
    app.stop().await;
}

#[actix_web::test]
async fn count_counts_related_rows_in_fields_and_filters() {
    let app = app().await;
    let data = app
        .get("/items/articles?fields=id,count(comments)&filter[count(comments)][_gte]=1")
        .await
        .data();
    assert_eq!(
        data,
        json!([{"id": 1, "comments_count": "2"}, {"id": 3, "comments_count": "1"}])
    );
    app.get("/items/articles?fields=count(title)")
        .await
        .assert_error(400, "INVALID_QUERY");
    app.get("/items/articles?filter[count(title)][_eq]=1")
        .await
        .assert_error(400, "INVALID_QUERY");
    app.stop().await;
}

#[actix_web::test]
async fn nested_create_through_a_many_to_many_junction() {
    let app = app().await;
    let created = app
        .post(
            "/items/articles?fields=title,tags.tags_id.name",
            json!({"title": "Tagged", "tags": [{"tags_id": {"name": "new"}}, {"tags_id": 1}]}),
        )
        .await
        .data();
    assert_eq!(
        created,
        json!({"title": "Tagged", "tags": [{"tags_id": {"name": "new"}}, {"tags_id": {"name": "rust"}}]})
    );
    app.stop().await;
}
