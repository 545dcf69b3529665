//! Bad input and bad moments get a clear answer over HTTP, the same on SQLite and PostgreSQL:
//! times far in the future, NUL in text, an array for an object, a garbage cursor, an
//! unreachable database, an upload that cannot fit on the disk.

mod common;

use chrono::{DateTime, Duration, FixedOffset};
use common::{Backend, TestApp};
use serde_json::{json, Value};

fn assert_problem(status: u16, body: &Value, want_status: u16, code: &str, field: Option<&str>) {
    assert_eq!((status, body["code"].as_str()), (want_status, Some(code)), "{body}");
    if let Some(field) = field {
        assert_eq!(body["errors"][0]["field"], field, "{body}");
    }
}

async fn far_future_times_are_refused(app: &TestApp) {
    let li = app.login("dr.li").await;
    let wang = app.login("dr.wang").await;
    let wang_id = app.user_id("dr.wang").await;
    let id = app.consultation().accepted().await;
    let (_, slots) = app.get(&format!("/api/v1/experts/{wang_id}/slots"), &li).await;
    let first = slots["items"][0]["start"].as_str().expect("a free slot").to_string();
    let first_at: DateTime<FixedOffset> = first.parse().unwrap();

    // Year 99999, and a year whose UTC instant is 10000: refused, naming the field.
    for start in ["+99999-01-01T09:00:00+08:00", "9999-12-31T23:00:00-05:00", "1899-12-31T09:00:00+08:00"] {
        let book = json!({"consultation_id": id, "expert_id": wang_id, "start": start});
        let (status, body) = app.post("/api/v1/appointments", &li, &book).await;
        assert_problem(status, &body, 422, "validation_failed", Some("start"));
    }
    // The same weekday and hour 53 weeks on lies on the weekly schedule, beyond the horizon.
    let beyond = (first_at + Duration::weeks(53)).to_rfc3339();
    let book = json!({"consultation_id": id, "expert_id": wang_id, "start": beyond});
    let (status, body) = app.post("/api/v1/appointments", &li, &book).await;
    assert_problem(status, &body, 422, "beyond_booking_horizon", Some("start"));
    // Slots beyond the horizon are not offered.
    let from = (first_at + Duration::weeks(53)).to_rfc3339().replace('+', "%2B");
    let (status, far) = app.get(&format!("/api/v1/experts/{wang_id}/slots?from={from}"), &li).await;
    assert_eq!((status, far["items"].clone()), (200, json!([])), "{far}");

    // A booking within the horizon is stored and reads back as it was sent.
    let book = json!({"consultation_id": id, "expert_id": wang_id, "start": first});
    let (status, appt) = app.post("/api/v1/appointments", &li, &book).await;
    assert_eq!(status, 201, "{appt}");
    let (_, list) = app.get("/api/v1/appointments", &li).await;
    assert_eq!(list["items"][0]["start"], first.as_str(), "{list}");
    // Moving it beyond the horizon is refused too.
    let aid = appt["id"].as_str().unwrap();
    let (status, body) = app
        .post(&format!("/api/v1/appointments/{aid}/reschedule"), &li, &json!({"start": beyond, "reason": "改期"}))
        .await;
    assert_problem(status, &body, 422, "beyond_booking_horizon", Some("start"));

    // Leave in year 99999, or starting beyond the horizon.
    let leave = json!({"kind": "leave", "start": "+99999-01-01T09:00:00+08:00", "end": "+99999-01-02T09:00:00+08:00"});
    let (status, body) = app.post(&format!("/api/v1/experts/{wang_id}/exceptions"), &wang, &leave).await;
    assert_problem(status, &body, 422, "validation_failed", Some("start"));
    let end = (first_at + Duration::weeks(54)).to_rfc3339();
    let leave = json!({"kind": "leave", "start": beyond, "end": end});
    let (status, body) = app.post(&format!("/api/v1/experts/{wang_id}/exceptions"), &wang, &leave).await;
    assert_problem(status, &body, 422, "beyond_booking_horizon", Some("start"));
    let (_, exceptions) = app.get(&format!("/api/v1/experts/{wang_id}/exceptions"), &wang).await;
    assert_eq!(exceptions["items"], json!([]));
}
db_test!(far_future_times_are_refused);

