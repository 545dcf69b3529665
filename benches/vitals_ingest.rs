//! Sustained vital-sign ingest: batches of readings posted over HTTP to
//! `POST /api/v1/patients/{id}/observations` by concurrent clients (checked, stored once per
//! client id, audited reading by reading, weighed against a follow-up plan), on SQLite or
//! PostgreSQL; beside it, the same rows written by a bare multi-row sqlx insert (no HTTP, no
//! checks, no audit, no plan), to show what the path costs over the storage itself.
//!
//! `cargo bench --bench vitals_ingest` runs on SQLite; with `BENCH_DATABASE_URL=postgres://...`
//! on a fresh PostgreSQL database created there (and dropped afterwards). `BATCHES` (default
//! 300), `BATCH` (readings per batch, default 100), `CLIENTS` (default 4) and `PATIENTS`
//! (default 50) set the size. docs/resident.md has the figures.

use futures_util::StreamExt;
use hdrhistogram::Histogram;
use std::time::{Duration, Instant};
use teleconsult::app::Application;
use teleconsult::config::Config;
use teleconsult::db::{new_id, now_ts};

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn reading(i: usize) -> serde_json::Value {
    let at = chrono::Utc::now() - chrono::Duration::seconds((i % 86_400) as i64);
    serde_json::json!({
        "kind": "blood_pressure", "systolic_mmhg": 110 + (i % 50), "diastolic_mmhg": 70 + (i % 25), "pulse_bpm": 60 + (i % 40),
        "measured_at": at.to_rfc3339(), "source": "home", "device": "bench monitor", "client_id": uuid::Uuid::new_v4().to_string()
    })
}

