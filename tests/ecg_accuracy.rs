//! ECG accuracy and format tests on real recordings (see `docs/ecg.md`):
//! - QRS detection on MIT-BIH record 100 scored the ANSI/AAMI EC57 way (a detection matches a
//!   reference beat within 150 ms; scoring from minute 5): sensitivity and positive
//!   predictivity must both reach 99.5 %;
//! - on pydicom's `waveform_ecg.dcm` (a Mortara ELI 250 recording) the beat count must match
//!   the cart's, the mean RR must be within 10 ms and PR, QRS and QT within 20 ms of the
//!   cart's own measurements;
//! - every format reads a real or faithfully produced file, and broken files are refused
//!   with a reason, never a panic.
//!
//! Run with `cargo test --test ecg_accuracy -- --nocapture` to see the tables.

mod common;

use std::io::Write;

use teleconsult::ecg::{self, analyze, detect_format, parse, EcgError, EcgFormat, EcgRecord};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/ecg");

fn fixture(path: &str) -> Vec<u8> {
    std::fs::read(format!("{FIXTURES}/{path}")).expect("fixture present")
}

struct Mitdb100 {
    hea: Vec<u8>,
    dat: Vec<u8>,
    atr: Vec<u8>,
}

fn mitdb_100() -> Mitdb100 {
    Mitdb100 { hea: fixture("mitdb-100/100.hea"), dat: fixture("mitdb-100/100.dat"), atr: fixture("mitdb-100/100.atr") }
}

fn record_100(files: &Mitdb100) -> EcgRecord {
    parse(&[("100.hea", &files.hea), ("100.dat", &files.dat), ("100.atr", &files.atr)]).expect("record 100 parses")
}

/// EC57 beat-by-beat matching: each reference beat at or after `from_s` is matched to the
/// nearest unmatched detection within 150 ms. Returns (TP, FN, FP).
fn score_ec57(reference_s: &[f64], detected_s: &[f64], from_s: f64) -> (usize, usize, usize) {
    score_ec57_outside(reference_s, detected_s, from_s, &[])
}

/// As [`score_ec57`], with the reference's ventricular flutter or fibrillation episodes
/// (`[` to `]`) left out as EC57 and its comparator (WFDB `bxb`) leave them out: a detection
/// inside one is neither a true nor a false positive, and a reference beat inside one is not
/// scored (`bxb` reads past everything between the two marks).
fn score_ec57_outside(
    reference_s: &[f64],
    detected_s: &[f64],
    from_s: f64,
    flutter_s: &[(f64, f64)],
) -> (usize, usize, usize) {
    let in_flutter = |t: f64| inside(flutter_s, t);
    const WINDOW_S: f64 = 0.150;
    let mut used = vec![false; detected_s.len()];
    let (mut tp, mut missed) = (0, 0);
    for &r in reference_s.iter().filter(|&&r| r >= from_s && !in_flutter(r)) {
        let nearest = detected_s
            .iter()
            .enumerate()
            .filter(|(i, d)| !used[*i] && (*d - r).abs() <= WINDOW_S)
            .min_by(|a, b| (a.1 - r).abs().total_cmp(&(b.1 - r).abs()));
        match nearest {
            Some((i, _)) => {
                used[i] = true;
                tp += 1;
            }
            None => missed += 1,
        }
    }
    let false_positives =
        detected_s.iter().zip(&used).filter(|(d, u)| **d >= from_s && !**u && !in_flutter(**d)).count();
    (tp, missed, false_positives)
}

#[test]
fn ec57_scoring_counts_misses_and_extras() {
    let reference = [400.0, 401.0, 402.0, 403.0];
    let detected = [400.1, 401.2, 402.0, 402.5, 403.05];
    assert_eq!(score_ec57(&reference, &detected, 300.0), (3, 1, 2));
    // A detection inside a flutter episode counts for nothing; one outside still does.
    let detected = [400.0, 401.0, 401.5, 402.0, 402.4, 402.6, 403.0, 403.5];
    assert_eq!(score_ec57_outside(&reference, &detected, 300.0, &[(402.3, 402.7)]), (4, 0, 2));
}

/// Whether `t` lies in one of the `episodes` (start and end in seconds, both included).
fn inside(episodes: &[(f64, f64)], t: f64) -> bool {
    episodes.iter().any(|&(a, b)| a <= t && t <= b)
}

/// The reference's ventricular flutter or fibrillation episodes, from `[` to `]` (to the end
/// of the record when one is not closed), in seconds.
fn flutter_episodes(annotations: &[ecg::wfdb::Annotation], fs: f64) -> Vec<(f64, f64)> {
    let mut episodes = Vec::new();
    let mut open = None;
    for a in annotations {
        match a.mnemonic() {
            "[" => open = open.or(Some(a.sample as f64 / fs)),
            "]" => {
                if let Some(start) = open.take() {
                    episodes.push((start, a.sample as f64 / fs));
                }
            }
            _ => {}
        }
    }
    if let Some(start) = open {
        episodes.push((start, f64::INFINITY));
    }
    episodes
}

#[test]
fn qrs_detection_on_mitdb_100_meets_the_ec57_targets() {
    let files = mitdb_100();
    let record = record_100(&files);
    assert_eq!(record.source_format, EcgFormat::Wfdb);
    assert_eq!(record.sample_rate_hz, 360.0);
    assert_eq!(record.samples_per_lead(), 650_000);
    assert_eq!(record.leads.iter().map(|l| l.name.as_str()).collect::<Vec<_>>(), ["MLII", "V5"]);
    let reference = record.reference_beats_s.clone().expect("100.atr read");
    assert_eq!(reference.len(), 2273);

    let measurements = analyze(&record);
    let (tp, missed, extra) = score_ec57(&reference, &measurements.r_peaks_s, 300.0);
    let sensitivity = 100.0 * tp as f64 / (tp + missed) as f64;
    let predictivity = 100.0 * tp as f64 / (tp + extra) as f64;
    println!("| record | TP | FN | FP | Se (%) | +P (%) |");
    println!("| 100 | {tp} | {missed} | {extra} | {sensitivity:.2} | {predictivity:.2} |");
    assert!(sensitivity >= 99.5, "sensitivity {sensitivity:.2} %");
    assert!(predictivity >= 99.5, "positive predictivity {predictivity:.2} %");
    assert!(measurements.computer_assisted);
    assert!((60.0..=90.0).contains(&measurements.heart_rate_bpm.unwrap_or(0.0)));
    // A 30-minute two-lead record is not a resting 12-lead ECG: no PR/QRS/QT.
    assert_eq!(measurements.qt_ms, None);
}

fn excerpt(name: &str) -> EcgRecord {
    let files: Vec<(String, Vec<u8>)> = ["hea", "dat", "atr"]
        .iter()
        .map(|ext| (format!("{name}.{ext}"), fixture(&format!("mitdb-excerpts/{name}.{ext}"))))
        .collect();
    let borrowed: Vec<(&str, &[u8])> = files.iter().map(|(n, b)| (n.as_str(), b.as_slice())).collect();
    parse(&borrowed).expect("excerpt parses")
}

/// The episodes of the `possible_atrial_fibrillation` finding, (start, end) in seconds.
fn af_episodes(m: &ecg::Measurements) -> Vec<(f64, f64)> {
    m.findings
        .iter()
        .filter(|f| f.code == "possible_atrial_fibrillation")
        .flat_map(|f| f.episodes.iter().map(|e| (e.start_s, e.end_s)))
        .collect()
}

/// Atrial fibrillation on long recordings, where the reference says it is and is not: minutes
/// 5 to 10 of MIT-BIH 201 (the reference: fibrillation to 78 s, a nodal rhythm to 85 s, sinus
/// rhythm to 177 s, fibrillation 177–214 s, nodal to 223 s, then sinus rhythm with ventricular
/// trigeminy, its RR intervals as irregular as the fibrillation's) is flagged over most of its
/// fibrillation and little else; record 100 (sinus rhythm, 30 minutes) and the excerpt of 208
/// (frequent ventricular couplets) are not flagged at all. (The excerpt of 200 is, in part: its
/// runs of ventricular bigeminy, some of whose ventricular beats pass for dominant ones, look
/// like fibrillation to the rule; `docs/ecg.md` gives it with the whole database's figures.)
#[test]
fn atrial_fibrillation_is_flagged_where_the_reference_has_it_on_long_recordings() {
    let m = analyze(&excerpt("201_0300"));
    let flagged = af_episodes(&m);
    let reference = [(0.0, 78.0), (177.0, 214.0)];
    let found: f64 = flagged.iter().map(|&(a, b)| covered(&reference, a, b)).sum();
    println!("201 from 300 s: episodes {flagged:?}, {found:.0} s of the reference's 115 s");
    assert!(found >= 0.8 * 115.0, "fibrillation flagged over {found:.0} s of 115: {flagged:?}");
    // Judged 30 s at a time, every 10 s: an episode's ends may be off by a step or two (the
    // nodal rhythm after each episode has no P wave either).
    let near = [(0.0, 98.0), (157.0, 234.0)];
    let beyond: f64 = flagged.iter().map(|(a, b)| b - a).sum::<f64>()
        - flagged.iter().map(|&(a, b)| covered(&near, a, b)).sum::<f64>();
    assert!(beyond == 0.0, "flagged more than 20 s from the fibrillation: {flagged:?}");
    let finding = m.findings.iter().find(|f| f.code == "possible_atrial_fibrillation").expect("the finding");
    assert!(finding.computer_assisted && finding.text.contains("Computer-assisted"), "{}", finding.text);
    let flagged = af_episodes(&analyze(&excerpt("208_0300")));
    assert!(flagged.is_empty(), "208: no fibrillation, yet {flagged:?}");
    let flagged = af_episodes(&analyze(&record_100(&mitdb_100())));
    assert!(flagged.is_empty(), "100: sinus rhythm, yet {flagged:?}");
}

/// Five-minute excerpts of MIT-BIH records rich in ventricular ectopy (minutes 5 to 10 of 200
/// and 208: bigeminy, couplets, multiform PVCs, fusion beats, noise), each scored over its
/// whole length against its own reference beats: Se and +P must reach 99.5 %.
#[test]
fn qrs_detection_on_mitdb_excerpts_with_frequent_pvcs_meets_the_ec57_targets() {
    println!("| excerpt | beats | V beats | TP | FN | FP | Se (%) | +P (%) |");
    for name in ["200_0300", "208_0300"] {
        let record = excerpt(name);
        let atr = fixture(&format!("mitdb-excerpts/{name}.atr"));
        assert_eq!(record.samples_per_lead(), 108_000, "{name}: 5 minutes at 360 Hz");
        let fs = record.sample_rate_hz;
        let annotations = ecg::wfdb::parse_annotations("atr", &atr).expect("annotations");
        let beats: Vec<&ecg::wfdb::Annotation> = annotations.iter().filter(|a| a.is_beat()).collect();
        let reference: Vec<f64> = beats.iter().map(|a| a.sample as f64 / fs).collect();
        let ventricular = beats.iter().filter(|a| a.mnemonic() == "V").count();
        assert!(ventricular >= 50, "{name}: an excerpt rich in PVCs, {ventricular} V beats");
        let m = analyze(&record);
        let (tp, missed, extra) = score_ec57(&reference, &m.r_peaks_s, 0.0);
        let se = 100.0 * tp as f64 / (tp + missed) as f64;
        let pp = 100.0 * tp as f64 / (tp + extra) as f64;
        println!("| {name} | {} | {ventricular} | {tp} | {missed} | {extra} | {se:.2} | {pp:.2} |", reference.len());
        assert!(se >= 99.5, "{name}: sensitivity {se:.2} %");
        assert!(pp >= 99.5, "{name}: positive predictivity {pp:.2} %");
    }
}

