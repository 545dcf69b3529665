//! The authorization matrix: every route of the route table (the same table that builds the
//! router and the OpenAPI document), called by every kind of caller, with the answer each
//! must get. A route added without a row here fails `every_route_has_a_row`.
//!
//! The callers, in column order:
//!
//! | column | caller | relationship to the consultation under test |
//! |---|---|---|
//! | 1 | anonymous | no token |
//! | 2 | deactivated | a community doctor of the patient's centre, deactivated after signing in |
//! | 3 | admin | administrator: accounts, organisations, devices and figures; takes part in no care, so sees no patient, consultation or referral |
//! | 4 | coordinator | coordinator of the hospital linked to the patient's centre |
//! | 5 | coordinator.far | coordinator of a hospital not linked to it |
//! | 6 | dr.li | community doctor of the patient's centre, who requested the consultation |
//! | 7 | dr.zhao | community doctor of another centre |
//! | 8 | dr.wang | expert invited to the consultation, who accepted |
//! | 9 | dr.declined | expert invited to the same consultation, who declined |
//! | 10 | dr.chen | expert of the same hospital, not involved |
//! | 11 | patient.zhang | the patient |
//! | 12 | patient.liu | another patient of the same centre |
//! | 13 | dr.invited | expert invited to the same consultation, who has not answered yet |
//! | 14 | kiosk | the patient, with the access a kiosk's check-in hands out for this consultation |
//! | 15 | kiosk.revoked | the same access, handed out by a kiosk revoked since |
//!
//! A refused request (any status of 400 or more) did nothing, and the audit trail must not say
//! it did: no event with outcome `success` by the caller may appear during it (a refusal is
//! recorded `denied` or `failed`); and a signed-in caller's 403 or 404 (and the deactivated
//! caller's 401 `token_revoked`) must leave at least one refusal by them in the trail.
//!
//! Every answer is also checked against the OpenAPI document (`api::openapi`): its status is
//! one the operation documents, and a JSON body conforms to the schema documented for it.
//!
//! Answers: `A` the caller passes the access decision (any answer but 401, 403, 404 or a 5xx:
//! the action may still be refused for its state or its input), `U` 401, `F` 403, `N` 404 (a
//! record the caller may not see does not exist for them).
//!
//! The consultation under test: patient.zhang's MDT consultation requested by dr.li from
//! dr.wang and dr.declined, with a note, files (a document, an ECG, a DICOM image), a
//! resumable upload, a booked appointment, an up-referral, a follow-up plan, a home device of
//! the patient and an identifier. The callers are users: on the device routes every one of them
//! must be refused (401); what devices may do is tested in `tests/devices.rs` and
//! `tests/checkin.rs`. Reading routes
//! share one such consultation; every writing route gets a fresh one per caller, so one
//! caller's action never decides another's answer.

mod common;

use common::{Backend, TestApp};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};

const CALLERS: [&str; 15] = [
    "anonymous",
    "deactivated",
    "admin",
    "coordinator",
    "coordinator.far",
    "dr.li",
    "dr.zhao",
    "dr.wang",
    "dr.declined",
    "dr.chen",
    "patient.zhang",
    "patient.liu",
    "dr.invited",
    "kiosk",
    "kiosk.revoked",
];

/// What a request carries besides its path.
#[derive(Clone, Copy)]
enum Body {
    None,
    Json(fn(&Case) -> Value),
    /// A one-shot file upload of a small PDF.
    File,
    /// tus creation (Upload-Length) / chunk (PATCH at offset 0).
    TusCreate,
    TusChunk,
    /// STOW-RS of one DICOM instance.
    Stow,
}

struct Row {
    method: &'static str,
    route: &'static str,
    /// The concrete path: `$name` is replaced by the case's resource of that name.
    path: &'static str,
    body: Body,
    expect: &'static str,
}

const fn row(method: &'static str, route: &'static str, path: &'static str, body: Body, expect: &'static str) -> Row {
    Row { method, route, path, body, expect }
}

static SEQ: AtomicUsize = AtomicUsize::new(0);
fn seq() -> usize {
    SEQ.fetch_add(1, Ordering::Relaxed)
}
fn letters(mut n: usize) -> String {
    let mut s = String::new();
    loop {
        s.push((b'a' + (n % 26) as u8) as char);
        n /= 26;
        if n == 0 {
            return s;
        }
    }
}

/// dr.wang's demo week (weekdays 09:00-12:00 and 14:00-17:00), so that the rows that replace
/// it leave the calendar the other rows book from.
fn weekday_availability() -> Value {
    let rules: Vec<Value> = (1..=5)
        .flat_map(|d| {
            [("09:00", "12:00"), ("14:00", "17:00")]
                .map(|(start, end)| json!({"weekday": d, "start": start, "end": end, "slot_minutes": 30}))
        })
        .collect();
    json!({"rules": rules, "policy": {"buffer_minutes": 0, "max_per_day": 0, "min_notice_minutes": 0}})
}

/// A blood-pressure reading taken a minute ago, with a new client id each time.
fn reading() -> Value {
    json!({"kind": "blood_pressure", "systolic_mmhg": 152, "diastolic_mmhg": 96, "pulse_bpm": 78, "source": "home",
           "measured_at": (chrono::Utc::now() - chrono::Duration::minutes(1)).to_rfc3339(),
           "client_id": uuid::Uuid::new_v4().to_string()})
}

fn consent() -> Value {
    json!({"given_by": "patient", "method": "written", "at": "2026-11-22T09:00:00+08:00"})
}

