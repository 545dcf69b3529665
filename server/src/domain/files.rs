//! States and kinds of consultation files and resumable uploads.

named_enum! {
    /// Where a resumable (tus) upload stands.
    UploadState, "upload state" {
        /// Taking `PATCH` requests.
        Open => "open",
        /// Its last byte arrived; the parts are being joined, classified and recorded.
        Completing => "completing",
        /// Recorded as a file.
        Completed => "completed",
        /// Its content was refused when completed.
        Rejected => "rejected",
        /// Ended by its uploader before completion.
        Terminated => "terminated",
        /// Idle past its expiry.
        Expired => "expired",
    }
}

named_enum! {
    /// What a stored file is, as stored in `files.kind` and served as `kind`.
    FileKind, "file kind" {
        Dicom => "dicom",
        Pdf => "pdf",
        Jpeg => "jpeg",
        Png => "png",
        Ecg => "ecg",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_and_kinds_round_trip_and_refuse_unknown_values() {
        for &s in UploadState::ALL {
            assert_eq!(s.as_str().parse::<UploadState>().unwrap(), s);
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
        for &k in FileKind::ALL {
            assert_eq!(k.as_str().parse::<FileKind>().unwrap(), k);
            assert_eq!(serde_json::to_value(k).unwrap(), k.as_str());
        }
        assert!("paused".parse::<UploadState>().is_err());
        assert!("gif".parse::<FileKind>().is_err());
    }
}
