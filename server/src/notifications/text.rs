//! What notifications say, keyed by a code with parameters, in each language the product
//! speaks (Simplified Chinese and English).
//!
//! A notification is stored with its `code` and `params`, and with `title` and `body`
//! rendered at creation in both languages (Chinese first, as the product has always shown
//! them, so that readers that do not know the code still show a readable text). Clients
//! render `code` with `params` in their reader's language from their own tables
//! (`web-client/js/strings-*.js`, keys `notify.<code>.title` and `notify.<code>.body`), and
//! fall back to `title` and `body` for a code they do not know.
//!
//! Parameters are plain text (names, statuses, numbers): clients insert them as text.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The languages notifications are written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    Zh,
    En,
}

impl Lang {
    pub const ALL: [Lang; 2] = [Lang::Zh, Lang::En];
}

/// One notification text: the title, and a body when the body is text of ours rather than
/// what someone wrote (a reason, an impression) or a time.
struct Entry {
    code: &'static str,
    zh: (&'static str, Option<&'static str>),
    en: (&'static str, Option<&'static str>),
}

const fn title(code: &'static str, zh: &'static str, en: &'static str) -> Entry {
    Entry { code, zh: (zh, None), en: (en, None) }
}

const fn with_body(code: &'static str, zh: (&'static str, &'static str), en: (&'static str, &'static str)) -> Entry {
    Entry { code, zh: (zh.0, Some(zh.1)), en: (en.0, Some(en.1)) }
}

/// Every notification text.
const CATALOGUE: &[Entry] = &[
    title("request_matched", "新的会诊申请", "New {urgency} consultation request"),
    with_body(
        "expert_accepted",
        ("专家已接受会诊", "{name}医生已接受会诊。"),
        ("Expert accepted", "Dr {name} has accepted the consultation."),
    ),
    title("expert_declined", "专家谢绝会诊", "Expert declined"),
    title("consultation_cancelled", "会诊已取消", "Consultation cancelled"),
    title("consultation_completed", "会诊已完成", "Consultation completed"),
    title("appointment_booked", "已预约会诊", "Appointment booked"),
    title("appointment_rescheduled", "预约已改期", "Appointment rescheduled"),
    title("appointment_cancelled", "预约已取消", "Appointment cancelled"),
    title("reminder_24h", "明天有会诊", "Consultation tomorrow"),
    title("reminder_15m", "会诊 15 分钟后开始", "Consultation in 15 minutes"),
    title("opinion_signed", "会诊意见已签署", "Opinion signed"),
    title("opinion_amended", "会诊意见已更正", "Opinion amended"),
    title("referral_new_up", "新的上转申请", "New up-referral"),
    title("referral_new_down", "新的下转患者", "New down-referral"),
    title("referral_status", "转诊状态：{status}", "Referral {status}"),
    title("referral_assigned", "转诊已分派给您", "Referral assigned to you"),
    with_body(
        "kiosk_walk_in",
        ("{name} 在自助机签到，今日无预约", "{name} 在自助机“{kiosk}”签到，今日无预约，请值班医生接待。"),
        (
            "Walk-in with nothing booked today",
            "{name} checked in at the kiosk \"{kiosk}\" with nothing booked today and asks for the doctor on duty.",
        ),
    ),
    with_body(
        "reading_blood_pressure_above_target",
        ("血压高于目标", "您的血压 {reading}，目标是低于 {target}。请按医嘱服药，注意休息，少吃盐；您的家庭医生会看到并与您联系。"),
        (
            "Your blood pressure is above your target",
            "Your blood pressure: {reading}; your target is below {target}. Please take your medicine as prescribed and rest; your family doctor has been told and will contact you.",
        ),
    ),
    with_body(
        "reading_glucose_above_target",
        ("血糖高于目标", "您的血糖 {reading}，目标是低于 {target}。请按医嘱用药、注意饮食；您的家庭医生会看到并与您联系。"),
        (
            "Your blood sugar is above your target",
            "Your blood sugar: {reading}; your target is below {target}. Please take your medicine as prescribed and watch your diet; your family doctor has been told.",
        ),
    ),
    with_body(
        "reading_glucose_low",
        ("血糖偏低", "您的血糖 {reading}，低于 {target}。请马上吃些含糖食物（如糖果、果汁），15 分钟后再测一次；如仍不适请就医。"),
        (
            "Your blood sugar is low",
            "Your blood sugar: {reading}, below {target}. Eat something sweet now and measure again in 15 minutes; seek care if you still feel unwell.",
        ),
    ),
    with_body(
        "reading_blood_pressure_missing",
        ("请测量血压", "已经 {detail} 天没有收到您的血压记录了，请测量一次。"),
        (
            "Please measure your blood pressure",
            "We have had no blood pressure reading from you for {detail} days; please measure it.",
        ),
    ),
    with_body(
        "reading_glucose_missing",
        ("请测量血糖", "已经 {detail} 天没有收到您的血糖记录了，请测量一次。"),
        ("Please measure your blood sugar", "We have had no blood sugar reading from you for {detail} days; please measure it."),
    ),
];

