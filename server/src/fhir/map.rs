//! Pure mappings from the platform's own rows to FHIR R4 resources (JSON). No database, no
//! request: each function takes what the stores already loaded and returns one resource (or
//! none, when the row has nothing FHIR can say). The platform's API stays the source of
//! truth; these are views of it. The mapping table is in docs/fhir.md.

use crate::consultations::routes::{ConsultationDetail, ConsultationSummary};
use crate::consultations::state::{State, Urgency};
use crate::directory::{Organisation, UserView};
use crate::domain::consultation::{AppointmentStatus, ConsentGiver, ParticipantRole};
use crate::domain::files::FileKind;
use crate::domain::record::{OpinionStatus, ReferralStatus, VisitStatus};
use crate::ecg::Measurements;
use crate::patients::Patient;
use crate::record::export::{ChatLine, FileEntry, Record, TimelineEvent};
use crate::record::followup::Visit;
use crate::record::opinions::Opinion;
use crate::record::referrals::Referral;
use crate::scheduling::appointments::AppointmentView;
use base64::Engine;
use serde_json::{json, Value};

/// Code systems of the platform's own vocabularies (stable URIs under the project's name).
pub const SYSTEM_BASE: &str = "https://teleconsult.invalid/fhir";
const LOINC: &str = "http://loinc.org";
const UCUM: &str = "http://unitsofmeasure.org";
const DCM: &str = "http://dicom.nema.org/resources/ontology/DCM";

fn system(name: &str) -> String {
    format!("{SYSTEM_BASE}/CodeSystem/{name}")
}

fn coding(name: &str, code: &str) -> Value {
    json!({"coding": [{"system": system(name), "code": code}], "text": code})
}

fn reference(kind: &str, id: &str) -> Value {
    json!({"reference": format!("{kind}/{id}")})
}

fn reference_named(kind: &str, id: &str, display: &str) -> Value {
    json!({"reference": format!("{kind}/{id}"), "display": display})
}

/// Drops members whose value is null, an empty string or an empty array (FHIR forbids
/// empty elements).
pub fn prune(mut v: Value) -> Value {
    if let Value::Object(map) = &mut v {
        map.retain(|_, x| !(x.is_null() || x.as_str() == Some("") || x.as_array().is_some_and(|a| a.is_empty())));
        for x in map.values_mut() {
            *x = prune(std::mem::take(x));
        }
    } else if let Value::Array(items) = &mut v {
        for x in items.iter_mut() {
            *x = prune(std::mem::take(x));
        }
    }
    v
}

/// The FHIR `date` part of a stored date or timestamp (`YYYY-MM-DD`).
fn date_part(s: &str) -> Option<&str> {
    s.get(..10).filter(|d| chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d").is_ok())
}

// ---- people and organisations -----------------------------------------------------------

/// Patient: identified by the platform id and, when the caller may see it in full, the
/// resident ID number (a masked number is not an identifier and is left out).
pub fn patient(p: &Patient) -> Value {
    let mut identifier = vec![json!({"use": "usual", "system": format!("{SYSTEM_BASE}/sid/patient"), "value": p.id})];
    if !p.resident_id.is_empty() && !p.resident_id.contains('*') {
        identifier.push(json!({
            "use": "official",
            "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "NI"}], "text": "居民身份证号码"},
            "system": format!("{SYSTEM_BASE}/sid/resident-id"),
            "value": p.resident_id
        }));
    }
    prune(json!({
        "resourceType": "Patient",
        "id": p.id,
        "meta": {"lastUpdated": p.updated_at},
        "identifier": identifier,
        "active": true,
        "name": [{"text": p.name}],
        "telecom": if p.phone.is_empty() { json!([]) } else { json!([{"system": "phone", "value": p.phone}]) },
        "gender": p.sex,
        "birthDate": p.birth_date,
        "managingOrganization": reference_named("Organization", &p.home_organisation_id, &p.home_organisation_name),
    }))
}

/// Practitioner: a staff account (not a patient's) with the expert's professional title.
pub fn practitioner(u: &UserView, with_login: bool) -> Value {
    let qualification = match &u.expert {
        Some(e) => json!([{"code": coding("professional-title", &e.title)}]),
        None => json!([]),
    };
    // The sign-in name is for administrators only: to anyone else it is half a credential.
    let identifier = if with_login {
        json!([{"system": format!("{SYSTEM_BASE}/sid/user"), "value": u.username}])
    } else {
        json!([])
    };
    prune(json!({
        "resourceType": "Practitioner",
        "id": u.id,
        "identifier": identifier,
        "active": u.active,
        "name": [{"text": u.display_name}],
        "qualification": qualification,
    }))
}

/// PractitionerRole: the account's role at its organisation, with the expert's specialties.
pub fn practitioner_role(u: &UserView) -> Value {
    let specialty: Vec<Value> =
        u.expert.iter().flat_map(|e| e.specialties.iter()).map(|s| coding("specialty", s)).collect();
    prune(json!({
        "resourceType": "PractitionerRole",
        "id": u.id,
        "active": u.active,
        "practitioner": reference_named("Practitioner", &u.id, &u.display_name),
        "organization": reference_named("Organization", &u.organisation_id, &u.organisation_name),
        "code": [coding("role", u.role.as_str())],
        "specialty": specialty,
    }))
}

/// Organization: a consortium member; `partOf` is not used because a centre may be linked
/// to several hospitals (the links are listed in docs/fhir.md as not mapped).
pub fn organization(o: &Organisation) -> Value {
    prune(json!({
        "resourceType": "Organization",
        "id": o.id,
        "active": o.active != 0,
        "type": [
            {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/organization-type", "code": "prov"}]},
            coding("organisation-kind", o.kind.as_str())
        ],
        "name": o.name,
        "address": if o.address.is_empty() { json!([]) } else { json!([{"text": o.address}]) },
    }))
}

// ---- the consultation --------------------------------------------------------------------

fn service_request_status(state: State) -> &'static str {
    match state {
        State::Draft => "draft",
        State::Completed => "completed",
        State::Declined | State::Cancelled | State::NoShow => "revoked",
        State::Requested | State::Accepted | State::Scheduled | State::InProgress | State::AwaitingOpinion => "active",
    }
}

fn priority(urgency: Urgency) -> &'static str {
    match urgency {
        Urgency::Routine => "routine",
        Urgency::Urgent => "urgent",
        Urgency::Emergency => "stat",
    }
}

