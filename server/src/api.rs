//! Route registration that also documents: every route is added through [`Routes`], which
//! records its method, path, tag and summary, so the OpenAPI document is generated from the
//! same table the router is built from and cannot miss an endpoint. Also the JSON, path and
//! query extractors whose rejections become problem+json.

use crate::app::AppState;
use crate::error::{ApiError, ApiResult, ErrorCode};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::handler::Handler;
use axum::http::header;
use axum::http::request::Parts;
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
        Self::from_bytes(&json_body(req, state).await?)
    }
}

/// The bytes of a body declared as JSON (415 otherwise), within the body limit.
async fn json_body<S: Send + Sync>(req: Request, state: &S) -> ApiResult<Bytes> {
    if !is_json_content_type(req.headers()) {
        return Err(ApiError::json_content_type_required());
    }
    Bytes::from_request(req, state).await.map_err(|e| ApiError::from(axum::extract::rejection::JsonRejection::from(e)))
}

impl<T: DeserializeOwned> Json<T> {
    /// Parses a body by the rules above: 400 `malformed_json` for text that is not JSON, 422
    /// `validation_failed` naming the field for the rest.
    pub fn from_bytes(bytes: &[u8]) -> ApiResult<Self> {
        let value: Value = serde_json::from_slice(bytes).map_err(|e| ApiError::malformed_json(e.to_string()))?;
        if !value.is_object() {
            return Err(ApiError::validation("", "the body must be a JSON object"));
        }
        if let Some(field) = nul_field(&value) {
            return Err(ApiError::validation(&field, "text must not contain a NUL character"));
        }
        serde_path_to_error::deserialize(strict::ObjectsAsObjects(&value))
            .map(Json)
            .map_err(|e| ApiError::invalid_body(e.to_string()))
    }
}

impl<T: Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

/// A JSON body that is one object or an array of objects, for the batch endpoints: each
/// item by the rules of [`Json`] (an item is only ever read from an object, NUL refused); a
/// field of an item of an array is named with its index (`[3].systolic_mmhg`).
#[derive(Debug, Clone)]
pub struct JsonBatch<T> {
    pub items: Vec<T>,
    /// Whether the body was an array (field names then carry the index).
    pub array: bool,
}

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for JsonBatch<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        Self::from_bytes(&json_body(req, state).await?)
    }
}

impl<T: DeserializeOwned> JsonBatch<T> {
    pub fn from_bytes(bytes: &[u8]) -> ApiResult<Self> {
        let value: Value = serde_json::from_slice(bytes).map_err(|e| ApiError::malformed_json(e.to_string()))?;
        let array = match &value {
            Value::Object(_) => false,
            Value::Array(items) if items.iter().all(Value::is_object) => true,
            Value::Array(items) => {
                let i = items.iter().position(|v| !v.is_object()).unwrap_or(0);
                return Err(ApiError::validation(&format!("[{i}]"), "each item must be a JSON object"));
            }
            _ => return Err(ApiError::validation("", "the body must be a JSON object or an array of objects")),
        };
        if let Some(field) = nul_field(&value) {
            return Err(ApiError::validation(&field, "text must not contain a NUL character"));
        }
        let items = if array {
            serde_path_to_error::deserialize(strict::ObjectsAsObjects(&value))
        } else {
            serde_path_to_error::deserialize(strict::ObjectsAsObjects(&value)).map(|one| vec![one])
        }
        .map_err(|e| ApiError::invalid_body(e.to_string()))?;
        Ok(JsonBatch { items, array })
    }
}

/// `application/json` or any `application/*+json`, parameters aside.
fn is_json_content_type(headers: &axum::http::HeaderMap) -> bool {
    let Some(ct) = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()) else { return false };
    let essence = ct.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    essence == "application/json" || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// The path (`a.b[2].c`) of the first key or string value holding NUL.