fn entry(code: &str) -> Option<&'static Entry> {
    CATALOGUE.iter().find(|e| e.code == code)
}

/// A notification's parameters: name → plain text.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(transparent)]
pub struct Params(pub BTreeMap<String, String>);

/// Decoding the stored JSON object (an unreadable value fails the row).
impl TryFrom<String> for Params {
    type Error = serde_json::Error;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        serde_json::from_str(&value)
    }
}

/// What a notification says: its code and parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Text {
    pub code: String,
    pub params: Params,
}

impl Text {
    /// The text of `code` (one of the catalogue's).
    pub fn new(code: &str) -> Text {
        debug_assert!(entry(code).is_some(), "notification code {code} is not in the catalogue");
        Text { code: code.to_string(), params: Params::default() }
    }

    /// With the parameter `name` (a `{name}` of the templates).
    pub fn with(mut self, name: &str, value: impl std::fmt::Display) -> Text {
        self.params.0.insert(name.to_string(), value.to_string());
        self
    }

    /// A new referral, up or down.
    pub fn referral_new(direction: crate::domain::record::Direction) -> Text {
        match direction {
            crate::domain::record::Direction::Up => Text::new("referral_new_up"),
            crate::domain::record::Direction::Down => Text::new("referral_new_down"),
        }
    }

    /// Title and (for texts that have one) body in `lang`, parameters filled in.
    pub fn render(&self, lang: Lang) -> (String, Option<String>) {
        let Some(e) = entry(&self.code) else { return (self.code.clone(), None) };
        let (title, body) = match lang {
            Lang::Zh => e.zh,
            Lang::En => e.en,
        };
        (fill(title, &self.params), body.map(|b| fill(b, &self.params)))
    }

    /// Title and body as stored beside the code: both languages, Chinese first; `body` when
    /// the text has none of its own.
    pub fn bilingual(&self, body: &str) -> (String, String) {
        let (zh_title, zh_body) = self.render(Lang::Zh);
        let (en_title, en_body) = self.render(Lang::En);
        let body = match (zh_body, en_body) {
            (Some(zh), Some(en)) => format!("{zh} {en}"),
            _ => body.to_string(),
        };
        (format!("{zh_title} {en_title}"), body)
    }
}

