//! The words of a consultation's people and appointments: who takes part in what role, how
//! far their part went, to whom the request is addressed, who consented and how, and what
//! became of an appointment.
//!
//! The lifecycle's own words (state, action, urgency, mode, title) are in
//! `consultations::state`, made with the same [`named_enum!`](super::named_enum) so that they read and decode
//! alike.

named_enum! {
    /// A person's part in a consultation (`consultation_participants.role`), and so their
    /// place in its call's room (`signaling::RoomRole`, `room_events.room_role`).
    ParticipantRole, "participant role" {
        /// The community doctor who requested the consultation.
        Requester => "requester",
        /// An expert addressed by the request, or who claimed it from a pool.
        Expert => "expert",
        /// The patient, when they have an account.
        Patient => "patient",
    }
}

named_enum! {
    /// How far a participant's part went (`consultation_participants.status`).
    ParticipantStatus, "participant status" {
        /// Addressed, not answered yet.
        Invited => "invited",
        /// An expert who accepted or claimed the request.
        Accepted => "accepted",
        /// Taking part from the start (the requesting doctor).
        Active => "active",
        /// An expert who declined; they no longer see the consultation.
        Declined => "declined",
    }
}

impl ParticipantRole {
    /// Doctors may admit and remove in the call's room; patients may not.
    pub fn is_doctor(self) -> bool {
        matches!(self, ParticipantRole::Requester | ParticipantRole::Expert)
    }
}

impl ParticipantStatus {
    /// Whether the participant still takes part (every status but declined).
    pub fn takes_part(self) -> bool {
        self != ParticipantStatus::Declined
    }
}

named_enum! {
    /// To whom a request is addressed (`consultations.addressee_kind`).
    AddresseeKind, "addressee kind" {
        /// One named expert.
        Expert => "expert",
        /// A hospital department pool: any qualified expert of the specialty may claim it.
        Pool => "pool",
        /// Several named experts (multidisciplinary team).
        Mdt => "mdt",
    }
}

named_enum! {
    /// What became of an appointment (`appointments.status`).
    AppointmentStatus, "appointment status" {
        /// Booked and still to come (or going on).
        Booked => "booked",
        /// Cancelled with a reason.
        Cancelled => "cancelled",
        /// Moved to another slot: `replaced_by` names the new appointment.
        Rescheduled => "rescheduled",
        /// The expert met the clinic's side in the call.
        Attended => "attended",
        /// Someone did not show up.
        NoShow => "no_show",
    }
}

named_enum! {
    /// A one-off change to an expert's weekly availability (`availability_exceptions.kind`).
    AvailabilityExceptionKind, "availability exception kind" {
        /// The expert is away.
        Leave => "leave",
        /// An extra session with its own slot length.
        Extra => "extra",
    }
}

named_enum! {
    /// Who gave the patient's informed consent to a consultation.
    ConsentGiver, "consent giver" {
        Patient => "patient",
        /// A guardian, named with the consent.
        Guardian => "guardian",
    }
}

named_enum! {
    /// How the consent was given.
    ConsentMethod, "consent method" {
        Written => "written",
        RecordedVerbal => "recorded_verbal",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::UnknownName;
    use std::str::FromStr;

    fn round_trips<T>(all: &[T])
    where
        T: Copy + std::fmt::Debug + PartialEq + FromStr<Err = UnknownName> + serde::Serialize + std::fmt::Display,
        T: TryFrom<String, Error = UnknownName>,
    {
        for v in all {
            assert_eq!(T::from_str(v.to_string().as_str()), Ok(*v));
            assert_eq!(T::try_from(v.to_string()), Ok(*v));
            assert_eq!(serde_json::to_value(v).unwrap(), serde_json::json!(v.to_string()));
        }
    }

    #[test]
    fn every_name_reads_back_as_written_on_the_wire_and_in_rows() {
        round_trips(ParticipantRole::ALL);
        round_trips(ParticipantStatus::ALL);
        round_trips(AddresseeKind::ALL);
        round_trips(AppointmentStatus::ALL);
        round_trips(AvailabilityExceptionKind::ALL);
        round_trips(ConsentGiver::ALL);
        round_trips(ConsentMethod::ALL);
        assert_eq!(ParticipantRole::Requester.as_str(), "requester");
        assert_eq!(AppointmentStatus::NoShow.as_str(), "no_show");
    }

    #[test]
    fn an_unknown_stored_value_is_an_error_not_a_default() {
        assert_eq!(
            ParticipantStatus::try_from("withdrawn".to_string()),
            Err(UnknownName { kind: "participant status", value: "withdrawn".into() })
        );
        assert!(AppointmentStatus::from_str("Booked").is_err(), "names are case-sensitive");
        assert!(AddresseeKind::from_str("").is_err());
        assert!(!ParticipantStatus::Declined.takes_part());
        assert!(ParticipantStatus::Invited.takes_part());
    }
}
