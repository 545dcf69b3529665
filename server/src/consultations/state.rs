//! The consultation lifecycle as a pure state machine, and the words a consultation request
//! is made of (urgency, mode, professional title).
//!
//! | action | from | to |
//! |---|---|---|
//! | submit | draft | requested |
//! | accept, claim | requested | accepted |
//! | decline | requested | declined, or requested when it `reopens` matching |
//! | schedule | accepted, scheduled (reschedule) | scheduled |
//! | unschedule | scheduled | accepted |
//! | start | scheduled; accepted (review without a call) | in_progress |
//! | end_call | in_progress | awaiting_opinion |
//! | sign_opinion | awaiting_opinion; accepted, in_progress (store-and-forward) | completed |
//! | complete | in_progress, awaiting_opinion | completed |
//! | no_show | scheduled | no_show |
//! | cancel (with a reason) | any open state | cancelled |
//! | readdress | declined | requested |
//!
//! `completed`, `declined`, `cancelled` and `no_show` are terminal. Every other state is
//! open and can be cancelled. A declined request is the one terminal state with a way on: the
//! doctor who asked re-addresses it (to other experts or a department pool) and matching
//! starts again, with its reason, summary, consent and files as they are.
//!
//! A decline carries `reopens`: for a request addressed to a department pool or to several
//! experts (MDT), one expert's decline leaves the request `requested` so that matching goes
//! on; for a request addressed to one expert (or the last MDT expert left) it ends
//! `declined`. The caller decides which, since only it knows the addressee.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::domain::named_enum;
pub use crate::domain::UnknownName;

named_enum! {
    /// Where a consultation stands in its lifecycle.
    State, "consultation state" {
        Draft => "draft",
        Requested => "requested",
        Accepted => "accepted",
        Scheduled => "scheduled",
        InProgress => "in_progress",
        AwaitingOpinion => "awaiting_opinion",
        Completed => "completed",
        Declined => "declined",
        Cancelled => "cancelled",
        NoShow => "no_show",
    }
}

impl State {
    /// Whether no action can move the consultation any more.
    pub fn is_terminal(self) -> bool {
        matches!(self, State::Completed | State::Declined | State::Cancelled | State::NoShow)
    }
}

named_enum! {
    /// How soon the requesting doctor needs the expert, least urgent first.
    #[derive(PartialOrd, Ord)]
    Urgency, "urgency" {
        Routine => "routine",
        Urgent => "urgent",
        Emergency => "emergency",
    }
}

named_enum! {
    /// How the consultation takes place.
    Mode, "consultation mode" {
        /// A live video call with the patient.
        Video => "video",
        /// An ECG read by the expert, with or without a call.
        EcgReview => "ecg_review",
        /// Medical images read by the expert, with or without a call.
        ImagingReview => "imaging_review",
        /// A multidisciplinary team of several experts.
        Mdt => "mdt",
    }
}

named_enum! {
    /// Professional title of a physician, lowest first (住院医师, 主治医师, 副主任医师, 主任医师).
    #[derive(PartialOrd, Ord)]
    Title, "professional title" {
        Resident => "resident",
        Attending => "attending",
        AssociateChief => "associate_chief",
        Chief => "chief",
    }
}

impl Title {
    /// The title in words, for people.
    pub fn label(self) -> &'static str {
        match self {
            Title::Resident => "resident physician",
            Title::Attending => "attending physician",
            Title::AssociateChief => "associate chief physician",
            Title::Chief => "chief physician",
        }
    }
}

/// Why a consultation was declined or cancelled: trimmed, never blank.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(try_from = "String", into = "String")]
pub struct Reason(String);

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ReasonError {
    #[error("a reason is required")]
    Missing,
    #[error("a reason may be at most {} characters", Reason::MAX_CHARS)]
    TooLong,
}

impl Reason {
    pub const MAX_CHARS: usize = 2000;

