//! The optional filters of the consultation and appointment lists, each alone and paged (a
//! filter narrows the list only when given, and an absent one filters nothing), and the
//! patient list's pages.

mod common;

use common::TestApp;
use serde_json::{json, Value};

async fn patient_id(app: &TestApp, username: &str) -> String {
    let (_, me) = app.get("/api/v1/me", &app.login(username).await).await;
    me["patient_id"].as_str().unwrap().to_string()
}

/// dr.li asks dr.wang for a consultation of `urgency` and `mode`; returns its id.
async fn request(app: &TestApp, li: &str, urgency: &str, mode: &str) -> String {
    let wang = app.user_id("dr.wang").await;
    let zhang = patient_id(app, "patient.zhang").await;
    let body = json!({
        "patient_id": zhang,
        "reason": "复查心电图",
        "specialty": "cardiology",
        "min_title": "attending",
        "urgency": urgency,
        "mode": mode,
        "addressee": {"kind": "expert", "expert_id": wang},
        "consent": {"given_by": "patient", "method": "written", "at": "2026-11-22T09:00:00+08:00"}
    });
    let (status, c) = app.post("/api/v1/consultations", li, &body).await;
    assert_eq!(status, 201, "{c}");
    c["id"].as_str().unwrap().to_string()
}

fn ids(list: &Value) -> Vec<String> {
    list["items"].as_array().unwrap().iter().map(|c| c["id"].as_str().unwrap().to_string()).collect()
}

async fn listed(app: &TestApp, token: &str, path: &str) -> Vec<String> {
    let (status, list) = app.get(path, token).await;
    assert_eq!(status, 200, "{path}: {list}");
    ids(&list)
}

/// The caller's `list` read `per_page` at a time by its cursor (at most 100 pages).
async fn paged(app: &TestApp, token: &str, list: &str, per_page: usize) -> Vec<String> {
    let mut paged = Vec::new();
    let mut path = format!("{list}?limit={per_page}");
    for _ in 0..100 {
        let (status, page) = app.get(&path, token).await;
        assert_eq!(status, 200, "{page}");
        assert!(ids(&page).len() <= per_page, "{page}");
        paged.extend(ids(&page));
        match page["next"].as_str() {
            Some(next) => path = format!("{list}?limit={per_page}&cursor={next}"),
            None => break,
        }
    }
    paged
}

/// The caller's consultation list read a page of one at a time by its cursor.
async fn paged_one_at_a_time(app: &TestApp, token: &str) -> Vec<String> {
    paged(app, token, "/api/v1/consultations", 1).await
}

async fn consultation_filters_narrow_only_when_given(app: &TestApp) {
    let li = app.login("dr.li").await;
    let urgent_video = request(app, &li, "urgent", "video").await;
    let routine_video = request(app, &li, "routine", "video").await;
    let routine_ecg = request(app, &li, "routine", "ecg_review").await;
    let mine = [&urgent_video, &routine_video, &routine_ecg];

    let all = listed(app, &li, "/api/v1/consultations").await;
    assert!(mine.iter().all(|id| all.contains(id)), "{all:?}");

    let routine = listed(app, &li, "/api/v1/consultations?urgency=routine").await;
    assert!(routine.contains(&routine_video) && routine.contains(&routine_ecg));
    assert!(!routine.contains(&urgent_video));

    let ecg = listed(app, &li, "/api/v1/consultations?mode=ecg_review&urgency=routine").await;
    assert!(ecg.contains(&routine_ecg));
    assert!(!ecg.contains(&routine_video) && !ecg.contains(&urgent_video));

    let requested = listed(app, &li, "/api/v1/consultations?state=requested").await;
    assert!(mine.iter().all(|id| requested.contains(id)));

    // Created within a window that holds now, and outside it.
    let now_window = listed(app, &li, "/api/v1/consultations?from=2000-01-01T00:00:00Z&to=2999-01-01T00:00:00Z").await;
    assert!(mine.iter().all(|id| now_window.contains(id)));
    assert_eq!(listed(app, &li, "/api/v1/consultations?from=2999-01-01T00:00:00Z").await, Vec::<String>::new());
    assert_eq!(listed(app, &li, "/api/v1/consultations?to=2000-01-01T00:00:00Z").await, Vec::<String>::new());

    // Paged one at a time, newest id first, each item once, the same items as unpaged.
    assert_eq!(paged_one_at_a_time(app, &li).await, all);
    let mut sorted = all.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(all, sorted, "newest id first");

    // An admin, who takes part in no care, sees none of them, filtered or not.
    let admin = app.login("admin").await;
    assert!(listed(app, &admin, "/api/v1/consultations?mode=ecg_review").await.is_empty());
    assert!(listed(app, &admin, "/api/v1/consultations").await.is_empty());
    // Patient Liu takes part in none of them.
    let liu = app.login("patient.liu").await;
    let liu_sees = listed(app, &liu, "/api/v1/consultations").await;
    assert!(mine.iter().all(|id| !liu_sees.contains(id)));
}
db_test!(consultation_filters_narrow_only_when_given);