#[test]
fn dicom_measurements_agree_with_the_cart() {
    let bytes = fixture("waveform_ecg.dcm");
    assert_eq!(detect_format("upload.bin", &bytes), Some(EcgFormat::DicomWaveform));
    let record = parse(&[("waveform_ecg.dcm", &bytes)]).expect("DICOM parses");
    assert_eq!(record.sample_rate_hz, 1000.0);
    assert_eq!(record.samples_per_lead(), 10_000);
    assert_eq!(
        record.leads.iter().map(|l| l.name.as_str()).collect::<Vec<_>>(),
        ["I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6"]
    );
    assert_eq!(record.acquisition_time.as_deref(), Some("2013-01-25T10:59:19"));
    assert_eq!(record.device.as_deref(), Some("Mortara Instrument, Inc. el250"));
    let cart = record.device_measurements.clone().expect("cart measurements");

    let ours = analyze(&record);
    let cart_rr = cart.rr_ms.expect("cart RR");
    let rows = [
        ("RR (mean)", ours.rr_mean_ms, cart.rr_ms, 10.0),
        ("PR", ours.pr_ms, cart.pr_ms, 20.0),
        ("QRS", ours.qrs_ms, cart.qrs_ms, 20.0),
        ("QT", ours.qt_ms, cart.qt_ms, 20.0),
    ];
    println!("| quantity | ours (ms) | cart (ms) | difference (ms) |");
    println!(
        "| beats | {} | {} | {} |",
        ours.beat_count,
        cart.beats_s.len(),
        ours.beat_count as i64 - cart.beats_s.len() as i64
    );
    for (name, mine, theirs, _) in rows {
        let (mine, theirs) = (mine.expect(name), theirs.expect(name));
        println!("| {name} | {mine} | {theirs} | {:+} |", mine - theirs);
    }
    println!(
        "| QTc | {:?} (Bazett), {:?} (Fridericia) | {:?} | |",
        ours.qtc_bazett_ms, ours.qtc_fridericia_ms, cart.qtc_ms
    );
    assert_eq!(ours.beat_count, cart.beats_s.len());
    assert_eq!(cart.beats_s.len(), 10);
    for (r, c) in ours.r_peaks_s.iter().zip(&cart.beats_s) {
        assert!((r - c).abs() <= 0.010, "R peak {r} s vs cart fiducial {c} s");
    }
    for (name, mine, theirs, tolerance) in rows {
        let difference = mine.expect(name) - theirs.expect(name);
        assert!(difference.abs() <= tolerance, "{name} differs by {difference} ms");
    }
    assert!((cart_rr - 982.0).abs() < 1e-9);
}

#[test]
fn wfdb_format_16_written_from_record_100_reads_the_same() {
    let files = mitdb_100();
    let original = record_100(&files);
    // Record 100 has gain 200/mV and baseline 1024, so ADC = µV / 5 + 1024 exactly.
    let mut dat = Vec::with_capacity(original.samples_per_lead() * 4);
    for i in 0..original.samples_per_lead() {
        for lead in &original.leads {
            let adc = lead.samples_uv[i] / 5 + 1024;
            dat.extend(i16::try_from(adc).expect("fits 16 bits").to_le_bytes());
        }
    }
    let header = "100 2 360 650000\n\
        100.dat 16 200 16 1024 995 0 0 MLII\n\
        100.dat 16 200 16 1024 1011 0 0 V5\n";
    assert_eq!(detect_format("100.hea", header.as_bytes()), Some(EcgFormat::Wfdb));
    let reread =
        parse(&[("100.hea", header.as_bytes()), ("100.dat", &dat), ("100.atr", &files.atr)]).expect("format 16 parses");
    assert_eq!(reread.leads, original.leads);

    let err = parse(&[("100.hea", header.as_bytes()), ("100.dat", &dat[..4800])]).unwrap_err();
    assert_eq!(err.to_string(), "truncated .dat: expected 650000 samples for 2 signals, file holds 1200");
}

#[test]
fn a_wfdb_record_uploaded_as_one_zip_reads_like_its_files() {
    let files = mitdb_100();
    let mut zipped = std::io::Cursor::new(Vec::new());
    {
        let mut writer = zip::ZipWriter::new(&mut zipped);
        let options = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
        for (name, bytes) in
            [("mitdb/100.hea", &files.hea), ("mitdb/100.dat", &files.dat), ("mitdb/100.atr", &files.atr)]
        {
            writer.start_file(name, options).expect("zip entry");
            writer.write_all(bytes).expect("zip write");
        }
        writer.finish().expect("zip finish");
    }
    let zipped = zipped.into_inner();
    assert_eq!(detect_format("100.zip", &zipped), Some(EcgFormat::Wfdb));
    let from_zip = parse(&[("100.zip", &zipped)]).expect("zip parses");
    assert_eq!(from_zip, record_100(&files));

    let missing_dat = {
        let mut cursor = std::io::Cursor::new(Vec::new());
        let mut writer = zip::ZipWriter::new(&mut cursor);
        writer.start_file("100.hea", zip::write::SimpleFileOptions::default()).expect("zip entry");
        writer.write_all(&files.hea).expect("zip write");
        writer.finish().expect("zip finish");
        cursor.into_inner()
    };
    let err = parse(&[("100.zip", &missing_dat)]).unwrap_err();
    assert!(matches!(err, EcgError::MissingFile { .. }), "{err}");
}

#[test]
fn the_dicom_recording_survives_a_csv_round_trip() {
    let record = parse(&[("waveform_ecg.dcm", &fixture("waveform_ecg.dcm"))]).expect("DICOM");
    let text = ecg::csv::write(&record);
    assert_eq!(detect_format("export.txt", text.as_bytes()), Some(EcgFormat::Csv));
    let reread = parse(&[("export.csv", text.as_bytes())]).expect("CSV parses");
    assert_eq!(reread.leads, record.leads);
    assert_eq!(reread.sample_rate_hz, record.sample_rate_hz);
    assert_eq!(reread.acquisition_time, record.acquisition_time);
    let (a, b) = (analyze(&record), analyze(&reread));
    assert_eq!((a.r_peaks_s, a.qt_ms), (b.r_peaks_s, b.qt_ms));
}

#[test]
fn the_view_is_the_agreed_json() {
    let record = parse(&[("waveform_ecg.dcm", &fixture("waveform_ecg.dcm"))]).expect("DICOM");
    let measurements = analyze(&record);
    let view = ecg::to_view(&record, &measurements, Some(2_000));
    let json = serde_json::to_value(&view).expect("serialises");
    assert_eq!(json["duration_s"], 10.0);
    assert_eq!(json["format"], "dicom-waveform");
    assert_eq!(json["leads"].as_array().map(Vec::len), Some(12));
    assert_eq!(json["leads"][1]["name"], "II");
    assert_eq!(json["leads"][1]["unit"], "uV");
    assert!(json["leads"][1]["samples"].as_array().map_or(0, Vec::len) <= 2_000);
    assert_eq!(json["measurements"]["computer_assisted"], true);
    assert_eq!(json["measurements"]["r_peaks_s"].as_array().map(Vec::len), Some(10));
    assert!(json["measurements"]["qtc_bazett_ms"].is_number());
    assert!(json["label"].as_str().unwrap_or_default().contains("not a diagnosis"));
    assert_eq!(json["device_measurements"]["qt_ms"], 368.0);
}

/// Cuts and corrupts every real file in many ways: each attempt must end in `Ok` or a
/// described `Err`, never a panic.
#[test]
fn broken_and_hostile_files_are_refused_without_panicking() {
    let files = mitdb_100();
    let dicom = fixture("waveform_ecg.dcm");
    let csv = ecg::csv::write(&parse(&[("a.dcm", &dicom[..])]).expect("DICOM"));
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move |bound: usize| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % bound.max(1) as u64) as usize
    };

    for cut in [0, 100, 131, 132, 140, 300, 1000, 5000, 100_000, dicom.len() - 1] {
        let err = parse(&[("cut.dcm", &dicom[..cut])]).expect_err("truncated DICOM refused");
        assert!(!err.to_string().is_empty());
    }
    for _ in 0..200 {
        let mut bytes = dicom.clone();
        for _ in 0..1 + next(8) {
            let at = next(bytes.len());
            bytes[at] = next(256) as u8;
        }
        if let Err(e) = parse(&[("fuzz.dcm", &bytes)]) {
            assert!(!e.to_string().is_empty());
        }
    }
    let header_text = String::from_utf8(files.hea.clone()).expect("text header");
    for _ in 0..100 {
        let mut header = header_text.clone().into_bytes();
        let at = next(header.len());
        header[at] = b"0123456789 /()+x:-abc\n"[next(22)];
        let mut atr = files.atr.clone();
        let at = next(atr.len());
        atr[at] = next(256) as u8;
        let dat = &files.dat[..next(files.dat.len())];
        let _ = parse(&[("100.hea", &header), ("100.dat", dat), ("100.atr", &atr)]);
    }
    for _ in 0..100 {
        let mut text = csv.clone().into_bytes();
        let cut = next(text.len().min(20_000));
        text.truncate(cut.max(1));
        let at = next(text.len());
        text[at] = b"0123456789,;-.#=x\n"[next(18)];
        let _ = parse(&[("fuzz.csv", &text)]);
    }
    let muse = fixture("ge-muse/guangxi_teaching_sinus_rhythm.xml");
    for _ in 0..100 {
        let mut bytes = muse[..next(muse.len()).max(1)].to_vec();
        for _ in 0..1 + next(8) {
            let at = next(bytes.len());
            let alphabet = b"<>/=\"0123456789+AZaz &;#x\n";
            bytes[at] = alphabet[next(alphabet.len())];
        }
        match parse(&[("fuzz.xml", &bytes)]) {
            Err(e) => assert!(!e.to_string().is_empty()),
            Ok(r) => assert!(!r.leads.is_empty()),
        }
    }
    // Philips XML: the XLI data (base64 of LZW) corrupted with other base64 characters, so the
    // LZW and delta decoders meet garbage; and the UTF-16 files cut anywhere.
    let philips = fixture("philips/sierraecg_1_03_heartstart_mrx_129DYPRG.xml");
    let tag = philips.windows(16).position(|w| w == b"<parsedwaveforms").expect("waveform element");
    let body_start = philips[tag..].iter().position(|&b| b == b'>').map_or(tag, |p| tag + p + 1);
    let body_end = philips[body_start..].iter().position(|&b| b == b'<').map_or(philips.len(), |p| body_start + p);
    assert!(body_end - body_start > 10_000, "the waveform's base64 text found");
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for _ in 0..100 {
        let mut bytes = philips.clone();
        for _ in 0..1 + next(16) {
            let at = body_start + next(body_end - body_start);
            if !bytes[at].is_ascii_whitespace() {
                bytes[at] = alphabet[next(alphabet.len())];
            }
        }
        match parse(&[("fuzz.xml", &bytes)]) {
            Err(e) => assert!(!e.to_string().is_empty()),
            Ok(r) => assert!(!r.leads.is_empty()),
        }
    }
    let touch = fixture("philips/philipsecg_1_04_pagewriter_touch_demo.xml");
    for _ in 0..30 {
        let cut = next(touch.len()).max(1);
        if let Err(e) = parse(&[("cut.xml", &touch[..cut])]) {
            assert!(!e.to_string().is_empty());
        }
    }
    let err = parse(&[("100.dat", &files.dat[..])]).unwrap_err();
    assert!(err.to_string().contains("the .hea header is missing"), "{err}");
}