async fn nul_in_text_is_refused(app: &TestApp) {
    let li = app.login("dr.li").await;
    let body = json!({"name": "张\u{0}三", "sex": "male", "birth_date": "1970-01-01"});
    let (status, problem) = app.post("/api/v1/patients", &li, &body).await;
    assert_problem(status, &problem, 422, "validation_failed", Some("name"));
    let (_, list) = app.get("/api/v1/patients?q=%E5%BC%A0", &li).await;
    assert!(list["items"].as_array().unwrap().iter().all(|p| !p["name"].as_str().unwrap().contains('\0')), "{list}");
    // Nested text, and a query parameter.
    let id = app.consultation().accepted().await;
    let (status, problem) =
        app.post(&format!("/api/v1/consultations/{id}/notes"), &li, &json!({"body": "血压\u{0}正常"})).await;
    assert_problem(status, &problem, 422, "validation_failed", Some("body"));
    let (status, problem) = app.get("/api/v1/patients?q=%00", &li).await;
    assert_problem(status, &problem, 422, "validation_failed", Some("q"));
    // A path segment with NUL names nothing.
    let (status, problem) =
        app.get(&format!("/api/v1/consultations/{id}/dicomweb/studies/1.2%003/metadata"), &li).await;
    assert_problem(status, &problem, 404, "not_found", None);
    // An escaped backslash before "u0000" is ordinary text.
    let body = json!({"name": "王\\u0000五", "sex": "male", "birth_date": "1970-01-01"});
    let (status, created) = app.post("/api/v1/patients", &li, &body).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["name"], "王\\u0000五");
}
db_test!(nul_in_text_is_refused);

async fn a_body_must_be_an_object(app: &TestApp) {
    let li = app.login("dr.li").await;
    let (_, before) = app.get("/api/v1/patients", &li).await;
    let (status, problem) = app.post("/api/v1/patients", &li, &json!(["A", "male", "1970-01-01"])).await;
    assert_problem(status, &problem, 422, "validation_failed", None);
    for scalar in [json!("A"), json!(5), json!(null)] {
        let (status, problem) = app.post("/api/v1/patients", &li, &scalar).await;
        assert_problem(status, &problem, 422, "validation_failed", None);
    }
    let (_, after) = app.get("/api/v1/patients", &li).await;
    assert_eq!(before["items"].as_array().unwrap().len(), after["items"].as_array().unwrap().len());
    // Nested too: the consent as an array of its fields.
    let body = json!({
        "patient_id": app.patient_id("patient.zhang").await,
        "reason": "反复胸闷两周",
        "specialty": "cardiology",
        "min_title": "attending",
        "urgency": "urgent",
        "mode": "video",
        "addressee": {"kind": "pool"},
        "consent": ["patient", "", "written", "2026-11-22T09:00:00+08:00"]
    });
    let (status, problem) = app.post("/api/v1/consultations", &li, &body).await;
    assert_problem(status, &problem, 422, "validation_failed", Some("consent"));
    // Broken JSON is still malformed, an object still welcome.
    let resp = app
        .http
        .post(app.url("/api/v1/patients"))
        .bearer_auth(&li)
        .header("content-type", "application/json")
        .body("[\"A\", ")
        .send()
        .await
        .unwrap();
    let (status, problem) = common::split(resp).await;
    assert_problem(status, &problem, 400, "malformed_json", None);
    let body = json!({"name": "赵四", "sex": "male", "birth_date": "1970-01-01"});
    assert_eq!(app.post("/api/v1/patients", &li, &body).await.0, 201);
}
db_test!(a_body_must_be_an_object);

async fn a_garbage_cursor_is_refused(app: &TestApp) {
    let li = app.login("dr.li").await;
    let admin = app.login("admin").await;
    for (path, token) in [
        ("/api/v1/patients", &li),
        ("/api/v1/consultations", &li),
        ("/api/v1/notifications", &li),
        ("/api/v1/audit", &admin),
        ("/api/v1/netcheck/results", &admin),
    ] {
        for cursor in ["garbage", "zzzz", "%27%20OR%201%3D1", "01234567-89AB-CDEF-0123-456789ABCDEF"] {
            let (status, problem) = app.get(&format!("{path}?cursor={cursor}"), token).await;
            assert_problem(status, &problem, 422, "validation_failed", Some("cursor"));
        }
    }
    // A cursor the list handed out still pages on.
    let (status, first) = app.get("/api/v1/patients?limit=1", &li).await;
    assert_eq!(status, 200, "{first}");
    let next = first["next"].as_str().expect("dr.li's centre has two patients");
    let (status, second) = app.get(&format!("/api/v1/patients?limit=1&cursor={next}"), &li).await;
    assert_eq!(status, 200, "{second}");
    assert_eq!(second["items"].as_array().unwrap().len(), 1, "{second}");
    assert_ne!(second["items"][0]["id"], first["items"][0]["id"]);
}
db_test!(a_garbage_cursor_is_refused);