/// A routine video request of dr.li's to dr.wang, accepted by him; its id and dr.wang's free
/// slots as dr.li reads them.
async fn accepted_request_and_slots(app: &TestApp, li: &str, wang: &str, wang_id: &str) -> (String, Value) {
    let id = request(app, li, "routine", "video").await;
    let (status, body) = app.post(&format!("/api/v1/consultations/{id}/accept"), wang, &json!({})).await;
    assert_eq!(status, 200, "{body}");
    let (_, slots) = app.get(&format!("/api/v1/experts/{wang_id}/slots"), li).await;
    (id, slots)
}

async fn appointment_filters_narrow_only_when_given(app: &TestApp) {
    let li = app.login("dr.li").await;
    let wang = app.login("dr.wang").await;
    let wang_id = app.user_id("dr.wang").await;
    let (id, slots) = accepted_request_and_slots(app, &li, &wang, &wang_id).await;
    let start = slots["items"][0]["start"].as_str().expect("a free slot").to_string();
    let book = json!({"consultation_id": id, "expert_id": wang_id, "start": start});
    let (status, appt) = app.post("/api/v1/appointments", &li, &book).await;
    assert_eq!(status, 201, "{appt}");
    let appt = appt["id"].as_str().unwrap().to_string();

    for token in [&li, &wang] {
        assert!(listed(app, token, "/api/v1/appointments").await.contains(&appt), "as participant and as expert");
    }
    assert!(listed(app, &li, "/api/v1/appointments?status=booked").await.contains(&appt));
    assert!(listed(app, &li, "/api/v1/appointments?status=").await.contains(&appt), "an empty status filters nothing");
    assert!(!listed(app, &li, "/api/v1/appointments?status=cancelled").await.contains(&appt));
    assert!(listed(app, &li, "/api/v1/appointments?from=2000-01-01T00:00:00Z&to=2999-01-01T00:00:00Z")
        .await
        .contains(&appt));
    assert!(!listed(app, &li, "/api/v1/appointments?from=2999-01-01T00:00:00Z").await.contains(&appt));
    assert!(!listed(app, &li, "/api/v1/appointments?to=2000-01-01T00:00:00Z").await.contains(&appt));
    // Someone who takes no part does not see it.
    let liu = app.login("patient.liu").await;
    assert!(!listed(app, &liu, "/api/v1/appointments").await.contains(&appt));
}
db_test!(appointment_filters_narrow_only_when_given);

/// The home screens' list from a start on ("from today") holds every participant's
/// appointments that start then or later, whichever way the consultation was found by that
/// list (its latest appointment's start, written at booking: migration 0020): after a
/// reschedule to a later slot the requester, the expert and the patient each find the new
/// appointment from just after the old one's start, and not the old one.
async fn a_list_from_a_start_follows_a_reschedule_for_every_participant(app: &TestApp) {
    let li = app.login("dr.li").await;
    let wang = app.login("dr.wang").await;
    let zhang = app.login("patient.zhang").await;
    let wang_id = app.user_id("dr.wang").await;
    let (id, slots) = accepted_request_and_slots(app, &li, &wang, &wang_id).await;
    let first = slots["items"][0]["start"].as_str().expect("a free slot").to_string();
    let later = slots["items"][5]["start"].as_str().expect("six free slots").to_string();
    let (status, appt) = app
        .post("/api/v1/appointments", &li, &json!({"consultation_id": id, "expert_id": wang_id, "start": first}))
        .await;
    assert_eq!(status, 201, "{appt}");
    let old = appt["id"].as_str().unwrap().to_string();
    let after_first = (chrono::DateTime::parse_from_rfc3339(&first).unwrap() + chrono::Duration::seconds(1))
        .with_timezone(&chrono::Utc)
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let from_first = format!("/api/v1/appointments?from={}", first.replace('+', "%2B"));
    let from_after = format!("/api/v1/appointments?from={after_first}");
    for token in [&li, &wang, &zhang] {
        assert!(listed(app, token, &from_first).await.contains(&old));
        assert!(!listed(app, token, &from_after).await.contains(&old), "it starts before");
    }
    let (status, moved) = app
        .post(
            &format!("/api/v1/appointments/{old}/reschedule"),
            &li,
            &json!({"start": later, "reason": "患者复查冲突"}),
        )
        .await;
    assert_eq!(status, 200, "{moved}");
    let new = moved["id"].as_str().unwrap().to_string();
    for (who, token) in [("requester", &li), ("expert", &wang), ("patient", &zhang)] {
        let from_then = listed(app, token, &from_first).await;
        assert!(from_then.contains(&old) && from_then.contains(&new), "{who}: both from the first start");
        let after = listed(app, token, &from_after).await;
        assert!(after.contains(&new) && !after.contains(&old), "{who}: only the new one after it: {after:?}");
        assert_eq!(listed(app, token, "/api/v1/appointments?from=2999-01-01T00:00:00Z").await, Vec::<String>::new());
    }
    // Someone who takes no part sees neither, from any start.
    let liu = app.login("patient.liu").await;
    let liu_sees = listed(app, &liu, &from_first).await;
    assert!(!liu_sees.contains(&old) && !liu_sees.contains(&new));
}
db_test!(a_list_from_a_start_follows_a_reschedule_for_every_participant);

