//! The electronic health card's QR payload (电子健康卡二维码). A real card's payload is issued
//! by the provincial platform, each in its own format; the format in use is chosen by
//! configuration (`health_card_qr_format`) among the parsers registered in [`parser_for`].
//! Pure: no I/O, the caller passes the date.
//!
//! Shipped: `tchc1`, a documented test format (`docs/resident.md`):
//!
//! ```text
//! TCHC1|<card id>|<issuer>|<valid until YYYYMMDD>|<check>
//! ```
//!
//! - card id: 6 to 40 characters `0-9 A-Z`;
//! - issuer: 1 to 64 characters `A-Z a-z 0-9 . _ : -` (the issuing platform, e.g. `GD-EHC`);
//! - check: the first 8 hex digits (uppercase) of SHA-256 over everything before the last
//!   `|` (`TCHC1|<card id>|<issuer>|<valid until>`). It catches a misread or damaged code; it
//!   is not a signature (a provincial format that signs its payload verifies it in its parser).

use chrono::NaiveDate;
use sha2::{Digest, Sha256};

/// What a card's QR code says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CardPayload {
    pub card_id: String,
    pub issuer: String,
    pub valid_until: NaiveDate,
}

/// Why a payload is refused; each maps to a stable API code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CardError {
    /// Not a card of the configured format, or damaged (`card_invalid`).
    Invalid(&'static str),
    /// A card of the format whose validity has passed (`card_expired`).
    Expired(NaiveDate),
}

/// A health-card QR format.
pub trait CardPayloadParser: Send + Sync {
    /// The configuration name of the format.
    fn name(&self) -> &'static str;
    /// Reads a payload (validity not checked: see [`check_valid`]).
    fn parse(&self, payload: &str) -> Result<CardPayload, CardError>;
}

/// The parser configured by `health_card_qr_format`, if there is one by that name.
pub fn parser_for(format: &str) -> Option<Box<dyn CardPayloadParser>> {
    match format {
        "tchc1" => Some(Box::new(Tchc1)),
        _ => None,
    }
}

/// The names [`parser_for`] knows.
pub const FORMATS: [&str; 1] = ["tchc1"];

/// Refuses a card whose validity ended before `today` (valid through its last day).
pub fn check_valid(card: &CardPayload, today: NaiveDate) -> Result<(), CardError> {
    if card.valid_until < today {
        Err(CardError::Expired(card.valid_until))
    } else {
        Ok(())
    }
}

/// A card id as stored and compared: spaces and dashes dropped, letters uppercase; `None`
/// unless 6 to 40 characters `0-9 A-Z` remain.
pub fn normalise_card_id(raw: &str) -> Option<String> {
    let id: String = raw.chars().filter(|c| !matches!(c, ' ' | '-')).collect::<String>().to_ascii_uppercase();
    ((6..=40).contains(&id.len()) && id.chars().all(|c| c.is_ascii_digit() || c.is_ascii_uppercase())).then_some(id)
}

/// An issuer as stored: 1 to 64 characters `A-Z a-z 0-9 . _ : -`.
pub fn valid_issuer(issuer: &str) -> bool {
    (1..=64).contains(&issuer.len())
        && issuer.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '-'))
}

/// The shipped test format; see the module documentation.
pub struct Tchc1;

impl Tchc1 {
    /// The check of a payload's leading fields.
    pub fn check(head: &str) -> String {
        Sha256::digest(head.as_bytes()).iter().take(4).map(|b| format!("{b:02X}")).collect()
    }

    /// The payload of a card (for tests, demo cards and printing test cards).
    pub fn encode(card_id: &str, issuer: &str, valid_until: NaiveDate) -> String {
        let head = format!("TCHC1|{card_id}|{issuer}|{}", valid_until.format("%Y%m%d"));
        let check = Self::check(&head);
        format!("{head}|{check}")
    }
}