fn nul_field(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if s.contains('\0') => Some(String::new()),
        Value::Array(items) => {
            items.iter().enumerate().find_map(|(i, item)| nul_field(item).map(|p| join(&format!("[{i}]"), &p)))
        }
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

/// Path extractor whose rejection is a problem+json 404; so is a segment holding NUL (`%00`),
/// which names nothing on either database.
#[derive(Debug)]
pub struct Path<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for Path<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        if parts.uri.path().contains("%00") {
            return Err(ApiError::not_found("resource"));
        }
        let axum::extract::Path(value) = axum::extract::Path::<T>::from_request_parts(parts, state).await?;
        Ok(Path(value))
    }
}

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
#[derive(Debug, Serialize, schemars::JsonSchema)]
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

/// Writes the JSON Schema of a type into the document's components and answers a reference.
pub type SchemaFn = fn(&mut schemars::SchemaGenerator) -> schemars::Schema;

fn schema_of<T: schemars::JsonSchema>(g: &mut schemars::SchemaGenerator) -> schemars::Schema {
    g.subschema_for::<T>()
}

/// What a request or a response carries.
#[derive(Clone)]
pub enum Content {
    /// `application/json` of a typed schema.
    Json(SchemaFn),
    /// Another media type (bytes, a stream, a multipart body), described in words.
    Other(&'static str, &'static str),
}

#[derive(Clone)]
pub struct ResponseDoc {
    pub status: u16,
    pub description: &'static str,
    pub content: Option<Content>,
}

/// One route as the OpenAPI document describes it.
#[derive(Clone)]
pub struct RouteDoc {
    pub method: &'static str,
    pub path: &'static str,
    pub tag: &'static str,
    pub summary: &'static str,
    pub authenticated: bool,
    /// Authenticated by a device token (`Authorization: Device <token>`), not a user's.
    pub device: bool,
    pub request: Option<Content>,
    pub query: Option<SchemaFn>,
    /// The successful answers.
    pub responses: Vec<ResponseDoc>,
    /// Problems beyond those every route of its kind may answer (see [`RouteDoc::statuses`]).
    pub errors: Vec<u16>,
}

impl std::fmt::Debug for RouteDoc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.method, self.path)
    }
}

/// Problems every route may answer: the database unreachable (503 `database_unavailable`).
const ALWAYS: [u16; 1] = [503];

impl RouteDoc {
    fn path_params(&self) -> impl Iterator<Item = &'static str> {
        self.path.split('/').filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
    }

    /// Every status the route answers: its successes, then the problems its kind implies
    /// (401 when authenticated, 404 with path parameters, 400/413/415/422 with a body, 400/422
    /// with a query) and the ones it names.
    pub fn statuses(&self) -> Vec<u16> {
        let mut all: Vec<u16> = self.responses.iter().map(|r| r.status).collect();
        if self.authenticated {
            all.extend([401, 403]);
        }
        if self.path_params().next().is_some() {
            all.push(404);
        }
        if let Some(c) = &self.request {
            all.extend([413, 422]);
            if matches!(c, Content::Json(_)) {
                all.extend([400, 415]);
            }
        }
        if self.query.is_some() {
            all.extend([400, 422]);
        }
        all.extend(ALWAYS);
        if !matches!(self.method, "get" | "head" | "options") {
            // A write when the disk is full.
            all.push(507);
        }
        all.extend(&self.errors);
        all.sort_unstable();
        all.dedup();
        all
    }
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
        self.docs.push(RouteDoc {
            method,
            path,
            tag: self.tag,
            summary,
            authenticated,
            device: false,
            request: None,
            query: None,
            responses: Vec::new(),
            errors: Vec::new(),
        });
        self
    }

    verb!(get, get_public, MethodFilter::GET, "get");
    verb!(post, post_public, MethodFilter::POST, "post");
    verb!(put, put_public, MethodFilter::PUT, "put");
    verb!(patch, patch_public, MethodFilter::PATCH, "patch");
    verb!(delete, delete_public, MethodFilter::DELETE, "delete");
    verb!(head, head_public, MethodFilter::HEAD, "head");
    verb!(options, options_public, MethodFilter::OPTIONS, "options");

    fn last(&mut self) -> &mut RouteDoc {
        self.docs.last_mut().expect("a route was added before it is described")
    }

    /// The route just added is for devices: it authenticates with a device token
    /// (`Authorization: Device <token>`, [`crate::devices::DeviceAuth`]) and refuses user tokens.
    pub fn device_auth(mut self) -> Self {
        let last = self.last();
        last.authenticated = true;
        last.device = true;
        self
    }

    /// The route just added takes a JSON body of `B`.
    pub fn body<B: schemars::JsonSchema>(mut self) -> Self {
        self.last().request = Some(Content::Json(schema_of::<B>));
        self
    }

    /// The route just added takes a body of another media type.
    pub fn raw_body(mut self, media: &'static str, description: &'static str) -> Self {
        self.last().request = Some(Content::Other(media, description));
        self
    }

    /// The route just added reads query parameters, the fields of `Q`.
    pub fn query<Q: schemars::JsonSchema>(mut self) -> Self {
        self.last().query = Some(schema_of::<Q>);
        self
    }

    /// The route just added answers `status` with a JSON `R`.
    pub fn json<R: schemars::JsonSchema>(mut self, status: u16) -> Self {
        let description = status_text(status);
        self.last().responses.push(ResponseDoc { status, description, content: Some(Content::Json(schema_of::<R>)) });
        self
    }

    /// The route just added answers `status` with another media type, or none.
    pub fn answers(mut self, status: u16, media: Option<&'static str>, description: &'static str) -> Self {
        let content = media.map(|m| Content::Other(m, description));
        self.last().responses.push(ResponseDoc { status, description, content });
        self
    }

    /// Problems the route just added answers beyond those of its kind.
    pub fn errors(mut self, statuses: &[u16]) -> Self {
        self.last().errors.extend_from_slice(statuses);
        self
    }

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

