//! Expert matching: which experts to propose for a consultation request, in what order,
//! and why.
//!
//! # Who is listed
//!
//! Only experts who practise the requested specialty (compared case-insensitively) and hold
//! at least the requested title. The others are **excluded**, not listed last: proposing
//! someone the request rules out would only invite a wrong pick.
//!
//! # How they are ordered
//!
//! Each listed expert gets a base score between 0 and 1, the weighted sum of:
//!
//! | factor | weight | value |
//! |---|---|---|
//! | specialty fit | 0.15 | 1 when it is the expert's main (first listed) specialty, else 0.5 |
//! | title | 0.20 | steps above the minimum title, out of 3 |
//! | consortium link | 0.20 | 1 when linked to the requesting centre |
//! | earliest free slot | 0.25 | 1 / (1 + hours / 72); 0 without a free slot |
//! | load | 0.20 | 1 / (1 + open consultations / 2) |
//!
//! A routine request is ranked by the base score. An urgent or emergency request is ranked
//! by **availability first**: the score is the availability tier (5 for a free slot within
//! 1 hour, 4 within 4 hours, 3 within 24 hours, 2 within 3 days, 1 later, 0 for none) plus
//! the base score, so an expert free in an hour always outranks a chief physician free in
//! five days, and the other factors decide within a tier.
//!
//! Scores are rounded to four decimals; equal scores are ordered by expert id, so the
//! ranking is deterministic.
//!
//! # Why
//!
//! Each candidate carries its reasons twice: as [`ReasonCode`]s (a `code` and its
//! parameters, which a client words in the user's language) and as English sentences made
//! from those codes.

use chrono::{DateTime, TimeDelta, Utc};
use serde::Serialize;
use uuid::Uuid;

use crate::consultations::state::{Title, Urgency};

/// What matching knows about one expert.
#[derive(Debug, Clone, PartialEq)]
pub struct CandidateInput {
    pub expert_id: Uuid,
    pub name: String,
    /// The expert's specialties, main specialty first.
    pub specialties: Vec<String>,
    pub title: Title,
    /// Whether the expert's organisation is in a consortium with the requesting centre.
    pub organisation_linked: bool,
    pub earliest_slot: Option<DateTime<Utc>>,
    pub open_consultations: u32,
}

/// What the consultation request asks for.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    pub specialty: String,
    pub min_title: Title,
    pub urgency: Urgency,
    pub now: DateTime<Utc>,
}

/// One proposed expert, with the reasons for its place.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct RankedCandidate {
    pub expert_id: Uuid,
    pub name: String,
    pub score: f64,
    /// The reasons in English, one per entry of `reason_codes`.
    pub reasons: Vec<String>,
    pub reason_codes: Vec<ReasonCode>,
    pub earliest_slot: Option<DateTime<Utc>>,
}

/// One reason for a candidate's place, machine-readable: serialised as an object with a
/// `code` and the code's parameters, e.g. `{"code": "specialty_match", "specialty":
/// "cardiology"}`. Codes are stable; a client words them in its own language.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(tag = "code", rename_all = "snake_case")]
pub enum ReasonCode {
    /// An urgent or emergency request ranks the earliest availability first.
    AvailabilityFirst {
        urgency: Urgency,
    },
    /// The requested specialty is the expert's main specialty.
    SpecialtyMatch {
        specialty: String,
    },
    /// The expert practises the requested specialty, but it is not their main one.
    SpecialtySecondary {
        specialty: String,
    },
    /// The expert's title meets the minimum asked for.
    TitleMeetsMinimum {
        title: Title,
        min_title: Title,
    },
    /// The expert's organisation is in a consortium with the requesting centre.
    ConsortiumPartner,
    NoConsortiumLink,
    /// The expert's earliest free slot starts this many whole minutes from now (0: now).
    EarliestSlot {
        wait_minutes: i64,
    },
    /// No free slot in the period searched.
    NoFreeSlot,
    /// Consultations the expert has accepted that are still open.
    OpenConsultations {
        count: u32,
    },
}

