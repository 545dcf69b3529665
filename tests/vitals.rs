//! Vital signs as their users meet them, on SQLite and PostgreSQL: readings checked and
//! converted, impossible ones refused naming the field, a retried batch stored once, who may
//! write and read them, the resident's timeline item by item, the family doctor's worklist
//! (one item per episode, acknowledged), and a reading taken in a call reaching the room.

mod common;
mod rtc;

use common::TestApp;
use rtc::{patient_id_of, scheduled_consultation, Signaler};
use serde_json::{json, Value};

fn minutes_ago(m: i64) -> String {
    (chrono::Utc::now() - chrono::Duration::minutes(m)).to_rfc3339()
}

fn bp(systolic: f64, diastolic: f64) -> Value {
    json!({"kind": "blood_pressure", "systolic_mmhg": systolic, "diastolic_mmhg": diastolic, "pulse_bpm": 78,
           "measured_at": minutes_ago(5), "source": "home", "device": "Omron HEM-7136",
           "client_id": uuid::Uuid::new_v4().to_string()})
}

async fn observations(app: &TestApp, token: &str, patient: &str, query: &str) -> (u16, Value) {
    app.get(&format!("/api/v1/patients/{patient}/observations{query}"), token).await
}

async fn count(app: &TestApp, sql: &str, id: &str) -> i64 {
    let (n,): (i64,) = sqlx::query_as(sql).bind(id).fetch_one(&app.state.db.pool).await.unwrap();
    n
}

// ---------------------------------------------------------------------------------------

