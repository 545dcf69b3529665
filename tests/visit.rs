//! A consultation, its appointment and its call agree (docs/workflow.md, "Call, appointment and
//! consultation"): a routine room opens shortly before the booked slot, an urgent one at once;
//! signing the opinion during the call does not end it; a doctor ends the call for everyone
//! (a patient cannot); the consultation then completes (opinion signed) or awaits its
//! opinion, and the appointment closes as attended — on SQLite and PostgreSQL.

mod common;
mod rtc;

use common::TestApp;
use rtc::{Signaler, WAIT};
use serde_json::{json, Value};
use std::time::Duration;

/// A consultation for patient.zhang addressed to dr.wang, accepted, booked into dr.wang's
/// first free slot starting after `not_before`: its id and the slot's start.
async fn booked(app: &TestApp, urgency: &str, not_before: chrono::DateTime<chrono::Utc>) -> (String, String) {
    app.consultation().reason("胸闷两周").urgency(urgency).booked_after(not_before).await
}

async fn detail(app: &TestApp, id: &str) -> Value {
    app.get(&format!("/api/v1/consultations/{id}"), &app.login("dr.li").await).await.1
}

async fn wait_for_state(app: &TestApp, id: &str, state: &str) -> Value {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let c = detail(app, id).await;
        if c["state"] == state {
            return c;
        }
        assert!(tokio::time::Instant::now() < deadline, "never {state}: {c}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn sign(app: &TestApp, id: &str) {
    let wang = app.login("dr.wang").await;
    let body = json!({"impression": "心肌缺血可能", "patient_summary": "心脏供血有些不足，两周后复查。"});
    let (status, o) = app.put(&format!("/api/v1/consultations/{id}/opinion"), &wang, &body).await;
    assert_eq!(status, 200, "{o}");
    let (status, o) = app.post(&format!("/api/v1/consultations/{id}/opinion/sign"), &wang, &json!({})).await;
    assert_eq!(status, 200, "{o}");
    assert_eq!(o["patient_summary"], "心脏供血有些不足，两周后复查。");
}

// ---------------------------------------------------------------------------------------

async fn a_routine_room_opens_before_its_slot_and_an_urgent_one_at_once(app: &TestApp) {
    let li = app.login("dr.li").await;
    let later = chrono::Utc::now() + chrono::Duration::hours(1);
    let (routine, start) = booked(app, "routine", later).await;
    let c = detail(app, &routine).await;
    let opens = chrono::DateTime::parse_from_rfc3339(c["appointments"][0]["room_opens_at"].as_str().unwrap()).unwrap();
    let start = chrono::DateTime::parse_from_rfc3339(&start).unwrap();
    assert_eq!(start - opens, chrono::Duration::minutes(15), "the default window");
    let (status, body) = app.post(&format!("/api/v1/consultations/{routine}/join"), &li, &json!({})).await;
    assert_eq!((status, body["code"].as_str()), (409, Some("room_not_open")), "{body}");
    assert_eq!(body["status"], 409);

    let (urgent, _) = booked(app, "urgent", later).await;
    let c = detail(app, &urgent).await;
    assert!(c["appointments"][0].get("room_opens_at").is_none(), "open at once: {c}");
    let (status, body) = app.post(&format!("/api/v1/consultations/{urgent}/join"), &li, &json!({})).await;
    assert_eq!(status, 200, "{body}");
}
db_test!(a_routine_room_opens_before_its_slot_and_an_urgent_one_at_once);

async fn signing_during_the_call_does_not_end_it_and_ending_it_completes(app: &TestApp) {
    let (id, _) = booked(app, "urgent", chrono::Utc::now()).await;
    let mut li = Signaler::join(app, "dr.li", &id).await;
    li.expect("joined").await;
    let mut wang = Signaler::join(app, "dr.wang", &id).await;
    wang.expect("joined").await;
    let mut zhang = Signaler::join(app, "patient.zhang", &id).await;
    assert_eq!(zhang.expect("joined").await["admitted"], false);
    wait_for_state(app, &id, "in_progress").await;

    // Signed while everyone is still in the call: the consultation stays in progress.
    sign(app, &id).await;
    let c = detail(app, &id).await;
    assert_eq!(c["state"], "in_progress", "{c}");
    assert_eq!(c["appointments"][0]["status"], "booked");

    // A patient cannot end the call for everyone, in the lobby or admitted; a doctor can.
    zhang.send(json!({"type": "end"}));
    assert_eq!(zhang.expect("error").await["code"], "not_admitted");
    let waiting = li.expect("lobby").await;
    li.send(json!({"type": "admit", "peer": waiting["participant"]["id"]}));
    zhang.expect("peer-joined").await;
    zhang.send(json!({"type": "end"}));
    assert_eq!(zhang.expect("error").await["code"], "not_allowed");
    assert_eq!(detail(app, &id).await["state"], "in_progress");
    wang.send(json!({"type": "end"}));
    for s in [&mut li, &mut zhang, &mut wang] {
        let ended = s.expect("call-ended").await;
        assert_eq!(ended["by"], "王建国");
        assert_eq!(s.closed().await, 4020);
    }

    // The opinion was signed: the consultation completes, the appointment was attended.
    let c = wait_for_state(app, &id, "completed").await;
    assert_eq!(c["appointments"][0]["status"], "attended", "{c}");
    let last = c["transitions"].as_array().unwrap().last().unwrap().clone();
    assert_eq!((last["action"].as_str(), last["actor_name"].as_str()), (Some("complete"), Some("王建国")));
    let (left,): (i64,) = sqlx::query_as(
        "SELECT COUNT(*) FROM room_events WHERE consultation_id = $1 AND kind = 'left' AND detail = 'ended'",
    )
    .bind(&id)
    .fetch_one(&app.state.db.pool)
    .await
    .unwrap();
    assert_eq!(left, 3, "each one leaves the timeline");
    // The slot stays taken: it was used.
    let (status, body) =
        app.post(&format!("/api/v1/consultations/{id}/join"), &app.login("dr.li").await, &json!({})).await;
    assert_eq!((status, body["code"].as_str()), (409, Some("consultation_not_live")));
}
db_test!(signing_during_the_call_does_not_end_it_and_ending_it_completes);

/// An urgent consultation booked now, dr.li and dr.wang in its call (in progress).
async fn in_a_call(app: &TestApp) -> (String, Signaler, Signaler) {
    let (id, _) = booked(app, "urgent", chrono::Utc::now()).await;
    let mut li = Signaler::join(app, "dr.li", &id).await;
    li.expect("joined").await;
    let mut wang = Signaler::join(app, "dr.wang", &id).await;
    wang.expect("joined").await;
    wait_for_state(app, &id, "in_progress").await;
    (id, li, wang)
}

async fn a_call_ended_before_the_opinion_awaits_it(app: &TestApp) {
    let (id, li, mut wang) = in_a_call(app).await;
    li.send(json!({"type": "end"}));
    assert_eq!(wang.expect("call-ended").await["by"], "李明");
    let c = wait_for_state(app, &id, "awaiting_opinion").await;
    assert_eq!(c["appointments"][0]["status"], "booked", "closed only when the consultation completes");
    sign(app, &id).await;
    let c = detail(app, &id).await;
    assert_eq!(c["state"], "completed");
    assert_eq!(c["appointments"][0]["status"], "attended", "{c}");
}
db_test!(a_call_ended_before_the_opinion_awaits_it);

async fn a_call_ended_while_the_database_is_out_of_reach_completes_when_it_is_back(app: &TestApp) {
    let (id, mut li, wang) = in_a_call(app).await;
    sign(app, &id).await;

    // Every pooled connection taken (the database out of reach for this instance) for longer
    // than twice the pool's 10 s wait for one: the recorder writes the end of the call, which
    // fails with 503 database_unavailable and is retried.
    let pool = &app.state.db.pool;
    let mut held = Vec::new();
    while held.len() < pool.options().get_max_connections() as usize {
        held.push(pool.acquire().await.unwrap());
    }
    // A chat line is kept before anyone is shown it: now it cannot be, so nobody is shown it
    // and its sender is told (tests/signaling.rs has the line sent again).
    li.send(json!({"type": "chat", "text": "心电图已看，结束会诊"}));
    assert_eq!(li.expect("error").await["code"], "chat_not_saved");
    // An end of the call is kept first too, but never refused: after 5 s of trying it ends
    // the call all the same, to be written once the database is back.
    wang.send(json!({"type": "end"}));
    assert_eq!(li.expect("call-ended").await["by"], "王建国");
    tokio::time::sleep(Duration::from_secs(21)).await;
    drop(held);

    // The end is written once the database is back: nothing done in the call is lost, and
    // nothing is kept that nobody saw.
    let c = wait_for_state(app, &id, "completed").await;
    assert_eq!(c["appointments"][0]["status"], "attended", "{c}");
    let (chats,): (i64,) =
        sqlx::query_as("SELECT COUNT(*) FROM consultation_messages WHERE consultation_id = $1 AND body = $2")
            .bind(&id)
            .bind("心电图已看，结束会诊")
            .fetch_one(pool)
            .await
            .unwrap();
    assert_eq!(chats, 0, "the line nobody was shown is not kept");
}
db_test!(a_call_ended_while_the_database_is_out_of_reach_completes_when_it_is_back);

/// A no-show is recorded as the clinic would: not while someone may still be on their way
/// (`no_show_after_mins`, 10, after the start), and never of someone the room's timeline shows
/// came. dr.wang waits in the call of an appointment that started 20 minutes ago; neither
/// dr.li nor the patient came: he is not a no-show (409 `participant_came`), the patient is.
async fn a_no_show_waits_for_the_grace_and_is_never_of_someone_who_came(app: &TestApp) {
    let (id, _) = booked(app, "urgent", chrono::Utc::now()).await;
    let li = app.login("dr.li").await;
    let appointment = detail(app, &id).await["appointments"][0]["id"].as_str().unwrap().to_string();
    let no_show = |who: &'static str| {
        let path = format!("/api/v1/appointments/{appointment}/no-show");
        let li = li.clone();
        async move { app.post(&path, &li, &json!({"participant": who})).await }
    };
    // Before its start (and its ten minutes' grace): nobody is a no-show yet.
    let (status, body) = no_show("patient").await;
    assert_eq!((status, body["code"].as_str()), (409, Some("not_started")), "{body}");

    let mut wang = Signaler::join(app, "dr.wang", &id).await;
    wang.expect("joined").await;
    let pool = &app.state.db.pool;
    let came =
        "SELECT COUNT(*) FROM room_events WHERE consultation_id = $1 AND room_role = 'expert' AND kind = 'joined'";
    let deadline = tokio::time::Instant::now() + WAIT;
    while sqlx::query_as::<_, (i64,)>(came).bind(&id).fetch_one(pool).await.unwrap().0 == 0 {
        assert!(tokio::time::Instant::now() < deadline, "dr.wang's arrival never reached the timeline");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The clock moves on: the appointment started 20 minutes ago.
    let now = chrono::Utc::now();
    sqlx::query("UPDATE appointments SET start_at = $1, end_at = $2 WHERE id = $3")
        .bind(teleconsult::db::ts(now - chrono::Duration::minutes(20)))
        .bind(teleconsult::db::ts(now + chrono::Duration::minutes(10)))
        .bind(&appointment)
        .execute(pool)
        .await
        .unwrap();

    let (status, body) = no_show("expert").await;
    assert_eq!((status, body["code"].as_str()), (409, Some("participant_came")), "{body}");
    let (status, body) = no_show("patient").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["no_shows"], json!(["patient"]));
    let (_, a) = app.get(&format!("/api/v1/appointments/{appointment}"), &li).await;
    assert_eq!(a["status"], "no_show", "{a}");
    // Refused attempts recorded nothing.
    let (kept,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM no_shows WHERE appointment_id = $1")
        .bind(&appointment)
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(kept, 1);
}
db_test!(a_no_show_waits_for_the_grace_and_is_never_of_someone_who_came);