    pub fn parse(text: &str) -> Result<Self, ReasonError> {
        let text = text.trim();
        if text.is_empty() {
            Err(ReasonError::Missing)
        } else if text.chars().count() > Self::MAX_CHARS {
            Err(ReasonError::TooLong)
        } else {
            Ok(Reason(text.to_owned()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Reason {
    type Error = ReasonError;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        Reason::parse(&text)
    }
}

impl From<Reason> for String {
    fn from(reason: Reason) -> Self {
        reason.0
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Something a participant does to a consultation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// The community doctor sends the request (draft → requested).
    Submit,
    /// The addressed expert takes it on (requested → accepted).
    Accept,
    /// An expert turns it down: back to matching when `reopens` (pool and MDT requests),
    /// otherwise declined.
    Decline { reopens: bool, reason: Reason },
    /// An expert takes a pool request (requested → accepted).
    Claim,
    /// An appointment is booked or moved (accepted or scheduled → scheduled).
    Schedule,
    /// The appointment is cancelled but the consultation goes on (scheduled → accepted).
    Unschedule,
    /// The call or the review begins (scheduled → in_progress; accepted → in_progress for a
    /// review without a call).
    Start,
    /// The call ends and the opinion is still to be written.
    EndCall,
    /// The expert signs the opinion (awaiting_opinion → completed; from accepted or
    /// in_progress for store-and-forward review).
    SignOpinion,
    /// The consultation is closed (in_progress or awaiting_opinion → completed).
    Complete,
    /// Anyone entitled withdraws it from any open state.
    Cancel { reason: Reason },
    /// A participant did not show up for the appointment.
    NoShow,
    /// The requesting doctor addresses a declined request anew (declined → requested).
    Readdress,
}

impl Action {
    /// The action's snake_case name, as in the API path and the transition log.
    pub fn name(&self) -> &'static str {
        match self {
            Action::Submit => "submit",
            Action::Accept => "accept",
            Action::Decline { .. } => "decline",
            Action::Claim => "claim",
            Action::Schedule => "schedule",
            Action::Unschedule => "unschedule",
            Action::Start => "start",
            Action::EndCall => "end_call",
            Action::SignOpinion => "sign_opinion",
            Action::Complete => "complete",
            Action::Cancel { .. } => "cancel",
            Action::NoShow => "no_show",
            Action::Readdress => "readdress",
        }
    }

    /// The reason given with the action, if it carries one.
    pub fn reason(&self) -> Option<&Reason> {
        match self {
            Action::Decline { reason, .. } | Action::Cancel { reason } => Some(reason),
            _ => None,
        }
    }

    fn verb(&self) -> &'static str {
        match self {
            Action::Submit => "submit",
            Action::Accept => "accept",
            Action::Decline { .. } => "decline",
            Action::Claim => "claim",
            Action::Schedule => "schedule",
            Action::Unschedule => "unschedule",
            Action::Start => "start",
            Action::EndCall => "end the call of",
            Action::SignOpinion => "sign the opinion of",
            Action::Complete => "complete",
            Action::Cancel { .. } => "cancel",
            Action::NoShow => "record a no-show for",
            Action::Readdress => "re-address",
        }
    }
}

/// An action that makes no sense in the consultation's current state.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot {} a consultation that is {from}", action.verb())]
pub struct InvalidTransition {
    pub from: State,
    pub action: Action,
}

/// The state `action` moves a consultation in state `from` to.
pub fn transition(from: State, action: &Action) -> Result<State, InvalidTransition> {
    use State::*;
    let to = match (from, action) {
        (Draft, Action::Submit) => Requested,
        (Requested, Action::Accept | Action::Claim) => Accepted,
        (Requested, Action::Decline { reopens: true, .. }) => Requested,
        (Requested, Action::Decline { reopens: false, .. }) => Declined,
        (Accepted | Scheduled, Action::Schedule) => Scheduled,
        (Scheduled, Action::Unschedule) => Accepted,
        (Scheduled | Accepted, Action::Start) => InProgress,
        (InProgress, Action::EndCall) => AwaitingOpinion,
        (AwaitingOpinion | Accepted | InProgress, Action::SignOpinion) => Completed,
        (InProgress | AwaitingOpinion, Action::Complete) => Completed,
        (Scheduled, Action::NoShow) => NoShow,
        (Declined, Action::Readdress) => Requested,
        (from, Action::Cancel { .. }) if !from.is_terminal() => Cancelled,
        _ => return Err(InvalidTransition { from, action: action.clone() }),
    };
    Ok(to)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    fn reason() -> Reason {
        Reason::parse("patient transferred").unwrap()
    }

    /// Every action, in the column order of the table below.
    fn actions() -> Vec<Action> {
        vec![
            Action::Submit,
            Action::Accept,
            Action::Decline { reopens: false, reason: reason() },
            Action::Decline { reopens: true, reason: reason() },
            Action::Claim,
            Action::Schedule,
            Action::Unschedule,
            Action::Start,
            Action::EndCall,
            Action::SignOpinion,
            Action::Complete,
            Action::Cancel { reason: reason() },
            Action::NoShow,
            Action::Readdress,
        ]
    }

    #[test]
    fn every_state_and_action() {
        use State::*;
        const NO: Option<State> = None;
        let (rq, ac, sc, ip, ao) =
            (Some(Requested), Some(Accepted), Some(Scheduled), Some(InProgress), Some(AwaitingOpinion));
        let (co, de, ca, ns) = (Some(Completed), Some(Declined), Some(Cancelled), Some(NoShow));
        #[rustfmt::skip]
        let table: [(State, [Option<State>; 14]); 10] = [
            //               submit accept decline reopen claim sched  unsch  start  endcall sign  complete cancel noshow readdress
            (Draft,           [rq,   NO,    NO,     NO,    NO,   NO,    NO,    NO,    NO,     NO,   NO,      ca,    NO,    NO]),
            (Requested,       [NO,   ac,    de,     rq,    ac,   NO,    NO,    NO,    NO,     NO,   NO,      ca,    NO,    NO]),
            (Accepted,        [NO,   NO,    NO,     NO,    NO,   sc,    NO,    ip,    NO,     co,   NO,      ca,    NO,    NO]),
            (Scheduled,       [NO,   NO,    NO,     NO,    NO,   sc,    ac,    ip,    NO,     NO,   NO,      ca,    ns,    NO]),
            (InProgress,      [NO,   NO,    NO,     NO,    NO,   NO,    NO,    NO,    ao,     co,   co,      ca,    NO,    NO]),
            (AwaitingOpinion, [NO,   NO,    NO,     NO,    NO,   NO,    NO,    NO,    NO,     co,   co,      ca,    NO,    NO]),
            (Completed,       [NO,   NO,    NO,     NO,    NO,   NO,    NO,    NO,    NO,     NO,   NO,      NO,    NO,    NO]),
            (Declined,        [NO,   NO,    NO,     NO,    NO,   NO,    NO,    NO,    NO,     NO,   NO,      NO,    NO,    rq]),
            (Cancelled,       [NO,   NO,    NO,     NO,    NO,   NO,    NO,    NO,    NO,     NO,   NO,      NO,    NO,    NO]),
            (NoShow,          [NO,   NO,    NO,     NO,    NO,   NO,    NO,    NO,    NO,     NO,   NO,      NO,    NO,    NO]),
        ];
        assert_eq!(table.len(), State::ALL.len());
        for (from, row) in table {
            for (action, expected) in actions().iter().zip(row) {
                let got = transition(from, action);
                match expected {
                    Some(to) => assert_eq!(got, Ok(to), "{from} + {}", action.name()),
                    None => assert_eq!(
                        got,
                        Err(InvalidTransition { from, action: action.clone() }),
                        "{from} + {} should be refused",
                        action.name()
                    ),
                }
            }
        }
    }

    #[test]
    fn terminal_states_accept_nothing_and_open_states_can_be_cancelled() {
        for &state in State::ALL {
            let moves = actions().iter().filter(|action| transition(state, action).is_ok()).count();
            if state == State::Declined {
                // Terminal, but the requesting doctor may address it anew.
                assert_eq!(moves, 1, "{state}: re-addressing only");
                assert_eq!(transition(state, &Action::Readdress), Ok(State::Requested));
            } else if state.is_terminal() {
                assert_eq!(moves, 0, "{state} is terminal");
            } else {
                assert!(moves >= 2, "{state} is open");
                assert_eq!(transition(state, &Action::Cancel { reason: reason() }), Ok(State::Cancelled));
            }
        }
    }

    #[test]
    fn invalid_transition_names_the_state_and_the_action() {
        let error = transition(State::Completed, &Action::SignOpinion).unwrap_err();
        assert_eq!(error.to_string(), "cannot sign the opinion of a consultation that is completed");
        let error = transition(State::InProgress, &Action::Accept).unwrap_err();
        assert_eq!(error.to_string(), "cannot accept a consultation that is in_progress");
        assert_eq!(error.from, State::InProgress);
        assert_eq!(error.action.name(), "accept");
    }

    #[test]
    fn reasons_are_required_and_trimmed() {
        assert_eq!(Reason::parse("   "), Err(ReasonError::Missing));
        assert_eq!(Reason::parse(""), Err(ReasonError::Missing));
        assert_eq!(Reason::parse("  on leave \n").unwrap().as_str(), "on leave");
        assert_eq!(Reason::parse(&"病".repeat(Reason::MAX_CHARS)).unwrap().as_str().chars().count(), Reason::MAX_CHARS);
        assert_eq!(Reason::parse(&"x".repeat(Reason::MAX_CHARS + 1)), Err(ReasonError::TooLong));
        assert!(serde_json::from_str::<Reason>("\" \"").is_err());
        assert_eq!(serde_json::from_str::<Reason>("\" no bed \"").unwrap(), Reason::parse("no bed").unwrap());
        let cancel = Action::Cancel { reason: Reason::parse("duplicate").unwrap() };
        assert_eq!(cancel.reason().map(Reason::as_str), Some("duplicate"));
        assert_eq!(Action::Accept.reason(), None);
    }

    fn round_trips<T>(all: &[T])
    where
        T: Copy + fmt::Debug + PartialEq + FromStr<Err = UnknownName> + Serialize + fmt::Display,
        T: for<'de> Deserialize<'de>,
    {
        for &value in all {
            let text = value.to_string();
            assert_eq!(text.parse::<T>(), Ok(value));
            assert_eq!(serde_json::to_string(&value).unwrap(), format!("\"{text}\""));
            assert_eq!(serde_json::from_str::<T>(&format!("\"{text}\"")).unwrap(), value);
            assert!(text.chars().all(|c| c.is_ascii_lowercase() || c == '_'));
        }
    }

    #[test]
    fn names_round_trip_through_text_and_json() {
        round_trips(State::ALL);
        round_trips(Urgency::ALL);
        round_trips(Mode::ALL);
        round_trips(Title::ALL);
        assert_eq!(State::InProgress.as_str(), "in_progress");
        assert_eq!(State::NoShow.as_str(), "no_show");
        assert_eq!(Mode::EcgReview.as_str(), "ecg_review");
        assert_eq!(Title::AssociateChief.as_str(), "associate_chief");
    }

    #[test]
    fn unknown_names_are_refused() {
        assert_eq!(
            "InProgress".parse::<State>(),
            Err(UnknownName { kind: "consultation state", value: "InProgress".into() })
        );
        assert_eq!("soon".parse::<Urgency>().unwrap_err().to_string(), "unknown urgency `soon`");
        assert!("phone".parse::<Mode>().is_err());
        assert!("professor".parse::<Title>().is_err());
        assert!(serde_json::from_str::<Title>("\"Chief\"").is_err());
    }

    #[test]
    fn titles_and_urgencies_are_ordered() {
        assert!(Title::Resident < Title::Attending);
        assert!(Title::Attending < Title::AssociateChief);
        assert!(Title::AssociateChief < Title::Chief);
        let mut titles = vec![Title::Chief, Title::Resident, Title::AssociateChief, Title::Attending];
        titles.sort();
        assert_eq!(titles, Title::ALL);
        assert!(Urgency::Routine < Urgency::Urgent && Urgency::Urgent < Urgency::Emergency);
        assert_eq!(Title::AssociateChief.label(), "associate chief physician");
    }
}
