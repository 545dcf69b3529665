//! Operations: liveness and readiness, Prometheus metrics (request counts and latency by
//! route and status, plus gauges other modules register), and logging set-up.

use crate::api::Routes;
use crate::app::AppState;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::time::Instant;

const BUCKETS: [f64; 12] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0];

#[derive(Default)]
struct RouteStats {
    count: u64,
    sum_secs: f64,
    buckets: [u64; BUCKETS.len()],
}

type Gauge = Box<dyn Fn() -> Vec<(String, f64)> + Send + Sync>;

/// Request metrics by (method, route, status), and named gauges read at scrape time.
#[derive(Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(String, String, u16), RouteStats>>,
    gauges: Mutex<Vec<(&'static str, &'static str, Gauge)>>,
}

impl Metrics {
    pub fn observe(&self, method: &str, route: &str, status: u16, secs: f64) {
        let mut map = self.requests.lock().unwrap_or_else(|e| e.into_inner());
        let s = map.entry((method.to_string(), route.to_string(), status)).or_default();
        s.count += 1;
        s.sum_secs += secs;
        for (i, b) in BUCKETS.iter().enumerate() {
            if secs <= *b {
                s.buckets[i] += 1;
            }
        }
    }

    /// Registers a gauge family: `read` returns (label set, value) pairs such as
    /// (`room="a"`, 3.0), or ("", value) for an unlabelled gauge.
    pub fn register_gauge(
        &self,
        name: &'static str,
        help: &'static str,
        read: impl Fn() -> Vec<(String, f64)> + Send + Sync + 'static,
    ) {
        self.gauges.lock().unwrap_or_else(|e| e.into_inner()).push((name, help, Box::new(read)));
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        out.push_str("# HELP teleconsult_http_requests_total HTTP requests by route and status\n");
        out.push_str("# TYPE teleconsult_http_requests_total counter\n");
        let map = self.requests.lock().unwrap_or_else(|e| e.into_inner());
        for ((m, r, s), st) in map.iter() {
            let _ = writeln!(
                out,
                "teleconsult_http_requests_total{{method=\"{m}\",route=\"{r}\",status=\"{s}\"}} {}",
                st.count
            );
        }
        out.push_str("# HELP teleconsult_http_request_duration_seconds HTTP request latency\n");
        out.push_str("# TYPE teleconsult_http_request_duration_seconds histogram\n");
        for ((m, r, s), st) in map.iter() {
            let labels = format!("method=\"{m}\",route=\"{r}\",status=\"{s}\"");
            for (i, b) in BUCKETS.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "teleconsult_http_request_duration_seconds_bucket{{{labels},le=\"{b}\"}} {}",
                    st.buckets[i]
                );
            }
            let _ =
                writeln!(out, "teleconsult_http_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {}", st.count);
            let _ = writeln!(out, "teleconsult_http_request_duration_seconds_sum{{{labels}}} {}", st.sum_secs);
            let _ = writeln!(out, "teleconsult_http_request_duration_seconds_count{{{labels}}} {}", st.count);
        }
        drop(map);
        for (name, help, read) in self.gauges.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
            for (labels, v) in read() {
                if labels.is_empty() {
                    let _ = writeln!(out, "{name} {v}");
                } else {
                    let _ = writeln!(out, "{name}{{{labels}}} {v}");
                }
            }
        }
        out
    }
}

/// Middleware: times every request and counts it under its route template.
pub async fn track(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = req.method().as_str().to_string();
    let route =
        req.extensions().get::<MatchedPath>().map(|p| p.as_str().to_string()).unwrap_or_else(|| "unmatched".into());
    let resp = next.run(req).await;
    state.metrics.observe(&method, &route, resp.status().as_u16(), start.elapsed().as_secs_f64());
    // The one place a failed request's cause is logged (the caller got only its code).
    if let Some(f) = resp.extensions().get::<crate::error::Failure>() {
        let status = resp.status().as_u16();
        if f.code == crate::error::ErrorCode::DatabaseUnavailable {
            tracing::warn!(%method, %route, status, code = %f.code, cause = %f.cause, "request failed");
        } else {
            tracing::error!(%method, %route, status, code = %f.code, cause = %f.cause, "request failed");
        }
    }
    resp
}

pub fn routes() -> Routes {
    Routes::new("operations")
        .get_public("/healthz", "Liveness: the process answers", healthz)
        .json::<serde_json::Value>(200)
        .get_public("/readyz", "Readiness: the database is reachable", readyz)
        .json::<serde_json::Value>(200)
        .get_public("/metrics", "Prometheus metrics", metrics)
        .answers(200, Some("text/plain"), "Prometheus text exposition")
}

async fn healthz() -> impl IntoResponse {
    axum::Json(serde_json::json!({"status": "ok"}))
}

async fn readyz(State(state): State<AppState>) -> Response {
    if state.db.ping().await {
        axum::Json(serde_json::json!({"status": "ready"})).into_response()
    } else {
        crate::error::ApiError::database_unavailable("readiness: the database does not answer").into_response()
    }
}

async fn metrics(State(state): State<AppState>) -> Response {
    (StatusCode::OK, [(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], state.metrics.render())
        .into_response()
}

/// Installs the tracing subscriber: human-readable lines or JSON.
pub fn init_logging(format: &str) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    let _ = if format == "json" { builder.json().try_init() } else { builder.try_init() };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counts_and_buckets() {
        let m = Metrics::default();
        m.observe("GET", "/api/v1/me", 200, 0.003);
        m.observe("GET", "/api/v1/me", 200, 0.2);
        m.register_gauge("teleconsult_rooms", "open rooms", || vec![(String::new(), 2.0)]);
        let text = m.render();
        assert!(text.contains("teleconsult_http_requests_total{method=\"GET\",route=\"/api/v1/me\",status=\"200\"} 2"));
        assert!(text.contains("le=\"0.005\"} 1"));
        assert!(text.contains("teleconsult_rooms 2"));
    }
}