impl CardPayloadParser for Tchc1 {
    fn name(&self) -> &'static str {
        "tchc1"
    }

    fn parse(&self, payload: &str) -> Result<CardPayload, CardError> {
        let payload = payload.trim();
        if payload.len() > 512 {
            return Err(CardError::Invalid("the code is too long for a health card"));
        }
        let fields: Vec<&str> = payload.split('|').collect();
        let [tag, card_id, issuer, until, check] = fields.as_slice() else {
            return Err(CardError::Invalid("not a health card code (TCHC1 has five fields)"));
        };
        if *tag != "TCHC1" {
            return Err(CardError::Invalid("not a health card code of the configured format"));
        }
        let head = &payload[..payload.rfind('|').unwrap_or(0)];
        if !check.eq_ignore_ascii_case(&Self::check(head)) {
            return Err(CardError::Invalid("the code's check does not match: it was misread or damaged"));
        }
        let card_id =
            normalise_card_id(card_id).ok_or(CardError::Invalid("the card id is not 6 to 40 letters or digits"))?;
        if !valid_issuer(issuer) {
            return Err(CardError::Invalid("the issuer is not valid"));
        }
        let valid_until = NaiveDate::parse_from_str(until, "%Y%m%d")
            .ok()
            .filter(|_| until.len() == 8)
            .ok_or(CardError::Invalid("the validity is not a date YYYYMMDD"))?;
        Ok(CardPayload { card_id, issuer: issuer.to_string(), valid_until })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    #[test]
    fn a_test_card_reads_back_what_was_encoded() {
        let payload = Tchc1::encode("EHC4401060000123456", "GD-EHC", d(2030, 12, 31));
        assert!(payload.starts_with("TCHC1|EHC4401060000123456|GD-EHC|20301231|"), "{payload}");
        let card = Tchc1.parse(&payload).unwrap();
        assert_eq!(
            card,
            CardPayload {
                card_id: "EHC4401060000123456".into(),
                issuer: "GD-EHC".into(),
                valid_until: d(2030, 12, 31)
            }
        );
        // The check is case-insensitive, surrounding whitespace (a scanner's newline) is ignored.
        let (head, check) = payload.rsplit_once('|').unwrap();
        assert_eq!(Tchc1.parse(&format!("{head}|{}\n", check.to_lowercase())).unwrap(), card);
    }

    #[test]
    fn a_damaged_or_foreign_code_is_invalid() {
        let good = Tchc1::encode("EHC4401060000123456", "GD-EHC", d(2030, 12, 31));
        let flipped = good.replace("123456|", "123457|");
        for bad in [
            "",
            "https://example.org/not-a-card",
            "TCHC1|EHC4401060000123456|GD-EHC|20301231",
            "TCHC2|EHC4401060000123456|GD-EHC|20301231|00000000",
            flipped.as_str(),
            &Tchc1::encode("EHC1", "GD-EHC", d(2030, 12, 31)),
            &Tchc1::encode("EHC4401060000123456", "GD EHC", d(2030, 12, 31)),
            &format!(
                "{}|{}",
                "TCHC1|EHC4401060000123456|GD-EHC|20301341",
                Tchc1::check("TCHC1|EHC4401060000123456|GD-EHC|20301341")
            ),
        ] {
            assert!(matches!(Tchc1.parse(bad), Err(CardError::Invalid(_))), "{bad:?}");
        }
    }

    #[test]
    fn validity_runs_through_its_last_day() {
        let card = Tchc1.parse(&Tchc1::encode("EHC4401060000123456", "GD-EHC", d(2026, 12, 4))).unwrap();
        assert_eq!(check_valid(&card, d(2026, 12, 4)), Ok(()));
        assert_eq!(check_valid(&card, d(2026, 12, 5)), Err(CardError::Expired(d(2026, 12, 4))));
    }

    #[test]
    fn card_ids_are_normalised_and_formats_are_chosen_by_name() {
        assert_eq!(normalise_card_id(" ehc-4401 0600 ").as_deref(), Some("EHC44010600"));
        assert_eq!(normalise_card_id("12345"), None);
        assert_eq!(normalise_card_id("卡号123456"), None);
        assert_eq!(parser_for("tchc1").map(|p| p.name()), Some("tchc1"));
        assert!(parser_for("guangdong").is_none());
        assert!(FORMATS.iter().all(|f| parser_for(f).is_some()));
    }
}