/// The matrix. Columns: anonymous, deactivated | admin | coordinator, coordinator.far |
/// dr.li, dr.zhao | dr.wang, dr.declined, dr.chen | patient.zhang, patient.liu | dr.invited |
/// kiosk, kiosk.revoked.
fn rows() -> Vec<Row> {
    use Body::*;
    vec![
        // ---- public ----
        row("get", "/", "/", None, "AA A AA AA AAA AA A AA"),
        row("get", "/api/v1/openapi.json", "/api/v1/openapi.json", None, "AA A AA AA AAA AA A AA"),
        row("get", "/healthz", "/healthz", None, "AA A AA AA AAA AA A AA"),
        row("get", "/readyz", "/readyz", None, "AA A AA AA AAA AA A AA"),
        row("get", "/metrics", "/metrics", None, "AA A AA AA AAA AA A AA"),
        row("get", "/api/v1/rtc", "/api/v1/rtc?ticket=not-a-ticket", None, "AA A AA AA AAA AA A AA"),
        row("post", "/api/v1/auth/login", "/api/v1/auth/login", Json(|_| json!({"username": "dr.chen", "password": "demo-password"})), "AA A AA AA AAA AA A AA"),
        row("post", "/api/v1/auth/refresh", "/api/v1/auth/refresh", Json(|_| json!({"refresh_token": "not-a-token"})), "UU U UU UU UUU UU U UU"),
        row("post", "/api/v1/auth/logout", "/api/v1/auth/logout", Json(|_| json!({"refresh_token": "not-a-token"})), "AA A AA AA AAA AA A AA"),
        row("options", "/api/v1/consultations/{id}/uploads", "/api/v1/consultations/$c/uploads", None, "AA A AA AA AAA AA A AA"),
        // ---- oneself ----
        row("get", "/api/v1/me", "/api/v1/me", None, "UU A AA AA AAA AA A AU"),
        row("post", "/api/v1/me/password", "/api/v1/me/password", Json(|_| json!({"current_password": "wrong-password", "new_password": "another-password-1"})), "UU A AA AA AAA AA A FU"),
        row("get", "/api/v1/notifications", "/api/v1/notifications", None, "UU A AA AA AAA AA A FU"),
        row("get", "/api/v1/notifications/stream", "/api/v1/notifications/stream", None, "UU A AA AA AAA AA A FU"),
        row("post", "/api/v1/notifications/{id}/read", "/api/v1/notifications/$notification/read", Json(|_| json!({})), "UU N NN AN NNN NN N FU"),
        row("post", "/api/v1/notifications/read-all", "/api/v1/notifications/read-all", Json(|_| json!({})), "UU A AA AA AAA AA A FU"),
        row("post", "/api/v1/netcheck", "/api/v1/netcheck", Json(|_| json!({})), "UU A AA AA AAA AA A FU"),
        row("post", "/api/v1/netcheck/{id}/offer", "/api/v1/netcheck/$netcheck/offer", Json(|_| json!({"sdp": "v=0"})), "UU N NN AN NNN NN N FU"),
        row("post", "/api/v1/netcheck/{id}/complete", "/api/v1/netcheck/$netcheck/complete", Json(|_| json!({"rtt_ms": [], "sent": 0, "received": 0})), "UU N NN AN NNN NN N FU"),
        row("get", "/api/v1/netcheck/{id}", "/api/v1/netcheck/$netcheck_done", None, "UU N NN AN NNN NN N FU"),
        row("get", "/api/v1/netcheck/results", "/api/v1/netcheck/results", None, "UU A AA FF FFF FF F FU"),
        // ---- directory and accounts ----
        row("get", "/api/v1/organisations", "/api/v1/organisations", None, "UU A AA AA AAA AA A FU"),
        row("post", "/api/v1/organisations", "/api/v1/organisations", Json(|_| json!({"name": format!("新社区{}", seq()), "kind": "community_health_centre"})), "UU A AA FF FFF FF F FU"),
        row("get", "/api/v1/organisations/{id}", "/api/v1/organisations/$centre", None, "UU A AA AA AAA AA A FU"),
        row("patch", "/api/v1/organisations/{id}", "/api/v1/organisations/$centre", Json(|_| json!({"address": "东湖路 1 号"})), "UU A AF FF FFF FF F FU"),
        row("get", "/api/v1/organisations/{id}/departments", "/api/v1/organisations/$hospital/departments", None, "UU A AA AA AAA AA A FU"),
        row("post", "/api/v1/organisations/{id}/departments", "/api/v1/organisations/$hospital/departments", Json(|_| json!({"name": format!("科室{}", seq()), "specialty": "cardiology"})), "UU A AF FF FFF FF F FU"),
        row("get", "/api/v1/consortium-links", "/api/v1/consortium-links", None, "UU A AA AA AAA AA A FU"),
        row("post", "/api/v1/consortium-links", "/api/v1/consortium-links", Json(|c| json!({"hospital_id": c.get("hospital"), "centre_id": c.get("new_centre")})), "UU A AF FF FFF FF F FU"),
        row("post", "/api/v1/consortium-links/{id}/end", "/api/v1/consortium-links/$link/end", Json(|_| json!({"reason": "合作协议到期"})), "UU A FF FF FFF FF F FU"),
        row("get", "/api/v1/specialties", "/api/v1/specialties", None, "UU A AA AA AAA AA A FU"),
        row("post", "/api/v1/specialties", "/api/v1/specialties", Json(|_| json!({"code": format!("spec_{}", letters(seq())), "name_en": "X", "name_zh": "某科"})), "UU A FF FF FFF FF F FU"),
        row("get", "/api/v1/users", "/api/v1/users", None, "UU A AA FF FFF FF F FU"),
        row("post", "/api/v1/users", "/api/v1/users", Json(|c| json!({"username": format!("dr.new{}", seq()), "display_name": "新医生", "password": "demo-password", "role": "community_doctor", "organisation_id": c.get("centre")})), "UU A AF FF FFF FF F FU"),
        row("get", "/api/v1/users/{id}", "/api/v1/users/$li", None, "UU A AN AN NNN NN N FU"),
        row("patch", "/api/v1/users/{id}", "/api/v1/users/$li", Json(|_| json!({"display_name": "李明"})), "UU A AN AN NNN NN N FU"),
        row("get", "/api/v1/experts", "/api/v1/experts", None, "UU A AA AA AAA AA A FU"),
        // ---- availability and scheduling ----
        row("get", "/api/v1/experts/{id}/availability", "/api/v1/experts/$wang/availability", None, "UU A AA AA AAA AA A FU"),
        row("put", "/api/v1/experts/{id}/availability", "/api/v1/experts/$wang/availability", Json(|_| weekday_availability()), "UU A AF FF AFF FF F FU"),
        row("get", "/api/v1/experts/{id}/exceptions", "/api/v1/experts/$wang/exceptions", None, "UU A AF FF AFF FF F FU"),
        row("post", "/api/v1/experts/{id}/exceptions", "/api/v1/experts/$wang/exceptions", Json(|_| json!({"kind": "leave", "start": "2027-03-01T09:00:00+08:00", "end": "2027-03-01T12:00:00+08:00", "reason": "学术会议"})), "UU A AF FF AFF FF F FU"),
        row("post", "/api/v1/experts/{id}/exceptions/{exception}/withdraw", "/api/v1/experts/$wang/exceptions/$exception/withdraw", Json(|_| json!({})), "UU A AF FF AFF FF F FU"),
        row("get", "/api/v1/experts/{id}/slots", "/api/v1/experts/$wang/slots", None, "UU A AA AA AAA AA A FU"),
        row("post", "/api/v1/appointments", "/api/v1/appointments", Json(|c| json!({"consultation_id": c.get("c"), "expert_id": c.get("wang"), "start": c.get("slot")})), "UU N AN AN ANN FN F FU"),
        row("get", "/api/v1/appointments", "/api/v1/appointments", None, "UU A AA AA AAA AA A FU"),
        row("get", "/api/v1/appointments/{id}", "/api/v1/appointments/$appointment", None, "UU N AN AN ANN AN A FU"),
        row("post", "/api/v1/appointments/{id}/reschedule", "/api/v1/appointments/$appointment/reschedule", Json(|c| json!({"start": c.get("slot2"), "reason": "专家门诊调整"})), "UU N AN AN ANN AN F FU"),
        row("post", "/api/v1/appointments/{id}/cancel", "/api/v1/appointments/$appointment/cancel", Json(|_| json!({"reason": "患者要求取消"})), "UU N AN AN ANN AN F FU"),
        row("post", "/api/v1/appointments/{id}/no-show", "/api/v1/appointments/$appointment/no-show", Json(|_| json!({"participant": "patient"})), "UU N AN AN ANN AN F FU"),
        // ---- patients ----
        row("get", "/api/v1/patients", "/api/v1/patients", None, "UU A AA AA AAA AA A FU"),
        row("post", "/api/v1/patients", "/api/v1/patients", Json(|_| json!({"name": "王五", "sex": "male", "birth_date": "1960-01-01"})), "UU F AA AA FFF FF F FU"),
        row("get", "/api/v1/patients/{id}", "/api/v1/patients/$patient", None, "UU N AN AN ANN AN A FU"),
        row("patch", "/api/v1/patients/{id}", "/api/v1/patients/$patient", Json(|_| json!({"phone": "13800000009"})), "UU N FN AN FNN FN F FU"),
        row("get", "/api/v1/patients/{id}/revisions", "/api/v1/patients/$patient/revisions", None, "UU N AN AN ANN AN A FU"),
        row("post", "/api/v1/patients/{id}/identifiers", "/api/v1/patients/$patient/identifiers", Json(|_| json!({"kind": "phone", "value": format!("139{:08}", seq())})), "UU N FN AN FNN FN F FU"),
        row("post", "/api/v1/patients/{id}/identifiers/{identifier_id}/retire", "/api/v1/patients/$patient/identifiers/$identifier/retire", Json(|_| json!({"reason": "换卡"})), "UU N FN AN FNN FN F FU"),
        row("get", "/api/v1/audit", "/api/v1/audit", None, "UU A FF FF FFF AA F FU"),
        // ---- devices (user routes) and the device routes, which refuse every user token ----
        row("post", "/api/v1/devices", "/api/v1/devices", Json(|c| json!({"kind": "home", "label": "家用血压计", "patient_id": c.get("patient")})), "UU N AN AN FFF FF F FU"),
        row("get", "/api/v1/devices", "/api/v1/devices", None, "UU A AA AA FFF FF F FU"),
        row("post", "/api/v1/devices/{id}/revoke", "/api/v1/devices/$device/revoke", Json(|_| json!({"reason": "设备丢失"})), "UU A AN AN FFF FF F FU"),
        row("get", "/api/v1/device", "/api/v1/device", None, "UU U UU UU UUU UU U UU"),
        row("post", "/api/v1/kiosk/checkin", "/api/v1/kiosk/checkin", Json(|_| json!({"card_number": "4401060000000001", "birth_date": "1948-05-12"})), "UU U UU UU UUU UU U UU"),
        row("post", "/api/v1/kiosk/notify-duty", "/api/v1/kiosk/notify-duty", Json(|_| json!({"checkin_id": "0192f0c4-7b1e-7cc3-a000-0123456789ab"})), "UU U UU UU UUU UU U UU"),
        // ---- consultations ----
        row("get", "/api/v1/consultations", "/api/v1/consultations", None, "UU A AA AA AAA AA A FU"),
        row("post", "/api/v1/consultations", "/api/v1/consultations", Json(|c| json!({"patient_id": c.get("patient"), "reason": "胸闷", "specialty": "cardiology", "min_title": "attending", "urgency": "routine", "mode": "video", "addressee": {"kind": "expert", "expert_id": c.get("wang")}, "consent": consent()})), "UU F FF AN FFF FF F FU"),
        row("post", "/api/v1/consultations/candidates", "/api/v1/consultations/candidates", Json(|_| json!({"specialty": "cardiology", "min_title": "attending", "urgency": "routine"})), "UU F FF AA FFF FF F FU"),
        row("get", "/api/v1/consultations/{id}", "/api/v1/consultations/$c", None, "UU N AN AN ANN AN A AU"),
        row("post", "/api/v1/consultations/{id}/submit", "/api/v1/consultations/$c/submit", Json(|_| json!({})), "UU N FN AN FNN FN F FU"),
        row("post", "/api/v1/consultations/{id}/decline", "/api/v1/consultations/$c/decline", Json(|_| json!({"reason": "本周出差"})), "UU F FF FF ANN FF A FU"),
        row("post", "/api/v1/consultations/{id}/claim", "/api/v1/consultations/$c/claim", Json(|_| json!({})), "UU F FF FF ANN FF A FU"),
        row("post", "/api/v1/consultations/{id}/readdress", "/api/v1/consultations/$c/readdress", Json(|c| json!({"addressee": {"kind": "expert", "expert_id": c.get("chen")}})), "UU F FF AN FFF FF F FU"),
        row("post", "/api/v1/consultations/{id}/cancel", "/api/v1/consultations/$c/cancel", Json(|_| json!({"reason": "患者已转院"})), "UU N AN AN FNN FN F FU"),
        row("post", "/api/v1/consultations/{id}/complete", "/api/v1/consultations/$c/complete", Json(|_| json!({})), "UU N FN AN ANN FN F FU"),
        row("get", "/api/v1/consultations/{id}/candidates", "/api/v1/consultations/$c/candidates", None, "UU N AN AN ANN AN A AU"),
        row("post", "/api/v1/consultations/{id}/join", "/api/v1/consultations/$c/join", Json(|_| json!({})), "UU N FN AN ANN AN F AU"),
        // ---- the record ----
        row("put", "/api/v1/consultations/{id}/opinion", "/api/v1/consultations/$c/opinion", Json(|_| json!({"findings": "ST 段压低"})), "UU N FN FN ANN FN F FU"),
        row("post", "/api/v1/consultations/{id}/opinion/sign", "/api/v1/consultations/$c/opinion/sign", Json(|_| json!({})), "UU N FN FN ANN FN F FU"),
        row("post", "/api/v1/consultations/{id}/opinion/amend", "/api/v1/consultations/$c/opinion/amend", Json(|_| json!({"findings": "更正", "reason": "补充"})), "UU N FN FN ANN FN F FU"),
        row("get", "/api/v1/consultations/{id}/opinions", "/api/v1/consultations/$c/opinions", None, "UU N AN AN ANN AN A AU"),
        row("post", "/api/v1/consultations/{id}/notes", "/api/v1/consultations/$c/notes", Json(|_| json!({"body": "血压 150/95"})), "UU N FN AN ANN FN F FU"),
        row("post", "/api/v1/consultations/{id}/notes/{note}/withdraw", "/api/v1/consultations/$c/notes/$note/withdraw", Json(|_| json!({"reason": "录入错误"})), "UU N NN AN NNN NN N NU"),
        row("get", "/api/v1/consultations/{id}/record", "/api/v1/consultations/$c/record", None, "UU N AN AN ANN AN A AU"),
        row("get", "/api/v1/consultations/{id}/record.html", "/api/v1/consultations/$c/record.html", None, "UU N AN AN ANN AN A AU"),
        row("post", "/api/v1/referrals", "/api/v1/referrals", Json(|c| json!({"patient_id": c.get("patient"), "consultation_id": c.get("c"), "direction": "up", "reason": "需冠脉造影", "urgency": "urgent"})), "UU N FN AN FNN FN F FU"),
        row("get", "/api/v1/referrals", "/api/v1/referrals", None, "UU A AA AA AAA AA A FU"),
        row("get", "/api/v1/referrals/{id}", "/api/v1/referrals/$referral", None, "UU N AN AN NNN AN N FU"),
        row("post", "/api/v1/referrals/{id}/accept", "/api/v1/referrals/$referral/accept", Json(|_| json!({})), "UU N AN FN NNN FN N FU"),
        row("post", "/api/v1/referrals/{id}/reject", "/api/v1/referrals/$referral/reject", Json(|_| json!({"reason": "床位已满"})), "UU N AN FN NNN FN N FU"),
        row("post", "/api/v1/referrals/{id}/assign", "/api/v1/referrals/$referral/assign", Json(|c| json!({"user_id": c.get("assignee")})), "UU N AN FN NNN FN N FU"),
        row("post", "/api/v1/referrals/{id}/complete", "/api/v1/referrals/$referral/complete", Json(|_| json!({})), "UU N AN FN NNN FN N FU"),
        row("post", "/api/v1/referrals/{id}/withdraw", "/api/v1/referrals/$referral/withdraw", Json(|_| json!({"reason": "录入错误"})), "UU N FN AN NNN FN N FU"),
        row("post", "/api/v1/follow-up-plans", "/api/v1/follow-up-plans", Json(|c| json!({"patient_id": c.get("patient"), "consultation_id": c.get("c"), "condition": "hypertension", "interval_weeks": 4, "visits": 2})), "UU F FF AN ANN FF F FU"),
        row("get", "/api/v1/follow-ups", "/api/v1/follow-ups", None, "UU A AA AA AAA AA A FU"),
        row("patch", "/api/v1/follow-ups/{id}", "/api/v1/follow-ups/$visit", Json(|_| json!({"note": "血压 132/84"})), "UU F AN AN ANN FF F FU"),
        row("get", "/api/v1/figures", "/api/v1/figures", None, "UU A AA FF FFF FF F FU"),
        // ---- vital signs, the timeline and the worklist ----
        row("post", "/api/v1/patients/{id}/observations", "/api/v1/patients/$patient/observations", Json(|_| reading()), "UU F FF AN ANN AN F AU"),
        row("get", "/api/v1/patients/{id}/observations", "/api/v1/patients/$patient/observations", None, "UU F FF AN ANN AN A AU"),
        row("get", "/api/v1/patients/{id}/timeline", "/api/v1/patients/$patient/timeline", None, "UU F FF AN ANN AN A FU"),
        row("get", "/api/v1/worklist", "/api/v1/worklist", None, "UU F FF AA FFF FF F FU"),
        row("post", "/api/v1/device/observations", "/api/v1/device/observations", Json(|_| reading()), "UU U UU UU UUU UU U UU"),
        row("post", "/api/v1/worklist/{id}/acknowledge", "/api/v1/worklist/$worklist_item/acknowledge", Json(|_| json!({"note": "已电话随访"})), "UU F FF AN FFF FF F FU"),
        // ---- FHIR R4 facade ----
        row("get", "/fhir/r4/metadata", "/fhir/r4/metadata", None, "AA A AA AA AAA AA A AA"),
        row("get", "/fhir/r4/{resource_type}", "/fhir/r4/Patient", None, "UU A AA AA AAA AA A FU"),
        row("get", "/fhir/r4/{resource_type}/{id}", "/fhir/r4/Patient/$patient", None, "UU N AN AN ANN AN A FU"),
        // ---- files ----
        row("post", "/api/v1/consultations/{id}/files", "/api/v1/consultations/$c/files?name=letter.pdf", File, "UU N NN AN ANN AN F AU"),
        row("get", "/api/v1/consultations/{id}/files", "/api/v1/consultations/$c/files", None, "UU N NN AN ANN AN A AU"),
        row("get", "/api/v1/files/{id}", "/api/v1/files/$file", None, "UU N NN AN ANN AN A FU"),
        row("get", "/api/v1/files/{id}/rendered", "/api/v1/files/$dicom_file/rendered", None, "UU N NN AN ANN AN A FU"),
        row("get", "/api/v1/files/{id}/ecg", "/api/v1/files/$ecg_file/ecg", None, "UU N NN AN ANN AN A FU"),
        row("post", "/api/v1/consultations/{id}/uploads", "/api/v1/consultations/$c/uploads", TusCreate, "UU N NN AN ANN AN F AU"),
        row("get", "/api/v1/consultations/{id}/uploads/{upload}", "/api/v1/consultations/$c/uploads/$upload", None, "UU N NN AN NNN NN N NU"),
        row("head", "/api/v1/consultations/{id}/uploads/{upload}", "/api/v1/consultations/$c/uploads/$upload", None, "UU N NN AN NNN NN N NU"),
        row("patch", "/api/v1/consultations/{id}/uploads/{upload}", "/api/v1/consultations/$c/uploads/$upload", TusChunk, "UU N NN AN NNN NN N NU"),
        row("delete", "/api/v1/consultations/{id}/uploads/{upload}", "/api/v1/consultations/$c/uploads/$upload", None, "UU N NN AN NNN NN N NU"),
        // ---- DICOMweb ----
        row("get", "/api/v1/consultations/{id}/dicomweb/studies", "/api/v1/consultations/$c/dicomweb/studies", None, "UU N NN AN ANN AN A AU"),
        row("post", "/api/v1/consultations/{id}/dicomweb/studies", "/api/v1/consultations/$c/dicomweb/studies", Stow, "UU N NN AN ANN AN F AU"),
        row("get", "/api/v1/consultations/{id}/dicomweb/series", "/api/v1/consultations/$c/dicomweb/series", None, "UU N NN AN ANN AN A AU"),
        row("get", "/api/v1/consultations/{id}/dicomweb/instances", "/api/v1/consultations/$c/dicomweb/instances", None, "UU N NN AN ANN AN A AU"),
        row("get", "/api/v1/consultations/{id}/dicomweb/studies/{study}", "/api/v1/consultations/$c/dicomweb/studies/$study", None, "UU N NN AN ANN AN A AU"),
        row("post", "/api/v1/consultations/{id}/dicomweb/studies/{study}", "/api/v1/consultations/$c/dicomweb/studies/$study", Stow, "UU N NN AN ANN AN F AU"),
        row("get", "/api/v1/consultations/{id}/dicomweb/studies/{study}/metadata", "/api/v1/consultations/$c/dicomweb/studies/$study/metadata", None, "UU N NN AN ANN AN A AU"),
        row("get", "/api/v1/consultations/{id}/dicomweb/studies/{study}/series", "/api/v1/consultations/$c/dicomweb/studies/$study/series", None, "UU N NN AN ANN AN A AU"),
        row("get", "/api/v1/consultations/{id}/dicomweb/studies/{study}/instances", "/api/v1/consultations/$c/dicomweb/studies/$study/instances", None, "UU N NN AN ANN AN A AU"),
        row("get", "/api/v1/consultations/{id}/dicomweb/studies/{study}/series/{series}", "/api/v1/consultations/$c/dicomweb/studies/$study/series/$series", None, "UU N NN AN ANN AN A AU"),
        row("get", "/api/v1/consultations/{id}/dicomweb/studies/{study}/series/{series}/metadata", "/api/v1/consultations/$c/dicomweb/studies/$study/series/$series/metadata", None, "UU N NN AN ANN AN A AU"),
        row("get", "/api/v1/consultations/{id}/dicomweb/studies/{study}/series/{series}/instances", "/api/v1/consultations/$c/dicomweb/studies/$study/series/$series/instances", None, "UU N NN AN ANN AN A AU"),
        row("get", "/api/v1/consultations/{id}/dicomweb/studies/{study}/series/{series}/instances/{instance}", "/api/v1/consultations/$c/dicomweb/studies/$study/series/$series/instances/$instance", None, "UU N NN AN ANN AN A AU"),
        row("get", "/api/v1/consultations/{id}/dicomweb/studies/{study}/series/{series}/instances/{instance}/metadata", "/api/v1/consultations/$c/dicomweb/studies/$study/series/$series/instances/$instance/metadata", None, "UU N NN AN ANN AN A AU"),
        row("get", "/api/v1/consultations/{id}/dicomweb/studies/{study}/series/{series}/instances/{instance}/frames/{frames}", "/api/v1/consultations/$c/dicomweb/studies/$study/series/$series/instances/$instance/frames/1", None, "UU N NN AN ANN AN A AU"),
        row("get", "/api/v1/consultations/{id}/dicomweb/studies/{study}/series/{series}/instances/{instance}/rendered", "/api/v1/consultations/$c/dicomweb/studies/$study/series/$series/instances/$instance/rendered", None, "UU N NN AN ANN AN A AU"),
        row("get", "/api/v1/consultations/{id}/dicomweb/studies/{study}/series/{series}/instances/{instance}/frames/{frames}/rendered", "/api/v1/consultations/$c/dicomweb/studies/$study/series/$series/instances/$instance/frames/1/rendered", None, "UU N NN AN ANN AN A AU"),
        row("get", "/api/v1/consultations/{id}/dicomweb/studies/{study}/series/{series}/instances/{instance}/bulk/{tag}", "/api/v1/consultations/$c/dicomweb/studies/$study/series/$series/instances/$instance/bulk/7FE00010", None, "UU N NN AN ANN AN A AU"),
        // Last: from accepting a consultation of the patient on, an expert acts for the patient
        // (plans, readings), which the rows above decide for dr.invited as one who has not.
        row("post", "/api/v1/consultations/{id}/accept", "/api/v1/consultations/$c/accept", Json(|_| json!({})), "UU F FF FF ANN FF A FU"),
    ]
}

