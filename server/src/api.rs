//! Route registration that also documents: every route is added through [`Routes`], which
//! records its method, path, tag and summary, so the OpenAPI document is generated from the
//! same table the router is built from and cannot miss an endpoint. Also the JSON, path and
//! query extractors whose rejections become problem+json.

use crate::app::AppState;
use crate::error::{ApiError, ApiResult};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::handler::Handler;
use axum::http::request::Parts;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::{on, MethodFilter};
use axum::Router;
use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{json, Map, Value};

/// JSON body extractor and response whose rejection is a problem+json [`ApiError`].
///
/// Every JSON body of the API is an object: a top-level array (which serde would otherwise
/// take as the struct's fields in order) or scalar is refused with 422 `validation_failed`.
/// Text holding a NUL character (`\u0000`) is refused with 422 `validation_failed` naming
/// the field, on every backend alike (PostgreSQL cannot store it in text; SQLite could).
#[derive(Debug, Clone, Copy, Default)]
pub struct Json<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        if !is_json_content_type(req.headers()) {
            return Err(ApiError::json_content_type_required());
        }
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|e| ApiError::from(axum::extract::rejection::JsonRejection::from(e)))?;
        Self::from_bytes(&bytes)
    }
}

impl<T: DeserializeOwned> Json<T> {
    /// Parses a body by the rules above.
    pub fn from_bytes(bytes: &[u8]) -> ApiResult<Self> {
        let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
        if first.is_some_and(|b| *b != b'{') {
            // Malformed text is still reported as malformed; well-formed non-objects are refused.
            if serde_json::from_slice::<serde::de::IgnoredAny>(bytes).is_ok() {
                return Err(ApiError::validation("", "the body must be a JSON object"));
            }
        }
        let axum::Json(value) = axum::Json::<T>::from_bytes(bytes)?;
        if has_escaped_nul(bytes) {
            let field = serde_json::from_slice::<Value>(bytes).ok().and_then(|v| nul_field(&v)).unwrap_or_default();
            return Err(ApiError::validation(&field, "text must not contain a NUL character"));
        }
        Ok(Json(value))
    }
}

impl<T: Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

/// `application/json` or any `application/*+json`, parameters aside.
fn is_json_content_type(headers: &axum::http::HeaderMap) -> bool {
    let Some(ct) = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()) else { return false };
    let essence = ct.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    essence == "application/json" || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// Whether JSON text holds the escape `\u0000` (a raw NUL byte is not valid JSON). A
/// backslash escaped itself (`\\u0000`) is not one.
fn has_escaped_nul(bytes: &[u8]) -> bool {
    let pattern = b"\\u0000";
    bytes.windows(pattern.len()).enumerate().any(|(i, w)| {
        w == pattern && bytes[..i].iter().rev().take_while(|b| **b == b'\\').count() % 2 == 0
    })
}

/// The path (`a.b[2].c`) of the first key or string value holding NUL.
fn nul_field(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if s.contains('\0') => Some(String::new()),
        Value::Array(items) => items.iter().enumerate().find_map(|(i, item)| nul_field(item).map(|p| join(&format!("[{i}]"), &p))),
        Value::Object(map) => map.iter().find_map(|(k, item)| {
            if k.contains('\0') {
                Some(k.replace('\0', "\\u0000"))
            } else {
                nul_field(item).map(|p| join(k, &p))
            }
        }),
        _ => None,
    }
}

fn join(head: &str, rest: &str) -> String {
    match rest.chars().next() {
        None => head.to_string(),
        Some('[') => format!("{head}{rest}"),
        Some(_) => format!("{head}.{rest}"),
    }
}

/// Path extractor whose rejection is a problem+json 404.
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct Path<T>(pub T);

/// Query-string extractor whose rejection is a problem+json 400 naming the parameter; a
/// parameter holding NUL (`%00`) is refused with 422 `validation_failed` as in JSON bodies.
#[derive(Debug)]
pub struct Query<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        let query = parts.uri.query().unwrap_or_default();
        if let Some(name) = parameter_with_nul(query) {
            return Err(ApiError::validation(&name, "text must not contain a NUL character"));
        }
        let axum::extract::Query(value) = axum::extract::Query::<T>::try_from_uri(&parts.uri)?;
        Ok(Query(value))
    }
}

/// The name of the first query parameter whose name or value decodes to text with NUL.
fn parameter_with_nul(query: &str) -> Option<String> {
    if !query.contains("%00") {
        return None;
    }
    query.split('&').find(|pair| pair.contains("%00")).map(|pair| {
        let name = pair.split_once('=').map_or(pair, |(n, _)| n);
        name.replace("%00", "")
    })
}