async fn readings_are_checked_converted_and_stored_once(app: &TestApp) {
    let li = app.login("dr.li").await;
    let zhang = patient_id_of(app, "patient.zhang").await;
    let path = format!("/api/v1/patients/{zhang}/observations");

    // One reading, as the example has it.
    let (status, body) = app.post(&path, &li, &bp(152.0, 96.0)).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!((body["created"].as_u64(), body["results"][0]["status"].as_str()), (Some(1), Some("created")));

    // Physiologically impossible values are refused, naming the field, with a stable code.
    let (status, e) = app.post(&path, &li, &bp(520.0, 96.0)).await;
    assert_eq!((status, e["code"].as_str()), (422, Some("implausible_value")), "{e}");
    assert_eq!(e["errors"][0]["field"], "systolic_mmhg");
    let mut future = bp(130.0, 80.0);
    future["measured_at"] = json!((chrono::Utc::now() + chrono::Duration::hours(2)).to_rfc3339());
    let (status, e) = app.post(&path, &li, &future).await;
    assert_eq!(
        (status, e["code"].as_str(), e["errors"][0]["field"].as_str()),
        (422, Some("measured_at_out_of_range"), Some("measured_at"))
    );
    // In a batch the reading's index is named; nothing of a refused batch is stored.
    let before = count(app, "SELECT COUNT(*) FROM observations WHERE patient_id = $1", &zhang).await;
    let bad_batch = json!([bp(130.0, 80.0),
        {"kind": "spo2", "spo2_pct": 104, "measured_at": minutes_ago(3), "source": "kiosk", "client_id": uuid::Uuid::new_v4()}]);
    let (status, e) = app.post(&path, &li, &bad_batch).await;
    assert_eq!((status, e["errors"][0]["field"].as_str()), (422, Some("[1].spo2_pct")), "{e}");
    assert_eq!(count(app, "SELECT COUNT(*) FROM observations WHERE patient_id = $1", &zhang).await, before);

    // Units are converted: mg/dL to mmol/L, °F to °C, kPa to mmHg.
    let batch = json!([
        {"kind": "glucose", "glucose_mg_dl": 126, "glucose_context": "fasting", "measured_at": minutes_ago(30), "source": "home", "client_id": uuid::Uuid::new_v4()},
        {"kind": "temperature", "temperature_f": 98.6, "measured_at": minutes_ago(20), "source": "kiosk", "client_id": uuid::Uuid::new_v4()},
        {"kind": "blood_pressure", "systolic_kpa": 20.0, "diastolic_kpa": 12.0, "measured_at": minutes_ago(10), "source": "clinic", "client_id": uuid::Uuid::new_v4()},
    ]);
    let (status, first) = app.post(&path, &li, &batch).await;
    assert_eq!((status, first["created"].as_u64()), (201, Some(3)), "{first}");
    let (_, glucose) = observations(app, &li, &zhang, "?kind=glucose").await;
    assert_eq!(glucose["items"][0]["values"]["glucose_mmol_l"], 7.0);
    assert_eq!(glucose["items"][0]["values"]["glucose_context"], "fasting");
    let (_, temp) = observations(app, &li, &zhang, "?kind=temperature").await;
    assert_eq!(temp["items"][0]["values"]["temperature_c"], 37.0);
    let (_, pressures) = observations(app, &li, &zhang, "?kind=blood_pressure").await;
    let kpa = pressures["items"].as_array().unwrap().iter().find(|o| o["source"] == "clinic").unwrap();
    assert_eq!(
        (kpa["values"]["systolic_mmhg"].as_f64(), kpa["values"]["diastolic_mmhg"].as_f64()),
        (Some(150.0), Some(90.0))
    );

    // The same batch again (a retry after a dropped link): nothing stored twice, the same ids.
    let stored = count(app, "SELECT COUNT(*) FROM observations WHERE patient_id = $1", &zhang).await;
    let (status, again) = app.post(&path, &li, &batch).await;
    assert_eq!((status, again["created"].as_u64(), again["duplicates"].as_u64()), (200, Some(0), Some(3)), "{again}");
    for i in 0..3 {
        assert_eq!(again["results"][i]["status"], "duplicate");
        assert_eq!(again["results"][i]["id"], first["results"][i]["id"]);
    }
    assert_eq!(count(app, "SELECT COUNT(*) FROM observations WHERE patient_id = $1", &zhang).await, stored);
    // A retry carrying one new reading stores only that one.
    let mut grown = batch.as_array().unwrap().clone();
    grown.push(bp(128.0, 82.0));
    let (status, mixed) = app.post(&path, &li, &Value::Array(grown)).await;
    assert_eq!((status, mixed["created"].as_u64(), mixed["duplicates"].as_u64()), (201, Some(1), Some(3)));
    // Each stored reading left an audit event.
    let (events,): (i64,) = sqlx::query_as(
        "SELECT COUNT(*) FROM audit_events WHERE resource_type = 'observation' AND action = 'create' AND patient_id = $1 AND detail <> ''",
    )
    .bind(&zhang)
    .fetch_one(&app.state.db.pool)
    .await
    .unwrap();
    assert!(events >= 5, "{events} events");

    // Newest first, paged, by time range.
    let (_, page1) = observations(app, &li, &zhang, "?limit=2").await;
    let (_, page2) =
        observations(app, &li, &zhang, &format!("?limit=2&cursor={}", page1["next"].as_str().expect("a next page")))
            .await;
    let times: Vec<String> = page1["items"]
        .as_array()
        .unwrap()
        .iter()
        .chain(page2["items"].as_array().unwrap())
        .map(|o| o["measured_at"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(times.len(), 4);
    assert!(times.windows(2).all(|w| w[0] >= w[1]), "{times:?}");
    let (_, window) = observations(app, &li, &zhang, &format!("?from={}", urlencode(&minutes_ago(15)))).await;
    assert!(window["items"].as_array().unwrap().iter().all(|o| o["kind"] == "blood_pressure"), "{window}");
    let (status, _) = observations(app, &li, &zhang, "?cursor=nonsense").await;
    assert_eq!(status, 422);
}
db_test!(readings_are_checked_converted_and_stored_once);

fn urlencode(s: &str) -> String {
    s.replace('+', "%2B").replace(':', "%3A")
}

async fn who_may_write_and_read_readings_and_the_timeline(app: &TestApp) {
    let zhang = patient_id_of(app, "patient.zhang").await;
    let path = format!("/api/v1/patients/{zhang}/observations");
    let timeline = format!("/api/v1/patients/{zhang}/timeline");
    let tok = |u: &'static str| async move { app.login(u).await };

    // The patient records their own; another patient, another centre's doctor and an expert
    // with no consultation of hers find no such patient; admins and coordinators may not.
    let (status, home) = app.post(&path, &tok("patient.zhang").await, &bp(138.0, 86.0)).await;
    assert_eq!(status, 201, "{home}");
    for (who, expected) in
        [("patient.liu", 404), ("dr.zhao", 404), ("dr.wang", 404), ("admin", 403), ("coordinator", 403)]
    {
        let (status, _) = app.post(&path, &tok(who).await, &bp(130.0, 80.0)).await;
        assert_eq!(status, expected, "{who} writes");
        let (status, _) = app.get(&path, &tok(who).await).await;
        assert_eq!(status, expected, "{who} reads");
    }

    // In an active consultation the expert records and reads, within that consultation.
    let c = scheduled_consultation(app).await;
    let wang = tok("dr.wang").await;
    let mut in_call = bp(150.0, 95.0);
    in_call["consultation_id"] = json!(c);
    in_call["source"] = json!("clinic");
    let (status, body) = app.post(&path, &wang, &in_call).await;
    assert_eq!(status, 201, "{body}");
    let (status, read) = app.get(&path, &wang).await;
    assert_eq!((status, read["items"].as_array().unwrap().len()), (200, 2));
    let (status, _) = app.get(&path, &tok("dr.chen").await).await;
    assert_eq!(status, 404, "an expert not involved");
    // A consultation that is not the patient's (or not the expert's) is refused by name.
    let mut elsewhere = bp(150.0, 95.0);
    elsewhere["consultation_id"] = json!(uuid::Uuid::new_v4());
    let (status, e) = app.post(&path, &wang, &elsewhere).await;
    assert_eq!((status, e["errors"][0]["field"].as_str()), (422, Some("consultation_id")));

    // The timeline: the family doctor sees everything, newest first; the expert the items of
    // their consultation and, while it is active, the home readings.
    let (status, all) = app.get(&timeline, &tok("dr.li").await).await;
    assert_eq!(status, 200, "{all}");
    let kinds: Vec<&str> = all["items"].as_array().unwrap().iter().map(|i| i["kind"].as_str().unwrap()).collect();
    assert!(kinds.contains(&"consultation") && kinds.contains(&"vital"), "{kinds:?}");
    let ats: Vec<&str> = all["items"].as_array().unwrap().iter().map(|i| i["at"].as_str().unwrap()).collect();
    assert!(ats.windows(2).all(|w| w[0] >= w[1]), "{ats:?}");
    let (_, mine) = app.get(&timeline, &tok("patient.zhang").await).await;
    assert_eq!(mine["items"].as_array().unwrap().len(), all["items"].as_array().unwrap().len());
    let (status, expert) = app.get(&timeline, &wang).await;
    assert_eq!(status, 200);
    let seen: Vec<(String, Option<String>)> = expert["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| (i["kind"].as_str().unwrap().to_string(), i["consultation_id"].as_str().map(str::to_string)))
        .collect();
    assert!(seen.iter().all(|(k, cid)| k == "vital" || cid.as_deref() == Some(c.as_str())), "{seen:?}");
    assert!(seen.contains(&("consultation".to_string(), Some(c.clone()))));
    assert_eq!(seen.iter().filter(|(k, _)| k == "vital").count(), 2, "the home reading while active, and the call's");
    for (who, expected) in
        [("dr.chen", 404), ("patient.liu", 404), ("dr.zhao", 404), ("coordinator", 403), ("admin", 403)]
    {
        let (status, _) = app.get(&timeline, &tok(who).await).await;
        assert_eq!(status, expected, "{who} reads the timeline");
    }
    // Another consultation of the same patient, to dr.chen: it stays out of dr.wang's
    // timeline, and dr.chen sees that one alone.
    let other = other_consultation_for_zhang(app).await;
    let (_, expert) = app.get(&timeline, &wang).await;
    assert!(!expert.to_string().contains(&other), "dr.wang sees a consultation he takes no part in");
    let (_, li_view) = app.get(&format!("{timeline}?kind=consultation"), &tok("dr.li").await).await;
    assert!(li_view.to_string().contains(&other));
    assert!(li_view["items"].as_array().unwrap().iter().all(|i| i["kind"] == "consultation"));
    let (status, chen) = app.get(&timeline, &tok("dr.chen").await).await;
    assert_eq!(status, 200);
    let chen_items = chen["items"].as_array().unwrap();
    assert_eq!(chen_items.len(), 1, "{chen}");
    assert_eq!(
        (chen_items[0]["kind"].as_str(), chen_items[0]["id"].as_str()),
        (Some("consultation"), Some(other.as_str()))
    );
    // Paged with a cursor: the pages together are the whole list, in order, without repeats.
    let li = tok("dr.li").await;
    let mut seen_ids = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..20 {
        let q = match &cursor {
            None => "?limit=2".to_string(),
            Some(c) => format!("?limit=2&cursor={}", c.replace('+', "%2B").replace(':', "%3A").replace('~', "%7E")),
        };
        let (status, page) = app.get(&format!("{timeline}{q}"), &li).await;
        assert_eq!(status, 200, "{page}");
        seen_ids.extend(page["items"].as_array().unwrap().iter().map(|i| i["id"].as_str().unwrap().to_string()));
        cursor = page["next"].as_str().map(str::to_string);
        if cursor.is_none() {
            break;
        }
    }
    let (_, whole) = app.get(&format!("{timeline}?limit=200"), &li).await;
    let whole_ids: Vec<String> =
        whole["items"].as_array().unwrap().iter().map(|i| i["id"].as_str().unwrap().to_string()).collect();
    assert_eq!(seen_ids, whole_ids);
    // Reading the timeline is audited against the patient.
    assert!(
        count(app, "SELECT COUNT(*) FROM audit_events WHERE resource_type = 'timeline' AND patient_id = $1", &zhang)
            .await
            >= 4
    );
}
db_test!(who_may_write_and_read_readings_and_the_timeline);

/// A second request for patient.zhang from dr.li, to dr.chen (radiology): dr.wang takes no part.
async fn other_consultation_for_zhang(app: &TestApp) -> String {
    let request = app.consultation().reason("胸片复查").specialty("radiology").urgency("routine");
    request.mode("imaging_review").addressed_to("dr.chen").requested().await
}

async fn worklist(app: &TestApp, token: &str, status: &str) -> Vec<Value> {
    let (code, page) = app.get(&format!("/api/v1/worklist?status={status}"), token).await;
    assert_eq!(code, 200, "{page}");
    page["items"].as_array().unwrap().clone()
}

async fn out_of_target_readings_reach_the_worklist_once_per_episode(app: &TestApp) {
    let li = app.login("dr.li").await;
    let zhang_token = app.login("patient.zhang").await;
    let zhang = patient_id_of(app, "patient.zhang").await;
    let path = format!("/api/v1/patients/{zhang}/observations");
    let (status, plan) = app
        .post(
            "/api/v1/follow-up-plans",
            &li,
            &json!({"patient_id": zhang, "condition": "hypertension", "interval_weeks": 4, "visits": 6}),
        )
        .await;
    assert_eq!(status, 201, "{plan}");
    let plan_id = plan["id"].as_str().unwrap().to_string();

    // Within target: nothing on the worklist.
    app.post(&path, &zhang_token, &bp(132.0, 84.0)).await;
    assert!(worklist(app, &li, "open").await.is_empty());

    // Out of target, posted twice (a retry): one item, counting one reading.
    let high = bp(152.0, 96.0);
    for _ in 0..2 {
        let (status, body) = app.post(&path, &zhang_token, &high).await;
        assert!(status == 201 || status == 200, "{body}");
    }
    let open = worklist(app, &li, "open").await;
    assert_eq!(open.len(), 1, "{open:?}");
    assert_eq!(
        (open[0]["reason"].as_str(), open[0]["readings"].as_i64(), open[0]["plan_id"].as_str()),
        (Some("blood_pressure_above_target"), Some(1), Some(plan_id.as_str()))
    );
    assert_eq!(open[0]["detail"], "152/96 mmHg, target below 140/90 mmHg");
    // The reading and the target apart, for screens in other languages.
    assert_eq!((open[0]["reading"].as_str(), open[0]["target"].as_str()), (Some("152/96 mmHg"), Some("140/90 mmHg")));
    assert!(open[0]["since"].is_null(), "{:?}", open[0]);
    // The patient is told once, in plain words, in her language with no English in it.
    let (_, inbox) = app.get("/api/v1/notifications", &zhang_token).await;
    let told: Vec<&Value> =
        inbox["items"].as_array().unwrap().iter().filter(|n| n["kind"] == "reading_out_of_target").collect();
    assert_eq!(told.len(), 1, "{inbox}");
    assert!(
        told[0]["body"].as_str().unwrap().starts_with("您的血压 152/96 mmHg，目标是低于 140/90 mmHg。"),
        "{}",
        told[0]
    );
    assert_eq!(
        (told[0]["params"]["reading"].as_str(), told[0]["params"]["target"].as_str()),
        (Some("152/96 mmHg"), Some("140/90 mmHg"))
    );

    // Another reading out of target adds to the same episode.
    app.post(&path, &zhang_token, &bp(148.0, 92.0)).await;
    let open = worklist(app, &li, "open").await;
    assert_eq!((open.len(), open[0]["readings"].as_i64()), (1, Some(2)));

    // Another centre's doctor does not see it, nor may act on it; experts have no worklist.
    let zhao = app.login("dr.zhao").await;
    assert!(worklist(app, &zhao, "all").await.is_empty());
    let item = open[0]["id"].as_str().unwrap().to_string();
    let ack = format!("/api/v1/worklist/{item}/acknowledge");
    let (status, _) = app.post(&ack, &zhao, &json!({})).await;
    assert_eq!(status, 404);
    let (status, _) = app.get("/api/v1/worklist", &app.login("dr.wang").await).await;
    assert_eq!(status, 403);

    // Acknowledged: off the open list; a second acknowledgement is a conflict.
    let (status, done) = app.post(&ack, &li, &json!({"note": "电话随访，调整用药"})).await;
    assert_eq!((status, done["status"].as_str()), (200, Some("acknowledged")), "{done}");
    assert!(worklist(app, &li, "open").await.is_empty());
    let (status, e) = app.post(&ack, &li, &json!({})).await;
    assert_eq!((status, e["code"].as_str()), (409, Some("invalid_transition")));
    // A new reading out of target opens a new episode.
    app.post(&path, &zhang_token, &bp(160.0, 100.0)).await;
    let open = worklist(app, &li, "open").await;
    assert_eq!(open.len(), 1);
    assert_ne!(open[0]["id"].as_str(), Some(item.as_str()));
}
db_test!(out_of_target_readings_reach_the_worklist_once_per_episode);

async fn missing_readings_are_one_item_per_silence(app: &TestApp) {
    let li = app.login("dr.li").await;
    let liu_token = app.login("patient.liu").await;
    let liu = patient_id_of(app, "patient.liu").await;
    let (status, _) = app
        .post(
            "/api/v1/follow-up-plans",
            &li,
            &json!({"patient_id": liu, "condition": "2型糖尿病", "interval_weeks": 12, "visits": 4,
                    "targets": {"fasting_glucose_below": 7.0, "measure_every_days": 3}}),
        )
        .await;
    assert_eq!(status, 201);
    // Targets out of range are refused naming the field.
    let (status, e) = app
        .post(
            "/api/v1/follow-up-plans",
            &li,
            &json!({"patient_id": liu, "condition": "hypertension", "interval_weeks": 4, "visits": 2,
                    "targets": {"systolic_below": 20}}),
        )
        .await;
    assert_eq!((status, e["errors"][0]["field"].as_str()), (422, Some("targets.systolic_below")));

    // Four days later nothing has arrived: one item however often it is looked for.
    let later = chrono::Utc::now() + chrono::Duration::days(4);
    let opened = teleconsult::vitals::worklist::sweep_missing(&app.state.db, &app.state.notifications, None, later)
        .await
        .unwrap();
    assert_eq!(opened, 1);
    assert_eq!(
        teleconsult::vitals::worklist::sweep_missing(&app.state.db, &app.state.notifications, None, later)
            .await
            .unwrap(),
        0
    );
    let open = worklist(app, &li, "open").await;
    let missing: Vec<&Value> = open.iter().filter(|w| w["reason"] == "glucose_missing").collect();
    assert_eq!(missing.len(), 1, "{open:?}");
    assert!(missing[0]["since"].as_str().is_some_and(|s| s.len() >= 20), "since when nothing came: {:?}", missing[0]);
    assert!(missing[0]["reading"].is_null() && missing[0]["target"].is_null(), "{:?}", missing[0]);
    let (_, inbox) = app.get("/api/v1/notifications", &liu_token).await;
    assert!(inbox["items"].as_array().unwrap().iter().any(|n| n["kind"] == "reading_due"), "{inbox}");

    // A glucose reading ends the silence.
    let (status, _) = app
        .post(
            &format!("/api/v1/patients/{liu}/observations"),
            &liu_token,
            &json!({"kind": "glucose", "glucose_mmol_l": 6.1, "glucose_context": "fasting", "measured_at": minutes_ago(1),
                    "source": "home", "client_id": uuid::Uuid::new_v4()}),
        )
        .await;
    assert_eq!(status, 201);
    assert!(worklist(app, &li, "open").await.iter().all(|w| w["reason"] != "glucose_missing"));
    assert_eq!(worklist(app, &li, "resolved").await.len(), 1);
}
db_test!(missing_readings_are_one_item_per_silence);

async fn a_reading_taken_in_the_call_reaches_the_room(app: &TestApp) {
    let c = scheduled_consultation(app).await;
    let zhang = patient_id_of(app, "patient.zhang").await;
    let mut li = Signaler::join(app, "dr.li", &c).await;
    li.expect("joined").await;
    let mut wang = Signaler::join(app, "dr.wang", &c).await;
    wang.expect("joined").await;
    li.expect("peer-joined").await;

    // Posted with the consultation: both doctors in the room get it, with time and device.
    let mut reading = bp(152.0, 96.0);
    reading["consultation_id"] = json!(c);
    reading["source"] = json!("kiosk");
    let (status, body) =
        app.post(&format!("/api/v1/patients/{zhang}/observations"), &app.login("patient.zhang").await, &reading).await;
    assert_eq!(status, 201, "{body}");
    let live = wang.expect("observation").await;
    assert_eq!(live["reading"]["id"], body["results"][0]["id"]);
    assert_eq!(live["reading"]["summary"], "152/96 mmHg, pulse 78 bpm");
    assert_eq!(
        (live["reading"]["device"].as_str(), live["reading"]["source"].as_str()),
        (Some("Omron HEM-7136"), Some("kiosk"))
    );
    assert!(live["reading"]["measured_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(li.expect("observation").await["reading"]["id"], body["results"][0]["id"]);

    // Once the call is in progress, a fresh reading without the consultation belongs to it.
    let deadline = tokio::time::Instant::now() + rtc::WAIT;
    loop {
        let (state,): (String,) = sqlx::query_as("SELECT state FROM consultations WHERE id = $1")
            .bind(&c)
            .fetch_one(&app.state.db.pool)
            .await
            .unwrap();
        if state == "in_progress" {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the call never started");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let (status, body) =
        app.post(&format!("/api/v1/patients/{zhang}/observations"), &app.login("dr.li").await, &bp(141.0, 91.0)).await;
    assert_eq!(status, 201);
    let live = wang.expect("observation").await;
    assert_eq!(
        (live["reading"]["consultation_id"].as_str(), live["reading"]["id"].clone()),
        (Some(c.as_str()), body["results"][0]["id"].clone())
    );
    let (_, stored) =
        app.get(&format!("/api/v1/patients/{zhang}/observations?limit=1"), &app.login("dr.li").await).await;
    assert_eq!(stored["items"][0]["consultation_id"], c.as_str());
}
db_test!(a_reading_taken_in_the_call_reaches_the_room);

async fn device_post(app: &TestApp, token: &str, query: &str, body: &Value) -> (u16, Value) {
    let resp = app
        .http
        .post(app.url(&format!("/api/v1/device/observations{query}")))
        .header("authorization", format!("Device {token}"))
        .json(body)
        .send()
        .await
        .unwrap();
    common::split(resp).await
}

async fn devices_send_readings_with_their_own_tokens(app: &TestApp) {
    let li = app.login("dr.li").await;
    let admin = app.login("admin").await;
    let zhang = patient_id_of(app, "patient.zhang").await;
    let liu = patient_id_of(app, "patient.liu").await;
    let (status, cuff) = app
        .post("/api/v1/devices", &li, &json!({"kind": "home", "label": "张大爷家血压计", "patient_id": zhang}))
        .await;
    assert_eq!(status, 201, "{cuff}");
    let cuff_token = cuff["token"].as_str().unwrap().to_string();
    let cuff_id = cuff["device"]["id"].as_str().unwrap().to_string();

    // A home device sends its patient's readings; a retried batch is stored once.
    let batch = json!([bp(150.0, 95.0), bp(138.0, 85.0)]);
    let (status, first) = device_post(app, &cuff_token, "", &batch).await;
    assert_eq!((status, first["created"].as_u64()), (201, Some(2)), "{first}");
    let (status, again) = device_post(app, &cuff_token, "", &batch).await;
    assert_eq!((status, again["duplicates"].as_u64()), (200, Some(2)), "{again}");
    let (_, stored) = observations(app, &li, &zhang, "").await;
    let from_cuff: Vec<&Value> =
        stored["items"].as_array().unwrap().iter().filter(|o| o["device_id"] == cuff_id.as_str()).collect();
    assert_eq!(from_cuff.len(), 2);
    assert!(from_cuff.iter().all(|o| o["recorded_by"].is_null()));
    // Audited as the device.
    assert!(
        count(
            app,
            "SELECT COUNT(*) FROM audit_events WHERE actor_role = 'device' AND actor_id = $1 AND action = 'create'",
            &cuff_id
        )
        .await
            >= 2
    );
    // Not another patient's, not a kiosk's, and impossible values are refused naming the field.
    let (status, e) = device_post(app, &cuff_token, &format!("?patient_id={liu}"), &bp(130.0, 80.0)).await;
    assert_eq!((status, e["errors"][0]["field"].as_str()), (422, Some("patient_id")));
    let mut kiosk_reading = bp(130.0, 80.0);
    kiosk_reading["source"] = json!("kiosk");
    let (status, e) = device_post(app, &cuff_token, "", &kiosk_reading).await;
    assert_eq!((status, e["errors"][0]["field"].as_str()), (422, Some("source")));
    let (status, e) = device_post(app, &cuff_token, "", &json!([bp(130.0, 80.0), bp(130.0, 330.0)])).await;
    assert_eq!(
        (status, e["code"].as_str(), e["errors"][0]["field"].as_str()),
        (422, Some("implausible_value"), Some("[1].diastolic_mmhg"))
    );
    // Batches of up to 1,000.
    let many: Vec<Value> = (0..1001).map(|_| bp(120.0, 80.0)).collect();
    let (status, _) = device_post(app, &cuff_token, "", &Value::Array(many)).await;
    assert_eq!(status, 422);

    // A kiosk names the patient: its centre's patients only.
    let centre: (String,) = sqlx::query_as("SELECT home_organisation_id FROM patients WHERE id = $1")
        .bind(&zhang)
        .fetch_one(&app.state.db.pool)
        .await
        .unwrap();
    let (status, kiosk) = app
        .post(
            "/api/v1/devices",
            &admin,
            &json!({"kind": "kiosk", "label": "东湖中心大厅自助机", "organisation_id": centre.0}),
        )
        .await;
    assert_eq!(status, 201, "{kiosk}");
    let kiosk_token = kiosk["token"].as_str().unwrap().to_string();
    let (status, body) = device_post(app, &kiosk_token, &format!("?patient_id={zhang}"), &kiosk_reading).await;
    assert_eq!(status, 201, "{body}");
    let (status, _) = device_post(app, &kiosk_token, "", &kiosk_reading).await;
    assert_eq!(status, 422, "a kiosk must name the patient");
    // A patient of 西城社区卫生服务中心, registered there by its doctor.
    let (status, other) = app
        .post(
            "/api/v1/patients",
            &app.login("dr.zhao").await,
            &json!({"name": "赵六", "sex": "male", "birth_date": "1955-03-01"}),
        )
        .await;
    assert_eq!(status, 201, "{other}");
    let mut r = kiosk_reading.clone();
    r["client_id"] = json!(uuid::Uuid::new_v4());
    let (status, _) =
        device_post(app, &kiosk_token, &format!("?patient_id={}", other["id"].as_str().unwrap()), &r).await;
    assert_eq!(status, 404, "another centre's patient");

    // A user's token is not a device's, and a revoked device is refused.
    let (status, _) = device_post(app, &li, "", &bp(120.0, 80.0)).await;
    assert_eq!(status, 401);
    let (status, _) = app.post(&format!("/api/v1/devices/{cuff_id}/revoke"), &li, &json!({"reason": "已归还"})).await;
    assert_eq!(status, 200);
    let (status, _) = device_post(app, &cuff_token, "", &bp(120.0, 80.0)).await;
    assert_eq!(status, 401);
}
db_test!(devices_send_readings_with_their_own_tokens);