impl ReasonCode {
    /// The reason as an English sentence (the `reasons` strings).
    pub fn english(&self) -> String {
        match self {
            ReasonCode::AvailabilityFirst { urgency } => {
                format!("{urgency} request: earliest availability ranked first")
            }
            ReasonCode::SpecialtyMatch { specialty } => format!("specialty: {specialty}"),
            ReasonCode::SpecialtySecondary { specialty } => {
                format!("specialty: {specialty} (not their main specialty)")
            }
            ReasonCode::TitleMeetsMinimum { title, min_title } => {
                format!("title {} ≥ {}", title.label(), min_title.label())
            }
            ReasonCode::ConsortiumPartner => "consortium partner of the requesting centre".to_owned(),
            ReasonCode::NoConsortiumLink => "no consortium link to the requesting centre".to_owned(),
            ReasonCode::EarliestSlot { wait_minutes } => {
                format!("earliest free slot {}", describe_wait(TimeDelta::minutes(*wait_minutes)))
            }
            ReasonCode::NoFreeSlot => "no free slot found".to_owned(),
            ReasonCode::OpenConsultations { count: 0 } => "no open consultations".to_owned(),
            ReasonCode::OpenConsultations { count: 1 } => "1 open consultation".to_owned(),
            ReasonCode::OpenConsultations { count } => format!("{count} open consultations"),
        }
    }
}

const SPECIALTY_WEIGHT: f64 = 0.15;
const TITLE_WEIGHT: f64 = 0.20;
const CONSORTIUM_WEIGHT: f64 = 0.20;
const AVAILABILITY_WEIGHT: f64 = 0.25;
const LOAD_WEIGHT: f64 = 0.20;
/// Hours after which a routine request values a free slot at one half.
const AVAILABILITY_HALF_LIFE_HOURS: f64 = 72.0;
/// Upper bounds of the availability tiers for urgent and emergency requests, soonest first.
const URGENT_TIERS_HOURS: [i64; 4] = [1, 4, 24, 72];

/// The eligible candidates, best first. See the module documentation for the rules.
pub fn rank(request: &Request, candidates: Vec<CandidateInput>) -> Vec<RankedCandidate> {
    let wanted = normalise(&request.specialty);
    let availability_first = request.urgency >= Urgency::Urgent;
    let mut ranked: Vec<RankedCandidate> = candidates
        .into_iter()
        .filter(|candidate| candidate.title >= request.min_title)
        .filter_map(|candidate| {
            let position = candidate.specialties.iter().position(|specialty| normalise(specialty) == wanted)?;
            Some(score(request, candidate, position == 0, availability_first))
        })
        .collect();
    ranked.sort_by(|a, b| b.score.total_cmp(&a.score).then_with(|| a.expert_id.cmp(&b.expert_id)));
    ranked
}

fn normalise(specialty: &str) -> String {
    specialty.trim().to_lowercase()
}

fn score(
    request: &Request,
    candidate: CandidateInput,
    main_specialty: bool,
    availability_first: bool,
) -> RankedCandidate {
    let mut codes = Vec::with_capacity(6);
    if availability_first {
        codes.push(ReasonCode::AvailabilityFirst { urgency: request.urgency });
    }

    let specialty = request.specialty.trim().to_owned();
    let specialty_fit = if main_specialty {
        codes.push(ReasonCode::SpecialtyMatch { specialty });
        1.0
    } else {
        codes.push(ReasonCode::SpecialtySecondary { specialty });
        0.5
    };

    let steps_above = title_rank(candidate.title) - title_rank(request.min_title);
    let title_fit = f64::from(steps_above) / 3.0;
    codes.push(ReasonCode::TitleMeetsMinimum { title: candidate.title, min_title: request.min_title });

    let consortium_fit = if candidate.organisation_linked {
        codes.push(ReasonCode::ConsortiumPartner);
        1.0
    } else {
        codes.push(ReasonCode::NoConsortiumLink);
        0.0
    };

    let wait = candidate.earliest_slot.map(|slot| (slot - request.now).max(TimeDelta::zero()));
    let availability_fit = wait.map_or(0.0, |wait| {
        let hours = wait.num_seconds() as f64 / 3600.0;
        1.0 / (1.0 + hours / AVAILABILITY_HALF_LIFE_HOURS)
    });
    codes.push(match wait {
        Some(wait) => ReasonCode::EarliestSlot { wait_minutes: wait.num_minutes() },
        None => ReasonCode::NoFreeSlot,
    });

    let load_fit = 1.0 / (1.0 + f64::from(candidate.open_consultations) / 2.0);
    codes.push(ReasonCode::OpenConsultations { count: candidate.open_consultations });

    let base = SPECIALTY_WEIGHT * specialty_fit
        + TITLE_WEIGHT * title_fit
        + CONSORTIUM_WEIGHT * consortium_fit
        + AVAILABILITY_WEIGHT * availability_fit
        + LOAD_WEIGHT * load_fit;
    let tier = if availability_first { availability_tier(wait) } else { 0.0 };
    RankedCandidate {
        expert_id: candidate.expert_id,
        name: candidate.name,
        score: ((tier + base) * 10_000.0).round() / 10_000.0,
        reasons: codes.iter().map(ReasonCode::english).collect(),
        reason_codes: codes,
        earliest_slot: candidate.earliest_slot,
    }
}