/// ServiceRequest for the consultation request itself: reason, urgency, mode, the
/// requesting doctor, the expert (or the department pool) and the consent.
pub fn consultation_request(d: &ConsultationDetail) -> Value {
    let s: &ConsultationSummary = &d.summary;
    let performer = match (&s.assigned_expert_id, &s.pool_organisation_id) {
        (Some(e), _) => json!([reference_named("Practitioner", e, s.assigned_expert_name.as_deref().unwrap_or(""))]),
        (None, Some(o)) => json!([reference("Organization", o)]),
        _ => json!(d
            .participants
            .iter()
            .filter(|p| p.role == ParticipantRole::Expert && p.status.takes_part())
            .map(|p| reference_named("Practitioner", &p.user_id, &p.name))
            .collect::<Vec<_>>()),
    };
    prune(json!({
        "resourceType": "ServiceRequest",
        "id": s.id,
        "meta": {"lastUpdated": s.updated_at},
        "identifier": [{"system": format!("{SYSTEM_BASE}/sid/consultation"), "value": s.id}],
        "status": service_request_status(s.state),
        "intent": "order",
        "category": [{"coding": [{"system": "http://snomed.info/sct", "code": "11429006", "display": "Consultation"}]}],
        "priority": priority(s.urgency),
        "code": coding("consultation-mode", s.mode.as_str()),
        "subject": reference_named("Patient", &s.patient_id, &s.patient_name),
        "authoredOn": s.created_at,
        "requester": reference_named("Practitioner", &s.requested_by, &s.requested_by_name),
        "performerType": coding("specialty", &s.specialty),
        "performer": performer,
        "reasonCode": [{"text": s.reason}],
        "supportingInfo": if d.consent.is_some() { json!([reference("Consent", &s.id)]) } else { json!([]) },
        "note": if s.record_summary.is_empty() { json!([]) } else { json!([{"text": s.record_summary}]) },
    }))
}

/// Consent: the patient's (or guardian's) informed consent recorded with the request; its
/// id is the consultation's.
pub fn consent(d: &ConsultationDetail) -> Option<Value> {
    let k = d.consent.as_ref()?;
    let s = &d.summary;
    let performer = if k.given_by == ConsentGiver::Guardian {
        json!([{"display": format!("{} (guardian)", k.guardian_name)}])
    } else {
        json!([reference_named("Patient", &s.patient_id, &s.patient_name)])
    };
    Some(prune(json!({
        "resourceType": "Consent",
        "id": s.id,
        "status": "active",
        "scope": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "treatment"}]},
        "category": [
            {"coding": [{"system": LOINC, "code": "59284-0", "display": "Patient Consent"}]},
            coding("consent-method", k.method.as_str())
        ],
        "patient": reference_named("Patient", &s.patient_id, &s.patient_name),
        "dateTime": k.given_at,
        "performer": performer,
        "organization": [reference_named("Organization", &s.requesting_organisation_id, &s.requesting_organisation_name)],
        "policyRule": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "OPTIN"}]},
        "verification": [{"verified": true, "verificationDate": k.given_at}],
        "provision": {"type": "permit", "data": [{"meaning": "related", "reference": reference("ServiceRequest", &s.id)}]},
    })))
}

fn appointment_status(status: AppointmentStatus) -> &'static str {
    match status {
        AppointmentStatus::Booked => "booked",
        AppointmentStatus::Attended => "fulfilled",
        AppointmentStatus::NoShow => "noshow",
        AppointmentStatus::Cancelled | AppointmentStatus::Rescheduled => "cancelled",
    }
}

/// Appointment: a booked slot of the expert for the consultation.
pub fn appointment(a: &AppointmentView, patient_name: &str) -> Value {
    prune(json!({
        "resourceType": "Appointment",
        "id": a.id,
        "status": appointment_status(a.status),
        "cancelationReason": if a.cancel_reason.is_empty() { Value::Null } else { json!({"text": a.cancel_reason}) },
        "start": a.start,
        "end": a.end,
        "basedOn": [reference("ServiceRequest", &a.consultation_id)],
        "participant": [
            {"actor": reference_named("Practitioner", &a.expert_id, &a.expert_name), "required": "required", "status": "accepted"},
            {"actor": reference_named("Patient", &a.patient_id, patient_name), "required": "required", "status": "accepted"}
        ],
    }))
}

