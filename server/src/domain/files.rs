//! States and kinds of consultation files and resumable uploads.

use crate::error::{ApiError, ApiResult};
use serde::{Deserialize, Serialize};

/// Where a resumable (tus) upload stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum UploadState {
    /// Taking `PATCH` requests.
    Open,
    /// Its last byte arrived; the parts are being joined, classified and recorded.
    Completing,
    /// Recorded as a file.
    Completed,
    /// Its content was refused when completed.
    Rejected,
    /// Ended by its uploader before completion.
    Terminated,
    /// Idle past its expiry.
    Expired,
}

impl UploadState {
    pub const ALL: [UploadState; 6] = [
        UploadState::Open,
        UploadState::Completing,
        UploadState::Completed,
        UploadState::Rejected,
        UploadState::Terminated,
        UploadState::Expired,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            UploadState::Open => "open",
            UploadState::Completing => "completing",
            UploadState::Completed => "completed",
            UploadState::Rejected => "rejected",
            UploadState::Terminated => "terminated",
            UploadState::Expired => "expired",
        }
    }

    pub fn parse(s: &str) -> Option<UploadState> {
        UploadState::ALL.into_iter().find(|v| v.as_str() == s)
    }

    /// A state read from the database; an unknown one is an error, never a default.
    pub fn from_db(s: &str) -> ApiResult<UploadState> {
        UploadState::parse(s).ok_or_else(|| ApiError::internal(format!("unknown upload state {s:?} stored")))
    }
}

/// What a stored file is, as stored in `files.kind` and served as `kind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum FileKind {
    Dicom,
    Pdf,
    Jpeg,
    Png,
    Ecg,
}

impl FileKind {
    pub const ALL: [FileKind; 5] = [FileKind::Dicom, FileKind::Pdf, FileKind::Jpeg, FileKind::Png, FileKind::Ecg];

    pub fn as_str(self) -> &'static str {
        match self {
            FileKind::Dicom => "dicom",
            FileKind::Pdf => "pdf",
            FileKind::Jpeg => "jpeg",
            FileKind::Png => "png",
            FileKind::Ecg => "ecg",
        }
    }

    pub fn parse(s: &str) -> Option<FileKind> {
        FileKind::ALL.into_iter().find(|v| v.as_str() == s)
    }

    /// A kind read from the database; an unknown one is an error, never a default.
    pub fn from_db(s: &str) -> ApiResult<FileKind> {
        FileKind::parse(s).ok_or_else(|| ApiError::internal(format!("unknown file kind {s:?} stored")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_and_kinds_round_trip_and_refuse_unknown_values() {
        for s in UploadState::ALL {
            assert_eq!(UploadState::from_db(s.as_str()).unwrap(), s);
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
        for k in FileKind::ALL {
            assert_eq!(FileKind::from_db(k.as_str()).unwrap(), k);
            assert_eq!(serde_json::to_value(k).unwrap(), k.as_str());
        }
        assert!(UploadState::from_db("paused").is_err());
        assert!(FileKind::from_db("gif").is_err());
    }
}
