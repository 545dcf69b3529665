//! The whole record of a consultation, as JSON and as a printable page (HTML with print
//! styles, Chinese first) that a clinic prints or saves as PDF from the browser.

use super::{followup, notes, opinions, referrals};
use crate::api::{Json, Path};
use crate::app::AppState;
use crate::auth::AuthUser;
use crate::consultations::store;
use crate::db::Id;
use crate::error::ApiResult;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

#[derive(Debug, Serialize, sqlx::FromRow, schemars::JsonSchema)]
pub struct FileEntry {
    pub id: String,
    pub name: String,
    pub kind: String,
    pub content_type: String,
    pub size: i64,
    pub sha256: String,
    pub created_at: String,
}

#[derive(Debug, Serialize, sqlx::FromRow, schemars::JsonSchema)]
pub struct ChatLine {
    pub id: String,
    pub sender_id: String,
    pub sender_name: String,
    pub body: String,
    pub sent_at: String,
}

#[derive(Debug, Serialize, sqlx::FromRow, schemars::JsonSchema)]
pub struct TimelineEvent {
    pub user_id: String,
    pub user_name: String,
    pub room_role: String,
    pub kind: String,
    pub at: String,
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct Record {
    pub consultation: crate::consultations::routes::ConsultationDetail,
    pub timeline: Vec<TimelineEvent>,
    pub chat: Vec<ChatLine>,
    pub files: Vec<FileEntry>,
    pub notes: Vec<notes::Note>,
    pub opinions: Vec<opinions::Opinion>,
    pub referrals: Vec<referrals::Referral>,
    pub follow_up: Vec<followup::Visit>,
    pub retention: &'static str,
}

pub async fn build(state: &AppState, user: &AuthUser, id: &str) -> ApiResult<Record> {
    build_for(state, user, id, "read_record").await
}

/// The record, loaded for `action` (written to the audit trail, with a refusal answered 404).
pub async fn build_for(state: &AppState, user: &AuthUser, id: &str, action: &str) -> ApiResult<Record> {
    store::load_for(&state.db, user, id, action).await?;
    let consultation = crate::consultations::routes::detail(state, user, id).await?;
    let timeline = sqlx::query_as(
        "SELECT e.user_id, u.display_name AS user_name, e.room_role, e.kind, e.at FROM room_events e JOIN users u ON u.id = e.user_id
         WHERE e.consultation_id = $1 ORDER BY e.at, e.id",
    )
    .bind(id)
    .fetch_all(&state.db.pool)
    .await?;
    let chat = sqlx::query_as(
        "SELECT m.id, m.sender_id, u.display_name AS sender_name, m.body, m.sent_at FROM consultation_messages m JOIN users u ON u.id = m.sender_id
         WHERE m.consultation_id = $1 ORDER BY m.sent_at, m.id",
    )
    .bind(id)
    .fetch_all(&state.db.pool)
    .await?;
    let files = sqlx::query_as(
        "SELECT id, name, kind, content_type, size, sha256, created_at FROM files WHERE consultation_id = $1 ORDER BY created_at, id",
    )
    .bind(id)
    .fetch_all(&state.db.pool)
    .await?;
    Ok(Record {
        consultation,
        timeline,
        chat,
        files,
        notes: notes::notes_of(state, id).await?,
        opinions: opinions::opinions_of(state, id, user).await?,
        referrals: referrals::of_consultation(state, id).await?,
        follow_up: followup::visits_of_consultation(state, id).await?,
        retention: "kept at least 15 years (outpatient medical records); never deleted by ordinary operations",
    })
}

pub async fn record_json(
    State(state): State<AppState>,
    user: AuthUser,
    Path(Id(id)): Path<Id>,
) -> ApiResult<Json<Record>> {
    Ok(Json(build(&state, &user, &id).await?))
}

fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The record as a printable HTML page.
pub fn render_html(r: &Record) -> String {
    let c = &r.consultation.summary;
    let mut h = String::new();
    h.push_str("<!doctype html><html lang=\"zh-CN\"><head><meta charset=\"utf-8\"><title>远程会诊记录 ");
    h.push_str(&esc(&c.patient_name));
    h.push_str("</title><style>body{font-family:\"Noto Sans CJK SC\",\"Microsoft YaHei\",sans-serif;font-size:14px;line-height:1.5;margin:2em;color:#111}\
        h1{font-size:22px;border-bottom:2px solid #333}h2{font-size:17px;margin-top:1.4em;border-bottom:1px solid #999}\
        table{border-collapse:collapse;width:100%}td,th{border:1px solid #bbb;padding:4px 6px;text-align:left;vertical-align:top}\
        .muted{color:#555}.signed{border:1px solid #333;padding:.6em;margin:.6em 0}.superseded{opacity:.7}\
        @media print{body{margin:0}a{color:inherit;text-decoration:none}h2{page-break-after:avoid}.signed{page-break-inside:avoid}}</style></head><body>");
    h.push_str(&format!(
        "<h1>远程会诊记录 <span class=\"muted\">Teleconsultation record</span></h1><table>\
        <tr><th>患者 Patient</th><td>{}</td><th>状态 State</th><td>{}</td></tr>\
        <tr><th>申请机构 Requesting centre</th><td>{}</td><th>申请医生 Requested by</th><td>{}</td></tr>\
        <tr><th>专科 Specialty</th><td>{}</td><th>紧急程度 Urgency</th><td>{}</td></tr>\
        <tr><th>方式 Mode</th><td>{}</td><th>会诊专家 Expert</th><td>{}</td></tr>\
        <tr><th>申请时间 Requested</th><td>{}</td><th>编号 ID</th><td>{}</td></tr></table>",
        esc(&c.patient_name),
        esc(&c.state),
        esc(&c.requesting_organisation_name),
        esc(&c.requested_by_name),
        esc(&c.specialty),
        esc(&c.urgency),
        esc(&c.mode),
        esc(c.assigned_expert_name.as_deref().unwrap_or("—")),
        esc(&c.created_at),
        esc(&c.id)
    ));
    h.push_str(&format!(
        "<h2>会诊目的 Reason</h2><p>{}</p><h2>病历摘要 Record summary</h2><p>{}</p>",
        esc(&c.reason),
        esc(&c.record_summary)
    ));
    if let Some(k) = &r.consultation.consent {
        h.push_str(&format!(
            "<h2>知情同意 Informed consent</h2><p>由 {}{} 以 {} 方式于 {} 同意，见证医生 {}。</p>",
            esc(&k.given_by),
            if k.guardian_name.is_empty() { String::new() } else { format!("（{}）", esc(&k.guardian_name)) },
            esc(&k.method),
            esc(&k.given_at),
            esc(&k.witness_name)
        ));
    }
    h.push_str("<h2>参与者 Participants</h2><table><tr><th>姓名</th><th>角色 Role</th><th>状态 Status</th></tr>");
    for p in &r.consultation.participants {
        h.push_str(&format!("<tr><td>{}</td><td>{}</td><td>{}</td></tr>", esc(&p.name), esc(&p.role), esc(&p.status)));
    }
    h.push_str("</table><h2>会诊意见 Opinions</h2>");
    if r.opinions.iter().all(|o| o.status == "draft") {
        h.push_str("<p class=\"muted\">尚无已签署的意见 No signed opinion yet.</p>");
    }
    for o in r.opinions.iter().filter(|o| o.status != "draft") {
        h.push_str(&format!(
            "<div class=\"signed {}\"><p><strong>第 {} 版 Version {}</strong>（{}）{}</p>\
             <p><strong>所见 Findings：</strong>{}</p><p><strong>印象 Impression：</strong>{}</p>\
             <p><strong>建议 Recommendations：</strong>{}</p><p><strong>转诊建议 Referral advice：</strong>{}</p>\
             <p><strong>随访建议 Follow-up advice：</strong>{}</p>\
             <p class=\"muted\">签署 Signed by {} ({}) at {} · SHA-256 {}</p></div>",
            if o.status == "superseded" { "superseded" } else { "" },
            o.version,
            o.version,
            esc(&o.status),
            if o.amendment_reason.is_empty() {
                String::new()
            } else {
                format!("更正原因 Amendment reason：{}", esc(&o.amendment_reason))
            },
            esc(&o.findings),
            esc(&o.impression),
            esc(&o.recommendations),
            esc(&o.referral_advice),
            esc(&o.follow_up_advice),
            esc(&o.signer_name),
            esc(&o.signer_title),
            esc(o.signed_at.as_deref().unwrap_or("")),
            esc(&o.content_sha256)
        ));
    }
    h.push_str("<h2>记录 Notes</h2><ul>");
    for n in &r.notes {
        h.push_str(&format!(
            "<li>{} {}：{}{}</li>",
            esc(&n.created_at),
            esc(&n.author_name),
            esc(&n.body),
            if n.status == "entered_in_error" {
                format!("（录入错误 entered in error：{}）", esc(&n.withdrawn_reason))
            } else {
                String::new()
            }
        ));
    }
    h.push_str("</ul><h2>转诊 Referrals</h2><ul>");
    for f in &r.referrals {
        h.push_str(&format!(
            "<li>{} {} → {}：{}（{}）{}</li>",
            if f.direction == "up" { "上转 Up" } else { "下转 Down" },
            esc(&f.from_organisation_name),
            esc(&f.to_organisation_name),
            esc(&f.reason),
            esc(&f.status),
            esc(&f.care_plan)
        ));
    }
    h.push_str("</ul><h2>随访 Follow-up</h2><ul>");
    for v in &r.follow_up {
        h.push_str(&format!(
            "<li>{} {}（{}）{}</li>",
            esc(&v.due_date),
            esc(&v.condition),
            esc(&v.status),
            esc(&v.note)
        ));
    }
    h.push_str("</ul><h2>附件 Files</h2><ul>");
    for f in &r.files {
        h.push_str(&format!(
            "<li>{}（{}，{} 字节，SHA-256 {}）</li>",
            esc(&f.name),
            esc(&f.kind),
            f.size,
            esc(&f.sha256)
        ));
    }
    h.push_str("</ul><h2>会诊过程 Timeline</h2><ul>");
    for t in &r.consultation.transitions {
        h.push_str(&format!(
            "<li>{} {} → {}（{}）{} {}</li>",
            esc(&t.at),
            esc(&t.from_state),
            esc(&t.to_state),
            esc(&t.action),
            esc(t.actor_name.as_deref().unwrap_or("")),
            esc(&t.reason)
        ));
    }
    for e in &r.timeline {
        h.push_str(&format!("<li>{} {} {}</li>", esc(&e.at), esc(&e.user_name), esc(&e.kind)));
    }
    h.push_str("</ul><h2>文字交流 Chat</h2><ul>");
    for m in &r.chat {
        h.push_str(&format!("<li>{} {}：{}</li>", esc(&m.sent_at), esc(&m.sender_name), esc(&m.body)));
    }
    h.push_str(&format!("</ul><p class=\"muted\">{}</p></body></html>", esc(r.retention)));
    h
}

pub async fn record_html(State(state): State<AppState>, user: AuthUser, Path(Id(id)): Path<Id>) -> ApiResult<Response> {
    let record = build(&state, &user, &id).await?;
    Ok(([(header::CONTENT_TYPE, "text/html; charset=utf-8")], render_html(&record)).into_response())
}

#[cfg(test)]
mod tests {
    use super::esc;

    #[test]
    fn html_is_escaped() {
        assert_eq!(esc("<script>alert('x')</script>&"), "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&amp;");
    }
}