/// Makes the app's database unreachable: PostgreSQL drops the app's database, ending its
/// connections; SQLite closes the app's connection pool.
async fn take_the_database_away(app: &TestApp) {
    match app.backend {
        Backend::Sqlite => app.state.db.pool.close().await,
        Backend::Postgres => {
            use sqlx::Connection;
            let admin = std::env::var("TEST_DATABASE_URL").unwrap();
            let name = app.state.config.database_url.rsplit('/').next().unwrap().to_string();
            let mut conn = sqlx::PgConnection::connect(&admin).await.unwrap();
            sqlx::Executor::execute(&mut conn, format!("DROP DATABASE {name} WITH (FORCE)").as_str()).await.unwrap();
        }
    }
}

async fn an_unreachable_database_is_503_with_retry_after(app: &TestApp) {
    let li = app.login("dr.li").await;
    assert_eq!(app.get("/api/v1/patients", &li).await.0, 200);
    take_the_database_away(app).await;
    for _ in 0..2 {
        let resp = app.http.get(app.url("/api/v1/patients")).bearer_auth(&li).send().await.unwrap();
        let retry_after = resp.headers().get("retry-after").map(|v| v.to_str().unwrap().to_string());
        let (status, problem) = common::split(resp).await;
        assert_problem(status, &problem, 503, "database_unavailable", None);
        assert_eq!(retry_after.as_deref(), Some("5"));
    }
    let body = json!({"name": "赵四", "sex": "male", "birth_date": "1970-01-01"});
    let (status, problem) = app.post("/api/v1/patients", &li, &body).await;
    assert_problem(status, &problem, 503, "database_unavailable", None);
    let resp = app
        .http
        .post(app.url("/api/v1/auth/login"))
        .json(&json!({"username": "dr.li", "password": "demo-password"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 503);
    let (status, problem) = common::split(app.http.get(app.url("/readyz")).send().await.unwrap()).await;
    assert_problem(status, &problem, 503, "database_unavailable", None);
}
db_test!(an_unreachable_database_is_503_with_retry_after);

async fn an_upload_larger_than_the_free_space_is_refused_at_creation(app: &TestApp) {
    let li = app.login("dr.li").await;
    let id = app.consultation().accepted().await;
    let free = app.state.files.storage.free_bytes().expect("local storage measures its free space");
    let create = |length: u64| {
        app.http
            .post(app.url(&format!("/api/v1/consultations/{id}/uploads")))
            .bearer_auth(&li)
            .header("tus-resumable", "1.0.0")
            .header("upload-length", length.to_string())
            .send()
    };
    // Larger than the disk's free space (with a margin for what others write meanwhile).
    let (status, problem) = common::split(create(free + (1 << 30)).await.unwrap()).await;
    assert_problem(status, &problem, 507, "insufficient_storage", None);
    // What fits is taken.
    assert_eq!(create(1 << 20).await.unwrap().status(), 201);
}

fn without_upload_limit(c: &mut teleconsult::config::Config) {
    c.files_max_upload_bytes = u64::MAX;
    c.files_reserve_bytes = 0;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_larger_than_the_free_space_is_refused_on_sqlite() {
    let app = TestApp::spawn_with(Backend::Sqlite, None, without_upload_limit).await;
    an_upload_larger_than_the_free_space_is_refused_at_creation(&app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_larger_than_the_free_space_is_refused_on_postgres() {
    if let Some(app) = TestApp::spawn_postgres_with(without_upload_limit).await {
        an_upload_larger_than_the_free_space_is_refused_at_creation(&app).await;
    }
}

/// SQLite reports a full disk (SQLITE_FULL) when the database may not grow: with every pooled
/// connection limited to the pages the file has now, new records find no room.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_database_disk_is_507_on_sqlite() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let li = app.login("dr.li").await;
    let mut held = Vec::new();
    for _ in 0..app.state.db.pool.options().get_max_connections() {
        let mut conn = app.state.db.pool.acquire().await.unwrap();
        let (pages,): (i64,) = sqlx::query_as("PRAGMA page_count").fetch_one(&mut *conn).await.unwrap();
        sqlx::query(&format!("PRAGMA max_page_count = {pages}")).execute(&mut *conn).await.unwrap();
        held.push(conn);
    }
    drop(held);
    let mut answers = Vec::new();
    for i in 0..500 {
        let body =
            json!({"name": format!("患者{i:04}{}", "名".repeat(40)), "sex": "female", "birth_date": "1970-01-01"});
        let (status, problem) = app.post("/api/v1/patients", &li, &body).await;
        answers.push(status);
        if status != 201 {
            assert_problem(status, &problem, 507, "insufficient_storage", None);
            break;
        }
    }
    assert_eq!(answers.last(), Some(&507), "the database never filled up: {answers:?}");
    // A read of patient data that cannot be audited is refused the same way; the database
    // itself is still reachable.
    let (status, problem) = app.get("/api/v1/patients", &li).await;
    assert_problem(status, &problem, 507, "insufficient_storage", None);
    assert_eq!(app.http.get(app.url("/readyz")).send().await.unwrap().status(), 200);
}
