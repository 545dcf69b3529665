//! Builds the application from a typed configuration: storage, keys, shared state, the router
//! with its middleware, and the server loop with graceful shutdown. Tests build the same
//! application on port 0.

use crate::api::Routes;
use crate::auth::jwt::{load_or_create_secret, JwtKeys};
use crate::auth::throttle::LoginThrottle;
use crate::config::Config;
use crate::db::Db;
use crate::error::ApiError;
use crate::error::ErrorCode;
use crate::observability::Metrics;
use axum::http::{header, HeaderName, HeaderValue, Method, StatusCode};
use axum::response::IntoResponse;
use axum::Router;
use std::future::Future;
use std::net::SocketAddr;
use std::ops::Deref;
use std::sync::{Arc, Mutex, OnceLock};
use tokio::net::TcpListener;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::set_header::SetResponseHeaderLayer;

/// Everything a request handler may need, shared by all requests.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

pub struct Shared {
    pub config: Config,
    pub db: Db,
    pub jwt: JwtKeys,
    pub throttle: Mutex<LoginThrottle>,
    /// The configured `trusted_proxies`, parsed once.
    pub trusted_proxies: Vec<crate::proxy::IpNet>,
    pub accounts: Arc<crate::auth::accounts::Accounts>,
    pub metrics: Metrics,
    pub signaling: Arc<crate::signaling::RoomHub>,
    pub files: crate::files::Files,
    pub notifications: crate::notifications::NotificationHub,
    pub netcheck: Arc<crate::netcheck::Sessions>,
    /// The address the listener is bound to (its port completes links for clients that send
    /// `Host` without one).
    pub bound: OnceLock<SocketAddr>,
    openapi: OnceLock<serde_json::Value>,
}

impl Deref for AppState {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// Handlers that use only the database take `State<Db>`: what they depend on is in their
/// signature.
impl axum::extract::FromRef<AppState> for Db {
    fn from_ref(state: &AppState) -> Db {
        state.db.clone()
    }
}

impl AppState {
    pub fn openapi(&self) -> &serde_json::Value {
        static EMPTY: serde_json::Value = serde_json::Value::Null;
        self.0.openapi.get().unwrap_or(&EMPTY)
    }
}

/// Every route of the API, as one documented table.
pub fn routes() -> Routes {
    Routes::new("meta")
        .get_public("/api/v1/openapi.json", "This OpenAPI document", openapi_document)
        .answers(200, Some("application/json"), "this OpenAPI document")
        .merge(crate::observability::routes())
        .merge(crate::auth::routes::routes())
        .merge(crate::directory::routes())
        .merge(crate::patients::routes())
        .merge(crate::devices::routes())
        .merge(crate::kiosk::routes())
        .merge(crate::audit::routes())
        .merge(crate::signaling::routes())
        .merge(crate::files::routes())
        .merge(crate::notifications::routes())
        .merge(crate::consultations::routes())
        .merge(crate::scheduling::routes())
        .merge(crate::record::routes())
        .merge(crate::files::ecg_review::routes())
        .merge(crate::fhir::routes())
        .merge(crate::netcheck::routes())
        .merge(crate::vitals::routes())
        .merge(crate::web::routes())
}

async fn openapi_document(axum::extract::State(state): axum::extract::State<AppState>) -> impl IntoResponse {
    axum::Json(state.openapi().clone())
}

pub struct Application {
    listener: TcpListener,
    router: Router,
    state: AppState,
}

impl Application {
    /// Connects storage, applies migrations, loads the demo consortium when asked, and binds.
    pub async fn build(config: Config) -> anyhow::Result<Application> {
        if config.demo && !config.bind.ip().is_loopback() {
            anyhow::bail!(
                "demo mode refuses to bind to {}: the demo accounts share a published password, so demo mode serves loopback (127.0.0.1 or ::1) only",
                config.bind
            );
        }
        std::fs::create_dir_all(&config.data_dir)?;
        let db = Db::connect(&config.effective_database_url()).await?;
        db.migrate().await?;
        if config.demo {
            crate::demo::load_if_empty(&db).await?;
        }
        let secret = load_or_create_secret(&config.jwt_secret, &config.data_dir)?;
        let jwt = JwtKeys::new(&secret, &config.jwt_issuer, &config.jwt_audience, config.access_token_ttl_secs);
        // One NATS client per instance (with `nats_url`): rooms and live notifications share it.
        let nats = match config.nats_url.as_str() {
            "" => None,
            url => Some(crate::signaling::nats::connect(url).await?),
        };
        let notifications = match &nats {
            None => crate::notifications::NotificationHub::default(),
            Some(client) => crate::notifications::NotificationHub::over_nats(client.clone()).await?,
        };
        let accounts = crate::auth::accounts::Accounts::start(db.clone(), nats.clone()).await?;
        if let Some(client) = &nats {
            db.rosters.listen(client.clone()).await?;
        }
        let signaling = crate::signaling::start(&config, db.clone(), &secret, nats).await?;
        let state = AppState(Arc::new(Shared {
            throttle: Mutex::new(LoginThrottle::new()),
            trusted_proxies: crate::proxy::parse_trusted(&config.trusted_proxies).map_err(anyhow::Error::msg)?,
            accounts,
            metrics: Metrics::default(),
            signaling,
            files: crate::files::Files::from_config(&config)?,
            notifications,
            netcheck: crate::netcheck::Sessions::new(&config, db.clone()),
            bound: OnceLock::new(),
            openapi: OnceLock::new(),
            config,
            db,
            jwt,
        }));
        state.signaling.register_metrics(&state.metrics);
        let router = build_router(state.clone());
        crate::files::spawn_sweeper(state.clone());
        let listener = TcpListener::bind(state.config.bind).await?;
        let _ = state.bound.set(listener.local_addr()?);
        Ok(Application { listener, router, state })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("bound listener has an address")
    }