/// An expert's list: the consultations he takes part in (not those he declined) and the open
/// pool requests of his hospital in his specialties (not those he declined); another expert of
/// the same hospital in another specialty sees none of them. The page of one expert among many
/// consultations is read through his own rows (docs/scale.md), so this pins what the list holds.
async fn an_experts_list_holds_his_consultations_and_his_departments_open_pool_requests(app: &TestApp) {
    let li = app.login("dr.li").await;
    let wang = app.login("dr.wang").await;
    let chen = app.login("dr.chen").await;
    let direct = request(app, &li, "routine", "video").await;
    let declined = request(app, &li, "routine", "video").await;
    let zhang = patient_id(app, "patient.zhang").await;
    let pool_body = |specialty: &str| {
        json!({
            "patient_id": zhang, "reason": "会诊", "specialty": specialty, "min_title": "attending",
            "urgency": "routine", "mode": "video", "addressee": {"kind": "pool"},
            "consent": {"given_by": "patient", "method": "written", "at": "2026-11-22T09:00:00+08:00"}
        })
    };
    let (status, pool) = app.post("/api/v1/consultations", &li, &pool_body("cardiology")).await;
    assert_eq!(status, 201, "{pool}");
    let pool = pool["id"].as_str().unwrap().to_string();
    let (status, other_pool) = app.post("/api/v1/consultations", &li, &pool_body("radiology")).await;
    assert_eq!(status, 201, "{other_pool}");
    let other_pool = other_pool["id"].as_str().unwrap().to_string();
    let (status, body) =
        app.post(&format!("/api/v1/consultations/{declined}/decline"), &wang, &json!({"reason": "出差"})).await;
    assert_eq!(status, 200, "{body}");

    let his = listed(app, &wang, "/api/v1/consultations").await;
    assert!(his.contains(&direct) && his.contains(&pool), "{his:?}");
    assert!(!his.contains(&declined) && !his.contains(&other_pool), "{his:?}");
    let requested = listed(app, &wang, "/api/v1/consultations?state=requested").await;
    assert!(requested.contains(&direct) && requested.contains(&pool), "{requested:?}");
    let theirs = listed(app, &chen, "/api/v1/consultations").await;
    assert!(theirs.contains(&other_pool), "{theirs:?}");
    assert!(![&direct, &declined, &pool].iter().any(|id| theirs.contains(id)), "{theirs:?}");
    // Paged one at a time, the same consultations come back, newest first.
    assert_eq!(paged_one_at_a_time(app, &wang).await, his);

    // Having declined the pool request, he no longer lists it; it stays open for the others.
    let (status, body) =
        app.post(&format!("/api/v1/consultations/{pool}/decline"), &wang, &json!({"reason": "满负荷"})).await;
    assert_eq!(status, 200, "{body}");
    let his = listed(app, &wang, "/api/v1/consultations").await;
    assert!(his.contains(&direct) && !his.contains(&pool), "{his:?}");
    assert!(listed(app, &li, "/api/v1/consultations?state=requested").await.contains(&pool));
}
db_test!(an_experts_list_holds_his_consultations_and_his_departments_open_pool_requests);