/// The folder `$ECG_MITDB_DIR` and the names of the records in it (`NNN` of each `NNN.hea`),
/// sorted; fails when it is not set or holds no record, so an absent data set never passes.
fn mitdb_dir() -> (String, Vec<String>) {
    let dir = std::env::var("ECG_MITDB_DIR").expect("set ECG_MITDB_DIR to a folder of MIT-BIH records");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .expect("ECG_MITDB_DIR readable")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter_map(|n| n.strip_suffix(".hea").map(str::to_string))
        .collect();
    names.sort();
    assert!(!names.is_empty(), "no .hea in {dir}");
    (dir, names)
}

/// A MIT-BIH record of `dir` read from its `.hea`, `.dat` and `.atr`, with its annotations.
fn mitdb_record(dir: &str, name: &str) -> (EcgRecord, Vec<ecg::wfdb::Annotation>) {
    let read = |ext: &str| std::fs::read(format!("{dir}/{name}.{ext}")).expect("record file");
    let (hea, dat, atr) = (read("hea"), read("dat"), read("atr"));
    let record = parse(&[
        (format!("{name}.hea").as_str(), &hea),
        (format!("{name}.dat").as_str(), &dat),
        (format!("{name}.atr").as_str(), &atr),
    ])
    .expect("record parses");
    (record, ecg::wfdb::parse_annotations("atr", &atr).expect("annotations"))
}

/// EC57 beat detection on every MIT-BIH record found in `$ECG_MITDB_DIR` (`NNN.hea`, `NNN.dat`,
/// `NNN.atr`), scored from minute 5, with the ventricular ectopic beats (`V` in the reference)
/// counted apart, and the totals over all of them, the beat classes' too (the ventricular
/// class's sensitivity and positive predictivity over the unpaced records, which must not fall
/// more than half a point under what they reached). The whole records are not redistributed with
/// the project (see `docs/ecg.md`); the test fails when the directory is not given or holds no
/// record, so an absent data set never passes silently, and when one of the records with
/// frequent ventricular ectopy that meet the target (the 119, 200, 208 and 233, and
/// 106, 201, 214, 221, 223 and 228; 100 and 232 too) misses Se or +P 99.5 %; the others are reported
/// (203, of frequent ventricular ectopy too, misses it: see `docs/ecg.md`).
#[test]
#[ignore = "needs MIT-BIH records in $ECG_MITDB_DIR"]
fn qrs_detection_on_the_mitdb_records_in_ecg_mitdb_dir() {
    let (dir, names) = mitdb_dir();
    println!("| record | beats | V beats | TP | FN | FP | Se (%) | +P (%) | V missed | V found as ectopic (%) | normal called ectopic (%) |");
    let mut failures = Vec::new();
    let mut below = Vec::new();
    let (mut all_tp, mut all_missed, mut all_extra) = (0, 0, 0);
    let mut veb = (0usize, 0usize, 0usize);
    for name in names {
        let (record, annotations) = mitdb_record(&dir, &name);
        let fs = record.sample_rate_hz;
        let beats: Vec<(f64, &str)> =
            annotations.iter().filter(|a| a.is_beat()).map(|a| (a.sample as f64 / fs, a.mnemonic())).collect();
        let reference: Vec<f64> = beats.iter().map(|b| b.0).collect();
        let m = analyze(&record);
        let flutter = flutter_episodes(&annotations, fs);
        let (tp, missed, extra) = score_ec57_outside(&reference, &m.r_peaks_s, 300.0, &flutter);
        let se = 100.0 * tp as f64 / (tp + missed) as f64;
        let pp = 100.0 * tp as f64 / (tp + extra) as f64;
        // Ventricular beats: missed ones, and how the classifier labelled the found ones.
        let nearest = |t: f64| {
            let i = m.r_peaks_s.partition_point(|&r| r < t);
            [i.checked_sub(1), Some(i)]
                .into_iter()
                .flatten()
                .filter(|&j| j < m.r_peaks_s.len() && (m.r_peaks_s[j] - t).abs() <= 0.150)
                .min_by(|&a, &b| (m.r_peaks_s[a] - t).abs().total_cmp(&(m.r_peaks_s[b] - t).abs()))
        };
        let scored: Vec<&(f64, &str)> = beats.iter().filter(|b| b.0 >= 300.0).collect();
        let v: Vec<&&(f64, &str)> = scored.iter().filter(|b| b.1 == "V").collect();
        let v_missed = v.iter().filter(|b| nearest(b.0).is_none()).count();
        let v_called =
            v.iter().filter_map(|b| nearest(b.0)).filter(|&j| m.beat_classes[j] == ecg::BeatClass::Ventricular).count();
        let n: Vec<&&(f64, &str)> = scored.iter().filter(|b| matches!(b.1, "N" | "L" | "R" | "e" | "j")).collect();
        let n_called =
            n.iter().filter_map(|b| nearest(b.0)).filter(|&j| m.beat_classes[j] == ecg::BeatClass::Ventricular).count();
        println!(
            "| {name} | {} | {} | {tp} | {missed} | {extra} | {se:.2} | {pp:.2} | {v_missed} | {:.1} | {:.1} |",
            scored.len(),
            v.len(),
            100.0 * v_called as f64 / v.len().max(1) as f64,
            100.0 * n_called as f64 / n.len().max(1) as f64,
        );
        // Ventricular ectopic beats as a class (EC57's VEB: V and E; fusion and unclassifiable
        // beats count neither way), over the beats found, the four paced records left out.
        if !["102", "104", "107", "217"].contains(&name.as_str()) {
            for b in &scored {
                let Some(j) = nearest(b.0) else { continue };
                let called = m.beat_classes[j] == ecg::BeatClass::Ventricular;
                match (b.1, called) {
                    ("V" | "E", true) => veb.0 += 1,
                    ("V" | "E", false) => veb.1 += 1,
                    ("F" | "Q", _) | (_, false) => {}
                    (_, true) => veb.2 += 1,
                }
            }
        }
        if std::env::var_os("ECG_MITDB_VERBOSE").is_some() {
            let missed: Vec<String> =
                scored.iter().filter(|b| nearest(b.0).is_none()).map(|b| format!("{:.2}{}", b.0, b.1)).collect();
            let extra: Vec<String> = m
                .r_peaks_s
                .iter()
                .filter(|&&d| d >= 300.0 && !reference.iter().any(|&r| (r - d).abs() <= 0.150))
                .filter(|&&d| !inside(&flutter, d))
                .map(|d| format!("{d:.2}"))
                .collect();
            println!("{name} missed: {missed:?}\n{name} extra: {extra:?}");
        }
        (all_tp, all_missed, all_extra) = (all_tp + tp, all_missed + missed, all_extra + extra);
        if se < 99.5 || pp < 99.5 {
            let line = format!("{name}: Se {se:.2} %, +P {pp:.2} %");
            const HELD: [&str; 12] =
                ["100", "106", "119", "200", "201", "208", "214", "221", "223", "228", "232", "233"];
            if HELD.contains(&name.as_str()) {
                failures.push(line);
            } else {
                below.push(line);
            }
        }
    }
    println!(
        "| all | {} | | {all_tp} | {all_missed} | {all_extra} | {:.2} | {:.2} | | | |",
        all_tp + all_missed,
        100.0 * all_tp as f64 / (all_tp + all_missed) as f64,
        100.0 * all_tp as f64 / (all_tp + all_extra) as f64
    );
    println!("other records under 99.5 %: {below:?}");
    let (v_tp, v_fn, v_fp) = veb;
    let v_se = 100.0 * v_tp as f64 / (v_tp + v_fn).max(1) as f64;
    let v_pp = 100.0 * v_tp as f64 / (v_tp + v_fp).max(1) as f64;
    println!(
        "ventricular ectopic beats (V, E) among the beats found, the 44 unpaced records: {v_tp} called ventricular, \
         {v_fn} called normal, {v_fp} other beats called ventricular: Se {v_se:.2} %, +P {v_pp:.2} %"
    );
    assert!(failures.is_empty(), "EC57 targets missed: {failures:?}");
    // No target is set for the classes; this holds what they reached (2026-12-06: Se 92.97 %,
    // +P 89.24 % on the whole database), so a change that costs more than half a point of
    // either shows here.
    assert!(v_se >= 92.4 && v_pp >= 88.7, "ventricular class fell: Se {v_se:.2} %, +P {v_pp:.2} %");
}

/// The reference's rhythm episodes whose label starts with `label` (`(AFIB`, `(AFL`): from
/// each rhythm change to that label to the next rhythm change (or the end, `end_s`), in seconds.
fn rhythm_episodes(annotations: &[ecg::wfdb::Annotation], fs: f64, label: &str, end_s: f64) -> Vec<(f64, f64)> {
    let mut episodes = Vec::new();
    let mut open = None;
    for a in annotations.iter().filter(|a| a.mnemonic() == "+") {
        let Some(aux) = a.aux.as_deref() else { continue };
        let t = a.sample as f64 / fs;
        if let Some(start) = open.take() {
            episodes.push((start, t));
        }
        if aux.trim_end_matches(char::from(0)) == label {
            open = Some(t);
        }
    }
    if let Some(start) = open {
        episodes.push((start, end_s));
    }
    episodes
}

/// How much of `a..b` the `episodes` cover, in seconds.
fn covered(episodes: &[(f64, f64)], a: f64, b: f64) -> f64 {
    episodes.iter().map(|&(s, e)| (e.min(b) - s.max(a)).max(0.0)).sum::<f64>() + 0.0
}

