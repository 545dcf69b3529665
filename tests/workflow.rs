//! The consultation workflow as its users meet it: a request with consent, matching,
//! accept/decline/claim, availability and atomic booking, notifications and reminders.

mod common;

use common::TestApp;
use serde_json::{json, Value};

fn request_body(patient: &str, addressee: Value) -> Value {
    json!({
        "patient_id": patient,
        "reason": "反复胸闷两周，心电图 ST 段改变",
        "record_summary": "高血压 10 年，规律服药",
        "specialty": "cardiology",
        "min_title": "attending",
        "urgency": "urgent",
        "mode": "video",
        "addressee": addressee,
        "consent": common::written_consent()
    })
}

/// dr.li asks dr.wang for an urgent video consultation for patient.zhang; returns its id.
async fn request_for_wang(app: &TestApp, li: &str) -> String {
    let wang = app.user_id("dr.wang").await;
    let zhang = app.patient_id("patient.zhang").await;
    let (status, c) = app
        .post("/api/v1/consultations", li, &request_body(&zhang, json!({"kind": "expert", "expert_id": wang})))
        .await;
    assert_eq!(status, 201, "{c}");
    assert_eq!(c["state"], "requested");
    c["id"].as_str().unwrap().to_string()
}

/// A new expert of cardiology at dr.wang's hospital, made by the admin; answers the id.
async fn cardiology_expert(app: &TestApp, username: &str, name: &str, title: &str) -> String {
    let admin = app.login("admin").await;
    let (_, wang_me) = app.get("/api/v1/me", &app.login("dr.wang").await).await;
    let hospital = wang_me["organisation_id"].as_str().unwrap();
    let (status, u) = app
        .post(
            "/api/v1/users",
            &admin,
            &json!({"username": username, "display_name": name, "password": "demo-password", "role": "expert",
                    "organisation_id": hospital, "expert": {"title": title, "specialties": ["cardiology"]}}),
        )
        .await;
    assert_eq!(status, 201, "{u}");
    u["id"].as_str().unwrap().to_string()
}

async fn first_slot(app: &TestApp, expert: &str, token: &str) -> String {
    let (status, slots) = app.get(&format!("/api/v1/experts/{expert}/slots"), token).await;
    assert_eq!(status, 200, "{slots}");
    let first = slots["items"][0]["start"].as_str().expect("the demo expert has free slots in the next two weeks");
    assert!(first.ends_with("+08:00"), "{first}");
    first.to_string()
}

async fn the_demo_consultation_flow(app: &TestApp) {
    let li = app.login("dr.li").await;
    let wang = app.login("dr.wang").await;
    let wang_id = app.user_id("dr.wang").await;
    let id = request_for_wang(app, &li).await;

    // The candidates: dr.wang first, with reasons; dr.chen (radiology) is not proposed.
    let (status, cands) = app.get(&format!("/api/v1/consultations/{id}/candidates"), &li).await;
    assert_eq!(status, 200, "{cands}");
    assert_eq!(cands["items"][0]["expert_id"], wang_id.as_str());
    let reasons = cands["items"][0]["reasons"].as_array().unwrap();
    assert!(reasons.iter().any(|r| r.as_str().unwrap().contains("cardiology")), "{reasons:?}");
    assert!(reasons.iter().any(|r| r.as_str().unwrap().contains("consortium")), "{reasons:?}");
    assert_eq!(cands["items"].as_array().unwrap().len(), 1);

    // dr.wang was told of the request, and accepts; dr.li is told of the acceptance.
    let (_, inbox) = app.get("/api/v1/notifications", &wang).await;
    assert!(inbox["items"]
        .as_array()
        .unwrap()
        .iter()
        .any(|n| n["kind"] == "request_matched" && n["consultation_id"] == id.as_str()));
    let (status, accepted) = app.post(&format!("/api/v1/consultations/{id}/accept"), &wang, &json!({})).await;
    assert_eq!(status, 200, "{accepted}");
    assert_eq!(accepted["state"], "accepted");
    let (_, inbox) = app.get("/api/v1/notifications", &li).await;
    assert!(inbox["items"].as_array().unwrap().iter().any(|n| n["kind"] == "accepted"));

    // An action that makes no sense now.
    let (status, body) = app.post(&format!("/api/v1/consultations/{id}/submit"), &li, &json!({})).await;
    assert_eq!(status, 409);
    assert_eq!(body["code"], "invalid_transition");
    assert!(body["detail"].as_str().unwrap().contains("accepted"), "{body}");

    // Book the first free slot; the same slot again is taken.
    let start = first_slot(app, &wang_id, &li).await;
    let book = json!({"consultation_id": id, "expert_id": wang_id, "start": start});
    let (status, appt) = app.post("/api/v1/appointments", &li, &book).await;
    assert_eq!(status, 201, "{appt}");
    assert_eq!(appt["start"], start.as_str());
    let (status, body) = app.post("/api/v1/appointments", &li, &book).await;
    assert_eq!(status, 409);
    assert_eq!(body["code"], "slot_taken");
    let (_, slots) = app.get(&format!("/api/v1/experts/{wang_id}/slots"), &li).await;
    assert_ne!(slots["items"][0]["start"], start.as_str(), "a booked slot is no longer offered");

    let (_, c) = app.get(&format!("/api/v1/consultations/{id}"), &li).await;
    assert_eq!(c["state"], "scheduled");
    let actions: Vec<&str> =
        c["transitions"].as_array().unwrap().iter().map(|t| t["action"].as_str().unwrap()).collect();
    assert_eq!(actions, vec!["submit", "accept", "schedule"]);
    assert_eq!(c["consent"]["method"], "written");
    assert_eq!(c["consent"]["witness_name"], "李明");

    // Patient Zhang takes part; patient Liu and Dr. Zhao do not see it.
    let zhang = app.login("patient.zhang").await;
    assert_eq!(app.get(&format!("/api/v1/consultations/{id}"), &zhang).await.0, 200);
    let liu = app.login("patient.liu").await;
    let (status, body) = app.get(&format!("/api/v1/consultations/{id}"), &liu).await;
    assert_eq!(status, 404);
    assert_eq!(body["code"], "not_found");
    let (_, list) = app.get("/api/v1/consultations", &liu).await;
    assert_eq!(list["items"], json!([]));
    let zhao = app.login("dr.zhao").await;
    assert_eq!(app.get(&format!("/api/v1/consultations/{id}"), &zhao).await.0, 404);
    // The expert now sees the patient's record.
    let zhang_pid = app.patient_id("patient.zhang").await;
    assert_eq!(app.get(&format!("/api/v1/patients/{zhang_pid}"), &wang).await.0, 200);

    // Lists filter by state.
    let (_, scheduled) = app.get("/api/v1/consultations?state=scheduled", &li).await;
    assert_eq!(scheduled["items"].as_array().unwrap().len(), 1);
    let (_, none) = app.get("/api/v1/consultations?state=completed", &li).await;
    assert_eq!(none["items"], json!([]));
    let (status, bad) = app.get("/api/v1/consultations?state=soon", &li).await;
    assert_eq!(status, 400, "{bad}");
}
db_test!(the_demo_consultation_flow);

