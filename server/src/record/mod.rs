//! The clinical record a consultation leaves behind: notes, versioned signed opinions,
//! referrals up and down, follow-up plans, the whole record as JSON and as a printable page,
//! and the coordinators' figures. Nothing here is deleted; see docs/records.md.

pub mod export;
pub mod figures;
pub mod followup;
pub mod notes;
pub mod opinions;
pub mod referrals;
pub mod revisions;
pub mod store;

pub fn routes() -> crate::api::Routes {
    consultation_routes().merge(referral_routes()).merge(follow_up_routes())
}

/// Opinions, notes and the whole record of one consultation.
fn consultation_routes() -> crate::api::Routes {
    crate::api::Routes::new("record")
        .put("/api/v1/consultations/{id}/opinion", "Save the expert's draft opinion", opinions::save_draft)
        .body::<opinions::DraftBody>()
        .json::<opinions::Opinion>(200)
        .errors(&[409])
        .post("/api/v1/consultations/{id}/opinion/sign", "Sign (freeze) the draft opinion", opinions::sign)
        .body::<opinions::SignBody>()
        .json::<opinions::Opinion>(200)
        .errors(&[409])
        .post(
            "/api/v1/consultations/{id}/opinion/amend",
            "Amend a signed opinion: a new signed version with a reason",
            opinions::amend,
        )
        .body::<opinions::AmendBody>()
        .json::<opinions::Opinion>(200)
        .errors(&[409])
        .get(
            "/api/v1/consultations/{id}/opinions",
            "Every opinion version (drafts only to their author)",
            opinions::list,
        )
        .json::<crate::api::Page<opinions::Opinion>>(200)
        .post("/api/v1/consultations/{id}/notes", "Add a case summary or a note", notes::add)
        .body::<notes::NoteBody>()
        .json::<notes::Note>(201)
        .post(
            "/api/v1/consultations/{id}/notes/{note}/withdraw",
            "Mark one's note entered in error, with a reason",
            notes::withdraw,
        )
        .body::<notes::WithdrawBody>()
        .json::<Vec<notes::Note>>(200)
        .get("/api/v1/consultations/{id}/record", "The whole record of a consultation", export::record_json)
        .json::<export::Record>(200)
        .get("/api/v1/consultations/{id}/record.html", "The record as a printable page", export::record_html)
        .answers(200, Some("text/html"), "the record as a printable page")
}

fn referral_routes() -> crate::api::Routes {
    crate::api::Routes::new("record")
        .post("/api/v1/referrals", "Refer a patient up to a hospital or down to a community centre", referrals::create)
        .body::<referrals::NewReferral>()
        .json::<referrals::Referral>(201)
        .errors(&[404])
        .get("/api/v1/referrals", "Referrals sent or received by the caller's organisation", referrals::list)
        .query::<referrals::ReferralFilter>()
        .json::<crate::api::Page<referrals::Referral>>(200)
        .get("/api/v1/referrals/{id}", "One referral with its history", referrals::get_one)
        .json::<referrals::ReferralDetail>(200)
        .post(
            "/api/v1/referrals/{id}/accept",
            "The receiving side accepts (optionally with an appointment)",
            referrals::accept,
        )
        .body::<referrals::ActionBody>()
        .json::<referrals::ReferralDetail>(200)
        .errors(&[409])
        .post("/api/v1/referrals/{id}/reject", "The receiving side rejects with a reason", referrals::reject)
        .body::<referrals::ActionBody>()
        .json::<referrals::ReferralDetail>(200)
        .errors(&[409])
        .post(
            "/api/v1/referrals/{id}/assign",
            "The receiving desk assigns the referral to one of its clinicians",
            referrals::assign,
        )
        .body::<referrals::AssignBody>()
        .json::<referrals::ReferralDetail>(200)
        .errors(&[409])
        .post("/api/v1/referrals/{id}/complete", "The receiving side completes the referral", referrals::complete)
        .body::<referrals::ActionBody>()
        .json::<referrals::ReferralDetail>(200)
        .errors(&[409])
        .post(
            "/api/v1/referrals/{id}/withdraw",
            "Mark the referral entered in error, with a reason",
            referrals::withdraw,
        )
        .body::<referrals::ActionBody>()
        .json::<referrals::ReferralDetail>(200)
        .errors(&[409])
}

/// Follow-up plans and visits, and the coordinators' figures.
fn follow_up_routes() -> crate::api::Routes {
    crate::api::Routes::new("record")
        .get(
            "/api/v1/patients/{id}/revisions",
            "What edits of a patient's record (and its follow-up visits) replaced, newest first",
            revisions::list,
        )
        .json::<crate::api::Page<revisions::Revision>>(200)
        .post("/api/v1/follow-up-plans", "Create a follow-up plan and its visits", followup::post_plan)
        .body::<followup::NewPlan>()
        .json::<serde_json::Value>(201)
        .errors(&[404])
        .get(
            "/api/v1/follow-ups",
            "Follow-up visits of visible patients (overdue=true for overdue ones)",
            followup::list_visits,
        )
        .query::<followup::VisitFilter>()
        .json::<crate::api::Page<followup::Visit>>(200)
        .patch("/api/v1/follow-ups/{id}", "Move or close a follow-up visit", followup::patch_visit)
        .body::<followup::VisitPatch>()
        .json::<followup::Visit>(200)
        .get("/api/v1/figures", "Coordinator figures: volumes, response times, referrals", figures::figures)
        .query::<figures::FigureQuery>()
        .json::<figures::Figures>(200)
}