/// A page of a list: `{"items": [...], "next": cursor-or-null}`.
#[derive(Debug, Serialize)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next: Option<String>,
}

/// Rows in a page when the client names no `limit`.
pub const DEFAULT_PAGE_LIMIT: u32 = 50;

/// The page size a list asked for: [`DEFAULT_PAGE_LIMIT`] when absent, 422
/// `validation_failed` naming `limit` when outside 1..=`max` (not silently changed, so a
/// client never takes a shorter page for the whole list).
pub fn page_limit(limit: Option<u32>, max: u32) -> ApiResult<usize> {
    match limit.unwrap_or(DEFAULT_PAGE_LIMIT) {
        n if (1..=max).contains(&n) => Ok(n as usize),
        _ => Err(ApiError::validation("limit", format!("must be between 1 and {max}"))),
    }
}

/// The position a list continues from: empty (the first page) when absent, else the `next`
/// of an earlier page, which is always a row id (a UUID); anything else is 422
/// `validation_failed` naming `cursor`, not a silently empty or restarted list.
pub fn page_cursor(cursor: Option<String>) -> ApiResult<String> {
    match cursor {
        None => Ok(String::new()),
        Some(c) => match uuid::Uuid::try_parse(&c) {
            Ok(id) if id.hyphenated().to_string() == c => Ok(c),
            _ => Err(ApiError::validation("cursor", "not a cursor of this list: pass the `next` of the previous page")),
        },
    }
}

/// Cuts one-past-the-limit rows into a page whose cursor is the last item's.
pub fn page<T>(mut rows: Vec<T>, limit: usize, cursor_of: impl Fn(&T) -> String) -> Page<T> {
    let next = if rows.len() > limit {
        rows.truncate(limit);
        rows.last().map(cursor_of)
    } else {
        None
    };
    Page { items: rows, next }
}

#[derive(Debug, Clone)]
pub struct RouteDoc {
    pub method: &'static str,
    pub path: &'static str,
    pub tag: &'static str,
    pub summary: &'static str,
    pub authenticated: bool,
}

pub struct Routes {
    tag: &'static str,
    router: Router<AppState>,
    docs: Vec<RouteDoc>,
}

macro_rules! verb {
    ($name:ident, $public:ident, $filter:expr, $method:literal) => {
        pub fn $name<H, T>(self, path: &'static str, summary: &'static str, handler: H) -> Self
        where
            H: Handler<T, AppState>,
            T: 'static,
        {
            self.add($filter, $method, path, summary, true, handler)
        }

        pub fn $public<H, T>(self, path: &'static str, summary: &'static str, handler: H) -> Self
        where
            H: Handler<T, AppState>,
            T: 'static,
        {
            self.add($filter, $method, path, summary, false, handler)
        }
    };
}

impl Routes {
    pub fn new(tag: &'static str) -> Self {
        Routes { tag, router: Router::new(), docs: Vec::new() }
    }

    fn add<H, T>(
        mut self,
        filter: MethodFilter,
        method: &'static str,
        path: &'static str,
        summary: &'static str,
        authenticated: bool,
        handler: H,
    ) -> Self
    where
        H: Handler<T, AppState>,
        T: 'static,
    {
        self.router = self.router.route(path, on(filter, handler));
        self.docs.push(RouteDoc { method, path, tag: self.tag, summary, authenticated });
        self
    }

    verb!(get, get_public, MethodFilter::GET, "get");
    verb!(post, post_public, MethodFilter::POST, "post");
    verb!(put, put_public, MethodFilter::PUT, "put");
    verb!(patch, patch_public, MethodFilter::PATCH, "patch");
    verb!(delete, delete_public, MethodFilter::DELETE, "delete");
    verb!(head, head_public, MethodFilter::HEAD, "head");
    verb!(options, options_public, MethodFilter::OPTIONS, "options");

    pub fn merge(mut self, other: Routes) -> Self {
        self.router = self.router.merge(other.router);
        self.docs.extend(other.docs);
        self
    }

    pub fn docs(&self) -> &[RouteDoc] {
        &self.docs
    }

    pub fn into_parts(self) -> (Router<AppState>, Vec<RouteDoc>) {
        (self.router, self.docs)
    }
}

