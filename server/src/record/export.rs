//! The whole record of a consultation, as JSON and as a printable page (HTML with print
//! styles, Chinese first) that a clinic prints or saves as PDF from the browser.

use super::{followup, notes, opinions, referrals};
use crate::api::{Json, Path};
use crate::app::AppState;
use crate::auth::AuthUser;
use crate::config::Config;
use crate::consultations::store;
use crate::db::{Db, Id};
use crate::error::ApiResult;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use maud::{html, Markup, PreEscaped};
use serde::Serialize;

use super::store as record_store;
use crate::domain::record::{Direction, NoteStatus, OpinionStatus};

#[derive(Debug, Serialize, sqlx::FromRow, schemars::JsonSchema)]
pub struct FileEntry {
    pub id: String,
    pub name: String,
    #[sqlx(try_from = "String")]
    pub kind: crate::domain::files::FileKind,
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
    #[sqlx(try_from = "String")]
    pub room_role: crate::domain::consultation::ParticipantRole,
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

pub async fn build(db: &Db, config: &Config, user: &AuthUser, id: &str) -> ApiResult<Record> {
    build_for(db, config, user, id, "read_record").await
}

/// The record, loaded for `action` (written to the audit trail, with a refusal answered 404).
pub async fn build_for(db: &Db, config: &Config, user: &AuthUser, id: &str, action: &str) -> ApiResult<Record> {
    store::load_for(db, user, id, action).await?;
    let consultation = crate::consultations::routes::detail(db, config, user, id).await?;
    Ok(Record {
        consultation,
        timeline: record_store::timeline(db, id).await?,
        chat: record_store::chat(db, id).await?,
        files: record_store::files(db, id).await?,
        notes: notes::notes_of(db, id).await?,
        opinions: opinions::opinions_of(db, id, user).await?,
        referrals: referrals::of_consultation(db, id).await?,
        follow_up: followup::visits_of_consultation(db, id).await?,
        retention: "kept at least 15 years (outpatient medical records); never deleted by ordinary operations",
    })
}

pub async fn record_json(
    State(state): State<AppState>,
    user: AuthUser,
    Path(Id(id)): Path<Id>,
) -> ApiResult<Json<Record>> {
    Ok(Json(build(&state.db, &state.config, &user, &id).await?))
}

/// The print styles (a constant: nothing of the record goes into it).
const STYLE: &str = "body{font-family:\"Noto Sans CJK SC\",\"Microsoft YaHei\",sans-serif;font-size:14px;line-height:1.5;margin:2em;color:#111}\
    h1{font-size:22px;border-bottom:2px solid #333}h2{font-size:17px;margin-top:1.4em;border-bottom:1px solid #999}\
    table{border-collapse:collapse;width:100%}td,th{border:1px solid #bbb;padding:4px 6px;text-align:left;vertical-align:top}\
    .muted{color:#555}.signed{border:1px solid #333;padding:.6em;margin:.6em 0}.superseded{opacity:.7}\
    @media print{body{margin:0}a{color:inherit;text-decoration:none}h2{page-break-after:avoid}.signed{page-break-inside:avoid}}";

/// The record as a printable HTML page. Every value of the record is escaped by the
/// template (maud), so no text a user wrote can become markup.
pub fn render_html(r: &Record) -> String {
    let c = &r.consultation.summary;
    html! {
        (PreEscaped("<!doctype html>"))
        html lang="zh-CN" {
            head {
                meta charset="utf-8";
                title { "远程会诊记录 " (c.patient_name) }
                style { (PreEscaped(STYLE)) }
            }
            body {
                (summary_table(c))
                h2 { "会诊目的 Reason" } p { (c.reason) }
                h2 { "病历摘要 Record summary" } p { (c.record_summary) }
                (consent(r))
                h2 { "参与者 Participants" }
                table {
                    tr { th { "姓名" } th { "角色 Role" } th { "状态 Status" } }
                    @for p in &r.consultation.participants {
                        tr { td { (p.name) } td { (p.role) } td { (p.status) } }
                    }
                }
                h2 { "会诊意见 Opinions" }
                (opinions_part(&r.opinions))
                h2 { "记录 Notes" }
                ul {
                    @for n in &r.notes {
                        li {
                            (n.created_at) " " (n.author_name) "：" (n.body)
                            @if n.status == NoteStatus::EnteredInError {
                                "（录入错误 entered in error：" (n.withdrawn_reason) "）"
                            }
                        }
                    }
                }
                h2 { "转诊 Referrals" }
                ul {
                    @for f in &r.referrals {
                        li {
                            (if f.direction == Direction::Up { "上转 Up" } else { "下转 Down" })
                            " " (f.from_organisation_name) " → " (f.to_organisation_name) "：" (f.reason)
                            "（" (f.status) "）" (f.care_plan)
                        }
                    }
                }
                h2 { "随访 Follow-up" }
                ul {
                    @for v in &r.follow_up {
                        li { (v.due_date) " " (v.condition) "（" (v.status) "）" (v.note) }
                    }
                }
                h2 { "附件 Files" }
                ul {
                    @for f in &r.files {
                        li { (f.name) "（" (f.kind) "，" (f.size) " 字节，SHA-256 " (f.sha256) "）" }
                    }
                }
                (timeline_part(r))
                h2 { "文字交流 Chat" }
                ul {
                    @for m in &r.chat {
                        li { (m.sent_at) " " (m.sender_name) "：" (m.body) }
                    }
                }
                p.muted { (r.retention) }
            }
        }
    }
    .into_string()
}

/// The heading and the consultation's essentials.
fn summary_table(c: &crate::consultations::routes::ConsultationSummary) -> Markup {
    html! {
        h1 { "远程会诊记录 " span.muted { "Teleconsultation record" } }
        table {
            tr { th { "患者 Patient" } td { (c.patient_name) } th { "状态 State" } td { (c.state) } }
            tr {
                th { "申请机构 Requesting centre" } td { (c.requesting_organisation_name) }
                th { "申请医生 Requested by" } td { (c.requested_by_name) }
            }
            tr { th { "专科 Specialty" } td { (c.specialty) } th { "紧急程度 Urgency" } td { (c.urgency) } }
            tr {
                th { "方式 Mode" } td { (c.mode) }
                th { "会诊专家 Expert" } td { (c.assigned_expert_name.as_deref().unwrap_or("—")) }
            }
            tr { th { "申请时间 Requested" } td { (c.created_at) } th { "编号 ID" } td { (c.id) } }
        }
    }
}

fn consent(r: &Record) -> Markup {
    html! {
        @if let Some(k) = &r.consultation.consent {
            h2 { "知情同意 Informed consent" }
            p {
                "由 " (k.given_by)
                @if !k.guardian_name.is_empty() { "（" (k.guardian_name) "）" }
                " 以 " (k.method) " 方式于 " (k.given_at) " 同意，见证医生 " (k.witness_name) "。"
            }
        }
    }
}

/// The signed and superseded versions, newest state shown as stored.
fn opinions_part(opinions: &[opinions::Opinion]) -> Markup {
    html! {
        @if opinions.iter().all(|o| o.status == OpinionStatus::Draft) {
            p.muted { "尚无已签署的意见 No signed opinion yet." }
        }
        @for o in opinions.iter().filter(|o| o.status != OpinionStatus::Draft) {
            div class={ "signed " (if o.status == OpinionStatus::Superseded { "superseded" } else { "" }) } {
                p {
                    strong { "第 " (o.version) " 版 Version " (o.version) }
                    "（" (o.status) "）"
                    @if !o.amendment_reason.is_empty() { "更正原因 Amendment reason：" (o.amendment_reason) }
                }
                p { strong { "所见 Findings：" } (o.findings) }
                p { strong { "印象 Impression：" } (o.impression) }
                p { strong { "建议 Recommendations：" } (o.recommendations) }
                p { strong { "转诊建议 Referral advice：" } (o.referral_advice) }
                p { strong { "随访建议 Follow-up advice：" } (o.follow_up_advice) }
                p.muted {
                    "签署 Signed by " (o.signer_name) " (" (o.signer_title) ") at "
                    (o.signed_at.as_deref().unwrap_or("")) " · SHA-256 " (o.content_sha256)
                }
            }
        }
    }
}

fn timeline_part(r: &Record) -> Markup {
    html! {
        h2 { "会诊过程 Timeline" }
        ul {
            @for t in &r.consultation.transitions {
                li {
                    (t.at) " " (t.from_state) " → " (t.to_state) "（" (t.action) "）"
                    (t.actor_name.as_deref().unwrap_or("")) " " (t.reason)
                }
            }
            @for e in &r.timeline {
                li { (e.at) " " (e.user_name) " " (e.kind) }
            }
        }
    }
}

pub async fn record_html(State(state): State<AppState>, user: AuthUser, Path(Id(id)): Path<Id>) -> ApiResult<Response> {
    let record = build(&state.db, &state.config, &user, &id).await?;
    Ok(([(header::CONTENT_TYPE, "text/html; charset=utf-8")], render_html(&record)).into_response())
}