/// dr.li sees the ranked candidates while filling in a request, before anything is saved.
async fn candidates_for_an_unsaved_request(app: &TestApp) {
    let li = app.login("dr.li").await;
    let admin = app.login("admin").await;
    let li_id = app.user_id("dr.li").await;
    let wang_id = app.user_id("dr.wang").await;
    let chen_id = app.user_id("dr.chen").await;
    let audit_path = format!("/api/v1/audit?actor_id={li_id}&limit=500");
    let (_, audit_before) = app.get(&audit_path, &admin).await;
    let (_, list_before) = app.get("/api/v1/consultations", &li).await;

    let criteria = json!({"specialty": "cardiology", "min_title": "attending", "urgency": "urgent"});
    let (status, cands) = app.post("/api/v1/consultations/candidates", &li, &criteria).await;
    assert_eq!(status, 200, "{cands}");
    let items = cands["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "only the cardiologist: {cands}");
    assert_eq!(items[0]["expert_id"], wang_id.as_str());
    assert_eq!(items[0]["name"], "王建国");
    let codes = items[0]["reason_codes"].as_array().unwrap();
    assert_eq!(codes[0], json!({"code": "availability_first", "urgency": "urgent"}));
    assert_eq!(codes[1], json!({"code": "specialty_match", "specialty": "cardiology"}));
    assert_eq!(codes[2], json!({"code": "title_meets_minimum", "title": "chief", "min_title": "attending"}));
    assert_eq!(codes[3], json!({"code": "consortium_partner"}));
    assert_eq!(codes[4]["code"], "earliest_slot", "the demo expert has free slots: {codes:?}");
    assert!(codes[4]["wait_minutes"].as_i64().unwrap() >= 0);
    assert_eq!(codes[5], json!({"code": "open_consultations", "count": 0}));
    // The English reasons stay, one per code.
    let reasons = items[0]["reasons"].as_array().unwrap();
    assert_eq!(reasons.len(), codes.len());
    assert_eq!(reasons[1], "specialty: cardiology");

    // The minimum title and the specialty decide who is listed.
    let radiology = |min_title: &str| json!({"specialty": "radiology", "min_title": min_title, "urgency": "routine"});
    let (status, cands) = app.post("/api/v1/consultations/candidates", &li, &radiology("attending")).await;
    assert_eq!(status, 200, "{cands}");
    let ids: Vec<&str> = cands["items"].as_array().unwrap().iter().map(|c| c["expert_id"].as_str().unwrap()).collect();
    assert_eq!(ids, [chen_id.as_str()]);
    let (_, cands) = app.post("/api/v1/consultations/candidates", &li, &radiology("chief")).await;
    assert_eq!(cands["items"], json!([]), "dr.chen is an associate chief");

    // Nothing was stored and, with no patient data touched, nothing audited.
    let (_, list_after) = app.get("/api/v1/consultations", &li).await;
    assert_eq!(list_after["items"], list_before["items"]);
    let (_, audit_after) = app.get(&audit_path, &admin).await;
    assert_eq!(audit_after["items"], audit_before["items"]);

    // The same ranking as for the request once it is saved.
    let id = request_for_wang(app, &li).await;
    let (_, saved) = app.get(&format!("/api/v1/consultations/{id}/candidates"), &li).await;
    let (_, unsaved) = app.post("/api/v1/consultations/candidates", &li, &criteria).await;
    let codes_of = |v: &Value| -> Vec<Value> {
        v["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                json!([
                    c["expert_id"],
                    c["reason_codes"].as_array().unwrap().iter().map(|r| r["code"].clone()).collect::<Vec<_>>()
                ])
            })
            .collect()
    };
    assert_eq!(codes_of(&unsaved), codes_of(&saved));

    // Bad criteria are problem+json validation errors naming the field.
    for (body, field) in [
        (json!({"specialty": "astrology", "min_title": "attending", "urgency": "urgent"}), "specialty"),
        (json!({"specialty": "cardiology", "min_title": "professor", "urgency": "urgent"}), "min_title"),
        (json!({"specialty": "cardiology", "min_title": "attending", "urgency": "urgentish"}), "urgency"),
        (json!({"specialty": "cardiology", "min_title": "attending"}), "urgency"),
    ] {
        let (status, problem) = app.post("/api/v1/consultations/candidates", &li, &body).await;
        assert_eq!(status, 422, "{body}: {problem}");
        assert_eq!(problem["code"], "validation_failed", "{problem}");
        assert!(problem.to_string().contains(field), "{field}: {problem}");
    }
    // Patient data does not belong here.
    let zhang = app.patient_id("patient.zhang").await;
    let with_patient =
        json!({"specialty": "cardiology", "min_title": "attending", "urgency": "urgent", "patient_id": zhang});
    let (status, problem) = app.post("/api/v1/consultations/candidates", &li, &with_patient).await;
    assert_eq!(status, 422, "{problem}");
    // Only a community doctor asks, for their own centre.
    for user in ["dr.wang", "patient.zhang"] {
        let token = app.login(user).await;
        let (status, problem) = app.post("/api/v1/consultations/candidates", &token, &criteria).await;
        assert_eq!(status, 403, "{user}: {problem}");
        assert_eq!(problem["code"], "forbidden");
    }
    let anonymous = app.http.post(app.url("/api/v1/consultations/candidates")).json(&criteria).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
}
db_test!(candidates_for_an_unsaved_request);