/// The OpenAPI 3.1 document for the registered routes.
pub fn openapi(docs: &[RouteDoc]) -> Value {
    let mut paths = Map::new();
    for d in docs {
        let entry = paths.entry(d.path.to_string()).or_insert_with(|| json!({}));
        let params: Vec<Value> = d
            .path
            .split('/')
            .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .map(|name| json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}}))
            .collect();
        let mut op = json!({
            "tags": [d.tag],
            "summary": d.summary,
            "operationId": format!("{}_{}", d.method, d.path.trim_start_matches('/').replace(['/', '{', '}', '-', '.'], "_")),
            "parameters": params,
            "responses": {
                "200": {"description": "Success"},
                "default": {"description": "A problem", "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}}
            }
        });
        if d.authenticated {
            op["security"] = json!([{"bearer": []}]);
        } else {
            op["security"] = json!([]);
        }
        if matches!(d.method, "post" | "put" | "patch") {
            op["requestBody"] =
                json!({"required": false, "content": {"application/json": {"schema": {"type": "object"}}}});
        }
        entry[d.method] = op;
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Teleconsult API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Remote consultations between grassroots clinics and tertiary-hospital experts."
        },
        "servers": [{"url": "/"}],
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}},
            "schemas": {
                "Problem": {
                    "type": "object",
                    "required": ["type", "title", "status", "code"],
                    "properties": {
                        "type": {"type": "string"}, "title": {"type": "string"}, "status": {"type": "integer"},
                        "detail": {"type": "string"}, "code": {"type": "string"},
                        "errors": {"type": "array", "items": {"type": "object", "properties": {"field": {"type": "string"}, "message": {"type": "string"}}}}
                    }
                }
            }
        }
    })
}

#[cfg(test)]
mod page_tests {
    use super::*;

    #[test]
    fn a_page_limit_is_the_default_or_within_bounds() {
        assert_eq!(page_limit(None, 200).unwrap(), 50);
        assert_eq!(page_limit(Some(1), 200).unwrap(), 1);
        assert_eq!(page_limit(Some(200), 200).unwrap(), 200);
        for bad in [0, 201, u32::MAX] {
            let e = page_limit(Some(bad), 200).unwrap_err();
            assert_eq!((e.status.as_u16(), e.code), (422, "validation_failed"));
            assert_eq!(e.errors[0].field, "limit");
        }
    }

    #[test]
    fn a_cursor_is_absent_or_a_row_id() {
        assert_eq!(page_cursor(None).unwrap(), "");
        let id = "0192f0c4-7b1e-7cc3-a000-0123456789ab";
        assert_eq!(page_cursor(Some(id.into())).unwrap(), id);
        for bad in ["", "garbage", "0192F0C4-7B1E-7CC3-A000-0123456789AB", "' OR 1=1 --"] {
            let e = page_cursor(Some(bad.into())).unwrap_err();
            assert_eq!((e.status.as_u16(), e.errors[0].field.as_str()), (422, "cursor"), "{bad}");
        }
    }

    #[test]
    fn bodies_are_objects_without_nul() {
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct P {
            name: String,
            tags: Vec<String>,
        }
        let refused = |body: &str| Json::<P>::from_bytes(body.as_bytes()).expect_err(body);
        let e = refused(r#" ["A", ["x"]]"#);
        assert_eq!((e.status.as_u16(), e.code), (422, "validation_failed"));
        let e = refused(r#"{"name": "A\u0000", "tags": []}"#);
        assert_eq!((e.status.as_u16(), e.errors[0].field.as_str()), (422, "name"));
        let e = refused(r#"{"name": "A", "tags": ["x", "\u0000"]}"#);
        assert_eq!(e.errors[0].field, "tags[1]");
        assert_eq!(refused(r#"["A", "#).code, "malformed_json");
        let ok = Json::<P>::from_bytes(br#"{"name": "A\\u0000", "tags": []}"#).unwrap();
        assert_eq!(ok.0.name, "A\\u0000");
    }

    #[test]
    fn query_parameters_with_nul_are_named() {
        assert_eq!(parameter_with_nul("q=a&limit=2"), None);
        assert_eq!(parameter_with_nul("limit=2&q=a%00b").as_deref(), Some("q"));
    }

    #[test]
    fn a_page_ends_where_no_row_is_left_over() {
        let p = page(vec![5, 4, 3], 2, |n| n.to_string());
        assert_eq!((p.items, p.next.as_deref()), (vec![5, 4], Some("4")));
        let p = page(vec![5, 4], 2, |n| n.to_string());
        assert_eq!((p.items, p.next), (vec![5, 4], None));
    }
}