fn report(name: &str, readings: usize, elapsed: Duration, hist: &Histogram<u64>) {
    println!(
        "  {name}: {readings} readings in {:.2} s = {:.0} readings/s; per batch p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        elapsed.as_secs_f64(),
        readings as f64 / elapsed.as_secs_f64(),
        hist.value_at_quantile(0.5) as f64 / 1000.0,
        hist.value_at_quantile(0.99) as f64 / 1000.0,
        hist.max() as f64 / 1000.0,
    );
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let batches = env_usize("BATCHES", 300);
    let batch = env_usize("BATCH", 100);
    let clients = env_usize("CLIENTS", 4);
    let patients = env_usize("PATIENTS", 50);
    let data_dir = std::env::temp_dir().join(format!("tc-bench-vitals-{}", uuid::Uuid::new_v4()));
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

    // Patients of dr.li's centre, each with a hypertension plan (so every reading is weighed).
    let (centre, li): (String, String) =
        sqlx::query_as("SELECT organisation_id, id FROM users WHERE username = 'dr.li'").fetch_one(pool).await?;
    let now = now_ts();
    let mut ids = Vec::new();
    let mut tx = pool.begin().await?;
    for i in 0..patients {
        let p = new_id();
        sqlx::query("INSERT INTO patients (id, name, sex, birth_date, home_organisation_id, created_at, updated_at) VALUES ($1, $2, 'female', '1950-01-01', $3, $4, $4)")
            .bind(&p).bind(format!("bench {i}")).bind(&centre).bind(&now).execute(&mut *tx).await?;
        sqlx::query("INSERT INTO follow_up_plans (id, patient_id, organisation_id, condition, interval_weeks, visits, created_by, status, created_at, targets)
                     VALUES ($1, $2, $3, 'hypertension', 4, 6, $4, 'active', '2000-01-01T00:00:00.000000Z', '')")
            .bind(new_id()).bind(&p).bind(&centre).bind(&li).execute(&mut *tx).await?;
        ids.push(p);
    }
    tx.commit().await?;

    let http = reqwest::Client::builder().pool_max_idle_per_host(clients).build()?;
    let login: serde_json::Value = http
        .post(format!("http://{addr}/api/v1/auth/login"))
        .json(&serde_json::json!({"username": "dr.li", "password": "demo-password"}))
        .send()
        .await?
        .json()
        .await?;
    let token = login["access_token"].as_str().unwrap_or_default().to_string();
    let bodies: Vec<(String, serde_json::Value)> = (0..batches)
        .map(|b| {
            (ids[b % ids.len()].clone(), serde_json::Value::Array((0..batch).map(|i| reading(b * batch + i)).collect()))
        })
        .collect();

    println!("vital-sign ingest on {backend}: {batches} batches of {batch} readings, {clients} concurrent clients, {patients} patients");
    // The API path.
    let started = Instant::now();
    let results: Vec<(u16, u64)> = futures_util::stream::iter(bodies.iter().map(|(p, body)| {
        let http = http.clone();
        let token = token.clone();
        async move {
            let t = Instant::now();
            let status = match http
                .post(format!("http://{addr}/api/v1/patients/{p}/observations"))
                .bearer_auth(&token)
                .json(body)
                .send()
                .await
            {
                Ok(r) => {
                    let s = r.status().as_u16();
                    let _ = r.bytes().await;
                    s
                }
                Err(_) => 0,
            };
            (status, t.elapsed().as_micros() as u64)
        }
    }))
    .buffer_unordered(clients)
    .collect()
    .await;
    let elapsed = started.elapsed();
    let mut hist = Histogram::<u64>::new(3)?;
    for (_, us) in &results {
        hist.record(*us)?;
    }
    let failed = results.iter().filter(|(s, _)| *s != 201).count();
    report("API (HTTP, checks, audit, plan)", batches * batch, elapsed, &hist);
    println!("  batches not answered 201: {failed}");
    let (stored,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM observations").fetch_one(pool).await?;
    println!("  stored readings: {stored}");

    // The comparison: the same number of rows by a bare multi-row insert, same concurrency.
    let started = Instant::now();
    let timings: Vec<u64> = futures_util::stream::iter((0..batches).map(|b| {
        let db = state.db.clone();
        let p = ids[b % ids.len()].clone();
        async move {
            let t = Instant::now();
            let rows: Vec<String> = (0..batch)
                .map(|k| {
                    let base = k * 8;
                    format!("(${}, ${}, ${}, 'blood_pressure', ${}, ${}, 'home', ${}, ${}, ${})", base + 1, base + 2, base + 3, base + 4, base + 5, base + 6, base + 7, base + 8)
                })
                .collect();
            let sql = format!(
                "INSERT INTO observations (id, patient_id, client_id, kind, measured_at, received_at, source, device, systolic_mmhg, diastolic_mmhg) VALUES {}",
                rows.join(", ")
            );
            let mut q = sqlx::query(&sql);
            let at = now_ts();
            for i in 0..batch {
                q = q
                    .bind(new_id())
                    .bind(p.clone())
                    .bind(uuid::Uuid::new_v4().to_string())
                    .bind(at.clone())
                    .bind(at.clone())
                    .bind("bench monitor")
                    .bind(110.0 + (i % 50) as f64)
                    .bind(70.0 + (i % 25) as f64);
            }
            let mut tx = db.begin_write().await.expect("begin");
            q.execute(&mut *tx).await.expect("bare insert");
            tx.commit().await.expect("commit");
            t.elapsed().as_micros() as u64
        }
    }))
    .buffer_unordered(clients)
    .collect()
    .await;
    let elapsed = started.elapsed();
    let mut hist = Histogram::<u64>::new(3)?;
    for us in &timings {
        hist.record(*us)?;
    }
    report("bare sqlx insert of the same rows", batches * batch, elapsed, &hist);

    if let Some(admin) = pg_admin {
        use sqlx::Connection;
        pool.close().await;
        let mut conn = sqlx::PgConnection::connect(&admin).await?;
        let _ = sqlx::Executor::execute(&mut conn, format!("DROP DATABASE IF EXISTS {pg_name} WITH (FORCE)").as_str())
            .await;
    }
    let _ = std::fs::remove_dir_all(&data_dir);
    Ok(())
}
