//! Booking throughput and latency under concurrent clients, on SQLite or PostgreSQL, with a
//! check afterwards that no expert or patient holds two overlapping appointments.
//!
//! `cargo bench --bench booking` runs on SQLite; with `BENCH_DATABASE_URL=postgres://...`
//! it runs on a fresh PostgreSQL database created there (and dropped afterwards).
//! `BOOKINGS` (default 4000) and `CLIENTS` (default 32) set the size. One request in ten
//! aims at a slot another request also wants, so some 409 `slot_taken` are expected.

use chrono::{Duration, TimeZone, Utc};
use futures_util::StreamExt;
use hdrhistogram::Histogram;
use std::time::Instant;
use teleconsult::app::Application;
use teleconsult::config::Config;
use teleconsult::db::{new_id, now_ts};

const EXPERTS: usize = 40;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let bookings = env_usize("BOOKINGS", 4000);
    let clients = env_usize("CLIENTS", 32);
    let data_dir = std::env::temp_dir().join(format!("tc-bench-booking-{}", uuid::Uuid::new_v4()));
    let (database_url, pg_admin, pg_name) = match std::env::var("BENCH_DATABASE_URL") {
        Ok(admin) if !admin.is_empty() => {
            use sqlx::Connection;
            let name = format!("tc_bench_{}", uuid::Uuid::new_v4().simple());
            let mut conn = sqlx::PgConnection::connect(&admin).await?;
            sqlx::Executor::execute(&mut conn, format!("CREATE DATABASE {name}").as_str()).await?;
            let base = admin.rsplit_once('/').map(|(b, _)| b.to_string()).unwrap_or(admin.clone());
            (format!("{base}/{name}"), Some(admin), name)
        }
        _ => (String::new(), None, String::new()),
    };
    let backend = if pg_admin.is_some() { "PostgreSQL" } else { "SQLite" };
    let config = Config {
        bind: "127.0.0.1:0".parse()?,
        data_dir: data_dir.clone(),
        database_url,
        jwt_secret: "bench-secret-bench-secret-bench-secret-0".into(),
        demo: true,
        ..Config::default()
    };
    let app = Application::build(config).await?;
    let addr = app.local_addr();
    let state = app.state();
    tokio::spawn(app.run_until(std::future::pending()));
    let pool = &state.db.pool;

    // Experts with round-the-clock 30-minute slots, one patient and one accepted consultation per booking.
    let (org,): (String,) =
        sqlx::query_as("SELECT id FROM organisations WHERE kind = 'tertiary_hospital'").fetch_one(pool).await?;
    let (centre,): (String,) =
        sqlx::query_as("SELECT id FROM organisations WHERE kind = 'community_health_centre' ORDER BY name LIMIT 1")
            .fetch_one(pool)
            .await?;
    let (requester,): (String,) =
        sqlx::query_as("SELECT id FROM users WHERE username = 'dr.li'").fetch_one(pool).await?;
    let now = now_ts();
    let mut experts = Vec::new();
    let mut tx = pool.begin().await?;
    for i in 0..EXPERTS {
        let id = new_id();
        sqlx::query("INSERT INTO users (id, username, display_name, password_hash, role, organisation_id, created_at, updated_at) VALUES ($1, $2, $2, 'x', 'expert', $3, $4, $4)")
            .bind(&id).bind(format!("bench.expert.{i}")).bind(&org).bind(&now).execute(&mut *tx).await?;
        sqlx::query("INSERT INTO expert_profiles (user_id, title) VALUES ($1, 'chief')")
            .bind(&id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("INSERT INTO expert_specialties (user_id, specialty) VALUES ($1, 'cardiology')")
            .bind(&id)
            .execute(&mut *tx)
            .await?;
        for weekday in 1..=7i64 {
            sqlx::query("INSERT INTO availability_rules (id, expert_id, weekday, start_time, end_time, slot_minutes, time_zone, created_at) VALUES ($1, $2, $3, '00:00', '23:30', 30, 'Asia/Shanghai', $4)")
                .bind(new_id()).bind(&id).bind(weekday).bind(&now).execute(&mut *tx).await?;
        }
        experts.push(id);
    }
    let mut requests = Vec::new();
    let day0 = chrono_tz::Asia::Shanghai
        .from_local_datetime(&(Utc::now() + Duration::days(2)).date_naive().and_hms_opt(0, 0, 0).unwrap())
        .single()
        .unwrap()
        .with_timezone(&Utc);
    for i in 0..bookings {
        let patient = new_id();
        sqlx::query("INSERT INTO patients (id, name, sex, birth_date, home_organisation_id, created_at, updated_at) VALUES ($1, $2, 'female', '1950-01-01', $3, $4, $4)")
            .bind(&patient).bind(format!("bench {i}")).bind(&centre).bind(&now).execute(&mut *tx).await?;
        let c = new_id();
        // Every tenth request wants the same slot of the same expert as the request before it.
        let n = if i % 10 == 9 { i - 1 } else { i };
        let expert = &experts[n % EXPERTS];
        let slot = (n / EXPERTS) as i64;
        // 47 slots a day: 00:00 to 23:30.
        let start = day0 + Duration::days(slot / 47) + Duration::minutes(30 * (slot % 47));
        sqlx::query(
            "INSERT INTO consultations (id, patient_id, requesting_organisation_id, requested_by, reason, specialty, min_title,
                urgency, mode, addressee_kind, state, assigned_expert_id, created_at, updated_at)
             VALUES ($1, $2, $3, $4, 'bench', 'cardiology', 'attending', 'routine', 'video', 'expert', 'accepted', $5, $6, $6)",
        )
        .bind(&c)
        .bind(&patient)
        .bind(&centre)
        .bind(&requester)
        .bind(expert)
        .bind(&now)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO consultation_participants (consultation_id, user_id, role, status, added_at) VALUES ($1, $2, 'expert', 'accepted', $3)",
        )
        .bind(&c)
        .bind(expert)
        .bind(&now)
        .execute(&mut *tx)
        .await?;
        requests.push((c, expert.clone(), start));
    }
    tx.commit().await?;
    let http = reqwest::Client::builder().pool_max_idle_per_host(clients).build()?;
    let login: serde_json::Value = http
        .post(format!("http://{addr}/api/v1/auth/login"))
        .json(&serde_json::json!({"username": "admin", "password": "demo-password"}))
        .send()
        .await?
        .json()
        .await?;
    let token = login["access_token"].as_str().unwrap_or_default().to_string();

    let started = Instant::now();
    let results: Vec<(u16, u64)> = futures_util::stream::iter(requests.iter().map(|(c, e, start)| {
        let http = http.clone();
        let token = token.clone();
        let body = serde_json::json!({"consultation_id": c, "expert_id": e, "start": start.to_rfc3339()});
        async move {
            let t = Instant::now();
            let status = match http
                .post(format!("http://{addr}/api/v1/appointments"))
                .bearer_auth(&token)
                .json(&body)
                .send()
                .await
            {
                Ok(r) => r.status().as_u16(),
                Err(_) => 0,
            };
            (status, t.elapsed().as_micros() as u64)
        }
    }))
    .buffer_unordered(clients)
    .collect()
    .await;
    let elapsed = started.elapsed().as_secs_f64();

    let mut hist = Histogram::<u64>::new(3)?;
    for (_, us) in &results {
        hist.record(*us)?;
    }
    let created = results.iter().filter(|(s, _)| *s == 201).count();
    let taken = results.iter().filter(|(s, _)| *s == 409).count();
    let other = results.len() - created - taken;
    let (overlaps,): (i64,) = sqlx::query_as(
        "SELECT COUNT(*) FROM appointments a JOIN appointments b ON a.id < b.id AND a.status = 'booked' AND b.status = 'booked'
           AND (a.expert_id = b.expert_id OR a.patient_id = b.patient_id) AND a.start_at < b.end_at AND b.start_at < a.end_at",
    )
    .fetch_one(pool)
    .await?;
    let (stored,): (i64,) =
        sqlx::query_as("SELECT COUNT(*) FROM appointments WHERE status = 'booked'").fetch_one(pool).await?;

    println!(
        "booking benchmark on {backend}: {} requests, {clients} concurrent clients, {EXPERTS} experts",
        results.len()
    );
    println!("  201 booked: {created}   409 conflict: {taken}   other: {other}");
    println!(
        "  successful bookings/s: {:.0}   requests/s: {:.0}   wall: {elapsed:.2} s",
        created as f64 / elapsed,
        results.len() as f64 / elapsed
    );
    println!(
        "  latency ms: p50 {:.2}  p90 {:.2}  p99 {:.2}  max {:.2}",
        hist.value_at_quantile(0.5) as f64 / 1000.0,
        hist.value_at_quantile(0.9) as f64 / 1000.0,
        hist.value_at_quantile(0.99) as f64 / 1000.0,
        hist.max() as f64 / 1000.0
    );
    println!("  stored booked appointments: {stored}   overlapping pairs (must be 0): {overlaps}");

    drop(state);
    let _ = std::fs::remove_dir_all(&data_dir);
    if let Some(admin) = pg_admin {
        use sqlx::Connection;
        let mut conn = sqlx::PgConnection::connect(&admin).await?;
        let _ = sqlx::Executor::execute(&mut conn, format!("DROP DATABASE IF EXISTS {pg_name} WITH (FORCE)").as_str())
            .await;
    }
    if overlaps != 0 || other != 0 || created as i64 != stored {
        anyhow::bail!("double booking or unexpected answers");
    }
    Ok(())
}