/// Atrial fibrillation on every MIT-BIH record in `$ECG_MITDB_DIR`, scored by duration as
/// EC57 scores it: the time inside the episodes of the `possible_atrial_fibrillation` finding
/// against the time the reference calls atrial fibrillation (`(AFIB` to the next rhythm
/// change), over the whole records, once with atrial flutter (`(AFL`) left as not fibrillation
/// and once counted with it. Fails when the directory is missing or either figure falls under
/// what the rule reached when it was chosen (see `docs/ecg.md`). With
/// `$ECG_RHYTHM_WINDOWS` set it also writes every rhythm window's figures there as CSV.
#[test]
#[ignore = "needs MIT-BIH records in $ECG_MITDB_DIR"]
fn atrial_fibrillation_on_the_mitdb_records_in_ecg_mitdb_dir() {
    let (dir, names) = mitdb_dir();
    let out = std::env::var("ECG_RHYTHM_WINDOWS").ok();
    let mut csv = String::from(
        "record,start_s,end_s,beats,normal_beats,rr_normal,irregular,pnn50,rmssd_rel,tpr,atrial,afib,afl\n",
    );
    println!("| record | AF (s) | flutter (s) | flagged (s) | flagged in AF (s) | flagged in flutter (s) | episodes |");
    // (reference AF, reference flutter, flagged, flagged in AF, flagged in flutter), seconds
    let mut total = [0.0f64; 5];
    for name in names {
        let (record, annotations) = mitdb_record(&dir, &name);
        let fs = record.sample_rate_hz;
        let end_s = record.duration_s();
        let afib = rhythm_episodes(&annotations, fs, "(AFIB", end_s);
        let afl = rhythm_episodes(&annotations, fs, "(AFL", end_s);
        let m = analyze(&record);
        let flagged: Vec<(f64, f64)> = m
            .findings
            .iter()
            .filter(|f| f.code == "possible_atrial_fibrillation")
            .flat_map(|f| f.episodes.iter().map(|e| (e.start_s, e.end_s)))
            .collect();
        let row = [
            covered(&afib, 0.0, end_s),
            covered(&afl, 0.0, end_s),
            flagged.iter().map(|(a, b)| b - a).sum::<f64>() + 0.0,
            flagged.iter().map(|&(a, b)| covered(&afib, a, b)).sum::<f64>() + 0.0,
            flagged.iter().map(|&(a, b)| covered(&afl, a, b)).sum::<f64>() + 0.0,
        ];
        if row.iter().any(|v| *v > 0.0) {
            println!(
                "| {name} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} | {} |",
                row[0],
                row[1],
                row[2],
                row[3],
                row[4],
                flagged.len()
            );
        }
        for (t, v) in total.iter_mut().zip(row) {
            *t += v;
        }
        if out.is_some() {
            let peaks: Vec<usize> = m.r_peaks_s.iter().map(|t| (t * fs).round() as usize).collect();
            for w in ecg::measure::rhythm_windows(&record, &peaks, &m.beat_classes) {
                let rr = &w.rr_normal_ms;
                let d: Vec<f64> = rr.windows(2).map(|p| p[1] - p[0]).collect();
                let mean = rr.iter().sum::<f64>() / rr.len().max(1) as f64;
                let pnn50 = d.iter().filter(|x| x.abs() > 50.0).count() as f64 / d.len().max(1) as f64;
                let rmssd = (d.iter().map(|x| x * x).sum::<f64>() / d.len().max(1) as f64).sqrt();
                let turns = rr.windows(3).filter(|t| (t[1] - t[0]) * (t[2] - t[1]) < 0.0).count();
                let tpr = turns as f64 / rr.len().saturating_sub(2).max(1) as f64;
                let span = w.end_s - w.start_s;
                csv.push_str(&format!(
                    "{name},{:.1},{:.1},{},{},{},{},{pnn50:.3},{:.4},{tpr:.3},{},{:.3},{:.3}\n",
                    w.start_s,
                    w.end_s,
                    w.beats,
                    w.normal_beats,
                    rr.len(),
                    w.irregular.map_or(String::new(), |b| b.to_string()),
                    rmssd / mean.max(1.0),
                    w.atrial_consistency.map_or(String::new(), |v| format!("{v:.3}")),
                    covered(&afib, w.start_s, w.end_s) / span,
                    covered(&afl, w.start_s, w.end_s) / span,
                ));
            }
        }
    }
    if let Some(out) = out {
        std::fs::write(&out, csv).expect("CSV written");
    }
    let [af, flutter, flagged, in_af, in_flutter] = total;
    let (se, pp) = (100.0 * in_af / af, 100.0 * in_af / flagged);
    let (se_with, pp_with) = (100.0 * (in_af + in_flutter) / (af + flutter), 100.0 * (in_af + in_flutter) / flagged);
    println!(
        "| all | {af:.0} | {flutter:.0} | {flagged:.0} | {in_af:.0} | {in_flutter:.0} | |\n\
         atrial fibrillation by duration: Se {se:.1} %, +P {pp:.1} %; with flutter counted as fibrillation: \
         Se {se_with:.1} %, +P {pp_with:.1} %"
    );
    // What the rule reached when it was chosen (2026-12-07: Se 94.1 %, +P 82.8 %; with flutter
    // 93.5 % and 90.4 %), less a point.
    assert!(se >= 93.1 && pp >= 81.8, "atrial fibrillation fell: Se {se:.1} %, +P {pp:.1} %");
    assert!(se_with >= 92.5 && pp_with >= 89.4, "with flutter: Se {se_with:.1} %, +P {pp_with:.1} %");
}

/// The sets of cart-annotated recordings the interval agreement is reported on, kept apart.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Set {
    /// The delineation's rules and parameters were chosen on these eight.
    Tuning,
    /// BRAVEHEART's four GE MUSE exports: held out when they were added, then looked at (the
    /// pacing-spike rule was chosen on `braveheart_example4.xml`), so no longer held out.
    Braveheart,
    /// Found after the rules of the BRAVEHEART set, measured once with them (PR +61.7 ± 48.2,
    /// QRS +3.3 ± 3.1, QT −16.7 ± 1.2 ms); the lead-outlier rule of the global P onset and T end
    /// was then chosen with their P onsets in view, so they are no longer held out.
    New,
    /// Three GE MAC55 recordings of a patient simulator (musePHI's examples): found before the
    /// lead-outlier rule and measured once with the rules before it (PR +1.0 ± 0.0, QRS
    /// −1.3 ± 1.2, QT −5.3 ± 1.2 ms); the rule was evaluated on them too (it moves none of them).
    MusePhi,
}

impl Set {
    const ALL: [Set; 4] = [Set::Tuning, Set::Braveheart, Set::New, Set::MusePhi];

    fn label(self) -> &'static str {
        match self {
            Set::Tuning => "tuning",
            Set::Braveheart => "BRAVEHEART",
            Set::New => "new",
            Set::MusePhi => "musePHI (MAC55 simulator)",
        }
    }
}

/// The real 12-lead recordings that carry their cart's own measurements: (fixture, cart, set).
const CART_ANNOTATED: [(&str, &str, Set); 18] = [
    ("waveform_ecg.dcm", "Mortara ELI 250", Set::Tuning),
    ("ge-muse/guangxi_teaching_sinus_rhythm.xml", "GE MAC (12SL v241), MUSE XML", Set::Tuning),
    ("ge-dicom/ge_mac55_atrial_fibrillation.dcm", "GE MAC55", Set::Tuning),
    ("philips/philipsecg_1_04_pagewriter_touch_demo.xml", "Philips PageWriter Touch", Set::Tuning),
    ("philips/philipsecg_1_04_pagewriter_touch_ad4d3d80.xml", "Philips PageWriter Touch", Set::Tuning),
    ("philips/philipsecg_1_04_01_pagewriter_tc_2020-5-18.xml", "Philips PageWriter TC", Set::Tuning),
    ("philips/sierraecg_1_03_heartstart_mrx_129DYPRG.xml", "Philips HeartStart MRx", Set::Tuning),
    ("philips/sierraecg_1_03_heartstart_mrx_129DYNRG.xml", "Philips HeartStart MRx", Set::Tuning),
    ("ge-muse-braveheart/braveheart_example1.xml", "GE (12SL), MUSE 9.0.7 XML", Set::Braveheart),
    ("ge-muse-braveheart/braveheart_example2.xml", "GE (12SL), MUSE 9.0.7 XML", Set::Braveheart),
    ("ge-muse-braveheart/braveheart_example3.xml", "GE (12SL), MUSE 9.0.7 XML", Set::Braveheart),
    ("ge-muse-braveheart/braveheart_example4.xml", "GE (12SL), MUSE 9.0.7 XML", Set::Braveheart),
    ("ge-muse-egm/egm_muse_sinus.xml", "GE MV360 (12SL v243), MUSE 9.0.10 XML", Set::New),
    ("aecg/hl7_example_aecg_mortara_eli250.xml", "Mortara ELI 250 (v5.3), HL7 aECG", Set::New),
    ("ge-cardiosoft/ecgprocess_example_xml1_cardiosoft.csv", "GE CardioSoft V6.73 (XML → CSV)", Set::New),
    ("ge-muse-musephi/musephi_mac55_muse_ecg1.xml", "GE MAC55 (12SL v241), MUSE 9.0.9 XML", Set::MusePhi),
    ("ge-muse-musephi/musephi_mac55_muse_ecg2.xml", "GE MAC55 (12SL v241), MUSE 9.0.9 XML", Set::MusePhi),
    ("ge-muse-musephi/musephi_mac55_muse_ecg3.xml", "GE MAC55 (12SL v241), MUSE 9.0.9 XML", Set::MusePhi),
];

/// The cart's measurements of a recording: from the file, but for the CardioSoft recording,
/// converted to CSV (which has no place for them), whose values are those of its XML
/// (`RestingECGMeasurements`, written as a comment into the CSV by `make_csv.py`).
fn cart_measurements(path: &str, record: &EcgRecord) -> ecg::DeviceMeasurements {
    if path.ends_with("_cardiosoft.csv") {
        return ecg::DeviceMeasurements {
            heart_rate_bpm: Some(50.0),
            rr_ms: Some(1202.0),
            pr_ms: Some(174.0),
            qrs_ms: Some(92.0),
            qt_ms: Some(440.0),
            qtc_ms: Some(401.0),
            ..Default::default()
        };
    }
    record.device_measurements.clone().expect("cart measurements")
}

/// Mean and sample SD of the differences.
fn mean_sd(d: &[f64]) -> (f64, f64) {
    let n = d.len() as f64;
    let mean = d.iter().sum::<f64>() / n;
    let sd = (d.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0).max(1.0)).sqrt();
    (mean, sd)
}

