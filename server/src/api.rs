//! Route registration that also documents: every route is added through [`Routes`], which
//! records its method, path, tag and summary, so the OpenAPI document is generated from the
//! same table the router is built from and cannot miss an endpoint. Also the JSON, path and
//! query extractors whose rejections become problem+json.

use crate::app::AppState;
use crate::error::ApiError;
use axum::extract::FromRequest;
use axum::handler::Handler;
use axum::response::{IntoResponse, Response};
use axum::routing::{on, MethodFilter};
use axum::Router;
use serde::Serialize;
use serde_json::{json, Map, Value};

/// JSON body extractor and response whose rejection is a problem+json [`ApiError`].
#[derive(Debug, Clone, Copy, Default, FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct Json<T>(pub T);

impl<T: Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

/// Path extractor whose rejection is a problem+json 404.
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct Path<T>(pub T);

/// Query-string extractor whose rejection is a problem+json 400 naming the parameter.
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct Query<T>(pub T);

use axum::extract::FromRequestParts;

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
pub fn page_limit(limit: Option<u32>, max: u32) -> crate::error::ApiResult<usize> {
    match limit.unwrap_or(DEFAULT_PAGE_LIMIT) {
        n if (1..=max).contains(&n) => Ok(n as usize),
        _ => Err(crate::error::ApiError::validation("limit", format!("must be between 1 and {max}"))),
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

/// Problems every route may answer: the database unreachable (503) and a request body over
/// the limit (413, for routes with a body).
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

/// The schema of a path parameter: ids are UUIDs; DICOM UIDs, frame lists and tags are text.
fn path_param_schema(name: &str) -> Value {
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
                json!({"type": "string", "contentMediaType": media})
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
            .map(|name| json!({"name": name, "in": "path", "required": true, "schema": path_param_schema(name)}))
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
            "security": if d.authenticated { json!([{"bearer": []}]) } else { json!([]) },
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
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}},
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
            "code": {"type": "string", "enum": crate::error::CODES},
            "errors": {"type": "array", "items": {"type": "object", "required": ["field", "message"], "properties": {"field": {"type": "string"}, "message": {"type": "string"}}}}
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
                if p["in"] == "path" && p["name"] == "id" {
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
        assert_eq!(codes.len(), crate::error::CODES.len());
        // A typed body, a query and a 201 as the consultation request has them.
        let create = &doc["paths"]["/api/v1/consultations"]["post"];
        assert!(create["requestBody"]["content"]["application/json"]["schema"]["$ref"].is_string());
        assert!(create["responses"]["201"]["links"]["accept"].is_object());
        let list = &doc["paths"]["/api/v1/consultations"]["get"];
        assert!(list["parameters"].as_array().unwrap().iter().any(|p| p["name"] == "cursor" && p["in"] == "query"));
    }
}