/// An expert's open consultation stays on his home screen's list (`active=true`) however many
/// newer ones have ended since: a page of his newest alone would no longer hold it.
async fn an_open_consultation_stays_on_the_active_list_behind_newer_ended_ones(app: &TestApp) {
    let li = app.login("dr.li").await;
    let wang = app.login("dr.wang").await;
    let open = request(app, &li, "routine", "video").await;
    let (status, body) = app.post(&format!("/api/v1/consultations/{open}/accept"), &wang, &json!({})).await;
    assert_eq!(status, 200, "{body}");
    let mut ended = Vec::new();
    for _ in 0..50 {
        let id = request(app, &li, "routine", "video").await;
        let (status, body) =
            app.post(&format!("/api/v1/consultations/{id}/cancel"), &li, &json!({"reason": "患者已转院"})).await;
        assert_eq!(status, 200, "{body}");
        ended.push(id);
    }

    let newest = listed(app, &wang, "/api/v1/consultations").await;
    assert!(!newest.contains(&open), "fifty newer ones fill the first page");
    let (status, active) = app.get("/api/v1/consultations?active=true&limit=200", &wang).await;
    assert_eq!(status, 200, "{active}");
    assert!(ids(&active).contains(&open), "{active}");
    for c in active["items"].as_array().unwrap() {
        let state = c["state"].as_str().unwrap();
        assert!(!["completed", "declined", "cancelled", "no_show"].contains(&state), "{c}");
    }
    let done = listed(app, &wang, "/api/v1/consultations?active=false&limit=200").await;
    assert!(ended.iter().all(|id| done.contains(id)) && !done.contains(&open), "{done:?}");
    // With the other filters, and for the requesting doctor too.
    let accepted = listed(app, &li, "/api/v1/consultations?active=true&state=accepted&limit=200").await;
    assert!(accepted.contains(&open), "{accepted:?}");
    assert_eq!(listed(app, &li, "/api/v1/consultations?active=false&state=accepted").await, Vec::<String>::new());
    let (status, bad) = app.get("/api/v1/consultations?active=soon", &wang).await;
    assert_eq!(status, 400, "{bad}");
}
db_test!(an_open_consultation_stays_on_the_active_list_behind_newer_ended_ones);

/// A doctor's patient list pages through every record of his centre once, in id order, and
/// holds none of another centre's; an expert's holds the patients of his consultations.
async fn a_patient_list_pages_through_the_centres_records_once(app: &TestApp) {
    let li = app.login("dr.li").await;
    let zhao = app.login("dr.zhao").await;
    let mut mine = Vec::new();
    for (i, name) in ["周秀英", "吴建华", "郑桂兰", "孙立新", "钱玉梅"].iter().enumerate() {
        let body = json!({"name": name, "sex": "female", "birth_date": format!("194{i}-03-0{}", i + 1)});
        let (status, created) = app.post("/api/v1/patients", &li, &body).await;
        assert_eq!(status, 201, "{created}");
        mine.push(created["id"].as_str().unwrap().to_string());
    }
    let (status, other) = app
        .post("/api/v1/patients", &zhao, &json!({"name": "冯淑珍", "sex": "female", "birth_date": "1948-07-12"}))
        .await;
    assert_eq!(status, 201, "{other}");
    let other = other["id"].as_str().unwrap().to_string();

    let whole = listed(app, &li, "/api/v1/patients?limit=200").await;
    let by_two = paged(app, &li, "/api/v1/patients", 2).await;
    assert_eq!(by_two, whole, "pages of two give the whole list, each record once");
    let mut sorted = whole.clone();
    sorted.sort();
    assert_eq!(whole, sorted, "by id");
    assert!(mine.iter().all(|id| whole.contains(id)), "{whole:?}");
    assert!(!whole.contains(&other), "another centre's record");
    assert!(listed(app, &zhao, "/api/v1/patients?limit=200").await.contains(&other));
    // The search (the other form of the list) narrows the same records.
    assert_eq!(listed(app, &li, "/api/v1/patients?q=吴建华").await, vec![mine[1].clone()]);
    assert_eq!(listed(app, &li, "/api/v1/patients?q=冯淑珍").await, Vec::<String>::new());

    // The expert sees the patient of the consultation asked of him, paged the same way.
    let wang = app.login("dr.wang").await;
    request(app, &li, "routine", "video").await;
    let zhang = patient_id(app, "patient.zhang").await;
    let experts = paged(app, &wang, "/api/v1/patients", 2).await;
    assert!(experts.contains(&zhang), "{experts:?}");
    assert!(!experts.contains(&mine[0]) && !experts.contains(&other), "{experts:?}");
    assert_eq!(experts, listed(app, &wang, "/api/v1/patients?limit=200").await);
}
db_test!(a_patient_list_pages_through_the_centres_records_once);