/// Every caller's token, the ids the rows name, and the test server.
struct World<'a> {
    app: &'a TestApp,
    client: reqwest::Client,
    tokens: HashMap<&'static str, String>,
    ids: HashMap<&'static str, String>,
    /// The user each caller acts as (none for `anonymous`).
    actors: HashMap<&'static str, String>,
}

/// The resources of one consultation under test, by name.
#[derive(Clone, Default)]
struct Case(BTreeMap<String, String>);

impl Case {
    fn get(&self, name: &str) -> Value {
        self.0.get(name).map(|v| Value::String(v.clone())).unwrap_or(Value::Null)
    }
}

fn dicom_fixture() -> Vec<u8> {
    std::fs::read(format!("{}/tests/fixtures/dicom/CT_small.dcm", env!("CARGO_MANIFEST_DIR"))).expect("fixture")
}

fn ecg_fixture() -> Vec<u8> {
    std::fs::read(format!("{}/tests/fixtures/ecg/waveform_ecg.dcm", env!("CARGO_MANIFEST_DIR"))).expect("fixture")
}

impl<'a> World<'a> {
    async fn build(app: &'a TestApp) -> World<'a> {
        let admin = app.login("admin").await;
        let (_, me) = app.get("/api/v1/me", &admin).await;
        let hospital = me["organisation_id"].as_str().unwrap().to_string();
        let li = app.login("dr.li").await;
        let (_, li_me) = app.get("/api/v1/me", &li).await;
        let centre = li_me["organisation_id"].as_str().unwrap().to_string();
        // A hospital not linked to the patient's centre, with its coordinator.
        let (_, far) =
            app.post("/api/v1/organisations", &admin, &json!({"name": "远郊医院", "kind": "tertiary_hospital"})).await;
        let far_id = far["id"].as_str().unwrap().to_string();
        let new_user = |username: &'static str, role: &'static str, org: String, extra: Value| {
            let admin = admin.clone();
            async move {
                let mut body = json!({"username": username, "display_name": username, "password": "demo-password", "role": role, "organisation_id": org});
                body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
                let (status, u) = app.post("/api/v1/users", &admin, &body).await;
                assert_eq!(status, 201, "{u}");
                u["id"].as_str().unwrap().to_string()
            }
        };
        new_user("coordinator.far", "coordinator", far_id, json!({})).await;
        new_user(
            "dr.invited",
            "expert",
            hospital.clone(),
            json!({"expert": {"title": "chief", "specialties": ["cardiology"]}}),
        )
        .await;
        new_user(
            "dr.declined",
            "expert",
            hospital.clone(),
            json!({"expert": {"title": "chief", "specialties": ["cardiology"]}}),
        )
        .await;
        let gone = new_user("dr.gone", "community_doctor", centre.clone(), json!({})).await;
        // The clinician the hospital's desk assigns referrals to (not a caller: an assignment
        // opens the patient's record to them).
        let assignee = new_user(
            "dr.assignee",
            "expert",
            hospital.clone(),
            json!({"expert": {"title": "attending", "specialties": ["cardiology"]}}),
        )
        .await;

        let mut tokens = HashMap::new();
        for caller in CALLERS {
            let token = match caller {
                // Minted per consultation under test (`World::kiosk_access`).
                "anonymous" | "kiosk" | "kiosk.revoked" => String::new(),
                "deactivated" => app.login("dr.gone").await,
                c => app.login(c).await,
            };
            tokens.insert(caller, token);
        }
        let (status, _) = app.patch(&format!("/api/v1/users/{gone}"), &admin, &json!({"active": false})).await;
        assert_eq!(status, 200);

        let mut ids = HashMap::new();
        ids.insert("hospital", hospital);
        ids.insert("assignee", assignee);
        ids.insert("centre", centre);
        for (name, user) in [
            ("li", "dr.li"),
            ("wang", "dr.wang"),
            ("declined", "dr.declined"),
            ("chen", "dr.chen"),
            ("invited", "dr.invited"),
            ("zhang", "patient.zhang"),
        ] {
            let (_, me) = app.get("/api/v1/me", &tokens[user]).await;
            ids.insert(name, me["id"].as_str().unwrap().to_string());
            if name == "zhang" {
                ids.insert("patient", me["patient_id"].as_str().unwrap().to_string());
            }
        }
        // Two kiosks of the patient's centre; the second revoked.
        for name in ["kiosk", "kiosk.revoked"] {
            let body = json!({"kind": "kiosk", "label": name, "organisation_id": ids["centre"]});
            let (status, d) = app.post("/api/v1/devices", &admin, &body).await;
            assert_eq!(status, 201, "{d}");
            ids.insert(name, d["device"]["id"].as_str().unwrap().to_string());
        }
        let (status, _) =
            app.post(&format!("/api/v1/devices/{}/revoke", ids["kiosk.revoked"]), &admin, &json!({})).await;
        assert_eq!(status, 200);
        let mut actors = HashMap::new();
        for caller in CALLERS {
            let username = match caller {
                "anonymous" => continue,
                "deactivated" => "dr.gone",
                "kiosk" | "kiosk.revoked" => "patient.zhang",
                c => c,
            };
            let (id,): (String,) = sqlx::query_as("SELECT id FROM users WHERE username = $1")
                .bind(username)
                .fetch_one(&app.state.db.pool)
                .await
                .unwrap();
            actors.insert(caller, id);
        }
        let client = reqwest::Client::builder().pool_max_idle_per_host(0).build().unwrap();
        World { app, client, tokens, ids, actors }
    }

    fn token(&self, caller: &str) -> &str {
        &self.tokens[caller]
    }

    /// How many events of the audit trail by `caller` are a success, and how many a refusal.
    async fn outcomes(&self, caller: &str) -> (i64, i64) {
        let Some(actor) = self.actors.get(caller) else { return (0, 0) };
        let (done, refused): (i64, i64) = sqlx::query_as(
            "SELECT COALESCE(SUM(CASE WHEN outcome = 'success' THEN 1 ELSE 0 END), 0),
                    COALESCE(SUM(CASE WHEN outcome = 'success' THEN 0 ELSE 1 END), 0)
             FROM audit_events WHERE actor_id = $1",
        )
        .bind(actor)
        .fetch_one(&self.app.state.db.pool)
        .await
        .unwrap();
        (done, refused)
    }

    /// What a kiosk's check-in hands the patient for consultation `c` (`kiosk::patient_access`):
    /// the consultation and the patient's readings, through the kiosk `caller` names.
    async fn kiosk_access(&self, caller: &str, c: &str) -> String {
        let zhang = &self.ids["zhang"];
        let (org, generation): (String, i64) =
            sqlx::query_as("SELECT organisation_id, token_generation FROM users WHERE id = $1")
                .bind(zhang)
                .fetch_one(&self.app.state.db.pool)
                .await
                .unwrap();
        let subject = teleconsult::auth::jwt::Subject {
            user_id: zhang,
            name: "patient.zhang",
            role: teleconsult::auth::Role::Patient,
            org: &org,
            generation,
            family: "",
            device: &self.ids[caller],
        };
        let scope = format!("consultation:{c} readings:{}", self.ids["patient"]);
        self.app.state.jwt.issue_scoped(subject, &scope, 600).unwrap().0
    }

    async fn upload(&self, c: &str, name: &str, bytes: Vec<u8>) -> String {
        let resp = self
            .app
            .http
            .post(self.app.url(&format!("/api/v1/consultations/{c}/files")))
            .query(&[("name", name)])
            .bearer_auth(self.token("dr.li"))
            .body(bytes)
            .send()
            .await
            .unwrap();
        let (status, body) = common::split(resp).await;
        assert_eq!(status, 201, "{name}: {body}");
        body["id"].as_str().unwrap().to_string()
    }

    /// A consultation under test with the resources `needs` names.
    async fn case(&self, needs: &[&str]) -> Case {
        let app = self.app;
        let li = self.token("dr.li");
        let need = |n: &str| needs.contains(&n);
        let mut case = Case::default();
        for (k, v) in &self.ids {
            case.0.insert(k.to_string(), v.clone());
        }
        let body = json!({
            "patient_id": self.ids["patient"], "reason": "反复胸闷两周", "record_summary": "高血压 10 年",
            "specialty": "cardiology", "min_title": "attending", "urgency": "urgent", "mode": "mdt",
            "addressee": {"kind": "mdt", "expert_ids": [self.ids["wang"], self.ids["declined"], self.ids["invited"]]},
            "consent": consent(),
        });
        let (status, c) = app.post("/api/v1/consultations", li, &body).await;
        assert_eq!(status, 201, "{c}");
        let id = c["id"].as_str().unwrap().to_string();
        case.0.insert("c".into(), id.clone());
        let (status, body) =
            app.post(&format!("/api/v1/consultations/{id}/accept"), self.token("dr.wang"), &json!({})).await;
        assert_eq!(status, 200, "{body}");
        let (status, body) = app
            .post(
                &format!("/api/v1/consultations/{id}/decline"),
                self.token("dr.declined"),
                &json!({"reason": "满负荷"}),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        if need("slot") || need("slot2") || need("appointment") {
            let (_, slots) = app.get(&format!("/api/v1/experts/{}/slots", self.ids["wang"]), li).await;
            let items = slots["items"].as_array().unwrap();
            assert!(!items.is_empty(), "dr.wang has no free slot: {slots}");
            // Each case takes its own slots: the cases share dr.wang's calendar.
            let n = seq();
            case.0.insert("slot".into(), items[(2 * n) % items.len()]["start"].as_str().unwrap().to_string());
            case.0.insert("slot2".into(), items[(2 * n + 1) % items.len()]["start"].as_str().unwrap().to_string());
        }
        if need("appointment") {
            let (status, a) = app
                .post(
                    "/api/v1/appointments",
                    li,
                    &json!({"consultation_id": id, "expert_id": self.ids["wang"], "start": case.0["slot"]}),
                )
                .await;
            assert_eq!(status, 201, "{a}");
            case.0.insert("appointment".into(), a["id"].as_str().unwrap().to_string());
            let n = seq();
            let (_, slots) = app.get(&format!("/api/v1/experts/{}/slots", self.ids["wang"]), li).await;
            let items = slots["items"].as_array().unwrap();
            assert!(
                !items.is_empty(),
                "dr.wang has no free slot left: {slots} after booking {a} at {}",
                case.0["slot"]
            );
            case.0.insert("slot2".into(), items[n % items.len()]["start"].as_str().unwrap().to_string());
        }
        if need("note") {
            let (status, n) =
                app.post(&format!("/api/v1/consultations/{id}/notes"), li, &json!({"body": "血压 150/95"})).await;
            assert_eq!(status, 201, "{n}");
            case.0.insert("note".into(), n["id"].as_str().unwrap().to_string());
        }
        if need("file") {
            let mut pdf = b"%PDF-1.4\n".to_vec();
            pdf.extend(std::iter::repeat_n(b'x', 200));
            case.0.insert("file".into(), self.upload(&id, "letter.pdf", pdf).await);
        }
        if need("ecg_file") {
            case.0.insert("ecg_file".into(), self.upload(&id, "ecg.dcm", ecg_fixture()).await);
        }
        if need("dicom_file") || need("study") {
            let file = self.upload(&id, "CT_small.dcm", dicom_fixture()).await;
            case.0.insert("dicom_file".into(), file);
            let (status, studies) = app.get(&format!("/api/v1/consultations/{id}/dicomweb/studies"), li).await;
            assert_eq!(status, 200, "{studies}");
            let study = studies[0]["0020000D"]["Value"][0].as_str().unwrap().to_string();
            let (_, instances) =
                app.get(&format!("/api/v1/consultations/{id}/dicomweb/studies/{study}/instances"), li).await;
            case.0.insert("series".into(), instances[0]["0020000E"]["Value"][0].as_str().unwrap().to_string());
            case.0.insert("instance".into(), instances[0]["00080018"]["Value"][0].as_str().unwrap().to_string());
            case.0.insert("study".into(), study);
        }
        if need("upload") {
            let resp = app
                .http
                .post(app.url(&format!("/api/v1/consultations/{id}/uploads")))
                .bearer_auth(li)
                .header("tus-resumable", "1.0.0")
                .header("upload-length", "1000")
                .header("upload-metadata", "filename bGV0dGVyLnBkZg==")
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 201);
            let location = resp.headers()["location"].to_str().unwrap().to_string();
            case.0.insert("upload".into(), location.rsplit('/').next().unwrap().to_string());
        }
        if need("referral") {
            let (status, r) = app
                .post(
                    "/api/v1/referrals",
                    li,
                    &json!({"patient_id": self.ids["patient"], "consultation_id": id, "direction": "up", "reason": "需冠脉造影", "urgency": "urgent"}),
                )
                .await;
            assert_eq!(status, 201, "{r}");
            case.0.insert("referral".into(), r["id"].as_str().unwrap().to_string());
        }
        if need("visit") {
            let (status, p) = app
                .post(
                    "/api/v1/follow-up-plans",
                    li,
                    &json!({"patient_id": self.ids["patient"], "consultation_id": id, "condition": "hypertension", "interval_weeks": 4, "visits": 2}),
                )
                .await;
            assert_eq!(status, 201, "{p}");
            case.0.insert("visit".into(), p["visits"][0]["id"].as_str().unwrap().to_string());
        }
        if need("worklist_item") {
            // A hypertension plan (default targets) and a reading above them.
            let (status, p) = app
                .post(
                    "/api/v1/follow-up-plans",
                    li,
                    &json!({"patient_id": self.ids["patient"], "consultation_id": id, "condition": "hypertension", "interval_weeks": 4, "visits": 2}),
                )
                .await;
            assert_eq!(status, 201, "{p}");
            let plan = p["id"].as_str().unwrap().to_string();
            let (status, r) =
                app.post(&format!("/api/v1/patients/{}/observations", self.ids["patient"]), li, &reading()).await;
            assert_eq!(status, 201, "{r}");
            let (_, items) = app.get("/api/v1/worklist?limit=200", li).await;
            let item = items["items"]
                .as_array()
                .unwrap()
                .iter()
                .find(|w| w["plan_id"] == plan.as_str())
                .unwrap_or_else(|| panic!("no worklist item for plan {plan}: {items}"));
            case.0.insert("worklist_item".into(), item["id"].as_str().unwrap().to_string());
        }
        if need("exception") {
            let n = seq() as i64;
            let day = chrono::NaiveDate::from_ymd_opt(2027, 1, 4).unwrap() + chrono::Duration::days(n % 300);
            let (status, e) = app
                .post(
                    &format!("/api/v1/experts/{}/exceptions", self.ids["wang"]),
                    self.token("dr.wang"),
                    &json!({"kind": "leave", "start": format!("{day}T09:00:00+08:00"), "end": format!("{day}T12:00:00+08:00"), "reason": "学术会议"}),
                )
                .await;
            assert_eq!(status, 201, "{e}");
            case.0.insert("exception".into(), e["id"].as_str().unwrap().to_string());
        }
        if need("notification") {
            let (_, inbox) = app.get("/api/v1/notifications", li).await;
            let first = inbox["items"][0]["id"].as_str().expect("dr.li has a notification").to_string();
            case.0.insert("notification".into(), first);
        }
        if need("netcheck") {
            let (status, n) = app.post("/api/v1/netcheck", li, &json!({})).await;
            assert_eq!(status, 201, "{n}");
            case.0.insert("netcheck".into(), n["id"].as_str().unwrap().to_string());
        }
        if need("netcheck_done") {
            let (status, n) = app.post("/api/v1/netcheck", li, &json!({})).await;
            assert_eq!(status, 201, "{n}");
            let nid = n["id"].as_str().unwrap().to_string();
            let (status, r) = app
                .post(&format!("/api/v1/netcheck/{nid}/complete"), li, &json!({"rtt_ms": [], "sent": 0, "received": 0}))
                .await;
            assert_eq!(status, 200, "{r}");
            case.0.insert("netcheck_done".into(), nid);
        }
        if need("device") {
            let (status, d) = app
                .post(
                    "/api/v1/devices",
                    li,
                    &json!({"kind": "home", "label": "家用血压计", "patient_id": self.ids["patient"]}),
                )
                .await;
            assert_eq!(status, 201, "{d}");
            case.0.insert("device".into(), d["device"]["id"].as_str().unwrap().to_string());
        }
        if need("identifier") {
            let (status, i) = app
                .post(
                    &format!("/api/v1/patients/{}/identifiers", self.ids["patient"]),
                    li,
                    &json!({"kind": "insurance", "issuer": "GZ-YB", "value": format!("YB{:010}", seq())}),
                )
                .await;
            assert_eq!(status, 201, "{i}");
            case.0.insert("identifier".into(), i["id"].as_str().unwrap().to_string());
        }
        if need("new_centre") {
            let admin = self.token("admin");
            let (_, o) = app
                .post(
                    "/api/v1/organisations",
                    admin,
                    &json!({"name": format!("新卫生站{}", seq()), "kind": "medical_corner"}),
                )
                .await;
            case.0.insert("new_centre".into(), o["id"].as_str().unwrap().to_string());
        }
        if need("link") {
            // A centre of its own, linked to the hospital: ending it takes nothing from the
            // centre the other rows read.
            let admin = self.token("admin");
            let (_, o) = app
                .post(
                    "/api/v1/organisations",
                    admin,
                    &json!({"name": format!("合作卫生站{}", seq()), "kind": "community_health_centre"}),
                )
                .await;
            let centre = o["id"].as_str().unwrap();
            let (status, l) = app
                .post(
                    "/api/v1/consortium-links",
                    admin,
                    &json!({"hospital_id": self.ids["hospital"], "centre_id": centre}),
                )
                .await;
            assert_eq!(status, 201, "{l}");
            case.0.insert("link".into(), l["id"].as_str().unwrap().to_string());
        }
        case
    }
}

/// The resource names a row needs: `$name` in its path, and what its body reads.
fn needs(r: &Row) -> Vec<&'static str> {
    let mut n: Vec<&'static str> = [
        "notification",
        "netcheck",
        "netcheck_done",
        "exception",
        "appointment",
        "note",
        "referral",
        "visit",
        "worklist_item",
        "dicom_file",
        "ecg_file",
        "file",
        "upload",
        "study",
        "device",
        "identifier",
        "link",
    ]
    .into_iter()
    .filter(|name| r.path.split('/').any(|seg| seg.trim_start_matches('$') == *name && seg.starts_with('$')))
    .collect();
    match r.route {
        "/api/v1/appointments" if r.method == "post" => n.push("slot"),
        "/api/v1/appointments/{id}/reschedule" => n.push("slot2"),
        "/api/v1/consortium-links" if r.method == "post" => n.push("new_centre"),
        _ => {}
    }
    n
}