#[test]
fn intervals_agree_with_the_carts_on_every_annotated_file() {
    println!("| recording | cart | set | beats (ours / cart) | HR | PR | QRS | QT | QTc (Bazett) |");
    const NAMES: [&str; 5] = ["HR", "PR", "QRS", "QT", "QTc"];
    // Differences (ours − cart) per quantity, per set.
    let mut differences: [[Vec<f64>; 5]; 4] = Default::default();
    let mut cart_gives: [[usize; 5]; 4] = Default::default();
    for (path, cart_name, set) in CART_ANNOTATED {
        let bytes = fixture(path);
        let record = parse(&[(path, &bytes)]).expect("parses");
        let cart = cart_measurements(path, &record);
        let m = analyze(&record);
        let rows = [
            (m.heart_rate_bpm, cart.heart_rate_bpm.or(cart.rr_ms.map(|rr| (60_000.0 / rr).round()))),
            (m.pr_ms, cart.pr_ms),
            (m.qrs_ms, cart.qrs_ms),
            (m.qt_ms, cart.qt_ms),
            (m.qtc_bazett_ms, cart.qtc_ms),
        ];
        let cell = |(ours, theirs): (Option<f64>, Option<f64>)| match (ours, theirs) {
            (Some(o), Some(t)) => format!("{o} / {t} ({:+})", o - t),
            (o, t) => {
                format!("{} / {}", o.map_or("–".into(), |v| v.to_string()), t.map_or("–".into(), |v| v.to_string()))
            }
        };
        let cart_beats = if cart.beats_s.is_empty() { "–".to_string() } else { cart.beats_s.len().to_string() };
        println!(
            "| {path} | {cart_name} | {} | {} / {cart_beats} | {} | {} | {} | {} | {} |",
            set.label(),
            m.beat_count,
            cell(rows[0]),
            cell(rows[1]),
            cell(rows[2]),
            cell(rows[3]),
            cell(rows[4])
        );
        if path.ends_with("129DYNRG.xml") {
            // Acute ST elevation: the QRS offset must stop where the ST segment begins (it
            // ran to 230 ms against the cart's 97 before the offset was bounded by the ST slope).
            let (ours, cart) = (m.qrs_ms.expect("QRS"), cart.qrs_ms.expect("cart QRS"));
            assert!((ours - cart).abs() <= 20.0, "QRS under ST elevation: {ours} ms, the cart {cart} ms");
        }
        // Pacemaker stimulus artefacts: one before every beat of the paced recording; on the
        // others no more than a few stray ones (the PageWriter files have two or three sharp
        // artefacts in their last 0.4 s, bridged to no effect on their intervals).
        let independent: Vec<&[i32]> = ["I", "II", "V1", "V2", "V3", "V4", "V5", "V6"]
            .iter()
            .filter_map(|n| record.leads.iter().find(|l| l.name == *n))
            .map(|l| l.samples_uv.as_slice())
            .collect();
        let spikes = ecg::measure::pacing_spikes(&independent, record.sample_rate_hz);
        if path.ends_with("braveheart_example4.xml") {
            assert_eq!(spikes.len(), m.beat_count, "one stimulus before each beat: {spikes:?}");
        } else {
            assert!(2 * spikes.len() < m.beat_count, "pacing spikes found in {path}: {spikes:?}");
        }
        if path.ends_with("braveheart_example4.xml") {
            // A paced rhythm (a stimulus artefact before every QRS): the QRS must not start
            // before the stimulus (it started 45 ms before the cart's onset, QRS 170 against
            // 128 ms, before the spikes were bridged).
            let (ours, cart) = (m.qrs_ms.expect("QRS"), cart.qrs_ms.expect("cart QRS"));
            assert!((ours - cart).abs() <= 20.0, "QRS of paced beats: {ours} ms, the cart {cart} ms");
        }
        let k = Set::ALL.iter().position(|s| *s == set).unwrap_or(0);
        for (q, (ours, theirs)) in rows.into_iter().enumerate() {
            if theirs.is_some() {
                cart_gives[k][q] += 1;
            }
            if let (Some(o), Some(t)) = (ours, theirs) {
                differences[k][q].push(o - t);
            }
        }
    }
    println!("| quantity | set | n | mean difference (ms) | SD (ms) |");
    for (k, set) in Set::ALL.iter().enumerate() {
        for (name, d) in NAMES.iter().zip(&differences[k]) {
            let (mean, sd) = mean_sd(d);
            println!("| {name} | {} | {} | {mean:+.1} | {sd:.1} |", set.label(), d.len());
        }
    }
    for (name, q) in NAMES.iter().zip(0..) {
        let all: Vec<f64> = differences.iter().flat_map(|set| set[q].iter().copied()).collect();
        let (mean, sd) = mean_sd(&all);
        println!("| {name} | all | {} | {mean:+.1} | {sd:.1} |", all.len());
    }
    // Every file gives PR, QRS and QT where its cart does (the cart in atrial fibrillation
    // gives no PR) ...
    for (k, set) in Set::ALL.iter().enumerate() {
        for q in 1..=3 {
            assert_eq!(
                differences[k][q].len(),
                cart_gives[k][q],
                "{} on every {} file whose cart gives one",
                NAMES[q],
                set.label()
            );
        }
    }
    // ... the cart's values are read from the aECG's annotations ...
    let hl7 = parse(&[("hl7.xml", &fixture("aecg/hl7_example_aecg_mortara_eli250.xml"))]).expect("parses");
    let cart = hl7.device_measurements.expect("the aECG's annotations");
    assert_eq!(
        (cart.pr_ms, cart.qrs_ms, cart.qt_ms, cart.qtc_ms),
        (Some(148.0), Some(120.0), Some(420.0), Some(443.0))
    );
    // ... no P onset is taken on the slow rise of the T–P segment (PR was 80 and 98 ms long on
    // the CardioSoft and EGM files before the global P onset left out leads starting more than
    // 40 ms before the median lead) ...
    for (k, set) in Set::ALL.iter().enumerate() {
        for d in &differences[k][1] {
            assert!(d.abs() <= 40.0, "PR {d:+} ms from the cart's on a {} file", set.label());
        }
    }
    // ... and the targets (|mean| ≤ 10 ms, SD ≤ 15 ms) are met for PR, QRS and QT on the
    // tuning set. The other sets are reported, not asserted on.
    for q in 1..=3 {
        let (mean, sd) = mean_sd(&differences[0][q]);
        assert!(mean.abs() <= 10.0 && sd <= 15.0, "{} on the tuning set: {mean:+.1} ± {sd:.1} ms", NAMES[q]);
    }
}

/// Sums of each lead (I, II, III, aVR, aVL, aVF, V1–V6) in the files' units (5 µV), as the
/// reference decoder (`sierraecg` 0.4.0 from PyPI, the MIT-licensed decoder of sierra-ecg-tools)
/// reads them: the XLI decoder and the limb-lead rebuild must give every sample the same.
const PHILIPS_REFERENCE: [(&str, [i64; 12]); 5] = [
    (
        "philips/sierraecg_1_03_heartstart_mrx_129DYPRG.xml",
        [20815, 21762, 21953, 20324, 18160, 20223, 20708, 22348, 22033, 21864, 21472, 21359],
    ),
    (
        "philips/sierraecg_1_03_heartstart_mrx_129DYNRG.xml",
        [18917, 25371, 25345, 18754, 14805, 24603, 15222, 12285, 6352, 12225, 18775, 21597],
    ),
    (
        "philips/philipsecg_1_04_pagewriter_touch_demo.xml",
        [11652, -116199, -107851, 93587, 78482, -114801, 22116, 20080, 67419, -54376, 39974, 36949],
    ),
    (
        "philips/philipsecg_1_04_pagewriter_touch_ad4d3d80.xml",
        [53492, 87550, 52680, -29894, 19203, 69430, -367857, 1541337, -9912933, 776864, -54635, 184009],
    ),
    (
        "philips/philipsecg_1_04_01_pagewriter_tc_2020-5-18.xml",
        [-20764, 523669, 564433, -210111, -273914, 542951, 7131, -51484, -120816, -81761, -47570, -49970],
    ),
];

#[test]
fn philips_xml_exports_decode_like_the_reference_decoder() {
    for (path, sums) in PHILIPS_REFERENCE {
        let bytes = fixture(path);
        assert_eq!(detect_format("ecg.xml", &bytes), Some(EcgFormat::PhilipsXml), "{path}");
        let record = parse(&[("ecg.xml", &bytes)]).expect("Philips XML parses");
        assert_eq!(record.source_format, EcgFormat::PhilipsXml);
        assert_eq!(record.sample_rate_hz, 500.0);
        assert_eq!(record.samples_per_lead(), 5500, "{path}: 11 s at 500 Hz");
        assert_eq!(
            record.leads.iter().map(|l| l.name.as_str()).collect::<Vec<_>>(),
            ["I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6"]
        );
        for (lead, sum) in record.leads.iter().zip(sums) {
            let ours: i64 = lead.samples_uv.iter().map(|&v| i64::from(v)).sum();
            assert_eq!(ours, sum * 5, "{path}, lead {}", lead.name);
        }
    }
    // The first samples of one file, lead by lead (units of 5 µV in the reference decoder).
    let demo = parse(&[("x.xml", &fixture("philips/philipsecg_1_04_pagewriter_touch_demo.xml"))]).expect("parses");
    let first: Vec<[i32; 3]> = demo.leads.iter().map(|l| [0, 1, 2].map(|k| l.samples_uv[k] / 5)).collect();
    assert_eq!(
        first,
        [
            [33, 33, 30],
            [38, 38, 34],
            [5, 5, 4],
            [-35, -35, -32],
            [14, 14, 13],
            [22, 22, 19],
            [19, 18, 17],
            [117, 116, 115],
            [217, 215, 212],
            [146, 145, 142],
            [106, 105, 103],
            [79, 79, 78]
        ]
    );
    assert_eq!(demo.acquisition_time.as_deref(), Some("2010-01-19T15:19:22"));
    assert_eq!(demo.device.as_deref(), Some("Philips PageWriter Touch"));
    let cart = demo.device_measurements.clone().expect("cart measurements");
    assert_eq!((cart.heart_rate_bpm, cart.rr_ms, cart.atrial_rate_bpm), (Some(84.0), Some(714.0), Some(77.0)));
    assert_eq!((cart.pr_ms, cart.qrs_ms, cart.qt_ms, cart.qtc_ms), (Some(144.0), Some(84.0), Some(352.0), Some(417.0)));
    assert_eq!((cart.p_axis_deg, cart.qrs_axis_deg, cart.t_axis_deg), (Some(81.0), Some(78.0), Some(67.0)));
    assert_eq!(cart.statements.len(), 3);
    assert!(cart.statements[0].starts_with("SINUS RHYTHM"), "{:?}", cart.statements);
    let m = analyze(&demo);
    assert!((m.heart_rate_bpm.unwrap() - 84.0).abs() <= 2.0, "{:?}", m.heart_rate_bpm);

    // SierraECG 1.03 (a HeartStart MRx): no interpretation; the cart's cross-lead means.
    let mrx = parse(&[("x.xml", &fixture("philips/sierraecg_1_03_heartstart_mrx_129DYPRG.xml"))]).expect("parses");
    let cart = mrx.device_measurements.clone().expect("cart measurements");
    assert_eq!(
        (cart.heart_rate_bpm, cart.pr_ms, cart.qrs_ms, cart.qt_ms),
        (Some(41.0), Some(151.0), Some(135.0), Some(476.0))
    );
    assert_eq!(mrx.device.as_deref(), Some("Philips HeartstartMRx"));
}

