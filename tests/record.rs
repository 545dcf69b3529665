//! The clinical record: signed and amended opinions, notes, referrals up and down with
//! follow-up plans, the whole record and its printable page, and the coordinators' figures.

mod common;

use common::TestApp;
use serde_json::{json, Value};

async fn ecg_review_for_wang(app: &TestApp) -> String {
    let consent = json!({"given_by": "guardian", "guardian_name": "张伟", "method": "recorded_verbal", "at": "2026-11-22T09:00:00+08:00"});
    app.consultation().reason("心电图判读").urgency("routine").mode("ecg_review").consent(consent).requested().await
}

async fn signed_opinions_are_frozen_and_amended_in_versions(app: &TestApp) {
    let li = app.login("dr.li").await;
    let wang = app.login("dr.wang").await;
    let id = ecg_review_for_wang(app).await;
    // Not yet accepted: dr.wang cannot write the opinion.
    let draft =
        json!({"findings": "窦性心律，心率 72 次/分", "impression": "正常心电图", "recommendations": "继续降压治疗"});
    assert_eq!(app.put(&format!("/api/v1/consultations/{id}/opinion"), &wang, &draft).await.0, 403);
    assert_eq!(app.post(&format!("/api/v1/consultations/{id}/accept"), &wang, &json!({})).await.0, 200);
    let (status, d) = app.put(&format!("/api/v1/consultations/{id}/opinion"), &wang, &draft).await;
    assert_eq!(status, 200, "{d}");
    assert_eq!(d["status"], "draft");
    // Drafts are the author's alone.
    let (_, seen) = app.get(&format!("/api/v1/consultations/{id}/opinions"), &li).await;
    assert_eq!(seen["items"], json!([]));

    let (status, v1) = app.post(&format!("/api/v1/consultations/{id}/opinion/sign"), &wang, &json!({})).await;
    assert_eq!(status, 200, "{v1}");
    assert_eq!(v1["version"], 1);
    assert_eq!(v1["signer_name"], "王建国");
    assert_eq!(v1["signer_title"], "chief");
    assert_eq!(v1["content_sha256"].as_str().unwrap().len(), 64);
    let (_, c) = app.get(&format!("/api/v1/consultations/{id}"), &li).await;
    assert_eq!(c["state"], "completed");

    let (status, body) = app.put(&format!("/api/v1/consultations/{id}/opinion"), &wang, &draft).await;
    assert_eq!(status, 409);
    assert_eq!(body["code"], "already_signed");
    let (status, body) = app.post(&format!("/api/v1/consultations/{id}/opinion/sign"), &wang, &json!({})).await;
    assert_eq!(status, 409);
    assert_eq!(body["code"], "already_signed");

    let amend = json!({"findings": "窦性心律，心率 72 次/分，QTc 440 ms", "impression": "QTc 临界延长", "recommendations": "复查心电图", "reason": "补充 QTc 测量"});
    let (status, v2) = app.post(&format!("/api/v1/consultations/{id}/opinion/amend"), &wang, &amend).await;
    assert_eq!(status, 200, "{v2}");
    assert_eq!(v2["version"], 2);
    assert_eq!(v2["supersedes"], v1["id"]);
    assert_eq!(v2["amendment_reason"], "补充 QTc 测量");
    assert_ne!(v2["content_sha256"], v1["content_sha256"]);

    // dr.li sees both versions and was notified.
    let (_, seen) = app.get(&format!("/api/v1/consultations/{id}/opinions"), &li).await;
    let versions: Vec<(i64, &str)> = seen["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| (o["version"].as_i64().unwrap(), o["status"].as_str().unwrap()))
        .collect();
    assert_eq!(versions, vec![(1, "superseded"), (2, "signed")]);
    let (_, inbox) = app.get("/api/v1/notifications", &li).await;
    assert_eq!(inbox["items"].as_array().unwrap().iter().filter(|n| n["kind"] == "opinion_signed").count(), 2);

    // Patient Liu reads none of it; Zhang (a participant) reads the signed opinion.
    let liu = app.login("patient.liu").await;
    for path in [
        format!("/api/v1/consultations/{id}/opinions"),
        format!("/api/v1/consultations/{id}/record"),
        format!("/api/v1/consultations/{id}/record.html"),
    ] {
        assert_eq!(app.get(&path, &liu).await.0, 404, "{path}");
    }
    let zhang = app.login("patient.zhang").await;
    let (status, z) = app.get(&format!("/api/v1/consultations/{id}/opinions"), &zhang).await;
    assert_eq!(status, 200);
    assert_eq!(z["items"].as_array().unwrap().len(), 2);
}
db_test!(signed_opinions_are_frozen_and_amended_in_versions);

/// A draft is saved with the pool all but full: the handler holds one connection (its
/// transaction) and must not wait for a second one. Before, it read the previous draft on
/// another pooled connection while holding its transaction: with every connection held by
/// such a request (the day replayer at twice the record peak) each waited for a connection no
/// one would return, and after the pool's 10 s every request of the instance answered 503.
async fn a_draft_is_saved_on_one_connection(app: &TestApp) {
    let wang = app.login("dr.wang").await;
    let id = ecg_review_for_wang(app).await;
    assert_eq!(app.post(&format!("/api/v1/consultations/{id}/accept"), &wang, &json!({})).await.0, 200);
    let draft = json!({"findings": "窦性心律", "impression": "正常心电图", "recommendations": "定期复查"});
    // A first save (the reads before the transaction, the account check, warm the caches).
    assert_eq!(app.put(&format!("/api/v1/consultations/{id}/opinion"), &wang, &draft).await.0, 200);
    let pool = &app.state.db.pool;
    let max = pool.options().get_max_connections() as usize;
    let mut held = Vec::new();
    while held.len() < max - 1 {
        held.push(pool.acquire().await.unwrap());
    }
    let edited =
        json!({"findings": "窦性心律，心率 70 次/分", "impression": "正常心电图", "recommendations": "定期复查"});
    let (status, body) = app.put(&format!("/api/v1/consultations/{id}/opinion"), &wang, &edited).await;
    drop(held);
    assert_eq!(status, 200, "saved with one free connection: {body}");
    assert_eq!(body["findings"], "窦性心律，心率 70 次/分");
}
db_test!(a_draft_is_saved_on_one_connection);

async fn referrals_follow_up_and_the_whole_record(app: &TestApp) {
    let li = app.login("dr.li").await;
    let wang = app.login("dr.wang").await;
    let id = ecg_review_for_wang(app).await;
    app.post(&format!("/api/v1/consultations/{id}/accept"), &wang, &json!({})).await;
    let (_, c) = app.get(&format!("/api/v1/consultations/{id}"), &li).await;
    let patient = c["patient_id"].as_str().unwrap().to_string();

    // Notes: appended, and withdrawn as entered in error.
    let (status, n1) = app
        .post(
            &format!("/api/v1/consultations/{id}/notes"),
            &li,
            &json!({"kind": "case_summary", "body": "血压控制欠佳"}),
        )
        .await;
    assert_eq!(status, 201, "{n1}");
    let (_, n2) = app.post(&format!("/api/v1/consultations/{id}/notes"), &li, &json!({"body": "误录：错误患者"})).await;
    let (status, notes) = app
        .post(
            &format!("/api/v1/consultations/{id}/notes/{}/withdraw", n2["id"].as_str().unwrap()),
            &li,
            &json!({"reason": "录入错误"}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(notes[1]["status"], "entered_in_error");
    assert_eq!(notes.as_array().unwrap().len(), 2, "withdrawn notes stay in the record");

    // Down-referral with a follow-up plan: every 4 weeks, 6 visits.
    let (status, down) = app
        .post(
            "/api/v1/referrals",
            &wang,
            &json!({"patient_id": patient, "consultation_id": id, "direction": "down", "reason": "病情稳定，回社区随访", "urgency": "routine",
                    "care_plan": "氨氯地平 5 mg qd，每 4 周复查血压", "follow_up": {"condition": "hypertension", "interval_weeks": 4, "visits": 6}}),
        )
        .await;
    assert_eq!(status, 201, "{down}");
    assert_eq!(down["to_organisation_name"], "东湖社区卫生服务中心");
    let (_, visits) = app.get(&format!("/api/v1/follow-ups?patient_id={patient}"), &li).await;
    let dates: Vec<chrono::NaiveDate> =
        visits["items"].as_array().unwrap().iter().map(|v| v["due_date"].as_str().unwrap().parse().unwrap()).collect();
    assert_eq!(dates.len(), 6);
    let today = chrono::Utc::now().date_naive();
    assert_eq!(dates[0], today + chrono::Duration::weeks(4));
    assert!(dates.windows(2).all(|w| w[1] - w[0] == chrono::Duration::weeks(4)));
    // Nothing overdue yet; moving a visit into the past makes it overdue for dr.li.
    let (_, overdue) = app.get("/api/v1/follow-ups?overdue=true", &li).await;
    assert_eq!(overdue["items"], json!([]));
    let vid = visits["items"][0]["id"].as_str().unwrap();
    let (status, moved) =
        app.patch(&format!("/api/v1/follow-ups/{vid}"), &li, &json!({"due_date": "2026-01-05"})).await;
    assert_eq!(status, 200, "{moved}");
    let (_, overdue) = app.get("/api/v1/follow-ups?overdue=true", &li).await;
    assert_eq!(overdue["items"].as_array().unwrap().len(), 1);
    let (_, _) =
        app.patch(&format!("/api/v1/follow-ups/{vid}"), &li, &json!({"status": "done", "note": "血压 132/84"})).await;
    let (_, overdue) = app.get("/api/v1/follow-ups?overdue=true", &li).await;
    assert_eq!(overdue["items"], json!([]));

    // The receiving centre accepts the down-referral; the hospital sees it as sent.
    let rid = down["id"].as_str().unwrap();
    assert_eq!(app.post(&format!("/api/v1/referrals/{rid}/accept"), &wang, &json!({})).await.0, 403);
    let (status, acc) = app.post(&format!("/api/v1/referrals/{rid}/accept"), &li, &json!({})).await;
    assert_eq!(status, 200, "{acc}");
    assert_eq!(acc["status"], "accepted");
    assert_eq!(acc["history"].as_array().unwrap().len(), 2);
    let (status, body) = app.post(&format!("/api/v1/referrals/{rid}/reject"), &li, &json!({"reason": "x"})).await;
    assert_eq!(status, 409);
    assert_eq!(body["code"], "invalid_transition");

    // Up-referral from the centre to the hospital, accepted by the coordinator.
    let (status, up) = app
        .post(
            "/api/v1/referrals",
            &li,
            &json!({"patient_id": patient, "direction": "up", "reason": "需冠脉造影", "urgency": "urgent"}),
        )
        .await;
    assert_eq!(status, 201, "{up}");
    let coord = app.login("coordinator").await;
    let (_, received) = app.get("/api/v1/referrals?side=received", &coord).await;
    assert_eq!(received["items"].as_array().unwrap().len(), 1);
    let (status, _) = app
        .post(
            &format!("/api/v1/referrals/{}/accept", up["id"].as_str().unwrap()),
            &coord,
            &json!({"appointment_at": "2026-12-01T09:00:00+08:00"}),
        )
        .await;
    assert_eq!(status, 200);

    // The opinion, then the whole record and its printable page.
    app.put(
        &format!("/api/v1/consultations/{id}/opinion"),
        &wang,
        &json!({"findings": "ST 段压低", "impression": "心肌缺血可能"}),
    )
    .await;
    app.post(&format!("/api/v1/consultations/{id}/opinion/sign"), &wang, &json!({})).await;
    let (status, record) = app.get(&format!("/api/v1/consultations/{id}/record"), &li).await;
    assert_eq!(status, 200, "{record}");
    assert_eq!(record["consultation"]["consent"]["guardian_name"], "张伟");
    assert_eq!(record["opinions"].as_array().unwrap().len(), 1);
    assert_eq!(record["notes"].as_array().unwrap().len(), 2);
    assert_eq!(record["referrals"].as_array().unwrap().len(), 1);
    assert_eq!(record["follow_up"].as_array().unwrap().len(), 6);
    assert!(record["consultation"]["transitions"].as_array().unwrap().iter().any(|t| t["action"] == "sign_opinion"));
    let resp = app
        .http
        .get(app.url(&format!("/api/v1/consultations/{id}/record.html")))
        .bearer_auth(&li)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    let html = resp.text().await.unwrap();
    for needle in [
        "张秀英",
        "心肌缺血可能",
        "王建国",
        record["opinions"][0]["content_sha256"].as_str().unwrap(),
        "氨氯地平",
        "录入错误",
        "@media print",
    ] {
        assert!(html.contains(needle), "the printable record lacks {needle}");
    }

    // Figures for the coordinator.
    let (status, figs) = app.get("/api/v1/figures", &coord).await;
    assert_eq!(status, 200, "{figs}");
    assert_eq!(figs["by_state"]["completed"], 1);
    assert_eq!(figs["by_mode"]["ecg_review"], 1);
    assert!(figs["median_minutes_to_acceptance"].as_f64().is_some());
    let month = chrono::Utc::now().format("%Y-%m").to_string();
    assert_eq!(figs["referrals_per_month"][&month], json!({"down": 1, "up": 1}));
    assert_eq!(app.get("/api/v1/figures", &li).await.0, 403);

    // Patient Liu sees none of the referrals.
    let liu = app.login("patient.liu").await;
    assert_eq!(app.get(&format!("/api/v1/referrals/{rid}"), &liu).await.0, 404);
    let (_, mine) = app.get("/api/v1/referrals", &liu).await;
    assert_eq!(mine["items"], Value::Array(vec![]));
}
db_test!(referrals_follow_up_and_the_whole_record);

/// Edits of a patient's record keep what they replaced: a corrected name, phone and resident ID
/// number, a follow-up visit's note written over (defect: `PATCH` overwrote them in place and
/// the old values were gone, with an audit event that did not say what they were). The
/// revisions are read by whoever may read the record, audited, with the resident ID number
/// masked as the reader sees the current one.
async fn an_edit_of_the_record_keeps_what_it_replaced(app: &TestApp) {
    let li = app.login("dr.li").await;
    let zhang = app.patient_id("patient.zhang").await;
    let (_, before) = app.get(&format!("/api/v1/patients/{zhang}"), &li).await;
    let revisions = format!("/api/v1/patients/{zhang}/revisions");
    let (status, none) = app.get(&revisions, &li).await;
    assert_eq!((status, none["items"].clone()), (200, json!([])), "{none}");

    // One change of name and phone (the sex sent unchanged is not a change), then the ID number.
    let (status, after) = app
        .patch(
            &format!("/api/v1/patients/{zhang}"),
            &li,
            &json!({"name": "张秀瑛", "phone": "13900000001", "sex": before["sex"]}),
        )
        .await;
    assert_eq!(status, 200, "{after}");
    assert_eq!(after["name"], "张秀瑛");
    let new_id = "11010519491231002X";
    let (status, after) = app.patch(&format!("/api/v1/patients/{zhang}"), &li, &json!({"resident_id": new_id})).await;
    assert_eq!(status, 200, "{after}");

    // A visit of a follow-up plan, its note written and then written over.
    let (status, plan) = app
        .post(
            "/api/v1/follow-up-plans",
            &li,
            &json!({"patient_id": zhang, "condition": "hypertension", "interval_weeks": 4, "visits": 2}),
        )
        .await;
    assert_eq!(status, 201, "{plan}");
    let (_, visits) = app.get(&format!("/api/v1/follow-ups?patient_id={zhang}"), &li).await;
    let vid = visits["items"][0]["id"].as_str().unwrap().to_string();
    let (status, _) = app.patch(&format!("/api/v1/follow-ups/{vid}"), &li, &json!({"note": "血压 152/96，加量"})).await;
    assert_eq!(status, 200);
    let (status, _) =
        app.patch(&format!("/api/v1/follow-ups/{vid}"), &li, &json!({"note": "血压 132/84", "status": "done"})).await;
    assert_eq!(status, 200);

    let (status, page) = app.get(&revisions, &li).await;
    assert_eq!(status, 200, "{page}");
    let items = page["items"].as_array().unwrap();
    assert_eq!(items.len(), 4, "{page}");
    // Newest first: the note written over (with the status it had), the first note, the ID number, the name and phone.
    assert_eq!(items[0]["resource_type"], "follow_up_visit");
    assert_eq!(items[0]["resource_id"], vid.as_str());
    assert_eq!(items[0]["previous"], json!({"note": "血压 152/96，加量", "status": "planned"}));
    assert_eq!(items[1]["previous"], json!({"note": ""}));
    assert_eq!(items[2]["previous"], json!({"resident_id": before["resident_id"]}));
    assert_eq!(items[3]["resource_type"], "patient");
    assert_eq!(items[3]["previous"], json!({"name": before["name"], "phone": before["phone"]}));
    assert_eq!(items[3]["revised_by_name"], "李明");
    // Reading them is a read of the record.
    let li_id = app.user_id("dr.li").await;
    let admin = app.login("admin").await;
    let (_, trail) = app.get(&format!("/api/v1/audit?actor_id={li_id}&limit=500"), &admin).await;
    assert!(
        trail["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "read_revisions" && e["patient_id"] == zhang.as_str()),
        "{trail}"
    );

    // An expert of her consultation reads the record with the resident ID number masked, and the
    // number replaced masked the same way; anyone else does not see them at all.
    let wang = app.login("dr.wang").await;
    let wang_id = app.user_id("dr.wang").await;
    let (status, c) = app
        .post(
            "/api/v1/consultations",
            &li,
            &json!({"patient_id": zhang, "reason": "胸闷", "specialty": "cardiology", "min_title": "attending",
                    "urgency": "routine", "mode": "video", "addressee": {"kind": "expert", "expert_id": wang_id},
                    "consent": common::written_consent()}),
        )
        .await;
    assert_eq!(status, 201, "{c}");
    let (status, seen) = app.get(&revisions, &wang).await;
    assert_eq!(status, 200, "{seen}");
    let masked = seen["items"][2]["previous"]["resident_id"].as_str().unwrap();
    assert!(masked.contains('*') && masked != before["resident_id"].as_str().unwrap(), "{masked}");
    assert_eq!(app.get(&revisions, &app.login("dr.zhao").await).await.0, 404);
}
db_test!(an_edit_of_the_record_keeps_what_it_replaced);

/// What people type goes onto the printable page as text: a patient named like a script tag
/// and a note written like an image with a handler come out escaped, never as markup.
async fn the_printable_record_escapes_what_people_wrote(app: &TestApp) {
    let li = app.login("dr.li").await;
    let name = "<script>alert(\"x\")</script>张三";
    let (status, p) =
        app.post("/api/v1/patients", &li, &json!({"name": name, "sex": "male", "birth_date": "1958-04-01"})).await;
    assert_eq!(status, 201, "{p}");
    let wang = app.user_id("dr.wang").await;
    let (status, c) = app
        .post(
            "/api/v1/consultations",
            &li,
            &json!({
                "patient_id": p["id"], "reason": "胸闷 & 心悸 <急>", "specialty": "cardiology", "min_title": "attending",
                "urgency": "routine", "mode": "ecg_review", "addressee": {"kind": "expert", "expert_id": wang},
                "consent": {"given_by": "patient", "method": "written", "at": "2026-11-22T09:00:00+08:00"}
            }),
        )
        .await;
    assert_eq!(status, 201, "{c}");
    let id = c["id"].as_str().unwrap();
    let note = json!({"body": "<img src=x onerror=alert(1)> 血压 150/95"});
    assert_eq!(app.post(&format!("/api/v1/consultations/{id}/notes"), &li, &note).await.0, 201);
    let resp = app
        .http
        .get(app.url(&format!("/api/v1/consultations/{id}/record.html")))
        .bearer_auth(&li)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let html = resp.text().await.unwrap();
    assert!(!html.contains("<script"), "a script tag reached the page: {html}");
    assert!(!html.contains("<img"), "an image tag reached the page");
    assert!(
        html.contains("<title>远程会诊记录 &lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;张三</title>"),
        "{html}"
    );
    assert!(html.contains("<td>&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;张三</td>"));
    assert!(html.contains("&lt;img src=x onerror=alert(1)&gt; 血压 150/95"));
    assert!(html.contains("<p>胸闷 &amp; 心悸 &lt;急&gt;</p>"));
    // The page's own markup is still markup.
    assert!(html.starts_with("<!doctype html><html lang=\"zh-CN\"><head><meta charset=\"utf-8\">"));
    assert!(html.contains("<h2>会诊意见 Opinions</h2><p class=\"muted\">尚无已签署的意见 No signed opinion yet.</p>"));
}
db_test!(the_printable_record_escapes_what_people_wrote);