fn concrete(path: &str, case: &Case) -> String {
    let mut out = path.to_string();
    // Longest names first, so `$dicom_file` is not read as `$dicom` + `_file`.
    let mut names: Vec<&String> = case.0.keys().collect();
    names.sort_by_key(|k| std::cmp::Reverse(k.len()));
    for k in names {
        out = out.replace(&format!("${k}"), &case.0[k]);
    }
    out
}

fn stow_body(bytes: &[u8]) -> (String, Vec<u8>) {
    let boundary = "matrix-boundary";
    let mut body = format!("--{boundary}\r\nContent-Type: application/dicom\r\n\r\n").into_bytes();
    body.extend_from_slice(bytes);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (format!("multipart/related; type=\"application/dicom\"; boundary={boundary}"), body)
}

async fn call(world: &World<'_>, r: &Row, case: &Case, caller: &str) -> Answer {
    let app = world.app;
    let url = app.url(&concrete(r.path, case));
    let method = reqwest::Method::from_bytes(r.method.to_uppercase().as_bytes()).unwrap();
    // A connection the server closes after refusing a request whose body it did not read is
    // not reused: every call has its own.
    let mut req = world.client.request(method, url);
    let minted;
    let token = if caller.starts_with("kiosk") {
        minted = world.kiosk_access(caller, case.0.get("c").map(String::as_str).unwrap_or("")).await;
        &minted
    } else {
        world.token(caller)
    };
    if !token.is_empty() {
        req = req.bearer_auth(token);
    }
    req = match r.body {
        Body::None => req,
        Body::Json(f) => req.json(&f(case)),
        Body::File => req.header("content-type", "application/pdf").body({
            let mut pdf = b"%PDF-1.4\n".to_vec();
            pdf.extend(std::iter::repeat_n(b'x', 100));
            pdf
        }),
        Body::TusCreate => req
            .header("tus-resumable", "1.0.0")
            .header("upload-length", "100")
            .header("upload-metadata", "filename bGV0dGVyLnBkZg=="),
        Body::TusChunk => req
            .header("tus-resumable", "1.0.0")
            .header("upload-offset", "0")
            .header("content-type", "application/offset+octet-stream")
            .body(vec![b'x'; 10]),
        Body::Stow => {
            let (ct, body) = stow_body(&dicom_fixture());
            req.header("content-type", ct).body(body)
        }
    };
    if r.route.contains("/uploads") {
        req = req.header("tus-resumable", "1.0.0");
    }
    let resp = req.send().await.unwrap_or_else(|e| panic!("{} {}: {e}", r.method, r.path));
    let status = resp.status().as_u16();
    let media = resp.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    // A stream (Server-Sent Events) never ends: read what comes quickly, then let go.
    let text = tokio::time::timeout(std::time::Duration::from_millis(300), resp.text())
        .await
        .ok()
        .and_then(|t| t.ok())
        .unwrap_or_default();
    Answer { status, media, text }
}