/// With several experts of the specialty, each with another calendar, every candidate's
/// earliest slot is that expert's own first free slot (as `GET /experts/{id}/slots` lists
/// it), open consultations are counted per expert, and experts of another specialty are left
/// out: the ranking reads all experts at once, not one by one.
async fn candidates_rank_each_expert_on_its_own_calendar(app: &TestApp) {
    let admin = app.login("admin").await;
    let li = app.login("dr.li").await;
    let hospital = app.get("/api/v1/me", &app.login("dr.wang").await).await.1["organisation_id"].clone();
    let new_expert = |username: &'static str, specialties: Value| {
        let body = json!({"username": username, "display_name": username, "password": "demo-password",
            "role": "expert", "organisation_id": hospital.clone(),
            "expert": {"title": "attending", "specialties": specialties, "time_zone": "Asia/Shanghai"}});
        let admin = admin.clone();
        async move {
            let (status, u) = app.post("/api/v1/users", &admin, &body).await;
            assert_eq!(status, 201, "{u}");
            u["id"].as_str().unwrap().to_string()
        }
    };
    let every_day = new_expert("dr.every-day", json!(["cardiology", "general_practice"])).await;
    let wednesdays = new_expert("dr.wednesdays", json!(["general_practice", "cardiology"])).await;
    let no_rules = new_expert("dr.no-rules", json!(["cardiology"])).await;
    let radiologist = new_expert("dr.radiology-only", json!(["radiology"])).await;
    let rules = |days: Vec<i64>, from: &str, to: &str| -> Value {
        let rules: Vec<Value> = days
            .iter()
            .map(|d| json!({"weekday": d, "start": from, "end": to, "slot_minutes": 30, "time_zone": "Asia/Shanghai"}))
            .collect();
        json!({"rules": rules, "policy": {"buffer_minutes": 0, "max_per_day": 0, "min_notice_minutes": 0}})
    };
    for (id, body) in [
        (&every_day, rules((1..=7).collect(), "00:00", "23:30")),
        (&wednesdays, rules(vec![3], "09:00", "10:00")),
        (&radiologist, rules((1..=7).collect(), "00:00", "23:30")),
    ] {
        let (status, body) = app.put(&format!("/api/v1/experts/{id}/availability"), &admin, &body).await;
        assert_eq!(status, 200, "{body}");
    }
    // Next Wednesday's first hour is leave for dr.wednesdays, so the one after is the first.
    let (status, body) = app
        .post(
            &format!("/api/v1/experts/{wednesdays}/exceptions"),
            &admin,
            &json!({"kind": "leave", "start": next_wednesday_at(9), "end": next_wednesday_at(10), "reason": "学术会议"}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    // dr.every-day has taken a consultation and it is booked into a slot.
    let (_, booked_at) =
        app.consultation().by("dr.li").addressed_to("dr.every-day").specialty("cardiology").booked().await;

    let criteria = json!({"specialty": "cardiology", "min_title": "attending", "urgency": "routine"});
    let before = chrono::Utc::now();
    let (status, cands) = app.post("/api/v1/consultations/candidates", &li, &criteria).await;
    assert_eq!(status, 200, "{cands}");
    let items = cands["items"].as_array().unwrap();
    let mut ids: Vec<&str> = items.iter().map(|c| c["expert_id"].as_str().unwrap()).collect();
    ids.sort_unstable();
    let wang = app.user_id("dr.wang").await;
    let mut expected = vec![wang.as_str(), every_day.as_str(), wednesdays.as_str(), no_rules.as_str()];
    expected.sort_unstable();
    assert_eq!(ids, expected, "the cardiologists, not the radiologist: {cands}");
    let codes = |id: &str| -> Vec<Value> {
        items.iter().find(|c| c["expert_id"] == id).unwrap()["reason_codes"].as_array().unwrap().clone()
    };
    assert!(codes(&no_rules).contains(&json!({"code": "no_free_slot"})), "{:?}", codes(&no_rules));
    assert!(codes(&every_day).contains(&json!({"code": "open_consultations", "count": 1})));
    assert!(codes(&wednesdays).contains(&json!({"code": "open_consultations", "count": 0})));
    let after = chrono::Utc::now();
    for id in [&wang, &every_day, &wednesdays] {
        let item = items.iter().find(|c| c["expert_id"] == id.as_str()).unwrap();
        let earliest = at(&item["earliest_slot"]);
        // The expert's own free slots from just before the ranking: the earliest is one of
        // them, and any listed before it began before the ranking was made.
        let (status, slots) = app.get(&format!("/api/v1/experts/{id}/slots?from={}", url_time(before)), &li).await;
        assert_eq!(status, 200, "{slots}");
        let starts: Vec<_> = slots["items"].as_array().unwrap().iter().map(|s| at(&s["start"])).collect();
        assert!(starts.contains(&earliest), "{id}: {item} not among {starts:?}");
        assert!(starts.iter().filter(|s| **s < earliest).all(|s| *s < after), "{id}: {item}, {starts:?}");
        // dr.every-day's booked slot is not free for him (others may be free then: at 09:00
        // in Shanghai dr.wang's demo clinic opens at the same time).
        if id == &every_day {
            assert_ne!(earliest, at(&json!(booked_at)), "a booked slot is not free");
        }
    }
    let wed = at(&items.iter().find(|c| c["expert_id"] == wednesdays.as_str()).unwrap()["earliest_slot"]);
    let (leave_from, leave_to) = (at(&json!(next_wednesday_at(9))), at(&json!(next_wednesday_at(10))));
    assert!(!(leave_from <= wed && wed < leave_to), "not during the leave: {wed}");

    // The ranking just made is kept by the instance; new hours and a new expert show at once.
    let rank = || async {
        let (status, cands) = app.post("/api/v1/consultations/candidates", &li, &criteria).await;
        assert_eq!(status, 200, "{cands}");
        cands["items"].as_array().unwrap().clone()
    };
    let item = |items: &[Value], id: &str| -> Value {
        items.iter().find(|c| c["expert_id"] == id).cloned().unwrap_or_else(|| panic!("{id} in {items:?}"))
    };
    let (status, body) = app
        .put(&format!("/api/v1/experts/{no_rules}/availability"), &admin, &rules((1..=7).collect(), "00:00", "23:30"))
        .await;
    assert_eq!(status, 200, "{body}");
    let items = rank().await;
    let given_hours = item(&items, &no_rules);
    assert!(given_hours["earliest_slot"].is_string(), "hours given just now: {given_hours}");
    assert!(!given_hours["reason_codes"].as_array().unwrap().contains(&json!({"code": "no_free_slot"})));
    let newcomer = new_expert("dr.newcomer", json!(["general_practice", "cardiology"])).await;
    let items = rank().await;
    let matched = json!({"code": "specialty_match", "specialty": "cardiology"});
    let newcomer = item(&items, &newcomer);
    assert!(newcomer["reason_codes"].as_array().unwrap().contains(&matched), "{newcomer}");
    assert!(newcomer["earliest_slot"].is_null(), "no hours yet: {newcomer}");
}
db_test!(candidates_rank_each_expert_on_its_own_calendar);

fn at(v: &Value) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::parse_from_rfc3339(v.as_str().unwrap_or_else(|| panic!("a time: {v}"))).unwrap().into()
}