/// The same PageWriter recording as the cart's XML and as an HL7 aECG written by Philips's own
/// converter: our XLI decoding of the one and our aECG reading of the other agree sample for
/// sample within the converter's rounding (it differs from the XML by up to 4 units).
#[test]
fn a_philips_recording_reads_the_same_from_its_xml_and_its_aecg_conversion() {
    let xml = parse(&[("x.xml", &fixture("philips/philipsecg_1_04_pagewriter_touch_ad4d3d80.xml"))]).expect("XML");
    let bytes = fixture("aecg/philips_ad4d3d80_converted_aecg.xml");
    assert_eq!(detect_format("x.xml", &bytes), Some(EcgFormat::HL7aECG));
    let aecg = parse(&[("x.xml", &bytes)]).expect("aECG parses");
    assert_eq!(aecg.sample_rate_hz, 500.0);
    assert_eq!(aecg.leads.len(), 12);
    for (a, b) in xml.leads.iter().zip(&aecg.leads) {
        assert_eq!(a.name, b.name);
        assert_eq!(a.samples_uv.len(), b.samples_uv.len(), "lead {}", a.name);
        let diffs: Vec<i32> = a.samples_uv.iter().zip(&b.samples_uv).map(|(x, y)| (x - y).abs()).collect();
        let worst = diffs.iter().copied().max().unwrap_or(0);
        let mean = diffs.iter().map(|&d| f64::from(d)).sum::<f64>() / diffs.len() as f64;
        assert!(worst <= 20, "lead {}: {worst} µV apart", a.name);
        assert!(mean <= 5.0, "lead {}: {mean:.1} µV apart on average", a.name);
    }
    // The converter wrote the cart's global measurements as annotations: they are read too.
    let (x, a) = (xml.device_measurements.expect("XML cart"), aecg.device_measurements.expect("aECG cart"));
    assert_eq!((a.pr_ms, a.qrs_ms, a.qt_ms, a.heart_rate_bpm), (x.pr_ms, x.qrs_ms, x.qt_ms, x.heart_rate_bpm));
    assert_eq!(a.rr_ms, Some(1463.0));
}

#[test]
fn a_ge_muse_xml_export_reads_with_its_cart_measurements() {
    let bytes = fixture("ge-muse/guangxi_teaching_sinus_rhythm.xml");
    assert_eq!(detect_format("export.xml", &bytes), Some(EcgFormat::GeMuseXml));
    let record = parse(&[("export.xml", &bytes)]).expect("MUSE XML parses");
    assert_eq!(record.source_format, EcgFormat::GeMuseXml);
    assert_eq!(record.sample_rate_hz, 500.0);
    assert_eq!(record.samples_per_lead(), 5000);
    assert_eq!(
        record.leads.iter().map(|l| l.name.as_str()).collect::<Vec<_>>(),
        ["I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6"]
    );
    assert_eq!(record.acquisition_time.as_deref(), Some("2024-01-01T10:35:17"));
    assert_eq!(record.device.as_deref(), Some("GE Healthcare MAC P"));
    let cart = record.device_measurements.clone().expect("cart measurements");
    assert_eq!(cart.heart_rate_bpm, Some(97.0));
    assert_eq!((cart.pr_ms, cart.qrs_ms, cart.qt_ms, cart.qtc_ms), (Some(122.0), Some(74.0), Some(328.0), Some(417.0)));
    assert_eq!((cart.p_axis_deg, cart.qrs_axis_deg, cart.t_axis_deg), (Some(31.0), Some(63.0), Some(49.0)));
    assert_eq!(cart.rr_ms, Some(616.0));
    assert_eq!(cart.statements.len(), 2);
    // The cart's QRS times (QRSTimesTypes) are our beats.
    assert_eq!(cart.beats_s.len(), 16);
    let m = analyze(&record);
    assert_eq!(m.beat_count, 16);
    for (ours, theirs) in m.r_peaks_s.iter().zip(&cart.beats_s) {
        assert!((ours - theirs).abs() <= 0.040, "R peak {ours} s vs the cart's QRS time {theirs} s");
    }
    assert_eq!(m.ventricular_ectopic_beats, 0);
    assert!(m.findings.is_empty(), "{:?}", m.findings);
}

#[test]
fn dicom_cart_measurements_coded_with_mdc_codes_are_read() {
    // Written by ecg2dcm (pydicom) from the MUSE XML above: global measurements coded with
    // MDC codes (2:15872 PR, 2:16156 QRS, 2:16160 QT, 2:15876 QTc, 2:16016 ventricular rate).
    let bytes = fixture("ge-dicom/guangxi_teaching_sinus_rhythm.dcm");
    let record = parse(&[("ecg.dcm", &bytes)]).expect("DICOM parses");
    let cart = record.device_measurements.clone().expect("cart measurements");
    assert_eq!(cart.heart_rate_bpm, Some(97.0));
    assert_eq!(cart.atrial_rate_bpm, Some(97.0));
    assert_eq!((cart.pr_ms, cart.qrs_ms, cart.qt_ms, cart.qtc_ms), (Some(122.0), Some(74.0), Some(328.0), Some(417.0)));
    assert_eq!((cart.p_axis_deg, cart.qrs_axis_deg, cart.t_axis_deg), (Some(31.0), Some(63.0), Some(49.0)));
    // Same recording as the MUSE export: same leads, same measurements of ours.
    let muse = parse(&[("x.xml", &fixture("ge-muse/guangxi_teaching_sinus_rhythm.xml"))]).expect("MUSE");
    assert_eq!(record.leads.len(), 12);
    for (a, b) in record.leads.iter().zip(&muse.leads) {
        assert_eq!(a.name, b.name);
        let worst = a.samples_uv.iter().zip(&b.samples_uv).map(|(x, y)| (x - y).abs()).max().unwrap_or(0);
        assert!(worst <= 5, "lead {}: {worst} µV apart", a.name);
    }

    // Generated with pydicom by generated/make_coded_dicom.py: implicit VR, the concept
    // meanings replaced by Chinese wording or left out, so only the codes (MDC, LOINC) can tell.
    let bytes = fixture("generated/coded_measurements_implicit_vr.dcm");
    let record = parse(&[("ecg.dcm", &bytes)]).expect("generated DICOM parses");
    let cart = record.device_measurements.clone().expect("cart measurements");
    assert_eq!(cart.heart_rate_bpm, Some(97.0));
    assert_eq!((cart.pr_ms, cart.qrs_ms, cart.qt_ms, cart.qtc_ms), (Some(122.0), Some(74.0), Some(328.0), Some(417.0)));
    assert_eq!(cart.qrs_axis_deg, Some(63.0));
}

#[test]
fn a_ge_dicom_with_scpecg_codes_and_atrial_fibrillation_is_flagged() {
    let bytes = fixture("ge-dicom/ge_mac55_atrial_fibrillation.dcm");
    let record = parse(&[("af.dcm", &bytes)]).expect("DICOM parses");
    let cart = record.device_measurements.clone().expect("cart measurements");
    assert_eq!(cart.heart_rate_bpm, Some(81.0));
    assert_eq!(cart.pr_ms, None, "the cart writes PR 0: not measured");
    assert_eq!((cart.qrs_ms, cart.qt_ms, cart.qtc_ms), (Some(92.0), Some(378.0), Some(439.0)));
    assert!(cart.statements.iter().any(|s| s == "ATRIAL FIBRILLATION"));
    let m = analyze(&record);
    assert_eq!(m.pr_ms, None, "no P wave in atrial fibrillation");
    let codes: Vec<&str> = m.findings.iter().map(|f| f.code.as_str()).collect();
    assert_eq!(codes, ["possible_atrial_fibrillation"]);
    assert!(m.findings.iter().all(|f| f.computer_assisted && f.text.contains("Computer-assisted")));

    // The sinus rhythm recordings are not flagged.
    for path in ["waveform_ecg.dcm", "ge-dicom/ge_mv360.dcm"] {
        let m = analyze(&parse(&[(path, &fixture(path))]).expect("parses"));
        assert!(m.findings.is_empty(), "{path}: {:?}", m.findings);
    }
}

/// One wave annotated on one lead of a LUDB record: onset, peak and offset in samples.
#[derive(Debug, Clone, Copy)]
struct Wave {
    onset: u64,
    peak: u64,
    offset: u64,
}

/// The P, QRS and T waves of one lead's LUDB annotation file (`(` onset, `p`/`N`/`t` peak,
/// `)` offset). A peak without its onset or offset is left out.
fn ludb_waves(annotations: &[ecg::wfdb::Annotation]) -> [Vec<Wave>; 3] {
    let mut waves: [Vec<Wave>; 3] = Default::default();
    for (i, a) in annotations.iter().enumerate() {
        let kind = match a.mnemonic() {
            "p" => 0,
            "N" => 1,
            "t" => 2,
            _ => continue,
        };
        let onset = i.checked_sub(1).map(|j| &annotations[j]).filter(|b| b.mnemonic() == "(");
        let offset = annotations.get(i + 1).filter(|b| b.mnemonic() == ")");
        if let (Some(on), Some(off)) = (onset, offset) {
            waves[kind].push(Wave { onset: on.sample, peak: a.sample, offset: off.sample });
        }
    }
    waves
}

/// The cardiologists' global intervals of a LUDB record (ms), from the per-lead annotations:
/// for each beat, the P and QRS onsets and the QRS offset and T end over the leads that
/// annotate them (the earliest onsets and latest ends, the CSE / IEC 60601-2-25 global
/// convention, or the median lead's), then the median over the annotated beats. The outermost
/// leads of a manual delineation carry each lead's own placement error (a cardiologist marks
/// each lead alone), so the two conventions bracket a global reading. Beats are the QRS peaks
/// of the lead annotating the most of them; a lead's wave belongs to a beat when its QRS peak
/// is within 80 ms, its P peak before the QRS onset and after the previous beat, its T peak
/// after the QRS and before the next beat.
fn ludb_reference(leads: &[[Vec<Wave>; 3]], fs: f64, convention: LudbConvention) -> [Option<f64>; 3] {
    let ms = |samples: f64| samples * 1000.0 / fs;
    let Some(anchor) = leads.iter().max_by_key(|l| l[1].len()) else {
        return [None; 3];
    };
    let near = (0.080 * fs) as u64;
    let mut per_quantity: [Vec<f64>; 3] = Default::default();
    for (b, r) in anchor[1].iter().enumerate() {
        let previous = b.checked_sub(1).map(|p| anchor[1][p].peak).unwrap_or(0);
        let next = anchor[1].get(b + 1).map(|n| n.peak).unwrap_or(u64::MAX);
        let (mut p_ons, mut q_ons, mut q_offs, mut t_ends) = (vec![], vec![], vec![], vec![]);
        for lead in leads {
            let Some(qrs) = lead[1].iter().find(|w| w.peak.abs_diff(r.peak) <= near) else {
                continue;
            };
            q_ons.push(qrs.onset);
            q_offs.push(qrs.offset);
            if let Some(p) = lead[0].iter().find(|w| w.peak > previous && w.offset <= qrs.onset) {
                p_ons.push(p.onset);
            }
            if let Some(t) = lead[2].iter().find(|w| w.peak > qrs.offset && w.peak < next) {
                t_ends.push(t.offset);
            }
        }
        let pick = |mut v: Vec<u64>, earliest: bool, none: u64| -> u64 {
            if v.is_empty() {
                return none;
            }
            v.sort_unstable();
            if convention == LudbConvention::MedianLead {
                v[v.len() / 2]
            } else if earliest {
                v[0]
            } else {
                v[v.len() - 1]
            }
        };
        let (p_on, q_on, q_off, t_end) =
            (pick(p_ons, true, u64::MAX), pick(q_ons, true, u64::MAX), pick(q_offs, false, 0), pick(t_ends, false, 0));
        if q_on == u64::MAX {
            continue;
        }
        if p_on < q_on {
            per_quantity[0].push(ms((q_on - p_on) as f64));
        }
        per_quantity[1].push(ms((q_off - q_on) as f64));
        if t_end > q_off {
            per_quantity[2].push(ms((t_end - q_on) as f64));
        }
    }
    per_quantity.map(|mut v| {
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        let n = v.len();
        Some(if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 })
    })
}