    pub fn state(&self) -> AppState {
        self.state.clone()
    }

    /// Serves until `shutdown` completes, then stops accepting and finishes requests in flight.
    pub async fn run_until(self, shutdown: impl Future<Output = ()> + Send + 'static) -> std::io::Result<()> {
        crate::scheduling::appointments::spawn_reminder_task(self.state.clone());
        crate::vitals::worklist::spawn_sweeper(self.state.clone());
        // Signaling and small API answers are latency-bound: no Nagle delay on accepted sockets.
        let listener = axum::serve::ListenerExt::tap_io(self.listener, |tcp| {
            let _ = tcp.set_nodelay(true);
        });
        let served = axum::serve(listener, self.router.into_make_service_with_connect_info::<SocketAddr>())
            .with_graceful_shutdown(shutdown)
            .await;
        // No longer accepting: close the signaling connections and write out what they recorded.
        self.state.signaling.shutdown().await;
        served
    }
}

pub fn build_router(state: AppState) -> Router {
    let (api, docs) = routes().into_parts();
    let _ = state.0.openapi.set(crate::api::openapi(&docs));

    let csp = "default-src 'self'; img-src 'self' data: blob:; media-src 'self' blob:; connect-src 'self' ws: wss:; \
               style-src 'self' 'unsafe-inline'; script-src 'self'; object-src 'none'; base-uri 'self'; frame-ancestors 'none'";
    let mut router = api
        .fallback(crate::web::fallback())
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                ErrorCode::MethodNotAllowed,
                "Method not allowed",
                "this route does not accept that method",
            )
        })
        .layer(axum::middleware::from_fn_with_state(state.clone(), crate::audit::refusals))
        .layer(axum::middleware::from_fn_with_state(state.clone(), crate::observability::track))
        .layer(axum::extract::DefaultBodyLimit::max(state.config.max_body_bytes))
        .layer(SetResponseHeaderLayer::if_not_present(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(csp)))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer")))
        .layer(SetResponseHeaderLayer::if_not_present(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")))
        .layer(SetResponseHeaderLayer::if_not_present(
            HeaderName::from_static("permissions-policy"),
            HeaderValue::from_static("camera=(self), microphone=(self), display-capture=(self), geolocation=()"),
        ));
    if !state.config.cors_allow_origins.is_empty() {
        let origins: Vec<HeaderValue> =
            state.config.cors_allow_origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()).collect();
        router = router.layer(
            CorsLayer::new()
                .allow_origin(AllowOrigin::list(origins))
                .allow_methods([Method::GET, Method::POST, Method::PUT, Method::PATCH, Method::DELETE, Method::HEAD])
                .allow_headers(crate::files::cors_allow_headers())
                .expose_headers(crate::files::cors_expose_headers()),
        );
    }
    router
        .layer(CatchPanicLayer::custom(|panic: Box<dyn std::any::Any + Send>| {
            // Outside the request log's layer: logged here.
            let what = panic.downcast_ref::<&str>().copied().or(panic.downcast_ref::<String>().map(String::as_str));
            tracing::error!(panic = what.unwrap_or("?"), "a request handler panicked");
            ApiError::internal("a request handler panicked").into_response()
        }))
        .with_state(state)
}

/// Completes on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutdown requested: finishing requests in flight");
}