/// Encounter: the live session of the consultation, from the room's timeline (none when
/// nobody ever joined and no message was sent).
pub fn encounter(d: &ConsultationDetail, timeline: &[TimelineEvent], chat: &[ChatLine]) -> Option<Value> {
    if timeline.is_empty() && chat.is_empty() {
        return None;
    }
    let s = &d.summary;
    let finished = matches!(s.state, State::Completed | State::AwaitingOpinion);
    let status = match s.state {
        State::Completed | State::AwaitingOpinion => "finished",
        State::Cancelled | State::NoShow => "cancelled",
        _ => "in-progress",
    };
    let mut seen = std::collections::BTreeSet::new();
    let participant: Vec<Value> = timeline
        .iter()
        .filter(|e| e.room_role != ParticipantRole::Patient && seen.insert(e.user_id.clone()))
        .map(|e| {
            json!({
                "type": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType",
                    "code": if e.room_role == ParticipantRole::Expert { "CON" } else { "PART" }}]}],
                "individual": reference_named("Practitioner", &e.user_id, &e.user_name)
            })
        })
        .collect();
    let start = timeline.first().map(|e| e.at.as_str()).or(chat.first().map(|c| c.sent_at.as_str()));
    let end =
        finished.then(|| timeline.last().map(|e| e.at.as_str()).or(chat.last().map(|c| c.sent_at.as_str()))).flatten();
    Some(prune(json!({
        "resourceType": "Encounter",
        "id": s.id,
        "status": status,
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "VR", "display": "virtual"},
        "priority": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActPriority",
            "code": match s.urgency { Urgency::Emergency => "EM", Urgency::Urgent => "UR", Urgency::Routine => "R" }}]},
        "subject": reference_named("Patient", &s.patient_id, &s.patient_name),
        "basedOn": [reference("ServiceRequest", &s.id)],
        "participant": participant,
        "appointment": d.appointments.iter().map(|a| reference("Appointment", &a.id)).collect::<Vec<_>>(),
        "period": {"start": start, "end": end},
        "serviceProvider": reference_named("Organization", &s.requesting_organisation_id, &s.requesting_organisation_name),
    })))
}

/// Communication: one chat message of the live session.
pub fn communication(d: &ConsultationDetail, m: &ChatLine) -> Value {
    let s = &d.summary;
    let from_patient = d.participants.iter().any(|p| p.user_id == m.sender_id && p.role == ParticipantRole::Patient);
    let sender = if from_patient {
        reference_named("Patient", &s.patient_id, &m.sender_name)
    } else {
        reference_named("Practitioner", &m.sender_id, &m.sender_name)
    };
    prune(json!({
        "resourceType": "Communication",
        "id": m.id,
        "basedOn": [reference("ServiceRequest", &s.id)],
        "status": "completed",
        "subject": reference_named("Patient", &s.patient_id, &s.patient_name),
        "encounter": reference("Encounter", &s.id),
        "sent": m.sent_at,
        "sender": sender,
        "payload": [{"contentString": m.body}],
    }))
}

/// DocumentReference: a shared file, with a link to its bytes and, for DICOM, to the
/// study on the consultation's DICOMweb service. `origin` is `scheme://host[:port]`.
pub fn document_reference(d: &ConsultationDetail, f: &FileEntry, study_uid: Option<&str>, origin: &str) -> Value {
    let s = &d.summary;
    let mut content = vec![json!({"attachment": {
        "contentType": f.content_type,
        "url": format!("{origin}/api/v1/files/{}", f.id),
        "size": f.size,
        "title": f.name,
        "creation": f.created_at,
    }})];
    if let Some(uid) = study_uid {
        content.push(json!({
            "attachment": {
                "contentType": "application/dicom+json",
                "url": format!("{origin}/api/v1/consultations/{}/dicomweb/studies/{uid}/metadata", s.id),
                "title": format!("DICOMweb study {uid}"),
            },
            "format": {"system": "http://ihe.net/fhir/ihe.formatcode.fhir/CodeSystem/formatcode", "code": "urn:ihe:rad:1.2.840.10008.5.1.4.1.1.88.59"}
        }));
    }
    let type_ = match f.kind {
        FileKind::Ecg => {
            json!({"coding": [{"system": LOINC, "code": "11524-6", "display": "EKG study"}], "text": "ecg"})
        }
        FileKind::Dicom => {
            json!({"coding": [{"system": LOINC, "code": "18748-4", "display": "Diagnostic imaging study"}], "text": "dicom"})
        }
        other => coding("file-kind", other.as_str()),
    };
    prune(json!({
        "resourceType": "DocumentReference",
        "id": f.id,
        "identifier": [{"system": "urn:ietf:rfc:3986", "value": format!("urn:sha256:{}", f.sha256)}],
        "status": "current",
        "type": type_,
        "subject": reference_named("Patient", &s.patient_id, &s.patient_name),
        "date": f.created_at,
        "description": f.name,
        "content": content,
        "context": {"related": [reference("ServiceRequest", &s.id)]},
    }))
}