fn url_time(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// `hour`:00 in Shanghai on the first Wednesday after today (Shanghai time), as RFC 3339.
fn next_wednesday_at(hour: u32) -> String {
    use chrono::Datelike;
    let today = (chrono::Utc::now() + chrono::Duration::hours(8)).date_naive();
    let ahead = (i64::from(chrono::Weekday::Wed.num_days_from_monday())
        - i64::from(today.weekday().num_days_from_monday()))
    .rem_euclid(7);
    let day = today + chrono::Duration::days(if ahead == 0 { 7 } else { ahead });
    format!("{day}T{hour:02}:00:00+08:00")
}

async fn no_consent_no_request(app: &TestApp) {
    let li = app.login("dr.li").await;
    let zhang = app.patient_id("patient.zhang").await;
    let mut body = request_body(&zhang, json!({"kind": "pool", "specialty": "cardiology"}));
    body.as_object_mut().unwrap().remove("consent");
    let (status, err) = app.post("/api/v1/consultations", &li, &body).await;
    assert_eq!(status, 422);
    assert_eq!(err["code"], "consent_required");
    // Nothing was stored.
    let (_, list) = app.get("/api/v1/consultations", &li).await;
    assert_eq!(list["items"], json!([]));
    // A doctor of another centre cannot request for this patient.
    let zhao = app.login("dr.zhao").await;
    let (status, _) = app.post("/api/v1/consultations", &zhao, &request_body(&zhang, json!({"kind": "pool"}))).await;
    assert_eq!(status, 404);
    // An expert cannot request at all.
    let (status, _) = app
        .post("/api/v1/consultations", &app.login("dr.wang").await, &request_body(&zhang, json!({"kind": "pool"})))
        .await;
    assert_eq!(status, 403);
}
db_test!(no_consent_no_request);

async fn decline_needs_a_reason_and_pool_decline_reopens(app: &TestApp) {
    let li = app.login("dr.li").await;
    let wang = app.login("dr.wang").await;
    let id = request_for_wang(app, &li).await;
    let (status, body) = app.post(&format!("/api/v1/consultations/{id}/decline"), &wang, &json!({})).await;
    assert_eq!(status, 422);
    assert_eq!(body["errors"][0]["field"], "reason");
    let (status, c) =
        app.post(&format!("/api/v1/consultations/{id}/decline"), &wang, &json!({"reason": "本周出差"})).await;
    assert_eq!(status, 200, "{c}");
    assert_eq!(c["state"], "declined");
    // Having declined, dr.wang no longer sees the consultation.
    assert_eq!(app.get(&format!("/api/v1/consultations/{id}"), &wang).await.0, 404);
    let (_, c) = app.get(&format!("/api/v1/consultations/{id}"), &li).await;
    assert_eq!(c["transitions"].as_array().unwrap().last().unwrap()["reason"], "本周出差");

    // A pool request: dr.wang declines, the request stays open; he then no longer sees it.
    let zhang = app.patient_id("patient.zhang").await;
    let (status, pool) = app.post("/api/v1/consultations", &li, &request_body(&zhang, json!({"kind": "pool"}))).await;
    assert_eq!(status, 201, "{pool}");
    let pid = pool["id"].as_str().unwrap();
    assert_eq!(app.get(&format!("/api/v1/consultations/{pid}"), &wang).await.0, 200);
    let (status, _) =
        app.post(&format!("/api/v1/consultations/{pid}/decline"), &wang, &json!({"reason": "满负荷"})).await;
    assert_eq!(status, 200);
    assert_eq!(app.get(&format!("/api/v1/consultations/{pid}"), &wang).await.0, 404);
    let (_, c) = app.get(&format!("/api/v1/consultations/{pid}"), &li).await;
    assert_eq!(c["state"], "requested");
}
db_test!(decline_needs_a_reason_and_pool_decline_reopens);

/// The one expert asked declines: the request is not lost. dr.li addresses it anew — to
/// another expert, as the brief's "decline re-opens matching" asks — and the request goes on
/// with its reason, consent and history (defect: a single expert's decline ended it for good,
/// and the doctor had to make the request, consent and uploads again). Only the requesting
/// doctor re-addresses, only a declined request, and never to an expert who declined it.
async fn a_declined_request_is_addressed_anew_by_its_doctor(app: &TestApp) {
    let sun_id = cardiology_expert(app, "dr.sun", "孙立", "attending").await;
    let li = app.login("dr.li").await;
    let wang = app.login("dr.wang").await;
    let wang_id = app.user_id("dr.wang").await;
    let id = request_for_wang(app, &li).await;
    let readdress = format!("/api/v1/consultations/{id}/readdress");
    let to = |expert: &str| json!({"addressee": {"kind": "expert", "expert_id": expert}});

    // Not before it is declined.
    let (status, body) = app.post(&readdress, &li, &to(&sun_id)).await;
    assert_eq!((status, body["code"].as_str()), (409, Some("invalid_transition")), "{body}");
    let (status, _) =
        app.post(&format!("/api/v1/consultations/{id}/decline"), &wang, &json!({"reason": "本周出差"})).await;
    assert_eq!(status, 200);
    // Not by anyone but dr.li; not to the expert who declined.
    let coord = app.login("coordinator").await;
    assert_eq!(app.post(&readdress, &coord, &to(&sun_id)).await.0, 403);
    assert_eq!(app.post(&readdress, &wang, &to(&sun_id)).await.0, 403);
    let (status, body) = app.post(&readdress, &li, &to(&wang_id)).await;
    assert_eq!((status, body["errors"][0]["field"].as_str()), (422, Some("addressee.expert_id")), "{body}");

    let (status, c) = app.post(&readdress, &li, &to(&sun_id)).await;
    assert_eq!(status, 200, "{c}");
    assert_eq!(c["state"], "requested");
    assert_eq!(c["reason"], "反复胸闷两周，心电图 ST 段改变");
    assert!(c["consent"].is_object(), "the consent recorded stays: {c}");
    let actions: Vec<&str> =
        c["transitions"].as_array().unwrap().iter().map(|t| t["action"].as_str().unwrap()).collect();
    assert_eq!(actions, ["submit", "decline", "readdress"]);
    // dr.sun is told, sees it and takes it; dr.wang still does not see it.
    let sun_token = app.login("dr.sun").await;
    let (_, inbox) = app.get("/api/v1/notifications", &sun_token).await;
    assert!(
        inbox["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n["kind"] == "request_matched" && n["consultation_id"] == id.as_str()),
        "{inbox}"
    );
    assert_eq!(app.get(&format!("/api/v1/consultations/{id}"), &wang).await.0, 404);
    let (status, c) = app.post(&format!("/api/v1/consultations/{id}/accept"), &sun_token, &json!({})).await;
    assert_eq!(status, 200, "{c}");
    assert_eq!(c["state"], "accepted");
    assert_eq!(c["assigned_expert_id"], sun_id.as_str());
}
db_test!(a_declined_request_is_addressed_anew_by_its_doctor);

/// Sent on to the department's pool after its one expert declined, the request is announced
/// to the pool's other experts and not again to the one who declined it, who does not see it.
async fn a_declined_request_sent_to_the_pool_is_not_announced_to_who_declined(app: &TestApp) {
    cardiology_expert(app, "dr.sun", "孙立", "attending").await;
    let li = app.login("dr.li").await;
    let wang = app.login("dr.wang").await;
    let id = request_for_wang(app, &li).await;
    let (status, _) =
        app.post(&format!("/api/v1/consultations/{id}/decline"), &wang, &json!({"reason": "本周出差"})).await;
    assert_eq!(status, 200);
    let (status, c) =
        app.post(&format!("/api/v1/consultations/{id}/readdress"), &li, &json!({"addressee": {"kind": "pool"}})).await;
    assert_eq!(status, 200, "{c}");
    assert_eq!((c["state"].as_str(), c["addressee_kind"].as_str()), (Some("requested"), Some("pool")));
    let matched = |inbox: &Value| {
        inbox["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|n| n["kind"] == "request_matched" && n["consultation_id"] == id.as_str())
            .count()
    };
    let sun = app.login("dr.sun").await;
    assert_eq!(matched(&app.get("/api/v1/notifications", &sun).await.1), 1);
    assert_eq!(matched(&app.get("/api/v1/notifications", &wang).await.1), 1, "only the first request's");
    assert_eq!(app.get(&format!("/api/v1/consultations/{id}"), &wang).await.0, 404);
    assert_eq!(app.get(&format!("/api/v1/consultations/{id}"), &sun).await.0, 200);
}
db_test!(a_declined_request_sent_to_the_pool_is_not_announced_to_who_declined);

async fn exactly_one_expert_claims_a_pool_request(app: &TestApp) {
    let admin = app.login("admin").await;
    let (_, wang_me) = app.get("/api/v1/me", &app.login("dr.wang").await).await;
    let hospital = wang_me["organisation_id"].as_str().unwrap();
    for name in ["dr.sun", "dr.zhou"] {
        let (status, u) = app
            .post(
                "/api/v1/users",
                &admin,
                &json!({"username": name, "display_name": name, "password": "demo-password", "role": "expert", "organisation_id": hospital,
                        "expert": {"title": "attending", "specialties": ["cardiology"]}}),
            )
            .await;
        assert_eq!(status, 201, "{u}");
    }
    let li = app.login("dr.li").await;
    let zhang = app.patient_id("patient.zhang").await;
    let (_, pool) = app
        .post("/api/v1/consultations", &li, &request_body(&zhang, json!({"kind": "pool", "specialty": "cardiology"})))
        .await;
    let id = pool["id"].as_str().unwrap().to_string();
    let tokens = [app.login("dr.wang").await, app.login("dr.sun").await, app.login("dr.zhou").await];
    let path = format!("/api/v1/consultations/{id}/claim");
    let empty = json!({});
    let claims = tokens.iter().map(|t| app.post(&path, t, &empty));
    let results = futures_util::future::join_all(claims).await;
    let won = results.iter().filter(|(s, _)| *s == 200).count();
    let lost: Vec<&Value> = results.iter().filter(|(s, _)| *s == 409).map(|(_, b)| b).collect();
    assert_eq!(won, 1, "{results:?}");
    assert_eq!(lost.len(), 2, "{results:?}");
    assert!(lost.iter().all(|b| b["code"] == "invalid_transition"));
    let (_, c) = app.get(&format!("/api/v1/consultations/{id}"), &li).await;
    assert_eq!(c["state"], "accepted");
    assert_eq!(c["participants"].as_array().unwrap().iter().filter(|p| p["role"] == "expert").count(), 1);
}
db_test!(exactly_one_expert_claims_a_pool_request);

/// A pool request asking for a chief physician is not shown to a resident of the same
/// department and specialty: not in his list, not by its id, not its record, not claimable
/// (defect: he read the patient's name, reason, summary and record; only the claim was
/// refused). An attending sees an attending-level request, as the chief does.
async fn a_pool_request_is_shown_only_to_experts_of_the_title_it_asks_for(app: &TestApp) {
    cardiology_expert(app, "dr.resident", "住院医", "resident").await;
    cardiology_expert(app, "dr.attending", "主治医", "attending").await;
    let li = app.login("dr.li").await;
    let zhang = app.patient_id("patient.zhang").await;
    let mut body = request_body(&zhang, json!({"kind": "pool", "specialty": "cardiology"}));
    body["min_title"] = json!("chief");
    let (status, chief_level) = app.post("/api/v1/consultations", &li, &body).await;
    assert_eq!(status, 201, "{chief_level}");
    let chief_level = chief_level["id"].as_str().unwrap().to_string();
    body["min_title"] = json!("attending");
    let (status, attending_level) = app.post("/api/v1/consultations", &li, &body).await;
    assert_eq!(status, 201, "{attending_level}");
    let attending_level = attending_level["id"].as_str().unwrap().to_string();

    let listed = |page: &Value, id: &str| page["items"].as_array().unwrap().iter().any(|c| c["id"] == id);
    let resident = app.login("dr.resident").await;
    let attending = app.login("dr.attending").await;
    let wang = app.login("dr.wang").await;
    for (token, sees_chief_level, sees_attending_level) in
        [(&resident, false, false), (&attending, false, true), (&wang, true, true)]
    {
        let (status, page) = app.get("/api/v1/consultations?state=requested&limit=200", token).await;
        assert_eq!(status, 200, "{page}");
        assert_eq!(listed(&page, &chief_level), sees_chief_level, "{page}");
        assert_eq!(listed(&page, &attending_level), sees_attending_level, "{page}");
        for (id, sees) in [(&chief_level, sees_chief_level), (&attending_level, sees_attending_level)] {
            let expected = if sees { 200 } else { 404 };
            assert_eq!(app.get(&format!("/api/v1/consultations/{id}"), token).await.0, expected);
            assert_eq!(app.get(&format!("/api/v1/consultations/{id}/record"), token).await.0, expected);
        }
    }
    // The resident cannot take it; the request stays open for those who may.
    let (status, body) = app.post(&format!("/api/v1/consultations/{chief_level}/claim"), &resident, &json!({})).await;
    assert_eq!(status, 404, "{body}");
    let (status, c) = app.post(&format!("/api/v1/consultations/{chief_level}/claim"), &wang, &json!({})).await;
    assert_eq!(status, 200, "{c}");
    assert_eq!(c["state"], "accepted");
}
db_test!(a_pool_request_is_shown_only_to_experts_of_the_title_it_asks_for);

async fn a_hundred_simultaneous_bookings_of_one_slot(app: &TestApp) {
    let li = app.login("dr.li").await;
    let wang = app.login("dr.wang").await;
    let wang_id = app.user_id("dr.wang").await;
    let id = request_for_wang(app, &li).await;
    assert_eq!(app.post(&format!("/api/v1/consultations/{id}/accept"), &wang, &json!({})).await.0, 200);
    let start = first_slot(app, &wang_id, &li).await;
    let book = json!({"consultation_id": id, "expert_id": wang_id, "start": start});
    let attempts = (0..100).map(|_| app.post("/api/v1/appointments", &li, &book));
    let results = futures_util::future::join_all(attempts).await;
    let created = results.iter().filter(|(s, _)| *s == 201).count();
    let taken = results.iter().filter(|(s, b)| *s == 409 && b["code"] == "slot_taken").count();
    assert_eq!((created, taken), (1, 99), "{:?}", results.iter().filter(|(s, _)| *s != 409).collect::<Vec<_>>());
    let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM appointments WHERE expert_id = $1 AND status = 'booked'")
        .bind(&wang_id)
        .fetch_one(&app.state.db.pool)
        .await
        .unwrap();
    assert_eq!(n, 1, "exactly one appointment is stored");
}
db_test!(a_hundred_simultaneous_bookings_of_one_slot);

/// Bookings of an expert whose row is locked elsewhere (another instance's booking in
/// progress) wait without taking the pool's connections: one waits in PostgreSQL, the rest in
/// this instance's queue, and the other requests of the instance go on being answered. Before
/// the queue, two dozen such bookings held every connection of the pool (16) and the rest of
/// the instance answered 503 `database_unavailable` after the pool's 10 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bookings_queued_on_one_expert_leave_the_pool_to_other_requests() {
    let Some(app) = TestApp::spawn_postgres().await else { return };
    let li = app.login("dr.li").await;
    let wang = app.login("dr.wang").await;
    let wang_id = app.user_id("dr.wang").await;
    let mut ids = Vec::new();
    for _ in 0..24 {
        let id = request_for_wang(&app, &li).await;
        assert_eq!(app.post(&format!("/api/v1/consultations/{id}/accept"), &wang, &json!({})).await.0, 200);
        ids.push(id);
    }
    let start = first_slot(&app, &wang_id, &li).await;
    let mut elsewhere = app.state.db.pool.begin().await.unwrap();
    sqlx::query("UPDATE expert_profiles SET booking_seq = booking_seq + 1 WHERE user_id = $1")
        .bind(&wang_id)
        .execute(&mut *elsewhere)
        .await
        .unwrap();
    let bodies: Vec<Value> =
        ids.iter().map(|id| json!({"consultation_id": id, "expert_id": wang_id, "start": start})).collect();
    let bookings = futures_util::future::join_all(bodies.iter().map(|b| app.post("/api/v1/appointments", &li, b)));
    let others = async {
        // The bookings have arrived and wait (on the row, and in the queue behind it).
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        let (status, c) = app.get(&format!("/api/v1/consultations/{}", ids[0]), &li).await;
        let (list_status, _) = app.get("/api/v1/consultations", &wang).await;
        elsewhere.rollback().await.unwrap();
        (status, c, list_status)
    };
    let (results, (status, c, list_status)) = tokio::join!(bookings, others);
    assert_eq!(status, 200, "a read while bookings wait: {c}");
    assert_eq!(list_status, 200);
    let created = results.iter().filter(|(s, _)| *s == 201).count();
    let taken = results.iter().filter(|(s, b)| *s == 409 && b["code"] == "slot_taken").count();
    assert_eq!((created, taken), (1, 23), "{:?}", results.iter().filter(|(s, _)| *s != 409).collect::<Vec<_>>());
}

async fn reschedule_cancel_and_no_show(app: &TestApp) {
    let li = app.login("dr.li").await;
    let wang = app.login("dr.wang").await;
    let wang_id = app.user_id("dr.wang").await;
    let id = request_for_wang(app, &li).await;
    app.post(&format!("/api/v1/consultations/{id}/accept"), &wang, &json!({})).await;
    let (_, slots) = app.get(&format!("/api/v1/experts/{wang_id}/slots"), &li).await;
    let s0 = slots["items"][0]["start"].as_str().unwrap();
    let s3 = slots["items"][3]["start"].as_str().unwrap();
    let (_, appt) =
        app.post("/api/v1/appointments", &li, &json!({"consultation_id": id, "expert_id": wang_id, "start": s0})).await;
    let aid = appt["id"].as_str().unwrap();
    let (status, moved) = app
        .post(&format!("/api/v1/appointments/{aid}/reschedule"), &li, &json!({"start": s3, "reason": "患者复查冲突"}))
        .await;
    assert_eq!(status, 200, "{moved}");
    assert_eq!(moved["start"], s3);
    let (_, old) = app.get(&format!("/api/v1/appointments/{aid}"), &li).await;
    assert_eq!(old["status"], "rescheduled");
    assert_eq!(old["replaced_by"], moved["id"]);
    // The freed slot is offered again.
    let (_, slots) = app.get(&format!("/api/v1/experts/{wang_id}/slots"), &li).await;
    assert_eq!(slots["items"][0]["start"], s0);
    // A no-show cannot be recorded before the start.
    let mid = moved["id"].as_str().unwrap();
    let (status, _) =
        app.post(&format!("/api/v1/appointments/{mid}/no-show"), &li, &json!({"participant": "patient"})).await;
    assert_eq!(status, 409);
    // Cancelling the appointment puts the consultation back to accepted.
    let (status, _) = app.post(&format!("/api/v1/appointments/{mid}/cancel"), &li, &json!({})).await;
    assert_eq!(status, 422);
    let (status, cancelled) =
        app.post(&format!("/api/v1/appointments/{mid}/cancel"), &li, &json!({"reason": "患者住院"})).await;
    assert_eq!(status, 200, "{cancelled}");
    assert_eq!(cancelled["status"], "cancelled");
    let (_, c) = app.get(&format!("/api/v1/consultations/{id}"), &li).await;
    assert_eq!(c["state"], "accepted");
    // Cancelling the consultation; booking it afterwards is refused.
    let (status, c) =
        app.post(&format!("/api/v1/consultations/{id}/cancel"), &li, &json!({"reason": "转诊上级医院"})).await;
    assert_eq!(status, 200);
    assert_eq!(c["state"], "cancelled");
    let (status, body) =
        app.post("/api/v1/appointments", &li, &json!({"consultation_id": id, "expert_id": wang_id, "start": s0})).await;
    assert_eq!(status, 409);
    assert_eq!(body["code"], "invalid_transition");
}
db_test!(reschedule_cancel_and_no_show);

async fn availability_across_daylight_saving_changes(app: &TestApp) {
    let admin = app.login("admin").await;
    let (_, wang_me) = app.get("/api/v1/me", &app.login("dr.wang").await).await;
    let (status, u) = app
        .post(
            "/api/v1/users",
            &admin,
            &json!({"username": "dr.weber", "display_name": "Dr. Weber", "password": "demo-password", "role": "expert",
                    "organisation_id": wang_me["organisation_id"], "expert": {"title": "chief", "specialties": ["cardiology"], "time_zone": "Europe/Berlin"}}),
        )
        .await;
    assert_eq!(status, 201, "{u}");
    let weber = u["id"].as_str().unwrap();
    let token = app.login("dr.weber").await;
    // Sunday night clinic 01:00-04:00 Berlin time, hourly slots.
    let (status, av) = app
        .put(
            &format!("/api/v1/experts/{weber}/availability"),
            &token,
            &json!({"rules": [{"weekday": 7, "start": "01:00", "end": "04:00", "slot_minutes": 60}]}),
        )
        .await;
    assert_eq!(status, 200, "{av}");
    assert_eq!(av["rules"][0]["time_zone"], "Europe/Berlin");
    // Spring forward on 2027-03-28: 02:00 local does not exist.
    let (_, spring) = app
        .get(&format!("/api/v1/experts/{weber}/slots?from=2027-03-27T00:00:00Z&to=2027-03-29T00:00:00Z"), &token)
        .await;
    let starts: Vec<&str> = spring["items"].as_array().unwrap().iter().map(|s| s["start"].as_str().unwrap()).collect();
    assert_eq!(starts, vec!["2027-03-28T01:00:00+01:00", "2027-03-28T03:00:00+02:00"]);
    // Fall back on 2027-10-31: 02:00 happens twice; slots never overlap.
    let (_, autumn) = app
        .get(&format!("/api/v1/experts/{weber}/slots?from=2027-10-30T00:00:00Z&to=2027-11-01T00:00:00Z"), &token)
        .await;
    let items = autumn["items"].as_array().unwrap();
    let starts: Vec<&str> = items.iter().map(|s| s["start"].as_str().unwrap()).collect();
    assert!(starts.contains(&"2027-10-31T01:00:00+02:00"), "{starts:?}");
    assert!(starts.contains(&"2027-10-31T03:00:00+01:00"), "{starts:?}");
    for w in items.windows(2) {
        let end = chrono::DateTime::parse_from_rfc3339(w[0]["end"].as_str().unwrap()).unwrap();
        let next = chrono::DateTime::parse_from_rfc3339(w[1]["start"].as_str().unwrap()).unwrap();
        assert!(end <= next, "{w:?}");
    }
    // The week before has the ordinary three slots, in UTC+1 ... and the window is limited.
    let (status, body) = app
        .get(&format!("/api/v1/experts/{weber}/slots?from=2027-01-01T00:00:00Z&to=2027-12-01T00:00:00Z"), &token)
        .await;
    assert_eq!(status, 422, "{body}");
    // Nobody else edits Dr. Weber's availability.
    let (status, _) = app
        .put(&format!("/api/v1/experts/{weber}/availability"), &app.login("dr.li").await, &json!({"rules": []}))
        .await;
    assert_eq!(status, 403);
}
db_test!(availability_across_daylight_saving_changes);

async fn live_notifications_and_reminders(app: &TestApp) {
    let li = app.login("dr.li").await;
    let wang = app.login("dr.wang").await;
    let wang_id = app.user_id("dr.wang").await;
    // dr.wang listens on the live stream while dr.li sends a request.
    let mut stream = app.http.get(app.url("/api/v1/notifications/stream")).bearer_auth(&wang).send().await.unwrap();
    assert_eq!(stream.status(), 200);
    assert!(stream.headers()["content-type"].to_str().unwrap().starts_with("text/event-stream"));
    let id = request_for_wang(app, &li).await;
    let mut received = String::new();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while !received.contains("request_matched") {
        let chunk = tokio::time::timeout_at(deadline, stream.chunk())
            .await
            .expect("a live event within 10 s")
            .unwrap()
            .unwrap();
        received.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(received.contains(&id), "{received}");

    // Reminders: 24 h and 15 min before, each once, even when the sweep runs again.
    app.post(&format!("/api/v1/consultations/{id}/accept"), &wang, &json!({})).await;
    let start = first_slot(app, &wang_id, &li).await;
    let (status, _) = app
        .post("/api/v1/appointments", &li, &json!({"consultation_id": id, "expert_id": wang_id, "start": start}))
        .await;
    assert_eq!(status, 201);
    let start: chrono::DateTime<chrono::Utc> = chrono::DateTime::parse_from_rfc3339(&start).unwrap().into();
    use teleconsult::scheduling::appointments::send_due_reminders;
    assert_eq!(
        send_due_reminders(&app.state.db, &app.state.notifications, start - chrono::Duration::hours(30)).await.unwrap(),
        0
    );
    assert_eq!(
        send_due_reminders(&app.state.db, &app.state.notifications, start - chrono::Duration::hours(23)).await.unwrap(),
        1
    );
    assert_eq!(
        send_due_reminders(&app.state.db, &app.state.notifications, start - chrono::Duration::hours(22)).await.unwrap(),
        0
    );
    assert_eq!(
        send_due_reminders(&app.state.db, &app.state.notifications, start - chrono::Duration::minutes(10))
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        send_due_reminders(&app.state.db, &app.state.notifications, start - chrono::Duration::minutes(5))
            .await
            .unwrap(),
        0
    );
    let (_, inbox) = app.get("/api/v1/notifications?unread=true", &li).await;
    let reminders = inbox["items"].as_array().unwrap().iter().filter(|n| n["kind"] == "reminder").count();
    assert_eq!(reminders, 2);
    let first = inbox["items"][0]["id"].as_str().unwrap();
    let resp =
        app.http.post(app.url(&format!("/api/v1/notifications/{first}/read"))).bearer_auth(&li).send().await.unwrap();
    assert_eq!(resp.status(), 204);
    let (_, unread) = app.get("/api/v1/notifications?unread=true", &li).await;
    assert_eq!(unread["items"].as_array().unwrap().len(), inbox["items"].as_array().unwrap().len() - 1);
}
db_test!(live_notifications_and_reminders);

/// A consultation starts when both sides are in its room; an instance starts the rooms that
/// filled meanwhile in one batch. The batch starts what may start, each once, with the
/// transition its detail shows as for a start made alone, and leaves every other state alone.
async fn a_batch_of_starts_starts_each_startable_consultation_once(app: &TestApp) {
    use teleconsult::consultations::store::start_many;
    let (scheduled, _) = app.consultation().booked().await;
    let accepted = app.consultation().accepted().await;
    let requested = app.consultation().requested().await;
    let (running, _) = app.consultation().booked().await;
    let db = &app.state.db;
    assert_eq!(start_many(db, std::slice::from_ref(&running)).await.unwrap(), vec![running.clone()]);
    let batch = [&scheduled, &requested, &running, &accepted, &scheduled, &"no-such-consultation".to_string()]
        .map(|s| s.to_string());
    assert_eq!(start_many(db, &batch).await.unwrap(), vec![scheduled.clone(), accepted.clone()]);
    assert_eq!(start_many(db, &batch).await.unwrap(), Vec::<String>::new(), "a second batch starts nothing");

    let li = app.login("dr.li").await;
    for (id, state, started_from) in [
        (&scheduled, "in_progress", Some("scheduled")),
        (&accepted, "in_progress", Some("accepted")),
        (&requested, "requested", None),
        (&running, "in_progress", Some("scheduled")),
    ] {
        let (status, c) = app.get(&format!("/api/v1/consultations/{id}"), &li).await;
        assert_eq!(status, 200, "{c}");
        assert_eq!(c["state"], state, "{c}");
        let starts: Vec<&Value> =
            c["transitions"].as_array().unwrap().iter().filter(|t| t["action"] == "start").collect();
        match started_from {
            Some(from) => {
                assert_eq!(starts.len(), 1, "one start each: {c}");
                assert_eq!(starts[0]["from_state"], from, "{c}");
                assert_eq!(starts[0]["to_state"], "in_progress", "{c}");
                assert_eq!(starts[0]["actor_id"], Value::Null, "the system starts it: {c}");
            }
            None => assert!(starts.is_empty(), "{c}"),
        }
    }
}
db_test!(a_batch_of_starts_starts_each_startable_consultation_once);

/// The free slots the expert's calendar offers (their starts, as the API gives them).
async fn free_slots(app: &TestApp, expert: &str, token: &str) -> Vec<String> {
    let (status, slots) = app.get(&format!("/api/v1/experts/{expert}/slots"), token).await;
    assert_eq!(status, 200, "{slots}");
    slots["items"].as_array().unwrap().iter().map(|s| s["start"].as_str().unwrap().to_string()).collect()
}

/// An MDT meets with every expert who accepted it. Its appointment, booked with one of them,
/// holds the others' calendars: dr.chen is not offered, nor booked by another consultation,
/// at the hour his MDT meets (before, only the expert it was booked with was kept free, and
/// the second expert could be double-booked); an MDT cannot be booked at an hour one of its
/// experts is taken; and an expert who declines gets the hour back.
async fn an_mdt_appointment_holds_every_accepted_experts_calendar(app: &TestApp) {
    let li = app.login("dr.li").await;
    let chen = app.user_id("dr.chen").await;
    let wang = app.user_id("dr.wang").await;
    let book = |consultation: String, expert: String, start: String| {
        let li = li.clone();
        async move {
            app.post(
                "/api/v1/appointments",
                &li,
                &json!({"consultation_id": consultation, "expert_id": expert, "start": start}),
            )
            .await
        }
    };
    // dr.chen reads patient.liu's images at his first free hour.
    let t1 = free_slots(app, &chen, &li).await[0].clone();
    let images =
        app.consultation().patient("patient.liu").addressed_to("dr.chen").specialty("radiology").accepted().await;
    let (status, body) = book(images, chen.clone(), t1.clone()).await;
    assert_eq!(status, 201, "{body}");

    // patient.zhang's MDT with dr.wang and dr.chen, both accepted: not at that hour.
    let mdt = app.mdt_requested(&["dr.wang", "dr.chen"]).await;
    for e in ["dr.wang", "dr.chen"] {
        let (status, body) =
            app.post(&format!("/api/v1/consultations/{mdt}/accept"), &app.login(e).await, &json!({})).await;
        assert_eq!(status, 200, "{body}");
    }
    let wang_free = free_slots(app, &wang, &li).await;
    assert!(wang_free.contains(&t1), "dr.wang himself is free then: {wang_free:?}");
    // The hours offered for booking the MDT with dr.wang leave that one out; a doctor who does
    // not see the MDT is not told whom it gathers.
    let (status, offered) = app.get(&format!("/api/v1/experts/{wang}/slots?consultation_id={mdt}"), &li).await;
    assert_eq!(status, 200, "{offered}");
    let for_mdt: Vec<&str> =
        offered["items"].as_array().unwrap().iter().map(|s| s["start"].as_str().unwrap()).collect();
    assert!(!for_mdt.contains(&t1.as_str()) && !for_mdt.is_empty(), "{for_mdt:?}");
    let (status, _) =
        app.get(&format!("/api/v1/experts/{wang}/slots?consultation_id={mdt}"), &app.login("dr.zhao").await).await;
    assert_eq!(status, 404);
    let (status, body) = book(mdt.clone(), wang.clone(), t1.clone()).await;
    assert_eq!((status, body["code"].as_str()), (409, Some("slot_taken")), "{body}");
    assert!(body["detail"].as_str().unwrap().contains("陈静"), "the refusal names who is taken: {body}");

    // At another hour it is booked, and that hour leaves dr.chen's calendar.
    let t2 = wang_free.iter().find(|s| **s != t1).unwrap().clone();
    assert!(free_slots(app, &chen, &li).await.contains(&t2));
    let (status, body) = book(mdt.clone(), wang.clone(), t2.clone()).await;
    assert_eq!(status, 201, "{body}");
    assert!(!free_slots(app, &chen, &li).await.contains(&t2), "the MDT's hour holds dr.chen's calendar");
    let second =
        app.consultation().patient("patient.liu").addressed_to("dr.chen").specialty("radiology").accepted().await;
    let (status, body) = book(second.clone(), chen.clone(), t2.clone()).await;
    assert_eq!((status, body["code"].as_str()), (409, Some("slot_taken")), "dr.chen is not double-booked: {body}");

    // dr.chen declines the MDT (dr.wang carries on): the hour is his again.
    let (status, body) = app
        .post(
            &format!("/api/v1/consultations/{mdt}/decline"),
            &app.login("dr.chen").await,
            &json!({"reason": "当天外出会诊"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(free_slots(app, &chen, &li).await.contains(&t2));
    let (status, body) = book(second, chen, t2).await;
    assert_eq!(status, 201, "{body}");
}
db_test!(an_mdt_appointment_holds_every_accepted_experts_calendar);

/// The expert an MDT was booked with declines it, the others carrying on: the meeting passes
/// to one of them (the old appointment kept, `rescheduled`, pointing at the new one), so it
/// stays in the calendar of someone who attends and leaves the calendar of the one who declined.
async fn an_mdt_booked_with_an_expert_who_declines_passes_to_another(app: &TestApp) {
    let li = app.login("dr.li").await;
    let wang = app.user_id("dr.wang").await;
    let chen = app.user_id("dr.chen").await;
    let mdt = app.mdt_booked(&["dr.wang", "dr.chen"], "dr.wang").await;
    let (_, c) = app.get(&format!("/api/v1/consultations/{mdt}"), &li).await;
    let start = c["appointments"][0]["start"].as_str().unwrap().to_string();
    assert!(!free_slots(app, &wang, &li).await.contains(&start));
    assert!(!free_slots(app, &chen, &li).await.contains(&start));

    let (status, body) = app
        .post(
            &format!("/api/v1/consultations/{mdt}/decline"),
            &app.login("dr.wang").await,
            &json!({"reason": "临时手术"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (_, c) = app.get(&format!("/api/v1/consultations/{mdt}"), &li).await;
    assert_eq!(c["state"], "scheduled", "{c}");
    let appointments = c["appointments"].as_array().unwrap();
    let booked: Vec<&Value> = appointments.iter().filter(|a| a["status"] == "booked").collect();
    assert_eq!(booked.len(), 1, "{c}");
    assert_eq!(
        (booked[0]["expert_id"].as_str(), booked[0]["start"].as_str()),
        (Some(chen.as_str()), Some(start.as_str()))
    );
    let old = appointments.iter().find(|a| a["status"] == "rescheduled").expect("the old appointment is kept");
    assert_eq!(old["replaced_by"], booked[0]["id"]);
    assert!(free_slots(app, &wang, &li).await.contains(&start), "dr.wang has the hour back");
    assert!(!free_slots(app, &chen, &li).await.contains(&start), "dr.chen's calendar holds it, as his own now");
}
db_test!(an_mdt_booked_with_an_expert_who_declines_passes_to_another);