/// What a call got back.
struct Answer {
    status: u16,
    media: String,
    text: String,
}

/// The OpenAPI document's verdict on an answer: its status is documented for the operation,
/// and a JSON body conforms to the schema documented for that status.
struct Contract {
    doc: Value,
    validators: std::sync::Mutex<HashMap<String, std::sync::Arc<jsonschema::Validator>>>,
}

impl Contract {
    fn new() -> Contract {
        let table = teleconsult::app::routes();
        Contract { doc: teleconsult::api::openapi(table.docs()), validators: Default::default() }
    }

    fn check(&self, method: &str, route: &str, a: &Answer) -> Result<(), String> {
        let op = &self.doc["paths"][route][method];
        let Some(resp) = op["responses"].get(a.status.to_string()) else {
            return Err(format!("status {} is not documented", a.status));
        };
        let media = a.media.split(';').next().unwrap_or("").trim();
        if !matches!(media, "application/json" | "application/problem+json") || a.text.is_empty() {
            return Ok(());
        }
        let Some(schema) = resp["content"].get(media).map(|c| c["schema"].clone()) else {
            return Err(format!("status {} answers {media}, which is not documented", a.status));
        };
        let key = format!("{method} {route} {} {media}", a.status);
        let validator = {
            let mut cache = self.validators.lock().unwrap();
            cache
                .entry(key)
                .or_insert_with(|| {
                    let root = json!({"$schema": "https://json-schema.org/draft/2020-12/schema", "allOf": [schema], "components": self.doc["components"]});
                    std::sync::Arc::new(jsonschema::validator_for(&root).expect("documented schema compiles"))
                })
                .clone()
        };
        let body: Value = serde_json::from_str(&a.text).map_err(|e| format!("not JSON: {e}"))?;
        let errors: Vec<String> =
            validator.iter_errors(&body).take(3).map(|e| format!("{} at {}", e, e.instance_path)).collect();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(format!("body does not conform to the documented schema: {}", errors.join("; ")))
        }
    }
}