/// One indexed DICOM instance, as ImagingStudy needs it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DicomInstance {
    pub file_id: String,
    pub study_uid: String,
    pub series_uid: String,
    pub sop_instance_uid: String,
    pub sop_class_uid: String,
    pub modality: String,
    pub body_part: String,
    pub study_date: String,
    pub study_description: String,
    pub series_description: String,
    pub series_number: Option<i64>,
    pub instance_number: Option<i64>,
}

/// The study date as a FHIR date: DICOM times carry no offset (and the index keeps none),
/// and a FHIR dateTime with a time must have one, so the time of day is left out.
fn dicom_date_time(date: &str) -> Option<String> {
    let d = chrono::NaiveDate::parse_from_str(date.get(..8)?, "%Y%m%d").ok()?;
    Some(d.format("%Y-%m-%d").to_string())
}

/// ImagingStudy: the instances of one study in one consultation (ordered by series and
/// instance number); its id is the file id of the study's first instance.
pub fn imaging_study(d: &ConsultationDetail, instances: &[&DicomInstance], origin: &str) -> Option<Value> {
    let first = instances.first()?;
    let s = &d.summary;
    let mut series: Vec<(String, Vec<&DicomInstance>)> = Vec::new();
    for i in instances {
        match series.iter_mut().find(|(uid, _)| *uid == i.series_uid) {
            Some((_, list)) => list.push(i),
            None => series.push((i.series_uid.clone(), vec![i])),
        }
    }
    let series_json: Vec<Value> = series
        .iter()
        .map(|(uid, list)| {
            let head = list[0];
            json!({
                "uid": uid,
                "number": head.series_number,
                "modality": {"system": DCM, "code": if head.modality.is_empty() { "OT" } else { head.modality.as_str() }},
                "description": head.series_description,
                "numberOfInstances": list.len(),
                "bodySite": if head.body_part.is_empty() { Value::Null } else { json!({"display": head.body_part}) },
                "instance": list.iter().map(|i| json!({
                    "uid": i.sop_instance_uid,
                    "sopClass": {"system": "urn:ietf:rfc:3986", "code": format!("urn:oid:{}", i.sop_class_uid)},
                    "number": i.instance_number,
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    let mut modalities: Vec<&str> = instances.iter().map(|i| i.modality.as_str()).filter(|m| !m.is_empty()).collect();
    modalities.sort_unstable();
    modalities.dedup();
    Some(prune(json!({
        "resourceType": "ImagingStudy",
        "id": first.file_id,
        "identifier": [{"system": "urn:dicom:uid", "value": format!("urn:oid:{}", first.study_uid)}],
        "status": "available",
        "modality": modalities.iter().map(|m| json!({"system": DCM, "code": m})).collect::<Vec<_>>(),
        "subject": reference_named("Patient", &s.patient_id, &s.patient_name),
        "started": dicom_date_time(&first.study_date),
        "basedOn": [reference("ServiceRequest", &s.id)],
        "numberOfSeries": series.len(),
        "numberOfInstances": instances.len(),
        "description": first.study_description,
        "note": [{"text": format!("DICOMweb: {origin}/api/v1/consultations/{}/dicomweb/studies/{}", s.id, first.study_uid)}],
        "series": series_json,
    })))
}

/// The ECG measurements mapped to Observations: (id suffix, LOINC code, display, unit).
pub const ECG_CODES: &[(&str, &str, &str, &str)] = &[
    ("hr", "8867-4", "Heart rate", "/min"),
    ("pr", "8625-6", "P-R Interval", "ms"),
    ("qrs", "8633-0", "QRS duration", "ms"),
    ("qt", "8634-8", "Q-T interval", "ms"),
    ("qtc", "8636-3", "Q-T interval corrected", "ms"),
];

/// Observations of an ECG's computer-assisted pre-read (status preliminary: a measurement
/// for the reviewing doctor, not a diagnosis), one per measured value; ids are
/// `{file id}-{hr|pr|qrs|qt|qtc}`.
pub fn ecg_observations(d: &ConsultationDetail, file_id: &str, recorded_at: &str, m: &Measurements) -> Vec<Value> {
    let s = &d.summary;
    ECG_CODES
        .iter()
        .filter_map(|(suffix, code, display, unit)| {
            let value = match *suffix {
                "hr" => m.heart_rate_bpm,
                "pr" => m.pr_ms,
                "qrs" => m.qrs_ms,
                "qt" => m.qt_ms,
                _ => m.qtc_bazett_ms,
            }?;
            let method = (*suffix == "qtc").then(|| json!({"text": "Bazett"}));
            Some(prune(json!({
                "resourceType": "Observation",
                "id": format!("{file_id}-{suffix}"),
                "basedOn": [reference("ServiceRequest", &s.id)],
                "status": "preliminary",
                "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "procedure"}]}],
                "code": {"coding": [{"system": LOINC, "code": code, "display": display}], "text": display},
                "subject": reference_named("Patient", &s.patient_id, &s.patient_name),
                "effectiveDateTime": recorded_at,
                "issued": recorded_at,
                "valueQuantity": {"value": (value * 10.0).round() / 10.0, "unit": unit, "system": UCUM, "code": unit},
                "method": method,
                "note": [{"text": "computer-assisted pre-read"}],
                "derivedFrom": [reference("DocumentReference", file_id)],
            })))
        })
        .collect()
}

fn report_status(o: &Opinion) -> &'static str {
    match o.status {
        OpinionStatus::Draft => "preliminary",
        _ if o.version > 1 => "amended",
        _ => "final",
    }
}

/// DiagnosticReport: the expert's opinion (the current version of each author's opinion;
/// superseded versions stay in the platform's record). A signed opinion carries its
/// signature as an extension: who, when, and the SHA-256 of the signed canonical content.
pub fn diagnostic_report(d: &ConsultationDetail, o: &Opinion, results: &[String]) -> Value {
    let s = &d.summary;
    let text = [
        ("Findings", &o.findings),
        ("Impression", &o.impression),
        ("Recommendations", &o.recommendations),
        ("Referral advice", &o.referral_advice),
        ("Follow-up advice", &o.follow_up_advice),
    ]
    .iter()
    .filter(|(_, v)| !v.is_empty())
    .map(|(k, v)| format!("{k}: {v}"))
    .collect::<Vec<_>>()
    .join("\n\n");
    let author_name = if o.signer_name.is_empty() {
        d.participants.iter().find(|p| p.user_id == o.author_id).map(|p| p.name.as_str()).unwrap_or("")
    } else {
        o.signer_name.as_str()
    };
    let signature = o.signed_at.as_ref().map(|at| {
        json!([{
            "url": format!("{SYSTEM_BASE}/StructureDefinition/opinion-signature"),
            "valueSignature": {
                "type": [{"system": "urn:iso-astm:E1762-95:2013", "code": "1.2.840.10065.1.12.1.1", "display": "Author's Signature"}],
                "when": at,
                "who": reference_named("Practitioner", &o.author_id, author_name),
                "targetFormat": "application/json",
                "sigFormat": "text/plain",
                "data": base64::engine::general_purpose::STANDARD.encode(format!("sha256:{}", o.content_sha256)),
            }
        }])
    });
    prune(json!({
        "resourceType": "DiagnosticReport",
        "id": o.id,
        "extension": signature,
        "identifier": [{"system": format!("{SYSTEM_BASE}/sid/opinion"), "value": format!("{}/v{}", o.id, o.version)}],
        "basedOn": [reference("ServiceRequest", &s.id)],
        "status": report_status(o),
        "category": [coding("opinion-kind", o.kind.as_str())],
        "code": {"coding": [{"system": LOINC, "code": "11488-4", "display": "Consult note"}], "text": "会诊意见 consultation opinion"},
        "subject": reference_named("Patient", &s.patient_id, &s.patient_name),
        "effectiveDateTime": o.created_at,
        "issued": o.signed_at,
        "performer": [reference_named("Practitioner", &o.author_id, author_name)],
        "resultsInterpreter": [reference_named("Practitioner", &o.author_id, author_name)],
        "result": results.iter().map(|id| reference("Observation", id)).collect::<Vec<_>>(),
        "conclusion": o.impression,
        "presentedForm": [{
            "contentType": "text/plain; charset=utf-8",
            "language": "zh-CN",
            "data": base64::engine::general_purpose::STANDARD.encode(&text),
            "title": format!("opinion v{}", o.version),
            "creation": o.signed_at.as_deref().unwrap_or(&o.updated_at),
        }],
    }))
}

fn referral_status(status: ReferralStatus) -> (&'static str, &'static str) {
    // (ServiceRequest.status, Task.status)
    match status {
        ReferralStatus::Requested => ("active", "requested"),
        ReferralStatus::Accepted => ("active", "accepted"),
        ReferralStatus::Rejected => ("revoked", "rejected"),
        ReferralStatus::Completed => ("completed", "completed"),
        ReferralStatus::EnteredInError => ("entered-in-error", "entered-in-error"),
    }
}

/// The FHIR id of a referral's ServiceRequest (consultations use their own id).
pub fn referral_request_id(referral_id: &str) -> String {
    format!("referral-{referral_id}")
}

/// A referral up or down, as a ServiceRequest (what is asked) ...
pub fn referral_request(r: &Referral) -> Value {
    let (status, _) = referral_status(r.status);
    prune(json!({
        "resourceType": "ServiceRequest",
        "id": referral_request_id(&r.id),
        "meta": {"lastUpdated": r.updated_at},
        "basedOn": r.consultation_id.as_ref().map(|c| json!([reference("ServiceRequest", c)])),
        "status": status,
        "intent": "order",
        "category": [{"coding": [{"system": "http://snomed.info/sct", "code": "3457005", "display": "Patient referral"}]}],
        "priority": priority(r.urgency),
        "code": coding("referral-direction", r.direction.as_str()),
        "subject": reference_named("Patient", &r.patient_id, &r.patient_name),
        "occurrenceDateTime": r.appointment_at,
        "authoredOn": r.created_at,
        "requester": reference("Practitioner", &r.created_by),
        "performer": [reference_named("Organization", &r.to_organisation_id, &r.to_organisation_name)],
        "reasonCode": [{"text": r.reason}],
        "note": if r.care_plan.is_empty() { json!([]) } else { json!([{"text": r.care_plan}]) },
    }))
}

/// ... and a Task (who must act on it, and where it stands).
pub fn referral_task(r: &Referral) -> Value {
    let (_, status) = referral_status(r.status);
    prune(json!({
        "resourceType": "Task",
        "id": r.id,
        "basedOn": r.consultation_id.as_ref().map(|c| json!([reference("ServiceRequest", c)])),
        "status": status,
        "businessStatus": {"text": r.status},
        "intent": "order",
        "priority": priority(r.urgency),
        "code": {"coding": [{"system": "http://hl7.org/fhir/CodeSystem/task-code", "code": "fulfill"}]},
        "focus": reference("ServiceRequest", &referral_request_id(&r.id)),
        "for": reference_named("Patient", &r.patient_id, &r.patient_name),
        "authoredOn": r.created_at,
        "lastModified": r.updated_at,
        "requester": reference_named("Organization", &r.from_organisation_id, &r.from_organisation_name),
        "owner": reference_named("Organization", &r.to_organisation_id, &r.to_organisation_name),
        "reasonCode": {"text": r.reason},
    }))
}

/// CarePlan: a follow-up plan, from its visits (all of one plan, in order).
pub fn care_plan(consultation_id: Option<&str>, visits: &[&Visit]) -> Option<Value> {
    let first = visits.first()?;
    let open = visits.iter().any(|v| v.status == VisitStatus::Planned);
    let activity: Vec<Value> = visits
        .iter()
        .map(|v| {
            json!({"detail": {
                "kind": "Appointment",
                "code": {"text": format!("follow-up visit {}", v.seq)},
                "status": match v.status {
                    VisitStatus::Done => "completed",
                    VisitStatus::Closed => "cancelled",
                    VisitStatus::Planned => "scheduled",
                },
                "scheduledString": v.due_date,
                "description": v.note,
            }})
        })
        .collect();
    Some(prune(json!({
        "resourceType": "CarePlan",
        "id": first.plan_id,
        "status": if open { "active" } else { "completed" },
        "intent": "plan",
        "category": [{"text": "chronic disease follow-up"}],
        "title": first.condition,
        "subject": reference_named("Patient", &first.patient_id, &first.patient_name),
        "period": {"start": date_part(&first.due_date), "end": visits.last().and_then(|v| date_part(&v.due_date))},
        "supportingInfo": consultation_id.map(|c| json!([reference("ServiceRequest", c)])),
        "activity": activity,
    })))
}

// ---- availability ------------------------------------------------------------------------

/// Schedule: an expert's bookable time (its id is the expert's).
pub fn schedule(u: &UserView) -> Value {
    let specialty: Vec<Value> =
        u.expert.iter().flat_map(|e| e.specialties.iter()).map(|s| coding("specialty", s)).collect();
    prune(json!({
        "resourceType": "Schedule",
        "id": u.id,
        "active": u.active,
        "specialty": specialty,
        "actor": [reference_named("Practitioner", &u.id, &u.display_name)],
        "comment": u.expert.as_ref().map(|e| format!("time zone {}", e.time_zone)),
    }))
}

/// The id of a slot: the expert and the slot's start (UTC, to the minute).
pub fn slot_id(expert_id: &str, start: chrono::DateTime<chrono::Utc>) -> String {
    format!("{expert_id}.{}", start.format("%Y%m%d%H%M"))
}

/// Slot: free (from the availability rules, exceptions and policy) or busy (booked).
pub fn slot(
    expert_id: &str,
    start: chrono::DateTime<chrono::Utc>,
    end: chrono::DateTime<chrono::Utc>,
    busy: bool,
) -> Value {
    json!({
        "resourceType": "Slot",
        "id": slot_id(expert_id, start),
        "schedule": reference("Schedule", expert_id),
        "status": if busy { "busy" } else { "free" },
        "start": crate::db::ts(start),
        "end": crate::db::ts(end),
    })
}

/// A consultation's stored ECG pre-read.
#[derive(Debug, Clone)]
pub struct EcgAnalysis {
    pub file_id: String,
    pub created_at: String,
    pub measurements: Measurements,
}

/// Everything of one consultation the facade maps: its record, the ECG pre-reads and the
/// DICOM index.
pub struct Story {
    pub record: Record,
    pub ecg: Vec<EcgAnalysis>,
    pub dicom: Vec<DicomInstance>,
}

/// The consultation-scoped types (their resources are found through a consultation).
pub const STORY_KINDS: &[&str] = &[
    "ServiceRequest",
    "Task",
    "Consent",
    "Appointment",
    "Encounter",
    "Communication",
    "DocumentReference",
    "ImagingStudy",
    "Observation",
    "DiagnosticReport",
    "CarePlan",
];

/// The resources of `kind` in one consultation's story.
pub fn story_resources(story: &Story, kind: &str, origin: &str) -> Vec<Value> {
    let r = &story.record;
    let d = &r.consultation;
    let observations = || -> Vec<Value> {
        story.ecg.iter().flat_map(|e| ecg_observations(d, &e.file_id, &e.created_at, &e.measurements)).collect()
    };
    match kind {
        "ServiceRequest" => {
            std::iter::once(consultation_request(d)).chain(r.referrals.iter().map(referral_request)).collect()
        }
        "Task" => r.referrals.iter().map(referral_task).collect(),
        "Consent" => consent(d).into_iter().collect(),
        "Appointment" => d.appointments.iter().map(|a| appointment(a, &d.summary.patient_name)).collect(),
        "Encounter" => encounter(d, &r.timeline, &r.chat).into_iter().collect(),
        "Communication" => r.chat.iter().map(|m| communication(d, m)).collect(),
        "DocumentReference" => r
            .files
            .iter()
            .map(|f| {
                let study = story.dicom.iter().find(|i| i.file_id == f.id).map(|i| i.study_uid.as_str());
                document_reference(d, f, study, origin)
            })
            .collect(),
        "ImagingStudy" => {
            let mut studies: Vec<&str> = Vec::new();
            for i in &story.dicom {
                if !studies.contains(&i.study_uid.as_str()) {
                    studies.push(&i.study_uid);
                }
            }
            studies
                .iter()
                .filter_map(|uid| {
                    let list: Vec<&DicomInstance> = story.dicom.iter().filter(|i| i.study_uid == *uid).collect();
                    imaging_study(d, &list, origin)
                })
                .collect()
        }
        "Observation" => observations(),
        "DiagnosticReport" => {
            let results: Vec<String> =
                observations().iter().filter_map(|o| o["id"].as_str().map(str::to_string)).collect();
            r.opinions
                .iter()
                .filter(|o| o.status != OpinionStatus::Superseded)
                .map(|o| diagnostic_report(d, o, &results))
                .collect()
        }
        "CarePlan" => {
            let mut plans: Vec<&str> = Vec::new();
            for v in &r.follow_up {
                if !plans.contains(&v.plan_id.as_str()) {
                    plans.push(&v.plan_id);
                }
            }
            plans
                .iter()
                .filter_map(|p| {
                    let visits: Vec<&Visit> = r.follow_up.iter().filter(|v| v.plan_id == *p).collect();
                    care_plan(Some(&d.summary.id), &visits)
                })
                .collect()
        }
        _ => Vec::new(),
    }
}

/// OperationOutcome for an error answered to a FHIR client.
pub fn operation_outcome(severity: &str, code: &str, diagnostics: &str) -> Value {
    json!({
        "resourceType": "OperationOutcome",
        "issue": [{"severity": severity, "code": code, "diagnostics": diagnostics}]
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consultations::routes::{ConsentView, Participant};

    pub(crate) fn detail() -> ConsultationDetail {
        ConsultationDetail {
            summary: ConsultationSummary {
                id: "c1".into(),
                patient_id: "p1".into(),
                patient_name: "张三".into(),
                requesting_organisation_id: "o1".into(),
                requesting_organisation_name: "东湖社区卫生服务中心".into(),
                requested_by: "u-li".into(),
                requested_by_name: "李医生".into(),
                reason: "胸闷两周".into(),
                record_summary: String::new(),
                specialty: "cardiology".into(),
                min_title: crate::consultations::state::Title::Attending,
                urgency: Urgency::Emergency,
                mode: crate::consultations::state::Mode::EcgReview,
                addressee_kind: crate::domain::consultation::AddresseeKind::Expert,
                pool_organisation_id: None,
                state: State::Completed,
                assigned_expert_id: Some("u-wang".into()),
                assigned_expert_name: Some("王医生".into()),
                created_at: "2026-11-24T01:00:00.000000Z".into(),
                updated_at: "2026-11-24T03:00:00.000000Z".into(),
            },
            my_role: None,
            participants: vec![
                Participant {
                    user_id: "u-wang".into(),
                    name: "王医生".into(),
                    role: ParticipantRole::Expert,
                    status: crate::domain::consultation::ParticipantStatus::Accepted,
                    reason: String::new(),
                },
                Participant {
                    user_id: "u-zhang".into(),
                    name: "张三".into(),
                    role: ParticipantRole::Patient,
                    status: crate::domain::consultation::ParticipantStatus::Active,
                    reason: String::new(),
                },
            ],
            consent: Some(ConsentView {
                given_by: ConsentGiver::Guardian,
                guardian_name: "张小明".into(),
                method: crate::domain::consultation::ConsentMethod::Written,
                given_at: "2026-11-24T00:55:00.000000Z".into(),
                witness_id: "u-li".into(),
                witness_name: "李医生".into(),
            }),
            transitions: vec![],
            appointments: vec![],
        }
    }

    #[test]
    fn a_consultation_is_a_service_request_with_reason_priority_and_consent() {
        let sr = consultation_request(&detail());
        assert_eq!(sr["resourceType"], "ServiceRequest");
        assert_eq!(sr["status"], "completed");
        assert_eq!(sr["priority"], "stat");
        assert_eq!(sr["reasonCode"][0]["text"], "胸闷两周");
        assert_eq!(sr["subject"]["reference"], "Patient/p1");
        assert_eq!(sr["performer"][0]["reference"], "Practitioner/u-wang");
        assert_eq!(sr["supportingInfo"][0]["reference"], "Consent/c1");
        assert!(sr.get("note").is_none(), "an empty summary is left out, not sent empty");
        let c = consent(&detail()).unwrap();
        assert_eq!(c["performer"][0]["display"], "张小明 (guardian)");
        assert_eq!(c["category"][1]["coding"][0]["code"], "written");
        assert_eq!(c["provision"]["data"][0]["reference"]["reference"], "ServiceRequest/c1");
    }

    #[test]
    fn ecg_measurements_become_loinc_observations_and_absent_ones_are_left_out() {
        let m = Measurements {
            heart_rate_bpm: Some(72.04),
            pr_ms: Some(160.0),
            qrs_ms: None,
            qt_ms: Some(380.0),
            qtc_bazett_ms: Some(402.26),
            rr_ms: vec![],
            r_peaks_s: vec![],
            beat_count: 10,
            rr_mean_ms: None,
            sdnn_ms: None,
            rmssd_ms: None,
            rhythm: crate::ecg::Rhythm::Regular,
            qtc_fridericia_ms: None,
            detection_lead: None,
            computer_assisted: true,
            beat_classes: vec![],
            normal_beats: 10,
            ventricular_ectopic_beats: 0,
            findings: vec![],
        };
        let obs = ecg_observations(&detail(), "f1", "2026-11-24T01:10:00.000000Z", &m);
        let codes: Vec<&str> = obs.iter().map(|o| o["code"]["coding"][0]["code"].as_str().unwrap()).collect();
        assert_eq!(codes, ["8867-4", "8625-6", "8634-8", "8636-3"]);
        assert_eq!(obs[0]["valueQuantity"]["value"], 72.0);
        assert_eq!(obs[0]["valueQuantity"]["code"], "/min");
        assert_eq!(obs[3]["id"], "f1-qtc");
        assert_eq!(obs[3]["valueQuantity"]["value"], 402.3);
        assert_eq!(obs[3]["method"]["text"], "Bazett");
        assert_eq!(obs[1]["derivedFrom"][0]["reference"], "DocumentReference/f1");
    }

    #[test]
    fn a_signed_amendment_is_an_amended_report_carrying_its_signature() {
        let o = Opinion {
            id: "op2".into(),
            consultation_id: "c1".into(),
            author_id: "u-wang".into(),
            kind: crate::domain::record::OpinionKind::Individual,
            version: 2,
            supersedes: Some("op1".into()),
            status: OpinionStatus::Signed,
            findings: "窦性心律".into(),
            impression: "未见明显异常".into(),
            recommendations: String::new(),
            referral_advice: String::new(),
            follow_up_advice: String::new(),
            patient_summary: String::new(),
            amendment_reason: "补充".into(),
            signer_name: "王医生".into(),
            signer_title: "chief".into(),
            signed_at: Some("2026-11-24T02:00:00.000000Z".into()),
            content_sha256: "ab".repeat(32),
            created_at: "2026-11-24T01:30:00.000000Z".into(),
            updated_at: "2026-11-24T02:00:00.000000Z".into(),
        };
        let r = diagnostic_report(&detail(), &o, &["f1-hr".to_string()]);
        assert_eq!(r["status"], "amended");
        assert_eq!(r["conclusion"], "未见明显异常");
        assert_eq!(r["result"][0]["reference"], "Observation/f1-hr");
        let sig = &r["extension"][0]["valueSignature"];
        assert_eq!(sig["when"], "2026-11-24T02:00:00.000000Z");
        assert_eq!(sig["who"]["reference"], "Practitioner/u-wang");
        let data = base64::engine::general_purpose::STANDARD.decode(sig["data"].as_str().unwrap()).unwrap();
        assert_eq!(String::from_utf8(data).unwrap(), format!("sha256:{}", "ab".repeat(32)));
        let text =
            base64::engine::general_purpose::STANDARD.decode(r["presentedForm"][0]["data"].as_str().unwrap()).unwrap();
        assert!(String::from_utf8(text).unwrap().contains("Findings: 窦性心律"));
    }

    #[test]
    fn a_masked_resident_id_is_not_an_identifier() {
        let mut p = Patient {
            id: "p1".into(),
            name: "张三".into(),
            sex: crate::domain::people::Sex::Male,
            birth_date: "1950-03-01".into(),
            phone: String::new(),
            resident_id: "1101**********123X".into(),
            home_organisation_id: "o1".into(),
            home_organisation_name: "东湖".into(),
            user_id: None,
            created_at: "2026-11-24T01:00:00.000000Z".into(),
            updated_at: "2026-11-24T01:00:00.000000Z".into(),
            identifiers: None,
        };
        assert_eq!(patient(&p)["identifier"].as_array().unwrap().len(), 1);
        assert!(patient(&p).get("telecom").is_none());
        p.resident_id = "110101195003011234".into();
        let fhir = patient(&p);
        assert_eq!(fhir["identifier"][1]["value"], "110101195003011234");
        assert_eq!(fhir["gender"], "male");
        assert_eq!(fhir["managingOrganization"]["reference"], "Organization/o1");
    }

    #[test]
    fn dicom_dates_become_fhir_dates() {
        assert_eq!(dicom_date_time("20240105").as_deref(), Some("2024-01-05"));
        assert_eq!(dicom_date_time("2024"), None);
        assert_eq!(dicom_date_time(""), None);
    }
}
