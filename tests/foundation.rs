//! The foundation as its users meet it: sign-in, tokens, access by role and relationship,
//! audit, errors, operations endpoints — on SQLite and on PostgreSQL.

mod common;

use common::TestApp;
use serde_json::{json, Value};

async fn patient_id_of(app: &TestApp, username: &str) -> String {
    let token = app.login(username).await;
    let (_, me) = app.get("/api/v1/me", &token).await;
    me["patient_id"].as_str().expect("patient account has a record").to_string()
}

async fn signed_in_doctor_reads_me(app: &TestApp) {
    let token = app.login("dr.li").await;
    let (status, me) = app.get("/api/v1/me", &token).await;
    assert_eq!(status, 200);
    assert_eq!(me["username"], "dr.li");
    assert_eq!(me["role"], "community_doctor");
    assert_eq!(me["organisation_name"], "东湖社区卫生服务中心");

    let (status, wang) = app.get("/api/v1/me", &app.login("dr.wang").await).await;
    assert_eq!(status, 200);
    assert_eq!(wang["expert"]["title"], "chief");
    assert_eq!(wang["expert"]["specialties"], json!(["cardiology"]));
}
db_test!(signed_in_doctor_reads_me);

async fn wrong_password_is_refused_then_rate_limited(app: &TestApp) {
    let attempt = || async {
        app.http
            .post(app.url("/api/v1/auth/login"))
            .json(&json!({"username": "dr.zhao", "password": "not-the-password"}))
            .send()
            .await
            .unwrap()
    };
    for i in 0..5 {
        let resp = attempt().await;
        assert_eq!(resp.status(), 401, "attempt {i}");
        assert_eq!(resp.headers()["content-type"], "application/problem+json");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["code"], "invalid_credentials");
        assert_eq!(body["status"], 401);
    }
    let resp = attempt().await;
    assert_eq!(resp.status(), 429);
    let retry: u64 = resp.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "Retry-After {retry}");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["code"], "rate_limited");
    // Even the right password is refused while the account is locked out.
    let resp = app
        .http
        .post(app.url("/api/v1/auth/login"))
        .json(&json!({"username": "dr.zhao", "password": "demo-password"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 429);
}
db_test!(wrong_password_is_refused_then_rate_limited);

async fn patient_sees_only_own_record_and_its_access_log(app: &TestApp) {
    let zhang = app.login("patient.zhang").await;
    let zhang_id = patient_id_of(app, "patient.zhang").await;
    let liu_id = patient_id_of(app, "patient.liu").await;

    let (status, body) = app.get(&format!("/api/v1/patients/{liu_id}"), &zhang).await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["code"], "not_found");
    let (status, own) = app.get(&format!("/api/v1/patients/{zhang_id}"), &zhang).await;
    assert_eq!(status, 200);
    assert_eq!(own["name"], "张秀英");
    let (_, list) = app.get("/api/v1/patients", &zhang).await;
    assert_eq!(list["items"].as_array().unwrap().len(), 1);

    // Dr. Li reads Zhang's record; Zhang sees that in her access log.
    let li = app.login("dr.li").await;
    let (status, _) = app.get(&format!("/api/v1/patients/{zhang_id}"), &li).await;
    assert_eq!(status, 200);
    let (status, log) = app.get("/api/v1/audit", &zhang).await;
    assert_eq!(status, 200, "{log}");
    let events = log["items"].as_array().unwrap();
    assert!(events.iter().any(|e| e["actor_name"] == "李明" && e["action"] == "read" && e["outcome"] == "success"));
    assert!(events.iter().all(|e| e["patient_id"] == zhang_id.as_str()));
    // Zhang's own failed attempt on Liu's record is in Liu's log, not Zhang's.
    assert!(!events.iter().any(|e| e["outcome"] == "denied"));
    let (status, _) = app.get(&format!("/api/v1/audit?patient_id={liu_id}"), &zhang).await;
    assert_eq!(status, 404);

    let admin = app.login("admin").await;
    let (_, all) = app.get(&format!("/api/v1/audit?patient_id={liu_id}"), &admin).await;
    assert!(all["items"].as_array().unwrap().iter().any(|e| e["outcome"] == "denied" && e["actor_role"] == "patient"));
    // Reading the trail is itself in the trail, with the patient it was read for.
    let (_, again) = app.get(&format!("/api/v1/audit?patient_id={liu_id}"), &admin).await;
    assert!(
        again["items"].as_array().unwrap().iter().any(|e| e["action"] == "read"
            && e["resource_type"] == "audit_trail"
            && e["actor_role"] == "admin"
            && e["patient_id"] == liu_id.as_str()),
        "{again}"
    );
    let (status, _) = app.get("/api/v1/audit", &li).await;
    assert_eq!(status, 403);
}
db_test!(patient_sees_only_own_record_and_its_access_log);