fn verdict(expect: char, status: u16) -> bool {
    match expect {
        'A' => status < 500 && !matches!(status, 401 | 403 | 404),
        'U' => status == 401,
        'F' => status == 403,
        'N' => status == 404,
        other => panic!("unknown expectation {other}"),
    }
}

fn expectations(r: &Row) -> Vec<char> {
    let e: Vec<char> = r.expect.chars().filter(|c| !c.is_whitespace()).collect();

    assert_eq!(
        e.len(),
        CALLERS.len(),
        "{} {}: {} expectations for {} callers",
        r.method,
        r.route,
        e.len(),
        CALLERS.len()
    );
    e
}

#[test]
fn every_route_has_a_row() {
    let table = teleconsult::app::routes();
    let rows = rows();
    let mut missing = Vec::new();
    for d in table.docs() {
        if !rows.iter().any(|r| r.method == d.method && r.route == d.path) {
            missing.push(format!("{} {}", d.method, d.path));
        }
    }
    assert!(missing.is_empty(), "routes without a row in the authorization matrix: {missing:#?}");
    for r in &rows {
        assert!(
            table.docs().iter().any(|d| d.method == r.method && d.path == r.route),
            "a row for a route the server does not have: {} {}",
            r.method,
            r.route
        );
        expectations(r);
    }
}