fn title_rank(title: Title) -> u8 {
    match title {
        Title::Resident => 0,
        Title::Attending => 1,
        Title::AssociateChief => 2,
        Title::Chief => 3,
    }
}

/// 5 for a free slot within the first tier, down to 1 after the last; 0 without a slot.
fn availability_tier(wait: Option<TimeDelta>) -> f64 {
    let Some(wait) = wait else {
        return 0.0;
    };
    let later = URGENT_TIERS_HOURS.iter().filter(|hours| wait > TimeDelta::hours(**hours)).count();
    (URGENT_TIERS_HOURS.len() + 1 - later) as f64
}

fn describe_wait(wait: TimeDelta) -> String {
    let minutes = wait.num_minutes();
    if minutes < 1 {
        "now".to_owned()
    } else if minutes < 60 {
        format!("in {minutes} min")
    } else if minutes < 48 * 60 {
        format!("in {} h", minutes / 60)
    } else {
        format!("in {} days", minutes / (24 * 60))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-23T02:00:00Z").unwrap().with_timezone(&Utc)
    }

    fn request(urgency: Urgency) -> Request {
        Request { specialty: "cardiology".into(), min_title: Title::Attending, urgency, now: now() }
    }

    fn id(n: u128) -> Uuid {
        Uuid::from_u128(n)
    }

    /// An eligible expert who is average in every respect.
    fn expert(n: u128) -> CandidateInput {
        CandidateInput {
            expert_id: id(n),
            name: format!("Dr. {n}"),
            specialties: vec!["cardiology".into()],
            title: Title::Attending,
            organisation_linked: false,
            earliest_slot: Some(now() + TimeDelta::hours(24)),
            open_consultations: 2,
        }
    }

    fn order(ranked: &[RankedCandidate]) -> Vec<Uuid> {
        ranked.iter().map(|candidate| candidate.expert_id).collect()
    }

    /// Ranks `better` against an otherwise identical `worse`, offering `worse` first and
    /// giving it the lower id, so only the factor under test can put `better` ahead.
    fn assert_outranks(urgency: Urgency, better: CandidateInput, worse: CandidateInput) {
        let ranked = rank(&request(urgency), vec![worse, better]);
        assert_eq!(order(&ranked), [id(2), id(1)], "{ranked:#?}");
        assert!(ranked[0].score > ranked[1].score);
    }

    #[test]
    fn experts_without_the_specialty_or_below_the_title_are_excluded() {
        let neurologist = CandidateInput { specialties: vec!["neurology".into()], ..expert(1) };
        let resident = CandidateInput { title: Title::Resident, ..expert(2) };
        let at_minimum = expert(3);
        let shouting = CandidateInput { specialties: vec!["neurology".into(), " Cardiology ".into()], ..expert(4) };
        let ranked = rank(&request(Urgency::Routine), vec![neurologist, resident, at_minimum, shouting]);
        assert_eq!(order(&ranked), [id(3), id(4)]);
        assert!(rank(&request(Urgency::Routine), Vec::new()).is_empty());
    }

    #[test]
    fn main_specialty_fits_better_than_a_secondary_one() {
        let main = CandidateInput { specialties: vec!["cardiology".into(), "internal medicine".into()], ..expert(2) };
        let secondary =
            CandidateInput { specialties: vec!["internal medicine".into(), "cardiology".into()], ..expert(1) };
        assert_outranks(Urgency::Routine, main, secondary.clone());
        let ranked = rank(&request(Urgency::Routine), vec![secondary]);
        assert_eq!(ranked[0].reasons[0], "specialty: cardiology (not their main specialty)");
    }

    #[test]
    fn higher_title_ranks_higher() {
        let chief = CandidateInput { title: Title::Chief, ..expert(2) };
        let associate = CandidateInput { title: Title::AssociateChief, ..expert(1) };
        assert_outranks(Urgency::Routine, chief, associate.clone());
        let associate = CandidateInput { expert_id: id(2), ..associate };
        assert_outranks(Urgency::Routine, associate, expert(1));
    }

    #[test]
    fn consortium_partner_ranks_higher() {
        let linked = CandidateInput { organisation_linked: true, ..expert(2) };
        assert_outranks(Urgency::Routine, linked.clone(), expert(1));
        assert_outranks(Urgency::Urgent, linked, expert(1));
    }

    #[test]
    fn sooner_slot_ranks_higher_and_no_slot_lowest() {
        let sooner = CandidateInput { earliest_slot: Some(now() + TimeDelta::hours(3)), ..expert(2) };
        let later = CandidateInput { earliest_slot: Some(now() + TimeDelta::days(6)), ..expert(1) };
        let none = CandidateInput { earliest_slot: None, ..expert(1) };
        assert_outranks(Urgency::Routine, sooner.clone(), later.clone());
        assert_outranks(Urgency::Routine, CandidateInput { expert_id: id(2), ..later }, none);
    }

    #[test]
    fn fewer_open_consultations_rank_higher() {
        let idle = CandidateInput { open_consultations: 0, ..expert(2) };
        let busy = CandidateInput { open_consultations: 9, ..expert(1) };
        assert_outranks(Urgency::Routine, idle, busy);
    }

    /// An attending physician free in an hour, against a linked, idle chief free in 5 days.
    fn soon_and_senior() -> (CandidateInput, CandidateInput) {
        let soon =
            CandidateInput { earliest_slot: Some(now() + TimeDelta::hours(1)), open_consultations: 6, ..expert(2) };
        let senior = CandidateInput {
            title: Title::Chief,
            organisation_linked: true,
            open_consultations: 0,
            earliest_slot: Some(now() + TimeDelta::days(5)),
            ..expert(1)
        };
        (soon, senior)
    }

    #[test]
    fn routine_requests_weigh_all_factors() {
        let (soon, senior) = soon_and_senior();
        let ranked = rank(&request(Urgency::Routine), vec![soon, senior]);
        assert_eq!(order(&ranked), [id(1), id(2)]);
        assert!(ranked.iter().all(|candidate| candidate.score <= 1.0));
    }

    #[test]
    fn urgent_and_emergency_requests_rank_earliest_availability_first() {
        for urgency in [Urgency::Urgent, Urgency::Emergency] {
            let (soon, senior) = soon_and_senior();
            assert_outranks(urgency, soon, senior);
        }
        // Within the same tier the other factors still decide.
        let (soon, _) = soon_and_senior();
        let linked_soon = CandidateInput {
            earliest_slot: Some(now() + TimeDelta::minutes(50)),
            organisation_linked: true,
            ..expert(2)
        };
        assert_outranks(Urgency::Urgent, linked_soon, CandidateInput { expert_id: id(1), ..soon });
        // Without any free slot an expert comes after every expert who has one.
        let none = CandidateInput {
            earliest_slot: None,
            title: Title::Chief,
            organisation_linked: true,
            open_consultations: 0,
            ..expert(1)
        };
        let late =
            CandidateInput { earliest_slot: Some(now() + TimeDelta::days(20)), open_consultations: 9, ..expert(2) };
        assert_outranks(Urgency::Emergency, late, none);
    }

    #[test]
    fn availability_tiers_are_bounded_by_hours() {
        let tier = |minutes: i64| availability_tier(Some(TimeDelta::minutes(minutes)));
        assert_eq!(tier(0), 5.0);
        assert_eq!(tier(60), 5.0);
        assert_eq!(tier(61), 4.0);
        assert_eq!(tier(4 * 60), 4.0);
        assert_eq!(tier(24 * 60), 3.0);
        assert_eq!(tier(72 * 60), 2.0);
        assert_eq!(tier(72 * 60 + 1), 1.0);
        assert_eq!(availability_tier(None), 0.0);
    }

    #[test]
    fn reasons_explain_each_factor() {
        let candidate = CandidateInput {
            title: Title::Chief,
            organisation_linked: true,
            earliest_slot: Some(now() + TimeDelta::minutes(3 * 60 + 20)),
            ..expert(1)
        };
        let ranked = rank(&request(Urgency::Routine), vec![candidate]);
        assert_eq!(
            ranked[0].reasons,
            [
                "specialty: cardiology",
                "title chief physician ≥ attending physician",
                "consortium partner of the requesting centre",
                "earliest free slot in 3 h",
                "2 open consultations",
            ]
        );
        let ranked = rank(
            &request(Urgency::Emergency),
            vec![CandidateInput { earliest_slot: None, open_consultations: 1, ..expert(1) }],
        );
        assert_eq!(
            ranked[0].reasons,
            [
                "emergency request: earliest availability ranked first",
                "specialty: cardiology",
                "title attending physician ≥ attending physician",
                "no consortium link to the requesting centre",
                "no free slot found",
                "1 open consultation",
            ]
        );
    }

    #[test]
    fn reason_codes_carry_the_parameters_of_each_factor() {
        let candidate = CandidateInput {
            specialties: vec!["internal medicine".into(), "cardiology".into()],
            title: Title::AssociateChief,
            organisation_linked: true,
            earliest_slot: Some(now() + TimeDelta::minutes(3 * 60 + 20)),
            open_consultations: 4,
            ..expert(1)
        };
        let ranked = rank(&request(Urgency::Urgent), vec![candidate]);
        assert_eq!(
            ranked[0].reason_codes,
            [
                ReasonCode::AvailabilityFirst { urgency: Urgency::Urgent },
                ReasonCode::SpecialtySecondary { specialty: "cardiology".into() },
                ReasonCode::TitleMeetsMinimum { title: Title::AssociateChief, min_title: Title::Attending },
                ReasonCode::ConsortiumPartner,
                ReasonCode::EarliestSlot { wait_minutes: 200 },
                ReasonCode::OpenConsultations { count: 4 },
            ]
        );
        // The English reasons are the codes in words, one for one.
        let english: Vec<String> = ranked[0].reason_codes.iter().map(ReasonCode::english).collect();
        assert_eq!(ranked[0].reasons, english);
        assert_eq!(ranked[0].reasons[4], "earliest free slot in 3 h");

        let ranked = rank(
            &request(Urgency::Routine),
            vec![CandidateInput { earliest_slot: None, open_consultations: 0, ..expert(1) }],
        );
        assert_eq!(
            ranked[0].reason_codes,
            [
                ReasonCode::SpecialtyMatch { specialty: "cardiology".into() },
                ReasonCode::TitleMeetsMinimum { title: Title::Attending, min_title: Title::Attending },
                ReasonCode::NoConsortiumLink,
                ReasonCode::NoFreeSlot,
                ReasonCode::OpenConsultations { count: 0 },
            ]
        );
        assert_eq!(ranked[0].reasons[4], "no open consultations");
        // A slot already under way waits zero minutes.
        let started = CandidateInput { earliest_slot: Some(now() - TimeDelta::minutes(5)), ..expert(1) };
        let ranked = rank(&request(Urgency::Routine), vec![started]);
        assert_eq!(ranked[0].reason_codes[3], ReasonCode::EarliestSlot { wait_minutes: 0 });
    }

    #[test]
    fn reason_codes_serialise_as_a_code_with_its_parameters() {
        let json = |code: ReasonCode| serde_json::to_value(code).unwrap();
        assert_eq!(
            json(ReasonCode::SpecialtyMatch { specialty: "cardiology".into() }),
            serde_json::json!({"code": "specialty_match", "specialty": "cardiology"})
        );
        assert_eq!(
            json(ReasonCode::SpecialtySecondary { specialty: "cardiology".into() }),
            serde_json::json!({"code": "specialty_secondary", "specialty": "cardiology"})
        );
        assert_eq!(
            json(ReasonCode::AvailabilityFirst { urgency: Urgency::Emergency }),
            serde_json::json!({"code": "availability_first", "urgency": "emergency"})
        );
        assert_eq!(
            json(ReasonCode::TitleMeetsMinimum { title: Title::AssociateChief, min_title: Title::Resident }),
            serde_json::json!({"code": "title_meets_minimum", "title": "associate_chief", "min_title": "resident"})
        );
        assert_eq!(json(ReasonCode::ConsortiumPartner), serde_json::json!({"code": "consortium_partner"}));
        assert_eq!(json(ReasonCode::NoConsortiumLink), serde_json::json!({"code": "no_consortium_link"}));
        assert_eq!(
            json(ReasonCode::EarliestSlot { wait_minutes: 45 }),
            serde_json::json!({"code": "earliest_slot", "wait_minutes": 45})
        );
        assert_eq!(json(ReasonCode::NoFreeSlot), serde_json::json!({"code": "no_free_slot"}));
        assert_eq!(
            json(ReasonCode::OpenConsultations { count: 2 }),
            serde_json::json!({"code": "open_consultations", "count": 2})
        );
    }

    #[test]
    fn waits_read_naturally() {
        assert_eq!(describe_wait(TimeDelta::zero()), "now");
        assert_eq!(describe_wait(TimeDelta::minutes(45)), "in 45 min");
        assert_eq!(describe_wait(TimeDelta::minutes(47 * 60 + 59)), "in 47 h");
        assert_eq!(describe_wait(TimeDelta::days(5)), "in 5 days");
        // A slot already under way counts as free now.
        let started = CandidateInput { earliest_slot: Some(now() - TimeDelta::minutes(5)), ..expert(1) };
        let ranked = rank(&request(Urgency::Routine), vec![started]);
        assert_eq!(ranked[0].reasons[3], "earliest free slot now");
    }

    #[test]
    fn equal_scores_are_ordered_by_expert_id() {
        let ranked = rank(&request(Urgency::Routine), vec![expert(3), expert(1), expert(2)]);
        assert_eq!(order(&ranked), [id(1), id(2), id(3)]);
        assert_eq!(ranked[0].score, ranked[2].score);
    }

    #[test]
    fn ranking_does_not_depend_on_input_order() {
        let mut state: u64 = 0x1234_5678_9abc_def1;
        let mut next = move |bound: u64| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state % bound
        };
        for _ in 0..200 {
            let mut candidates: Vec<CandidateInput> = (0..12)
                .map(|n| CandidateInput {
                    title: Title::ALL[next(4) as usize],
                    organisation_linked: next(2) == 0,
                    earliest_slot: (next(5) > 0).then(|| now() + TimeDelta::hours(next(200) as i64)),
                    open_consultations: next(6) as u32,
                    ..expert(u128::from(next(1000)) << 8 | n)
                })
                .collect();
            let urgency = Urgency::ALL[next(3) as usize];
            let ranked = rank(&request(urgency), candidates.clone());
            for i in (1..candidates.len()).rev() {
                candidates.swap(i, next(i as u64 + 1) as usize);
            }
            assert_eq!(rank(&request(urgency), candidates), ranked);
            for pair in ranked.windows(2) {
                assert!(
                    pair[0].score > pair[1].score
                        || (pair[0].score == pair[1].score && pair[0].expert_id < pair[1].expert_id)
                );
            }
            assert!(ranked.iter().all(|candidate| candidate.score.is_finite() && candidate.score >= 0.0));
        }
    }

    #[test]
    fn serialises_for_the_candidates_endpoint() {
        let ranked = rank(&request(Urgency::Routine), vec![expert(1)]);
        let json = serde_json::to_value(&ranked[0]).unwrap();
        assert_eq!(json["expert_id"], "00000000-0000-0000-0000-000000000001");
        assert_eq!(json["earliest_slot"], "2026-11-24T02:00:00Z");
        assert!(json["score"].is_f64());
        assert_eq!(json["reasons"].as_array().unwrap().len(), 5);
        assert_eq!(json["reason_codes"].as_array().unwrap().len(), 5);
        assert_eq!(json["reason_codes"][0], serde_json::json!({"code": "specialty_match", "specialty": "cardiology"}));
    }
}