fn status_text(status: u16) -> &'static str {
    axum::http::StatusCode::from_u16(status).ok().and_then(|s| s.canonical_reason()).unwrap_or("Answer")
}

/// The schema of a path parameter: ids are UUIDs; DICOM UIDs, frame lists and tags are text;
/// under `/fhir/r4` one of the resource types served and a FHIR id.
fn path_param_schema(path: &str, name: &str) -> Value {
    if path.starts_with("/fhir/") {
        return match name {
            "resource_type" => {
                let served: Vec<&str> = crate::fhir::search::RESOURCES.iter().map(|r| r.kind).collect();
                json!({"type": "string", "enum": served, "description": "a FHIR resource type the facade serves"})
            }
            _ => json!({"type": "string", "pattern": "^[A-Za-z0-9\\-\\.]{1,64}$", "description": "a FHIR id"}),
        };
    }
    match name {
        "study" | "series" | "instance" => {
            json!({"type": "string", "pattern": "^[0-9]+(\\.[0-9]+)*$", "maxLength": 64, "description": "a DICOM UID"})
        }
        "frames" => {
            json!({"type": "string", "pattern": "^[1-9][0-9]*(,[1-9][0-9]*)*$", "description": "frame numbers, from 1, comma-separated"})
        }
        "tag" => json!({"type": "string", "pattern": "^[0-9A-Fa-f]{8}$", "description": "a DICOM tag, 8 hex digits"}),
        _ => json!({"type": "string", "format": "uuid"}),
    }
}

fn content_json(c: &Content, g: &mut schemars::SchemaGenerator) -> Value {
    match c {
        Content::Json(f) => json!({"application/json": {"schema": f(g).to_value()}}),
        Content::Other(media, description) => {
            let schema = if media.ends_with("json") {
                json!({})
            } else if media.starts_with("text/") {
                json!({"type": "string"})
            } else {
                json!({"type": "string", "format": "binary"})
            };
            json!({(*media): {"schema": schema, "x-description": description}})
        }
    }
}