/// Where LUDB's global intervals are taken from the leads' annotations (see [`ludb_reference`]).
#[derive(Debug, Clone, Copy, PartialEq)]
enum LudbConvention {
    /// The earliest onset and the latest end over the leads (the CSE convention).
    Outermost,
    /// The median lead's onset and end.
    MedianLead,
}

/// One LUDB record measured and its cardiologists' intervals under both conventions.
struct LudbRow {
    sinus: bool,
    fibrillation: bool,
    flagged_fibrillation: bool,
    /// The header names pacing by a device ("wandering atrial pacemaker" is a rhythm, not one).
    paced: bool,
    flagged_paced: bool,
    /// PR, QRS, QT (ms).
    ours: [Option<f64>; 3],
    outermost: [Option<f64>; 3],
    median_lead: [Option<f64>; 3],
}

/// Reads LUDB record `name` from `dir` (its header, signal and twelve annotation files).
fn ludb_row(dir: &str, name: &str) -> LudbRow {
    const LEADS: [&str; 12] = ["i", "ii", "iii", "avr", "avl", "avf", "v1", "v2", "v3", "v4", "v5", "v6"];
    let read = |ext: &str| std::fs::read(format!("{dir}/{name}.{ext}")).expect("record file");
    let (hea, dat) = (read("hea"), read("dat"));
    let record = parse(&[(format!("{name}.hea").as_str(), &hea), (format!("{name}.dat").as_str(), &dat)])
        .expect("record parses");
    let header = String::from_utf8_lossy(&hea).to_lowercase();
    let leads: Vec<[Vec<Wave>; 3]> = LEADS
        .iter()
        .map(|lead| ludb_waves(&ecg::wfdb::parse_annotations(lead, &read(lead)).expect("annotations")))
        .collect();
    let m = analyze(&record);
    LudbRow {
        sinus: header.contains("rhythm: sinus") && !header.contains("pacing") && !header.contains("pacemaker"),
        fibrillation: header.contains("rhythm: atrial fibrillation"),
        flagged_fibrillation: m.findings.iter().any(|f| f.code == "possible_atrial_fibrillation"),
        paced: header.contains("pacing"),
        flagged_paced: m.findings.iter().any(|f| f.code == "paced_rhythm"),
        ours: [m.pr_ms, m.qrs_ms, m.qt_ms],
        outermost: ludb_reference(&leads, record.sample_rate_hz, LudbConvention::Outermost),
        median_lead: ludb_reference(&leads, record.sample_rate_hz, LudbConvention::MedianLead),
    }
}

/// `$ECG_LUDB_DIR` and the numbers of the LUDB records in it, in order.
fn ludb_dir() -> (String, Vec<u32>) {
    let dir = std::env::var("ECG_LUDB_DIR").expect("set ECG_LUDB_DIR to LUDB's data folder");
    let mut names: Vec<u32> = std::fs::read_dir(&dir)
        .expect("ECG_LUDB_DIR readable")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter_map(|n| n.strip_suffix(".hea")?.parse().ok())
        .collect();
    names.sort();
    assert!(!names.is_empty(), "no .hea in {dir}");
    (dir, names)
}

/// The atrial consistency that long recordings are judged by (`docs/ecg.md`), on every LUDB
/// record in `$ECG_LUDB_DIR` (10 s, 12 leads, 500 Hz: a database the threshold was not chosen
/// on), by the rhythm its cardiologists give: how many records of each rhythm fall under the
/// threshold. The long-recording rule is not applied to these resting ECGs; this shows how the
/// measure and its threshold carry to another kind of recording. Fails when the directory is
/// missing, or when either count moves the wrong way from when this was first measured.
#[test]
#[ignore = "needs the LUDB records in $ECG_LUDB_DIR"]
fn atrial_consistency_on_the_ludb_records_in_ecg_ludb_dir() {
    let (dir, names) = ludb_dir();
    // rhythm -> (records, under the threshold, values)
    let mut by_rhythm: std::collections::BTreeMap<String, (usize, usize, Vec<f64>)> = Default::default();
    for name in names {
        let read = |ext: &str| std::fs::read(format!("{dir}/{name}.{ext}")).expect("record file");
        let (hea, dat) = (read("hea"), read("dat"));
        let record = parse(&[(format!("{name}.hea").as_str(), &hea), (format!("{name}.dat").as_str(), &dat)])
            .expect("record parses");
        let header = String::from_utf8_lossy(&hea).to_lowercase();
        let rhythm = header
            .lines()
            .find_map(|l| l.strip_prefix("#rhythm:"))
            .map(|r| r.trim().trim_end_matches('.').to_string())
            .unwrap_or_default();
        let rhythm = if header.contains("pacing") { format!("{rhythm} (paced)") } else { rhythm };
        let m = analyze(&record);
        let fs = record.sample_rate_hz;
        let peaks: Vec<usize> = m.r_peaks_s.iter().map(|t| (t * fs).round() as usize).collect();
        let Some(c) = ecg::measure::recording_atrial_consistency(&record, &peaks, &m.beat_classes) else { continue };
        let entry = by_rhythm.entry(rhythm).or_default();
        entry.0 += 1;
        entry.1 += usize::from(c < ecg::measure::AF_ATRIAL_CONSISTENCY);
        entry.2.push(c);
    }
    println!(
        "| rhythm | records | under {} | atrial consistency (lowest, median, highest) |",
        ecg::measure::AF_ATRIAL_CONSISTENCY
    );
    for (rhythm, (n, under, mut values)) in by_rhythm.clone() {
        values.sort_by(f64::total_cmp);
        println!(
            "| {rhythm} | {n} | {under} | {:.2}, {:.2}, {:.2} |",
            values[0],
            values[values.len() / 2],
            values[values.len() - 1]
        );
    }
    let af = &by_rhythm["atrial fibrillation"];
    let sinus: (usize, usize) = by_rhythm
        .iter()
        .filter(|(r, _)| r.starts_with("sinus") || r.starts_with("irregular sinus"))
        .fold((0, 0), |(n, u), (_, v)| (n + v.0, u + v.1));
    println!(
        "atrial fibrillation under the threshold: {} of {}; sinus rhythms: {} of {}",
        af.1, af.0, sinus.1, sinus.0
    );
    // As first measured (2026-12-07): 2 of 12 unpaced fibrillation records and 1 of 182 sinus
    // rhythms (a paced one) under the threshold. The threshold was read off 30 s windows of two
    // leads at 360 Hz; on ten seconds of twelve leads fibrillation mostly scores above it
    // (median 0.58), while sinus rhythms stay far above (0.80 and more, paced ones aside).
    assert!(af.1 >= 2, "fibrillation under the threshold: {} of {}", af.1, af.0);
    assert!(sinus.1 * 100 <= sinus.0, "sinus rhythms under the threshold: {} of {}", sinus.1, sinus.0);
}

/// The LUDB records kept in the fixtures (ODC-By 1.0, see `tests/fixtures/ecg/README.md`):
/// three sinus rhythms, left bundle branch block with acute ST elevation, ventricular pacing,
/// a wide QRS with right bundle branch block in the labels, three left ventricular
/// hypertrophies with flat T waves, atrial fibrillation with aberrant conduction (109),
/// atrial fibrillation whose median beat keeps a wave before the QRS in one lead (101), and an
/// irregular sinus rhythm (108).
const LUDB_FIXTURES: [&str; 12] = ["1", "2", "5", "24", "34", "116", "124", "130", "133", "109", "101", "108"];

/// On the LUDB records kept in the fixtures, QRS and QT agree with the cardiologists' median
/// lead: QRS within 25 ms and QT within 45 ms (their median lead and their outermost leads are
/// 30 ms apart on average; see `docs/ecg.md`). These records had QRS of 40–60 ms on paced and
/// bundle-branch-block beats and QT of 600–680 ms on flat T waves before the rules that bound
/// the QRS offset's threshold and the T end's search. Where every T wave but one is flat (133)
/// the QT is not measured rather than measured wrong. Atrial fibrillation is flagged on 109 and
/// 101 only; in the irregular rhythms a P wave counts only where several leads show it at once,
/// so 101's residue before the QRS is no P wave (it gave a PR of 257 ms) while the irregular
/// sinus rhythm 108 keeps its P wave and its PR.
#[test]
fn intervals_agree_with_the_cardiologists_on_the_ludb_fixtures() {
    let dir = format!("{FIXTURES}/ludb");
    println!("| record | QRS ours / median lead / outermost | QT ours / median lead / outermost |");
    let mut qt_measured = 0;
    for name in LUDB_FIXTURES {
        let row = ludb_row(&dir, name);
        println!(
            "| {name} | {:?} / {:?} / {:?} | {:?} / {:?} / {:?} |",
            row.ours[1], row.median_lead[1], row.outermost[1], row.ours[2], row.median_lead[2], row.outermost[2]
        );
        let (qrs, reference) = (row.ours[1].expect("QRS"), row.median_lead[1].expect("annotated QRS"));
        assert!((qrs - reference).abs() <= 25.0, "record {name}: QRS {qrs} ms, the cardiologists' {reference} ms");
        if let Some(qt) = row.ours[2] {
            qt_measured += 1;
            let reference = row.median_lead[2].expect("annotated T");
            assert!((qt - reference).abs() <= 45.0, "record {name}: QT {qt} ms, the cardiologists' {reference} ms");
        } else {
            assert_eq!(name, "133", "QT not measured on record {name}");
        }
    }
    assert_eq!(qt_measured, LUDB_FIXTURES.len() - 1);
    // Possible atrial fibrillation is flagged on the fibrillation record and on none of the
    // others (109 was not flagged while a residue before its QRS was taken for a P wave).
    for name in LUDB_FIXTURES {
        let row = ludb_row(&dir, name);
        assert_eq!(row.flagged_fibrillation, row.fibrillation, "possible atrial fibrillation on record {name}");
        if name == "101" {
            assert_eq!(row.ours[0], None, "no PR in atrial fibrillation (record 101)");
        }
        if name == "108" {
            let (pr, reference) = (row.ours[0].expect("PR of 108"), row.median_lead[0].expect("annotated P"));
            assert!((pr - reference).abs() <= 25.0, "record 108: PR {pr} ms, the cardiologists' {reference} ms");
        }
    }
}