/// `template` with each `{name}` replaced by its parameter (empty when absent).
fn fill(template: &str, params: &Params) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        match after.find('}') {
            Some(close) if after[..close].chars().all(|c| c.is_ascii_alphanumeric() || c == '_') => {
                out.push_str(params.0.get(&after[..close]).map(String::as_str).unwrap_or(""));
                rest = &after[close + 1..];
            }
            _ => {
                out.push('{');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn placeholders(s: &str) -> Vec<String> {
        let mut v: Vec<String> =
            s.split('{').skip(1).filter_map(|p| p.split_once('}').map(|(name, _)| name.to_string())).collect();
        v.sort();
        v.dedup();
        v
    }

    #[test]
    fn titles_are_stored_in_both_languages_chinese_first() {
        let t = Text::referral_new(crate::domain::record::Direction::Up);
        assert_eq!(t.bilingual("胸痛待查"), ("新的上转申请 New up-referral".to_string(), "胸痛待查".to_string()));
        let t = Text::new("referral_status").with("status", "accepted");
        assert_eq!(t.bilingual("").0, "转诊状态：accepted Referral accepted");
        assert_eq!(t.render(Lang::En).0, "Referral accepted");
        let t = Text::new("request_matched").with("urgency", "urgent");
        assert_eq!(t.bilingual("").0, "新的会诊申请 New urgent consultation request");
    }

    #[test]
    fn texts_with_a_body_render_it_per_language() {
        let t = Text::new("reading_blood_pressure_missing").with("detail", 3);
        let (zh_title, zh_body) = t.render(Lang::Zh);
        assert_eq!(zh_title, "请测量血压");
        assert_eq!(zh_body.as_deref(), Some("已经 3 天没有收到您的血压记录了，请测量一次。"));
        let (_, body) = t.bilingual("ignored");
        assert!(body.starts_with("已经 3 天") && body.ends_with("for 3 days; please measure it."), "{body}");
        let k = Text::new("kiosk_walk_in").with("name", "刘德明").with("kiosk", "大厅自助机");
        assert_eq!(k.render(Lang::Zh).0, "刘德明 在自助机签到，今日无预约");
        assert!(k.render(Lang::En).1.unwrap().contains("\"大厅自助机\""));
    }

    #[test]
    fn every_language_has_every_text_with_the_same_parameters() {
        let mut codes: Vec<&str> = CATALOGUE.iter().map(|e| e.code).collect();
        codes.sort();
        codes.dedup();
        assert_eq!(codes.len(), CATALOGUE.len(), "codes are unique");
        for e in CATALOGUE {
            assert!(!e.zh.0.is_empty() && !e.en.0.is_empty(), "{}", e.code);
            assert_eq!(e.zh.1.is_some(), e.en.1.is_some(), "{}: a body in both or neither", e.code);
            let zh = placeholders(&format!("{}{}", e.zh.0, e.zh.1.unwrap_or("")));
            let en = placeholders(&format!("{}{}", e.en.0, e.en.1.unwrap_or("")));
            // Chinese may leave out a parameter English shows (the urgency), never the reverse.
            assert!(zh.iter().all(|p| en.contains(p)), "{}: {zh:?} vs {en:?}", e.code);
        }
    }

    #[test]
    fn the_web_client_knows_every_code_in_both_languages() {
        for (lang, table) in [
            ("zh", include_str!("../../../web-client/js/strings-zh.js")),
            ("en", include_str!("../../../web-client/js/strings-en.js")),
        ] {
            for e in CATALOGUE {
                let key = format!("'notify.{}.title'", e.code);
                assert!(table.contains(&key), "{lang} client table lacks {key}");
                if e.zh.1.is_some() {
                    let key = format!("'notify.{}.body'", e.code);
                    assert!(table.contains(&key), "{lang} client table lacks {key}");
                }
            }
        }
    }

    #[test]
    fn filling_leaves_other_braces_alone() {
        let p = Params([("a".to_string(), "x".to_string())].into_iter().collect());
        assert_eq!(fill("{a}-{b}-{ c }-{", &p), "x--{ c }-{");
        assert_eq!(Params::try_from("{\"a\":\"x\"}".to_string()).unwrap(), p);
        assert!(Params::try_from("[1]".to_string()).is_err());
    }
}
