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
    fn a_page_ends_where_no_row_is_left_over() {
        let p = page(vec![5, 4, 3], 2, |n| n.to_string());
        assert_eq!((p.items, p.next.as_deref()), (vec![5, 4], Some("4")));
        let p = page(vec![5, 4], 2, |n| n.to_string());
        assert_eq!((p.items, p.next), (vec![5, 4], None));
    }
}
