//! The usual world of a test, built through the public API as its users make it: a request
//! from a community doctor for a patient of the demo consortium, with consent, addressed to an
//! expert, then accepted and booked into one of the expert's free slots.
//!
//! ```ignore
//! let c = app.consultation().mode("ecg_review").addressed_to("dr.chen").accepted().await;
//! let (id, start) = app.consultation().booked().await;
//! ```

use super::TestApp;
use serde_json::{json, Value};

/// The consent the tests record unless they say otherwise: given by the patient, in writing.
pub fn written_consent() -> Value {
    json!({"given_by": "patient", "method": "written", "at": "2026-11-22T09:00:00+08:00"})
}

impl TestApp {
    /// The patient record id of a demo patient account.
    pub async fn patient_id(&self, username: &str) -> String {
        let (status, me) = self.get("/api/v1/me", &self.login(username).await).await;
        assert_eq!(status, 200, "{me}");
        me["patient_id"].as_str().unwrap_or_else(|| panic!("{username} has no patient record: {me}")).to_string()
    }

    /// dr.li's MDT request for patient.zhang to the experts named (demo usernames); its id.
    pub async fn mdt_requested(&self, experts: &[&str]) -> String {
        let mut ids = Vec::new();
        for e in experts {
            ids.push(self.user_id(e).await);
        }
        let body = json!({
            "patient_id": self.patient_id("patient.zhang").await, "reason": "胸痛待查，冠脉 CT 已做",
            "specialty": "cardiology", "min_title": "attending", "urgency": "urgent", "mode": "mdt",
            "addressee": {"kind": "mdt", "expert_ids": ids}, "consent": written_consent(),
        });
        let (status, c) = self.post("/api/v1/consultations", &self.login("dr.li").await, &body).await;
        assert_eq!(status, 201, "the MDT request is made: {c}");
        c["id"].as_str().expect("consultation id").to_string()
    }

    /// [`Self::mdt_requested`], accepted by every expert named and booked by dr.li into the
    /// first free slot of `booked_with` (one of them); its id.
    pub async fn mdt_booked(&self, experts: &[&str], booked_with: &str) -> String {
        let id = self.mdt_requested(experts).await;
        for e in experts {
            let (status, body) =
                self.post(&format!("/api/v1/consultations/{id}/accept"), &self.login(e).await, &json!({})).await;
            assert_eq!(status, 200, "{e} accepts: {body}");
        }
        let li = self.login("dr.li").await;
        let expert_id = self.user_id(booked_with).await;
        let (status, slots) = self.get(&format!("/api/v1/experts/{expert_id}/slots"), &li).await;
        assert_eq!(status, 200, "{slots}");
        let start = slots["items"][0]["start"].clone();
        let (status, body) = self
            .post("/api/v1/appointments", &li, &json!({"consultation_id": id, "expert_id": expert_id, "start": start}))
            .await;
        assert_eq!(status, 201, "the MDT is booked with {booked_with}: {body}");
        id
    }

    /// A consultation request to build: by default dr.li asks dr.wang for an urgent cardiology
    /// video consultation for patient.zhang, with her written consent.
    pub fn consultation(&self) -> ConsultationBuilder<'_> {
        ConsultationBuilder {
            app: self,
            requester: "dr.li".into(),
            patient: "patient.zhang".into(),
            expert: "dr.wang".into(),
            body: json!({
                "reason": "反复胸闷两周",
                "specialty": "cardiology",
                "min_title": "attending",
                "urgency": "urgent",
                "mode": "video",
                "consent": written_consent(),
            }),
        }
    }
}

pub struct ConsultationBuilder<'a> {
    app: &'a TestApp,
    requester: String,
    patient: String,
    expert: String,
    body: Value,
}

impl ConsultationBuilder<'_> {
    /// The community doctor who makes the request (a demo username).
    pub fn by(mut self, username: &str) -> Self {
        self.requester = username.into();
        self
    }

    /// The demo patient account whose record the request is for.
    pub fn patient(mut self, username: &str) -> Self {
        self.patient = username.into();
        self
    }

    /// The expert the request is addressed to (a demo username).
    pub fn addressed_to(mut self, username: &str) -> Self {
        self.expert = username.into();
        self
    }

    pub fn mode(self, mode: &str) -> Self {
        self.set("mode", json!(mode))
    }

    pub fn urgency(self, urgency: &str) -> Self {
        self.set("urgency", json!(urgency))
    }

    pub fn specialty(self, specialty: &str) -> Self {
        self.set("specialty", json!(specialty))
    }

    pub fn reason(self, reason: &str) -> Self {
        self.set("reason", json!(reason))
    }

    pub fn consent(self, consent: Value) -> Self {
        self.set("consent", consent)
    }

    /// Any other field of the request body.
    pub fn set(mut self, field: &str, value: Value) -> Self {
        self.body[field] = value;
        self
    }

    /// The request body as it will be sent (with the patient's and the expert's ids).
    pub async fn body(&self) -> Value {
        let mut body = self.body.clone();
        body["patient_id"] = json!(self.app.patient_id(&self.patient).await);
        body["addressee"] = json!({"kind": "expert", "expert_id": self.app.user_id(&self.expert).await});
        body
    }

    /// Sends the request; answers the consultation as created (201 asserted).
    pub async fn requested_full(&self) -> Value {
        let token = self.app.login(&self.requester).await;
        let (status, c) = self.app.post("/api/v1/consultations", &token, &self.body().await).await;
        assert_eq!(status, 201, "the request is made: {c}");
        c
    }

    /// Sends the request; answers its id.
    pub async fn requested(&self) -> String {
        self.requested_full().await["id"].as_str().expect("consultation id").to_string()
    }

    /// Requested and accepted by the expert; answers its id.
    pub async fn accepted(&self) -> String {
        let id = self.requested().await;
        let token = self.app.login(&self.expert).await;
        let (status, body) = self.app.post(&format!("/api/v1/consultations/{id}/accept"), &token, &json!({})).await;
        assert_eq!(status, 200, "the expert accepts: {body}");
        id
    }

    /// Requested, accepted and booked by the requester into the expert's first free slot;
    /// answers its id and the appointment's start.
    pub async fn booked(&self) -> (String, String) {
        self.booked_after(chrono::DateTime::<chrono::Utc>::MIN_UTC).await
    }

    /// Like [`booked`](Self::booked), into the first free slot that starts at or after
    /// `not_before` (a slot taken meanwhile is skipped).
    pub async fn booked_after(&self, not_before: chrono::DateTime<chrono::Utc>) -> (String, String) {
        let id = self.accepted().await;
        let app = self.app;
        let token = app.login(&self.requester).await;
        let expert_id = app.user_id(&self.expert).await;
        let (status, slots) = app.get(&format!("/api/v1/experts/{expert_id}/slots"), &token).await;
        assert_eq!(status, 200, "{slots}");
        for slot in slots["items"].as_array().expect("slots") {
            let start = chrono::DateTime::parse_from_rfc3339(slot["start"].as_str().expect("slot start")).unwrap();
            if start < not_before {
                continue;
            }
            let (status, body) = app
                .post(
                    "/api/v1/appointments",
                    &token,
                    &json!({"consultation_id": id, "expert_id": expert_id, "start": slot["start"]}),
                )
                .await;
            match status {
                201 => return (id, slot["start"].as_str().unwrap().to_string()),
                409 => continue,
                _ => panic!("booking: {status} {body}"),
            }
        }
        panic!("no free slot for {} after {not_before}", self.expert)
    }
}
