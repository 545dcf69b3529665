//! The words of the clinical record: referral direction and status (with the referral's
//! pure state machine), opinion kind and status, note kind and status, follow-up visit status.
//!
//! Each enum has one snake_case name per variant, used on the wire (serde), in the database
//! and in messages. Decoding a stored value that is none of the names is an error, never a
//! silent default.
//!
//! Referral statuses:
//!
//! | action | from | to |
//! |---|---|---|
//! | accept | requested | accepted |
//! | reject | requested | rejected |
//! | complete | accepted | completed |
//! | withdraw | requested, accepted | entered_in_error |
//! | assign | requested, accepted | (unchanged) |
//!
//! `rejected`, `completed` and `entered_in_error` are terminal.

pub use super::UnknownName;

named_enum! {
    /// Up from a community centre to a hospital, or down from the hospital to a centre.
    Direction, "referral direction" {
        Up => "up",
        Down => "down",
    }
}

named_enum! {
    /// Where a referral stands.
    ReferralStatus, "referral status" {
        Requested => "requested",
        Accepted => "accepted",
        Rejected => "rejected",
        Completed => "completed",
        /// Withdrawn by its sender: kept, marked entered in error.
        EnteredInError => "entered_in_error",
    }
}

impl ReferralStatus {
    /// Whether no action can move the referral any more.
    pub fn is_terminal(self) -> bool {
        matches!(self, ReferralStatus::Rejected | ReferralStatus::Completed | ReferralStatus::EnteredInError)
    }
}

named_enum! {
    /// What someone does to a referral (also the audit action's name).
    ReferralAction, "referral action" {
        Accept => "accept",
        Reject => "reject",
        Complete => "complete",
        Withdraw => "withdraw",
        Assign => "assign",
    }
}

impl ReferralAction {
    /// Whether the action must carry a reason (a refusal or a withdrawal).
    pub fn needs_reason(self) -> bool {
        matches!(self, ReferralAction::Reject | ReferralAction::Withdraw)
    }
}

/// An action the referral's status does not allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("cannot {action} a referral that is {from}")]
pub struct Refused {
    pub from: ReferralStatus,
    pub action: ReferralAction,
}

/// The referral's state machine: the status `action` leads to from `from` (the same status
/// for an assignment), or why not. Pure.
pub fn next_status(from: ReferralStatus, action: ReferralAction) -> Result<ReferralStatus, Refused> {
    use ReferralAction as A;
    use ReferralStatus as S;
    match (from, action) {
        (S::Requested, A::Accept) => Ok(S::Accepted),
        (S::Requested, A::Reject) => Ok(S::Rejected),
        (S::Accepted, A::Complete) => Ok(S::Completed),
        (S::Requested | S::Accepted, A::Withdraw) => Ok(S::EnteredInError),
        (S::Requested | S::Accepted, A::Assign) => Ok(from),
        _ => Err(Refused { from, action }),
    }
}

named_enum! {
    /// An expert's own opinion, or an MDT's joint conclusion.
    OpinionKind, "opinion kind" {
        Individual => "individual",
        Joint => "joint",
    }
}

impl OpinionKind {
    pub fn of(joint: bool) -> OpinionKind {
        if joint {
            OpinionKind::Joint
        } else {
            OpinionKind::Individual
        }
    }
}

named_enum! {
    /// A draft is edited by its author only; signing freezes it; an amendment supersedes it.
    OpinionStatus, "opinion status" {
        Draft => "draft",
        Signed => "signed",
        Superseded => "superseded",
    }
}

named_enum! {
    /// The community doctor's case summary, or a note.
    NoteKind, "note kind" {
        CaseSummary => "case_summary",
        Note => "note",
    }
}

named_enum! {
    /// A note stands, or was withdrawn as entered in error.
    NoteStatus, "note status" {
        Current => "current",
        EnteredInError => "entered_in_error",
    }
}

named_enum! {
    /// A follow-up visit: still to happen, done, or closed without happening.
    VisitStatus, "follow-up visit status" {
        Planned => "planned",
        Done => "done",
        Closed => "closed",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ReferralAction as A;
    use ReferralStatus as S;

    #[test]
    fn every_allowed_referral_transition() {
        let allowed = [
            (S::Requested, A::Accept, S::Accepted),
            (S::Requested, A::Reject, S::Rejected),
            (S::Accepted, A::Complete, S::Completed),
            (S::Requested, A::Withdraw, S::EnteredInError),
            (S::Accepted, A::Withdraw, S::EnteredInError),
            (S::Requested, A::Assign, S::Requested),
            (S::Accepted, A::Assign, S::Accepted),
        ];
        for (from, action, to) in allowed {
            assert_eq!(next_status(from, action), Ok(to), "{action} from {from}");
        }
        // Everything else is refused, naming the status and the action.
        let mut refused = 0;
        for &from in S::ALL {
            for &action in A::ALL {
                if allowed.iter().any(|(f, a, _)| (*f, *a) == (from, action)) {
                    continue;
                }
                let err = next_status(from, action).expect_err(&format!("{action} from {from} is refused"));
                assert_eq!(err, Refused { from, action });
                assert_eq!(err.to_string(), format!("cannot {action} a referral that is {from}"));
                refused += 1;
            }
        }
        assert_eq!(refused, S::ALL.len() * A::ALL.len() - allowed.len());
    }

    #[test]
    fn the_refused_transitions_by_name() {
        for (from, action) in [
            (S::Requested, A::Complete),
            (S::Accepted, A::Accept),
            (S::Accepted, A::Reject),
            (S::Rejected, A::Accept),
            (S::Rejected, A::Withdraw),
            (S::Rejected, A::Assign),
            (S::Completed, A::Withdraw),
            (S::Completed, A::Complete),
            (S::EnteredInError, A::Accept),
            (S::EnteredInError, A::Withdraw),
        ] {
            assert!(next_status(from, action).is_err(), "{action} from {from}");
        }
    }

    #[test]
    fn terminal_statuses_allow_no_action() {
        for &from in S::ALL {
            let any = A::ALL.iter().any(|&a| next_status(from, a).is_ok());
            assert_eq!(any, !from.is_terminal(), "{from}");
        }
    }

    #[test]
    fn names_round_trip_and_unknown_names_are_errors() {
        for &s in S::ALL {
            assert_eq!(s.as_str().parse::<S>(), Ok(s));
            assert_eq!(serde_json::to_value(s).unwrap(), serde_json::json!(s.as_str()));
            assert_eq!(S::try_from(s.as_str().to_string()), Ok(s));
        }
        assert_eq!(S::try_from("requestd".to_string()).unwrap_err().to_string(), "unknown referral status `requestd`");
        assert!("sideways".parse::<Direction>().is_err());
        assert!(OpinionStatus::try_from(String::new()).is_err());
        assert_eq!(serde_json::to_value(NoteStatus::EnteredInError).unwrap(), "entered_in_error");
        assert_eq!(serde_json::to_value(NoteKind::CaseSummary).unwrap(), "case_summary");
        assert_eq!(OpinionKind::of(true), OpinionKind::Joint);
        assert!(serde_json::from_str::<VisitStatus>("\"cancelled\"").is_err());
    }
}
