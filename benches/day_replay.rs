//! A day in the life of a consortium, replayed against a running server: see
//! `benches/replay/mod.rs` and docs/scale.md for what it does and the figures.
//!
//! ```sh
//! cargo bench --bench day_replay -- --server http://127.0.0.1:18080 --db postgres://... \
//!     --pid $SERVER --per-day 510702 --from-hour 10 --hours 0.25 --speed 1 --out /tmp/replay
//! ```
//!
//! `--server A,B --pid P,Q` replays against several instances (each account keeps to one);
//! `--signed-in` signs every account in before the slice, outside the figures;
//! `--no-home-screens` leaves out the home screens' list reads (as runs before them did);
//! `--history N` writes N completed consultations (with their appointments) before the day.

#[path = "replay/mod.rs"]
mod replay;

use std::sync::Arc;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    let arg = |name: &str, default: &str| -> String {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
            .unwrap_or_else(|| default.to_string())
    };
    let num = |name: &str, default: &str| -> f64 { arg(name, default).parse().unwrap_or_else(|_| panic!("{name} N")) };
    // One instance, or several sharing the database and NATS: `--server URL,URL`.
    let servers: Vec<String> = arg("--server", "http://127.0.0.1:8080").split(',').map(str::to_string).collect();
    let db_url = arg("--db", "sqlite://data/teleconsult.db");
    let pids: Vec<u32> = args
        .iter()
        .position(|a| a == "--pid")
        .map(|_| arg("--pid", "").split(',').map(|p| p.parse().expect("--pid PID[,PID]")).collect())
        .unwrap_or_default();
    let signed_in = args.iter().any(|a| a == "--signed-in");
    let out = std::path::PathBuf::from(arg("--out", "replay-out"));
    let scale = replay::Scale {
        hospitals: num("--hospitals", "3") as usize,
        experts: num("--experts", "200") as usize,
        centres: num("--centres", "300") as usize,
        doctors: num("--doctors", "600") as usize,
        patients: num("--patients", "50000") as usize,
        history: num("--history", "0") as usize,
    };
    let speed = num("--speed", "10");
    let plan = replay::Plan {
        per_day: num("--per-day", "2000") as usize,
        from_hour: num("--from-hour", "0"),
        hours: num("--hours", "24"),
        speed,
        think_ms: num("--think-ms", "200") as u64,
        call_secs: num("--call-secs", &format!("{}", 600.0 / speed)),
        ecg_share: num("--ecg-share", "0.3"),
        new_patient_share: num("--new-patient-share", "0.2"),
        home_screens: !args.iter().any(|a| a == "--no-home-screens"),
        seed: num("--seed", "18") as u64,
    };
    let ecg = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/ecg/waveform_ecg.dcm"))
        .expect("ECG fixture");
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    rt.block_on(async move {
        let db = teleconsult::db::Db::connect(&db_url).await.expect("database");
        let run = format!("ld{}", chrono::Utc::now().format("%H%M%S"));
        let t = std::time::Instant::now();
        let world = Arc::new(replay::generate(&db, &scale, &run).await);
        eprintln!("world {run} generated in {:.1} s: {scale:?}", t.elapsed().as_secs_f64());
        let report = replay::replay(&servers, &db, world, plan, &pids, ecg, signed_in, true).await;
        std::fs::create_dir_all(&out).expect("output directory");
        let mut json = report.json();
        json["scale"] = serde_json::to_value(&scale).unwrap();
        json["command"] = serde_json::Value::String(std::env::args().collect::<Vec<_>>().join(" "));
        std::fs::write(out.join("replay.json"), serde_json::to_string_pretty(&json).unwrap()).expect("write json");
        let md = report.markdown();
        std::fs::write(out.join("replay.md"), &md).expect("write markdown");
        std::fs::write(out.join("replay.svg"), report.svg()).expect("write svg");
        println!("{md}");
        println!("written: {}/replay.{{json,md,svg}}", out.display());
    });
}