/// Query parameters: the properties of the query type's schema.
fn query_params(f: SchemaFn, g: &mut schemars::SchemaGenerator) -> Vec<Value> {
    let reference = f(g).to_value();
    let name = reference["$ref"].as_str().and_then(|r| r.rsplit('/').next()).unwrap_or_default().to_string();
    let def = g.definitions().get(&name).cloned().unwrap_or(reference);
    let required: Vec<&str> =
        def["required"].as_array().map(|a| a.iter().filter_map(Value::as_str).collect()).unwrap_or_default();
    def["properties"]
        .as_object()
        .map(|props| {
            props
                .iter()
                .map(|(k, schema)| {
                    json!({"name": k, "in": "query", "required": required.contains(&k.as_str()), "schema": schema})
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The OpenAPI 3.1 document for the registered routes.
pub fn openapi(docs: &[RouteDoc]) -> Value {
    let mut g = schemars::generate::SchemaSettings::draft2020_12()
        .with(|s| {
            s.definitions_path = "/components/schemas".into();
            s.meta_schema = None;
        })
        .into_generator();
    let problem = json!({"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}});
    let mut paths = Map::new();
    for d in docs {
        let entry = paths.entry(d.path.to_string()).or_insert_with(|| json!({}));
        let mut params: Vec<Value> = d
            .path_params()
            .map(
                |name| json!({"name": name, "in": "path", "required": true, "schema": path_param_schema(d.path, name)}),
            )
            .collect();
        if let Some(q) = d.query {
            params.extend(query_params(q, &mut g));
        }
        let mut responses = Map::new();
        for r in &d.responses {
            let mut resp = json!({"description": r.description});
            if let Some(c) = &r.content {
                resp["content"] = content_json(c, &mut g);
            }
            responses.insert(r.status.to_string(), resp);
        }
        for status in d.statuses() {
            if !responses.contains_key(&status.to_string()) {
                let mut resp = json!({"description": status_text(status), "content": problem.clone()});
                if matches!(status, 429 | 503) {
                    resp["headers"] =
                        json!({"Retry-After": {"schema": {"type": "integer"}, "description": "seconds to wait"}});
                }
                responses.insert(status.to_string(), resp);
            }
        }
        let mut op = json!({
            "tags": [d.tag],
            "summary": d.summary,
            "operationId": operation_id(d),
            "parameters": params,
            "responses": responses,
            "security": match (d.authenticated, d.device) {
                (true, true) => json!([{"device": []}]),
                (true, false) => json!([{"bearer": []}]),
                _ => json!([]),
            },
        });
        if let Some(c) = &d.request {
            op["requestBody"] = json!({"required": true, "content": content_json(c, &mut g)});
        }
        entry[d.method] = op;
    }
    add_links(&mut paths);
    let mut schemas = g.take_definitions(true);
    schemas.insert("Problem".into(), problem_schema());
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
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
                "device": {"type": "apiKey", "in": "header", "name": "Authorization", "description": "a device token: `Authorization: Device <token>` (device routes only)"}
            },
            "schemas": schemas,
        }
    })
}

fn operation_id(d: &RouteDoc) -> String {
    format!("{}_{}", d.method, d.path.trim_start_matches('/').replace(['/', '{', '}', '-', '.'], "_"))
}

/// OpenAPI links of the consultation flow: from a new consultation to reading, accepting,
/// booking and joining it.
fn add_links(paths: &mut Map<String, Value>) {
    let created = paths
        .get_mut("/api/v1/consultations")
        .and_then(|p| p.get_mut("post"))
        .and_then(|op| op["responses"].get_mut("201"));
    if let Some(resp) = created {
        let id = json!({"id": "$response.body#/id"});
        resp["links"] = json!({
            "read": {"operationId": "get_api_v1_consultations__id_", "parameters": id},
            "accept": {"operationId": "post_api_v1_consultations__id__accept", "parameters": id},
            "decline": {"operationId": "post_api_v1_consultations__id__decline", "parameters": id},
            "candidates": {"operationId": "get_api_v1_consultations__id__candidates", "parameters": id},
            "join": {"operationId": "post_api_v1_consultations__id__join", "parameters": id},
            "files": {"operationId": "get_api_v1_consultations__id__files", "parameters": id},
        });
    }
}

fn problem_schema() -> Value {
    json!({
        "type": "object",
        "required": ["type", "title", "status", "code"],
        "properties": {
            "type": {"type": "string"}, "title": {"type": "string"}, "status": {"type": "integer"},
            "detail": {"type": "string"},
            "code": {"type": "string", "enum": ErrorCode::ALL.iter().map(|c| c.as_str()).collect::<Vec<_>>()},
            "errors": {"type": "array", "items": {"type": "object", "required": ["field", "message"], "properties": {"field": {"type": "string"}, "message": {"type": "string"}}}}
        }
    })
}

/// A serde `Deserializer` over a parsed JSON value that is serde_json's own except for one
/// rule: a struct is only ever read from a JSON object. (serde's derived structs also take
/// an array of their fields in order, so `["A","male","1970-01-01"]` would pass for a patient.)
mod strict {
    use serde::de::{self, DeserializeSeed, IntoDeserializer, Unexpected, Visitor};
    use serde::forward_to_deserialize_any;
    use serde_json::{Error, Value};

    #[derive(Clone, Copy)]
    pub struct ObjectsAsObjects<'de>(pub &'de Value);

    fn unexpected(v: &Value) -> Unexpected<'_> {
        match v {
            Value::Null => Unexpected::Unit,
            Value::Bool(b) => Unexpected::Bool(*b),
            Value::Number(_) => Unexpected::Other("number"),
            Value::String(s) => Unexpected::Str(s),
            Value::Array(_) => Unexpected::Seq,
            Value::Object(_) => Unexpected::Map,
        }
    }

    impl<'de> de::Deserializer<'de> for ObjectsAsObjects<'de> {
        type Error = Error;

        fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
            match self.0 {
                Value::Null => visitor.visit_unit(),
                Value::Bool(b) => visitor.visit_bool(*b),
                Value::Number(n) => de::Deserializer::deserialize_any(n, visitor).map_err(de::Error::custom),
                Value::String(s) => visitor.visit_borrowed_str(s),
                Value::Array(items) => visitor.visit_seq(Seq(items.iter())),
                Value::Object(map) => visitor.visit_map(Map { entries: map.iter(), value: None }),
            }
        }

        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _name: &'static str,
            _fields: &'static [&'static str],
            visitor: V,
        ) -> Result<V::Value, Error> {
            match self.0 {
                Value::Object(map) => visitor.visit_map(Map { entries: map.iter(), value: None }),
                other => Err(de::Error::invalid_type(unexpected(other), &visitor)),
            }
        }

        fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
            match self.0 {
                Value::Null => visitor.visit_none(),
                _ => visitor.visit_some(self),
            }
        }

        fn deserialize_newtype_struct<V: Visitor<'de>>(
            self,
            _name: &'static str,
            visitor: V,
        ) -> Result<V::Value, Error> {
            visitor.visit_newtype_struct(self)
        }

        fn deserialize_enum<V: Visitor<'de>>(
            self,
            _name: &'static str,
            _variants: &'static [&'static str],
            visitor: V,
        ) -> Result<V::Value, Error> {
            match self.0 {
                Value::String(s) => visitor.visit_enum(s.as_str().into_deserializer()),
                Value::Object(map) if map.len() == 1 => {
                    let (variant, content) = map.iter().next().expect("one entry");
                    visitor.visit_enum(Enum { variant, content })
                }
                other => Err(de::Error::invalid_type(unexpected(other), &"a variant name or an object with one key")),
            }
        }

        forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
            bytes byte_buf unit unit_struct seq tuple tuple_struct map identifier ignored_any
        }
    }

    struct Seq<'de>(std::slice::Iter<'de, Value>);

    impl<'de> de::SeqAccess<'de> for Seq<'de> {
        type Error = Error;

        fn next_element_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<Option<T::Value>, Error> {
            self.0.next().map(|v| seed.deserialize(ObjectsAsObjects(v))).transpose()
        }

        fn size_hint(&self) -> Option<usize> {
            Some(self.0.len())
        }
    }

    struct Map<'de> {
        entries: serde_json::map::Iter<'de>,
        value: Option<&'de Value>,
    }

    impl<'de> de::MapAccess<'de> for Map<'de> {
        type Error = Error;

        fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, Error> {
            match self.entries.next() {
                Some((key, value)) => {
                    self.value = Some(value);
                    seed.deserialize(de::value::BorrowedStrDeserializer::new(key)).map(Some)
                }
                None => Ok(None),
            }
        }

        fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Error> {
            let value = self.value.take().ok_or_else(|| de::Error::custom("a value without a key"))?;
            seed.deserialize(ObjectsAsObjects(value))
        }

        fn size_hint(&self) -> Option<usize> {
            Some(self.entries.len())
        }
    }

    struct Enum<'de> {
        variant: &'de str,
        content: &'de Value,
    }

    impl<'de> de::EnumAccess<'de> for Enum<'de> {
        type Error = Error;
        type Variant = ObjectsAsObjects<'de>;

        fn variant_seed<V: DeserializeSeed<'de>>(self, seed: V) -> Result<(V::Value, Self::Variant), Error> {
            let variant = seed.deserialize(de::value::BorrowedStrDeserializer::<Error>::new(self.variant))?;
            Ok((variant, ObjectsAsObjects(self.content)))
        }
    }

    impl<'de> de::VariantAccess<'de> for ObjectsAsObjects<'de> {
        type Error = Error;

        fn unit_variant(self) -> Result<(), Error> {
            match self.0 {
                Value::Null => Ok(()),
                other => Err(de::Error::invalid_type(unexpected(other), &"a unit variant")),
            }
        }

        fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, Error> {
            seed.deserialize(self)
        }

        fn tuple_variant<V: Visitor<'de>>(self, _len: usize, visitor: V) -> Result<V::Value, Error> {
            de::Deserializer::deserialize_seq(self, visitor)
        }

        fn struct_variant<V: Visitor<'de>>(
            self,
            fields: &'static [&'static str],
            visitor: V,
        ) -> Result<V::Value, Error> {
            de::Deserializer::deserialize_struct(self, "", fields, visitor)
        }
    }
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
            assert_eq!((e.status.as_u16(), e.code), (422, ErrorCode::ValidationFailed));
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
        assert_eq!((e.status.as_u16(), e.code), (422, ErrorCode::ValidationFailed));
        let e = refused(r#"{"name": "A\u0000", "tags": []}"#);
        assert_eq!((e.status.as_u16(), e.errors[0].field.as_str()), (422, "name"));
        let e = refused(r#"{"name": "A", "tags": ["x", "\u0000"]}"#);
        assert_eq!(e.errors[0].field, "tags[1]");
        let e = refused(r#"{"name": ["A"], "tags": []}"#);
        assert_eq!((e.status.as_u16(), e.errors[0].field.as_str()), (422, "name"));
        assert_eq!(refused(r#"["A", "#).code, ErrorCode::MalformedJson);
        let ok = Json::<P>::from_bytes(br#"{"name": "A\\u0000", "tags": []}"#).unwrap();
        assert_eq!(ok.0.name, "A\\u0000");
    }

    #[test]
    fn a_nested_object_is_not_taken_from_an_array() {
        #[derive(Debug, serde::Deserialize, PartialEq)]
        struct Consent {
            given_by: String,
            at: u32,
        }
        #[derive(Debug, serde::Deserialize, PartialEq)]
        #[serde(rename_all = "snake_case")]
        enum Kind {
            Leave,
            Extra { minutes: u32 },
        }
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct Request {
            consent: Consent,
            others: Vec<Consent>,
            maybe: Option<Consent>,
            kind: Kind,
        }
        let parse = |body: &str| Json::<Request>::from_bytes(body.as_bytes());
        let ok = parse(
            r#"{"consent": {"given_by": "patient", "at": 1}, "others": [{"given_by": "guardian", "at": 2}],
                "maybe": null, "kind": {"extra": {"minutes": 30}}}"#,
        )
        .unwrap();
        assert_eq!(ok.0.others[0], Consent { given_by: "guardian".into(), at: 2 });
        assert_eq!(ok.0.kind, Kind::Extra { minutes: 30 });
        assert_eq!(
            parse(r#"{"consent": {"given_by": "p", "at": 1}, "others": [], "maybe": null, "kind": "leave"}"#)
                .unwrap()
                .0
                .kind,
            Kind::Leave
        );
        for (body, field) in [
            (r#"{"consent": ["patient", 1], "others": [], "maybe": null, "kind": "leave"}"#, "consent"),
            (
                r#"{"consent": {"given_by": "p", "at": 1}, "others": [["g", 2]], "maybe": null, "kind": "leave"}"#,
                "others[0]",
            ),
            (r#"{"consent": {"given_by": "p", "at": 1}, "others": [], "maybe": ["g", 2], "kind": "leave"}"#, "maybe"),
            (
                r#"{"consent": {"given_by": "p", "at": 1}, "others": [], "maybe": null, "kind": {"extra": [30]}}"#,
                "kind.extra",
            ),
            (r#"{"consent": {"given_by": "p", "at": -1}, "others": [], "maybe": null, "kind": "leave"}"#, "consent.at"),
        ] {
            let e = parse(body).expect_err(body);
            assert_eq!(
                (e.status.as_u16(), e.code, e.errors[0].field.as_str()),
                (422, ErrorCode::ValidationFailed, field),
                "{body}: {e}"
            );
        }
    }

    #[test]
    fn a_batch_is_one_object_or_an_array_of_objects() {
        #[derive(Debug, serde::Deserialize, PartialEq)]
        struct R {
            v: u32,
        }
        let one = JsonBatch::<R>::from_bytes(br#"{"v": 1}"#).unwrap();
        assert_eq!((one.items, one.array), (vec![R { v: 1 }], false));
        let many = JsonBatch::<R>::from_bytes(br#"[{"v": 1}, {"v": 2}]"#).unwrap();
        assert_eq!((many.items.len(), many.array), (2, true));
        for (body, field) in [
            (r#"[{"v": 1}, {"v": -2}]"#, "[1].v"),
            (r#"[{"v": 1}, [2]]"#, "[1]"),
            (r#"[{"v": 1, "w": "\u0000"}]"#, "[0].w"),
            (r#"3"#, ""),
        ] {
            let e = JsonBatch::<R>::from_bytes(body.as_bytes()).expect_err(body);
            assert_eq!((e.status.as_u16(), e.errors[0].field.as_str()), (422, field), "{body}");
        }
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

    fn refs(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                if let Some(Value::String(r)) = m.get("$ref") {
                    out.push(r.clone());
                }
                m.values().for_each(|x| refs(x, out));
            }
            Value::Array(a) => a.iter().for_each(|x| refs(x, out)),
            _ => {}
        }
    }

    #[test]
    fn the_document_describes_every_route_exactly() {
        let table = crate::app::routes();
        let doc = openapi(table.docs());
        for d in table.docs() {
            let op = &doc["paths"][d.path][d.method];
            let responses = op["responses"].as_object().unwrap_or_else(|| panic!("{d:?} has no responses"));
            assert!(responses.keys().any(|k| k.starts_with('2') || k == "101"), "{d:?} documents no successful answer");
            for p in op["parameters"].as_array().unwrap() {
                if p["in"] == "path" && p["name"] == "id" && !d.path.starts_with("/fhir/") {
                    assert_eq!(p["schema"]["format"], "uuid", "{d:?}");
                }
            }
            if d.authenticated {
                assert!(responses.contains_key("401"), "{d:?}");
            }
        }
        // Every reference resolves to a component.
        let mut found = Vec::new();
        refs(&doc, &mut found);
        assert!(found.len() > 50, "{} references", found.len());
        for r in found {
            let name = r.strip_prefix("#/components/schemas/").unwrap_or_else(|| panic!("{r} is not a component"));
            assert!(doc["components"]["schemas"].get(name).is_some(), "{r} does not resolve");
        }
        let codes = doc["components"]["schemas"]["Problem"]["properties"]["code"]["enum"].as_array().unwrap();
        assert_eq!(codes.len(), ErrorCode::ALL.len());
        // A typed body, a query and a 201 as the consultation request has them.
        let create = &doc["paths"]["/api/v1/consultations"]["post"];
        assert!(create["requestBody"]["content"]["application/json"]["schema"]["$ref"].is_string());
        assert!(create["responses"]["201"]["links"]["accept"].is_object());
        // Device routes name the device scheme, user routes the bearer one.
        assert_eq!(doc["paths"]["/api/v1/kiosk/checkin"]["post"]["security"], json!([{"device": []}]));
        assert_eq!(doc["paths"]["/api/v1/devices"]["post"]["security"], json!([{"bearer": []}]));
        assert_eq!(doc["components"]["securitySchemes"]["device"]["in"], "header");
        let list = &doc["paths"]["/api/v1/consultations"]["get"];
        assert!(list["parameters"].as_array().unwrap().iter().any(|p| p["name"] == "cursor" && p["in"] == "query"));
    }
}