/// Intervals against the cardiologists' manual delineation of the Lobachevsky University
/// database (LUDB, 200 ten-second 12-lead records, ODC-By 1.0; see `docs/ecg.md` for where a
/// copy is). Reports mean ± SD of (ours − cardiologists) per interval under both conventions,
/// over all records and over the sinus-rhythm records without pacing, and how often atrial
/// fibrillation is flagged; asserts only that the records read.
#[test]
#[ignore = "needs the LUDB records in $ECG_LUDB_DIR"]
fn intervals_against_the_cardiologists_on_the_ludb_records_in_ecg_ludb_dir() {
    const NAMES: [&str; 3] = ["PR", "QRS", "QT"];
    let (dir, names) = ludb_dir();
    let verbose = std::env::var_os("ECG_LUDB_VERBOSE").is_some();
    let rows: Vec<(u32, LudbRow)> = names.iter().map(|n| (*n, ludb_row(&dir, &n.to_string()))).collect();
    if verbose {
        let cell = |o: Option<f64>, t: Option<f64>| match (o, t) {
            (Some(o), Some(t)) => format!("{o} / {t} ({:+})", o - t),
            (o, t) => {
                format!("{} / {}", o.map_or("–".into(), |v| v.to_string()), t.map_or("–".into(), |v| v.to_string()))
            }
        };
        println!("| record | rhythm | PR ours / median lead | QRS | QT | PR ours / outermost | QRS | QT |");
        for (name, r) in &rows {
            let m: Vec<String> = (0..3).map(|q| cell(r.ours[q], r.median_lead[q])).collect();
            let o: Vec<String> = (0..3).map(|q| cell(r.ours[q], r.outermost[q])).collect();
            let rhythm = if r.sinus { "sinus" } else { "other" };
            println!("| {name} | {rhythm} | {} | {} | {} | {} | {} | {} |", m[0], m[1], m[2], o[0], o[1], o[2]);
        }
    }
    println!("| interval | convention | records | n | mean difference (ms) | SD (ms) | \\|d\\| ≤ 20 ms | not measured | measured, not annotated |");
    for convention in [LudbConvention::MedianLead, LudbConvention::Outermost] {
        for (label, sinus_only) in [("all", false), ("sinus, not paced", true)] {
            for (q, name) in NAMES.iter().enumerate() {
                let (mut d, mut unmeasured, mut extra) = (Vec::new(), 0, 0);
                for (_, r) in rows.iter().filter(|(_, r)| r.sinus || !sinus_only) {
                    let reference =
                        if convention == LudbConvention::MedianLead { r.median_lead[q] } else { r.outermost[q] };
                    match (r.ours[q], reference) {
                        (Some(o), Some(t)) => d.push(o - t),
                        (None, Some(_)) => unmeasured += 1,
                        (Some(_), None) => extra += 1,
                        (None, None) => {}
                    }
                }
                let (mean, sd) = mean_sd(&d);
                let within = d.iter().filter(|x| x.abs() <= 20.0).count();
                println!(
                    "| {name} | {convention:?} | {label} | {} | {mean:+.1} | {sd:.1} | {:.0} % | {unmeasured} | {extra} |",
                    d.len(),
                    100.0 * within as f64 / d.len().max(1) as f64,
                );
            }
        }
    }
    let count = |f: &dyn Fn(&LudbRow) -> bool| rows.iter().filter(|(_, r)| f(r)).count();
    println!(
        "| possible atrial fibrillation flagged | on {} of {} records labelled atrial fibrillation | on {} of {} others |",
        count(&|r| r.fibrillation && r.flagged_fibrillation),
        count(&|r| r.fibrillation),
        count(&|r| !r.fibrillation && r.flagged_fibrillation),
        count(&|r| !r.fibrillation),
    );
    let disagree = |labelled: bool| -> Vec<u32> {
        rows.iter()
            .filter(|(_, r)| r.fibrillation == labelled && r.flagged_fibrillation != labelled)
            .map(|(n, _)| *n)
            .collect()
    };
    println!(
        "atrial fibrillation labelled, not flagged: {:?}; flagged, not labelled: {:?}",
        disagree(true),
        disagree(false)
    );
    println!(
        "| paced rhythm said | on {} of {} records whose header names pacing | on {} of {} others |",
        count(&|r| r.paced && r.flagged_paced),
        count(&|r| r.paced),
        count(&|r| !r.paced && r.flagged_paced),
        count(&|r| !r.paced),
    );
    let pacing_disagree = |labelled: bool| -> Vec<u32> {
        rows.iter().filter(|(_, r)| r.paced == labelled && r.flagged_paced != labelled).map(|(n, _)| *n).collect()
    };
    println!("pacing named, not said: {:?}; said, not named: {:?}", pacing_disagree(true), pacing_disagree(false));
    assert!(rows.iter().filter(|(_, r)| r.ours[1].is_some()).count() >= 190, "QRS measured on most records");
}

/// A paced rhythm is said as a finding where a pacemaker paces the beats (LUDB 34: ventricular
/// pacing in complete AV block; the paced BRAVEHEART example, GE MUSE XML whose stimulus marks
/// the cart drew), and on no other 12-lead file at hand: the sixteen other cart files and the
/// eleven other LUDB fixtures, sinus, fibrillating and bundle-branch-blocked.
#[test]
fn a_paced_rhythm_is_found_where_a_pacemaker_paces_and_nowhere_else() {
    let paced = |record: &EcgRecord| {
        let m = analyze(record);
        m.findings.iter().find(|f| f.code == "paced_rhythm").map(|f| (f.text.clone(), f.computer_assisted))
    };
    for (path, _, _) in CART_ANNOTATED {
        let bytes = fixture(path);
        let record = parse(&[(path, &bytes)]).expect("parses");
        let found = paced(&record);
        println!("{path}: {found:?}");
        assert_eq!(found.is_some(), path.contains("braveheart_example4"), "{path}: {found:?}");
    }
    let dir = format!("{FIXTURES}/ludb");
    for name in LUDB_FIXTURES {
        let read = |ext: &str| std::fs::read(format!("{dir}/{name}.{ext}")).expect("record file");
        let (hea, dat) = (read("hea"), read("dat"));
        let record = parse(&[(format!("{name}.hea").as_str(), &hea), (format!("{name}.dat").as_str(), &dat)])
            .expect("record parses");
        let found = paced(&record);
        println!("LUDB {name}: {found:?}");
        assert_eq!(found.is_some(), name == "34", "LUDB {name}: {found:?}");
        if let Some((text, computer_assisted)) = found {
            assert!(computer_assisted && text.contains("Computer-assisted finding"), "{text}");
        }
    }
}

/// WFDB records written by wfdb-python, PhysioNet's own Python package (`tests/interop/
/// wfdb_write.py`): a 2-signal format 212 record with an annotation file, the 12 standard leads
/// in format 16 with the names carts write (`i`, `avr`), and format 16 signals in uV, in mV with
/// a negative baseline and a fractional gain, and in V. Every sample must read as wfdb-python
/// itself reads it back (to the microvolt), the leads by their standard names, the beats of
/// the annotation file as the reference (the rhythm change is no beat); a format the parser
/// does not read (24) is refused, naming it.
#[test]
fn wfdb_records_written_by_wfdb_python_read_as_it_reads_them() {
    let Some(python) = common::python_with(&["wfdb", "numpy"]) else { return };
    let dir = std::env::temp_dir().join(format!("tc-wfdb-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let script = format!("{}/tests/interop/wfdb_write.py", env!("CARGO_MANIFEST_DIR"));
    let out = std::process::Command::new(&python).arg(&script).arg(&dir).output().expect("python runs");
    assert!(out.status.success(), "wfdb_write.py: {}", String::from_utf8_lossy(&out.stderr));
    let expected: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON from wfdb_write.py");
    let files = |name: &str, exts: &[&str]| -> Vec<(String, Vec<u8>)> {
        exts.iter().map(|e| (format!("{name}.{e}"), std::fs::read(dir.join(format!("{name}.{e}"))).unwrap())).collect()
    };
    let read = |name: &str, exts: &[&str]| {
        let owned = files(name, exts);
        let borrowed: Vec<(&str, &[u8])> = owned.iter().map(|(n, b)| (n.as_str(), b.as_slice())).collect();
        parse(&borrowed)
    };
    let uv_per = |unit: &str| match unit {
        "uV" => 1.0,
        "mV" => 1_000.0,
        "V" => 1_000_000.0,
        other => panic!("unit {other}"),
    };
    for (name, names) in [
        ("mitlike", vec!["MLII", "V1"]),
        ("twelve", vec!["I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6"]),
        ("offsets", vec!["ECG1", "ECG2", "ECG3"]),
    ] {
        let exts: &[&str] = if name == "mitlike" { &["hea", "dat", "atr"] } else { &["hea", "dat"] };
        let record = read(name, exts).unwrap_or_else(|e| panic!("{name}: {e}"));
        let want = &expected[name];
        assert_eq!(record.source_format, EcgFormat::Wfdb, "{name}");
        assert_eq!(record.sample_rate_hz, want["fs"].as_f64().unwrap(), "{name}");
        assert_eq!(record.leads.iter().map(|l| l.name.as_str()).collect::<Vec<_>>(), names, "{name}");
        for (k, lead) in record.leads.iter().enumerate() {
            let unit = uv_per(want["units"][k].as_str().unwrap());
            let physical = want["p_signal"][k].as_array().unwrap();
            assert_eq!(lead.samples_uv.len(), physical.len(), "{name} {}", lead.name);
            let worst = lead
                .samples_uv
                .iter()
                .zip(physical)
                .map(|(&ours, theirs)| (f64::from(ours) - theirs.as_f64().unwrap() * unit).abs())
                .fold(0.0, f64::max);
            assert!(worst <= 1.0, "{name} {}: {worst} uV from wfdb-python's reading", lead.name);
        }
    }
    // The beats of the annotation file are the record's reference; `+` (a rhythm change) is not one.
    let record = read("mitlike", &["hea", "dat", "atr"]).unwrap();
    let beats: Vec<f64> = expected["mitlike"]["annotations"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a[1] != "+")
        .map(|a| a[0].as_f64().unwrap() / 360.0)
        .collect();
    assert_eq!(beats.len(), 13);
    let reference = record.reference_beats_s.expect("reference beats from the .atr");
    assert_eq!(reference.len(), beats.len(), "{reference:?}");
    assert!(reference.iter().zip(&beats).all(|(a, b)| (a - b).abs() < 1e-9), "{reference:?} vs {beats:?}");
    let symbols: Vec<String> = ecg::wfdb::parse_annotations("mitlike.atr", &files("mitlike", &["atr"])[0].1)
        .unwrap()
        .iter()
        .map(|a| a.mnemonic().to_string())
        .collect();
    let theirs: Vec<String> = expected["mitlike"]["annotations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a[1].as_str().unwrap().to_string())
        .collect();
    assert_eq!(symbols, theirs);
    // A format this parser does not read: refused with the reason, not misread.
    let refused = read("format24", &["hea", "dat"]).expect_err("format 24 is not read");
    assert!(refused.to_string().contains("24"), "{refused}");
    let _ = std::fs::remove_dir_all(&dir);
}