async fn doctors_see_patients_of_their_own_centre(app: &TestApp) {
    let zhang_id = patient_id_of(app, "patient.zhang").await;
    let zhao = app.login("dr.zhao").await;
    let (status, _) = app.get(&format!("/api/v1/patients/{zhang_id}"), &zhao).await;
    assert_eq!(status, 404);
    let (_, list) = app.get("/api/v1/patients", &zhao).await;
    assert_eq!(list["items"], json!([]));

    let li = app.login("dr.li").await;
    let (status, p) = app.get(&format!("/api/v1/patients/{zhang_id}"), &li).await;
    assert_eq!(status, 200);
    assert_eq!(p["resident_id"].as_str().unwrap().len(), 18);
    assert!(!p["resident_id"].as_str().unwrap().contains('*'));

    // The hospital coordinator sees linked centres' patients, with the ID number masked.
    let coord = app.login("coordinator").await;
    let (status, p) = app.get(&format!("/api/v1/patients/{zhang_id}"), &coord).await;
    assert_eq!(status, 200);
    assert!(p["resident_id"].as_str().unwrap().contains("***"), "{p}");

    // An expert with no consultation for the patient does not see them.
    let wang = app.login("dr.wang").await;
    let (status, _) = app.get(&format!("/api/v1/patients/{zhang_id}"), &wang).await;
    assert_eq!(status, 404);

    // Registering and editing a patient of one's own centre works; search finds them.
    let (status, created) = app
        .post(
            "/api/v1/patients",
            &li,
            &json!({"name": "孙桂兰", "sex": "female", "birth_date": "1950-01-02", "phone": "13900000000"}),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let (_, found) = app.get("/api/v1/patients?q=%E5%AD%99", &li).await;
    assert_eq!(found["items"].as_array().unwrap().len(), 1);
    let (status, bad) =
        app.post("/api/v1/patients", &li, &json!({"name": "X", "sex": "female", "birth_date": "1950-13-40"})).await;
    assert_eq!(status, 422);
    assert_eq!(bad["errors"][0]["field"], "birth_date");
    let (status, bad) = app
        .post(
            "/api/v1/patients",
            &li,
            &json!({"name": "X", "sex": "female", "birth_date": "1950-01-01", "resident_id": "110105194912310021"}),
        )
        .await;
    assert_eq!(status, 422);
    assert_eq!(bad["errors"][0]["field"], "resident_id");
    let (status, updated) = app
        .patch(&format!("/api/v1/patients/{}", created["id"].as_str().unwrap()), &li, &json!({"phone": "13900000009"}))
        .await;
    assert_eq!(status, 200);
    assert_eq!(updated["phone"], "13900000009");
    let (status, _) = app
        .patch(&format!("/api/v1/patients/{}", created["id"].as_str().unwrap()), &zhao, &json!({"phone": "1"}))
        .await;
    assert_eq!(status, 404);
}
db_test!(doctors_see_patients_of_their_own_centre);

async fn forged_and_expired_tokens_are_refused(app: &TestApp) {
    let token = app.login("dr.li").await;
    let mut forged = token.clone();
    forged.pop();
    forged.push(if token.ends_with('A') { 'B' } else { 'A' });
    for bad in [forged.as_str(), "not-a-jwt", ""] {
        let (status, body) = app.get("/api/v1/me", bad).await;
        assert_eq!(status, 401, "{bad}");
        assert_eq!(body["code"], "unauthorized");
    }
    let resp = app.http.get(app.url("/api/v1/me")).send().await.unwrap();
    assert_eq!(resp.status(), 401);
    // A token signed with another key, as an attacker would make it.
    let other = teleconsult::auth::jwt::JwtKeys::new(
        b"attacker-key-attacker-key-attacker",
        "teleconsult",
        "teleconsult-api",
        900,
    );
    let (t, _) = other
        .issue(teleconsult::auth::jwt::Subject {
            user_id: "x",
            name: "admin",
            role: teleconsult::auth::Role::Admin,
            org: "o",
            generation: 0,
            family: "",
            device: "",
        })
        .unwrap();
    assert_eq!(app.get("/api/v1/me", &t).await.0, 401);
}
db_test!(forged_and_expired_tokens_are_refused);

async fn refresh_rotates_and_reuse_revokes_the_family(app: &TestApp) {
    let first = app.login_full("dr.li").await;
    let r1 = first["refresh_token"].as_str().unwrap();
    let (status, second) = app.post("/api/v1/auth/refresh", "", &json!({"refresh_token": r1})).await;
    assert_eq!(status, 200, "{second}");
    let r2 = second["refresh_token"].as_str().unwrap().to_string();
    assert_ne!(r1, r2);
    assert_eq!(app.get("/api/v1/me", second["access_token"].as_str().unwrap()).await.0, 200);
    // r1 again: reuse. The whole family, r2 included, is revoked.
    let (status, body) = app.post("/api/v1/auth/refresh", "", &json!({"refresh_token": r1})).await;
    assert_eq!(status, 401);
    assert_eq!(body["code"], "invalid_refresh_token");
    let (status, _) = app.post("/api/v1/auth/refresh", "", &json!({"refresh_token": r2})).await;
    assert_eq!(status, 401);
    // Logout revokes.
    let third = app.login_full("dr.li").await;
    let r3 = third["refresh_token"].as_str().unwrap();
    let resp = app.http.post(app.url("/api/v1/auth/logout")).json(&json!({"refresh_token": r3})).send().await.unwrap();
    assert_eq!(resp.status(), 204);
    assert_eq!(app.post("/api/v1/auth/refresh", "", &json!({"refresh_token": r3})).await.0, 401);
}
db_test!(refresh_rotates_and_reuse_revokes_the_family);

async fn bad_input_gets_problem_json(app: &TestApp) {
    let li = app.login("dr.li").await;
    let send = |body: &'static str, ct: Option<&'static str>| {
        let mut req = app.http.post(app.url("/api/v1/patients")).bearer_auth(&li).body(body);
        if let Some(ct) = ct {
            req = req.header("content-type", ct);
        }
        req.send()
    };
    let resp = send("{not json", Some("application/json")).await.unwrap();
    assert_eq!(resp.status(), 400);
    assert_eq!(resp.headers()["content-type"], "application/problem+json");
    assert_eq!(resp.json::<Value>().await.unwrap()["code"], "malformed_json");

    let resp =
        send(r#"{"name": 5, "sex": "female", "birth_date": "1950-01-01"}"#, Some("application/json")).await.unwrap();
    assert_eq!(resp.status(), 422);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["code"], "validation_failed");
    assert_eq!(body["errors"][0]["field"], "name");

    let resp = send(r#"{"sex": "female", "birth_date": "1950-01-01"}"#, Some("application/json")).await.unwrap();
    assert_eq!(resp.status(), 422);
    assert_eq!(resp.json::<Value>().await.unwrap()["errors"][0]["field"], "name");

    let resp = send(r#"{"name": "x"}"#, None).await.unwrap();
    assert_eq!(resp.status(), 415);
    assert_eq!(resp.json::<Value>().await.unwrap()["code"], "unsupported_media_type");

    let big = format!(r#"{{"name": "{}", "sex": "female", "birth_date": "1950-01-01"}}"#, "x".repeat(2 * 1024 * 1024));
    // A fresh client: the server closes the connection of a refused oversized body.
    let resp = reqwest::Client::new()
        .post(app.url("/api/v1/patients"))
        .bearer_auth(&li)
        .header("content-type", "application/json")
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 413);
    assert_eq!(resp.headers()["connection"], "close", "the connection is not offered for reuse");
    assert_eq!(resp.json::<Value>().await.unwrap()["code"], "payload_too_large");

    let (status, body) = app.get("/api/v1/no-such-route", &li).await;
    assert_eq!(status, 404);
    assert_eq!(body["code"], "not_found");
    let (status, body) = app.get("/api/v1/patients/%00%2F..%2Fetc", &li).await;
    assert_eq!(status, 404, "{body}");
    let (status, body) = app.get("/api/v1/patients?limit=lots", &li).await;
    assert_eq!(status, 400);
    assert_eq!(body["code"], "invalid_query");
    // The server is still there.
    assert_eq!(app.get("/api/v1/me", &li).await.0, 200);
}
db_test!(bad_input_gets_problem_json);

async fn managers_create_organisations_and_users(app: &TestApp) {
    let admin = app.login("admin").await;
    let (status, org) = app
        .post("/api/v1/organisations", &admin, &json!({"name": "南山卫生院", "kind": "community_health_centre"}))
        .await;
    assert_eq!(status, 201, "{org}");
    let org_id = org["id"].as_str().unwrap();
    let (status, user) = app
        .post(
            "/api/v1/users",
            &admin,
            &json!({"username": "dr.sun", "display_name": "孙医生", "password": "a-long-password", "role": "community_doctor", "organisation_id": org_id}),
        )
        .await;
    assert_eq!(status, 201, "{user}");
    let resp = app
        .http
        .post(app.url("/api/v1/auth/login"))
        .json(&json!({"username": "dr.sun", "password": "a-long-password"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let (status, dup) = app
        .post(
            "/api/v1/users",
            &admin,
            &json!({"username": "dr.sun", "display_name": "x", "password": "a-long-password", "role": "community_doctor", "organisation_id": org_id}),
        )
        .await;
    assert_eq!(status, 409);
    assert_eq!(dup["code"], "already_exists");
    let (status, _) = app
        .post("/api/v1/organisations", &app.login("dr.li").await, &json!({"name": "x", "kind": "medical_corner"}))
        .await;
    assert_eq!(status, 403);
    // Deactivation, not deletion: the account can no longer sign in.
    let (status, _) =
        app.patch(&format!("/api/v1/users/{}", user["id"].as_str().unwrap()), &admin, &json!({"active": false})).await;
    assert_eq!(status, 200);
    let resp = app
        .http
        .post(app.url("/api/v1/auth/login"))
        .json(&json!({"username": "dr.sun", "password": "a-long-password"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    let (_, experts) = app.get("/api/v1/experts?specialty=cardiology", &admin).await;
    let names: Vec<&str> = experts["items"].as_array().unwrap().iter().map(|e| e["name"].as_str().unwrap()).collect();
    assert_eq!(names, vec!["王建国"]);
}
db_test!(managers_create_organisations_and_users);

async fn operations_endpoints_and_headers(app: &TestApp) {
    let resp = app.http.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    for h in ["content-security-policy", "x-content-type-options", "referrer-policy"] {
        assert!(resp.headers().contains_key(h), "missing {h}");
    }
    assert!(resp.headers()["content-security-policy"].to_str().unwrap().contains("frame-ancestors 'none'"));
    assert!(resp.headers().get("access-control-allow-origin").is_none());
    assert_eq!(app.http.get(app.url("/readyz")).send().await.unwrap().status(), 200);
    let _ = app.login("dr.li").await;
    let metrics = app.http.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(
        metrics.contains(r#"teleconsult_http_requests_total{method="POST",route="/api/v1/auth/login",status="200"}"#),
        "{metrics}"
    );

    let doc: Value = app.http.get(app.url("/api/v1/openapi.json")).send().await.unwrap().json().await.unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    let registered = teleconsult::app::routes();
    for r in registered.docs() {
        assert!(doc["paths"][r.path][r.method].is_object(), "{} {} missing from OpenAPI", r.method, r.path);
    }
    for p in ["/api/v1/auth/login", "/api/v1/me", "/api/v1/patients/{id}", "/api/v1/audit", "/healthz", "/metrics"] {
        assert!(doc["paths"][p].is_object(), "{p}");
    }
}
db_test!(operations_endpoints_and_headers);
