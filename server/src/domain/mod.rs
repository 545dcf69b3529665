//! The vocabulary shared by HTTP, the stores and signaling: the states and kinds each area
//! stores as text, as enums with the same snake_case names on the wire and in the database
//! (snake_case), each decoding a stored value with an error on an unknown one, never a default.

/// A value that is not one of an enumeration's names, e.g. `"urgentish"` for an urgency.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {kind} `{value}`")]
pub struct UnknownName {
    pub kind: &'static str,
    pub value: String,
}

/// A stored value that names none of an enumeration's values is a fault of the data, not of
/// the request: a 500 that logs what was read.
impl From<UnknownName> for crate::error::ApiError {
    fn from(e: UnknownName) -> Self {
        crate::error::ApiError::internal(format!("stored {e}"))
    }
}

/// An enumeration with one snake_case name per variant, used on the wire, in the database
/// and in messages alike: serde, `as_str()`, `Display`, `FromStr` and `TryFrom<String>`
/// (which a row field decodes with, `#[sqlx(try_from = "String")]`), the last two failing
/// with [`UnknownName`] on any other text.
macro_rules! named_enum {
    (
        $(#[$meta:meta])*
        $name:ident, $kind:literal {
            $( $(#[$variant_meta:meta])* $variant:ident => $text:literal ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
        pub enum $name {
            $( $(#[$variant_meta])* #[serde(rename = $text)] $variant ),+
        }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for $name {
            type Err = $crate::domain::UnknownName;

            fn from_str(value: &str) -> Result<Self, Self::Err> {
                match value {
                    $($text => Ok($name::$variant),)+
                    _ => Err($crate::domain::UnknownName { kind: $kind, value: value.to_owned() }),
                }
            }
        }

        impl TryFrom<String> for $name {
            type Error = $crate::domain::UnknownName;

            fn try_from(value: String) -> Result<Self, Self::Error> {
                value.parse()
            }
        }
    };
}
pub(crate) use named_enum;

pub mod consultation;
pub mod files;
pub mod people;
pub mod record;
pub mod time;
pub mod vitals;