async fn the_matrix_holds(app: &TestApp) {
    let world = World::build(app).await;
    let rows = rows();
    let all_needs: Vec<&str> = rows.iter().flat_map(needs).collect();
    let shared = world.case(&all_needs).await;
    let contract = Contract::new();
    let mut failures = Vec::new();
    let mut calls = 0;
    for r in &rows {
        let expect = expectations(r);
        let writes = !matches!(r.method, "get" | "head" | "options");
        for (i, caller) in CALLERS.iter().enumerate() {
            // Writing rows get a fresh consultation per caller who reaches the handler.
            let fresh;
            let case = if writes && !matches!(*caller, "anonymous" | "deactivated" | "kiosk.revoked") {
                fresh = world.case(&needs(r)).await;
                &fresh
            } else {
                &shared
            };
            let before = world.outcomes(caller).await;
            let answer = call(&world, r, case, caller).await;
            let after = world.outcomes(caller).await;
            let (recorded, refusals) = (after.0 - before.0, after.1 - before.1);
            calls += 1;
            let excerpt: String = answer.text.chars().take(200).collect();
            // A refused request did nothing, and the audit trail must not say it did.
            if answer.status >= 400 && recorded > 0 {
                failures.push(format!(
                    "{} {} as {caller}: refused with {}, yet {recorded} audit event(s) record it as done: {excerpt}",
                    r.method, r.route, answer.status
                ));
            }
            // And a refusal of a signed-in caller is in the trail (a deactivated one's too; a
            // revoked kiosk's is recorded with the kiosk as the actor, `tests/checkin.rs`).
            let signed_in = world.actors.contains_key(caller) && *caller != "kiosk.revoked";
            let revoked = answer.status == 401 && answer.text.contains("\"token_revoked\"");
            if (matches!(answer.status, 403 | 404) || (revoked && *caller == "deactivated"))
                && signed_in
                && refusals == 0
            {
                failures.push(format!(
                    "{} {} as {caller}: refused with {}, and the audit trail holds no refusal: {excerpt}",
                    r.method, r.route, answer.status
                ));
            }
            if !verdict(expect[i], answer.status) {
                failures.push(format!(
                    "{} {} as {caller}: expected {}, got {} {excerpt}",
                    r.method, r.route, expect[i], answer.status
                ));
            }
            if let Err(e) = contract.check(r.method, r.route, &answer) {
                failures.push(format!("{} {} as {caller}: OpenAPI: {e}: {excerpt}", r.method, r.route));
            }
        }
    }
    eprintln!(
        "authorization matrix: {} routes x {} callers = {calls} calls on {:?}",
        rows.len(),
        CALLERS.len(),
        app.backend
    );
    assert!(
        failures.is_empty(),
        "{} of {calls} answers differ from the matrix:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

mod matrix {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        let app = super::TestApp::spawn_with(super::Backend::Sqlite, None, |c| c.netcheck_max_sessions = 64).await;
        super::the_matrix_holds(&app).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        if let Some(app) = super::TestApp::spawn_postgres_with(|c| c.netcheck_max_sessions = 64).await {
            super::the_matrix_holds(&app).await;
        }
    }
}
