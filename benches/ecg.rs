//! ECG analysis speed (targets: a 10-second 12-lead ECG at 500 Hz under 5 ms; a 30-minute
//! two-lead Holter-style record at 360 Hz under 200 ms; parse plus analysis of MIT-BIH
//! record 100 from disk is reported).
//!
//! Run with `cargo bench --bench ecg`. The 12-lead case is the real Mortara recording of
//! `tests/fixtures/ecg/waveform_ecg.dcm` taken down from 1000 Hz to 500 Hz (mean of each
//! sample pair); the GE case is the real MUSE XML export of `tests/fixtures/ecg/ge-muse/`
//! (8 stored leads, 4 derived); the Philips case the real PageWriter Touch export of
//! `tests/fixtures/ecg/philips/` (UTF-16, XLI-compressed, 11 s); the 30-minute case is record
//! 100 (650,000 samples × 2 leads), sinus rhythm; the 30-minute irregular case is minutes 5 to
//! 10 of MIT-BIH 201 six times over (atrial fibrillation, a nodal rhythm, sinus rhythm with
//! ventricular trigeminy): nearly every 30 s of it is irregular, so the atrial fibrillation
//! rule looks at the atrial waves of each, the most that rule costs.

use std::hint::black_box;
use std::time::{Duration, Instant};

use teleconsult::ecg::{analyze, parse, EcgRecord, Lead};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/ecg");
const WARM_UP_RUNS: usize = 3;

fn read(path: &str) -> Vec<u8> {
    std::fs::read(format!("{FIXTURES}/{path}")).expect("fixture present")
}

fn twelve_lead_500_hz() -> EcgRecord {
    let dicom = read("waveform_ecg.dcm");
    let at_1000 = parse(&[("waveform_ecg.dcm", &dicom)]).expect("DICOM parses");
    EcgRecord {
        sample_rate_hz: 500.0,
        leads: at_1000
            .leads
            .iter()
            .map(|l| Lead {
                name: l.name.clone(),
                samples_uv: l.samples_uv.chunks_exact(2).map(|p| (p[0] + p[1]) / 2).collect(),
            })
            .collect(),
        ..at_1000
    }
}

/// Minutes 5 to 10 of MIT-BIH 201, six times over (30 minutes, 2 leads, 360 Hz).
fn irregular_30_minutes() -> EcgRecord {
    let name = "mitdb-excerpts/201_0300";
    let (hea, dat) = (read(&format!("{name}.hea")), read(&format!("{name}.dat")));
    let excerpt = parse(&[("201_0300.hea", &hea), ("201_0300.dat", &dat)]).expect("excerpt parses");
    let leads =
        excerpt.leads.iter().map(|l| Lead { name: l.name.clone(), samples_uv: l.samples_uv.repeat(6) }).collect();
    EcgRecord { leads, ..excerpt }
}

fn parse_record_100_from_disk() -> EcgRecord {
    let hea = read("mitdb-100/100.hea");
    let dat = read("mitdb-100/100.dat");
    let atr = read("mitdb-100/100.atr");
    parse(&[("100.hea", &hea), ("100.dat", &dat), ("100.atr", &atr)]).expect("record 100 parses")
}

/// Runs `work` after a warm-up and prints the median and 95th percentile; the target is
/// judged on the median (the 95th percentile shows how much a busy machine disturbs it).
fn measure(name: &str, runs: usize, target: Option<Duration>, mut work: impl FnMut()) {
    for _ in 0..WARM_UP_RUNS {
        work();
    }
    let mut times: Vec<Duration> = (0..runs)
        .map(|_| {
            let start = Instant::now();
            work();
            start.elapsed()
        })
        .collect();
    times.sort();
    let median = times[times.len() / 2];
    let p95 = times[(times.len() * 95 / 100).min(times.len() - 1)];
    let verdict = match target {
        Some(t) if median <= t => format!("target {t:?}: met"),
        Some(t) => format!("target {t:?}: MISSED"),
        None => "reported".to_string(),
    };
    println!(
        "{name:<52} runs {runs:>4}  median {:>9.3} ms  p95 {:>9.3} ms  {verdict}",
        median.as_secs_f64() * 1e3,
        p95.as_secs_f64() * 1e3
    );
}

fn main() {
    let short = twelve_lead_500_hz();
    assert_eq!(short.leads.len(), 12);
    measure("analysis, 10 s 12-lead ECG at 500 Hz", 200, Some(Duration::from_millis(5)), || {
        black_box(analyze(black_box(&short)));
    });

    let holter = parse_record_100_from_disk();
    measure("analysis, 30 min 2-lead record at 360 Hz (MIT-BIH 100)", 21, Some(Duration::from_millis(200)), || {
        black_box(analyze(black_box(&holter)));
    });

    let irregular = irregular_30_minutes();
    measure("analysis, 30 min 2-lead irregular record (MIT-BIH 201 ×6)", 21, Some(Duration::from_millis(200)), || {
        black_box(analyze(black_box(&irregular)));
    });

    measure("parse + analysis of record 100 from disk", 21, None, || {
        let record = parse_record_100_from_disk();
        black_box(analyze(&record));
    });

    let muse_xml = read("ge-muse/guangxi_teaching_sinus_rhythm.xml");
    let muse = parse(&[("muse.xml", &muse_xml)]).expect("MUSE XML parses");
    measure("analysis, 10 s 12-lead GE MUSE XML at 500 Hz", 200, Some(Duration::from_millis(5)), || {
        black_box(analyze(black_box(&muse)));
    });
    measure("parse of a GE MUSE XML export (8 stored leads, 10 s, 500 Hz)", 100, None, || {
        black_box(parse(&[("muse.xml", black_box(&muse_xml))]).expect("parses"));
    });

    let dicom = read("waveform_ecg.dcm");
    measure("parse of waveform_ecg.dcm (12 leads, 10 s, 1000 Hz)", 100, None, || {
        black_box(parse(&[("waveform_ecg.dcm", black_box(&dicom))]).expect("parses"));
    });

    let philips_xml = read("philips/philipsecg_1_04_pagewriter_touch_demo.xml");
    let philips = parse(&[("philips.xml", &philips_xml)]).expect("Philips XML parses");
    measure("analysis, 11 s 12-lead Philips XML at 500 Hz", 200, Some(Duration::from_millis(5)), || {
        black_box(analyze(black_box(&philips)));
    });
    measure("parse of a Philips XML export (UTF-16, XLI, 12 leads, 11 s)", 100, None, || {
        black_box(parse(&[("philips.xml", black_box(&philips_xml))]).expect("parses"));
    });
}
