//! The JSON API under `/api/v1/`, and its OpenAPI document. Shapes are contracts: add
//! fields, never rename or drop them.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::{json, Value};

use super::cache::{Rendered, Scope};
use super::error::ApiError;
use super::pages::{
    page_number_upto, parse_id, run_search, search_params, SearchQuery, MAX_LIST_PAGE,
};
use super::render::iso_date;
use super::{cached, obfuscate, respond, respond_with, Cost, State, WebError};
use crate::store::FullMessage;

type Api = Result<HttpResponse, ApiError>;

const JSON: &str = "application/json";

fn json_body(value: &Value, last_modified: Option<i64>) -> Rendered {
    Rendered::new(
        JSON,
        serde_json::to_vec(value).unwrap_or_default(),
        last_modified,
    )
}

fn message_json(state: &State, m: &FullMessage) -> Value {
    let hide = state.obfuscate;
    json!({
        "message_id": m.id.as_str(),
        "subject": m.subject,
        "from": {
            "name": m.from.name.as_deref().map(|n| obfuscate::maybe(hide, n)),
            "address": m.from.addr.as_deref().map(|a| obfuscate::maybe(hide, a)),
        },
        "date": iso_date(m.date),
        "lists": m.lists,
        "references": m.refs,
        "attachments": m.attachments.iter().map(|a| json!({
            "filename": a.filename, "content_type": a.content_type, "size": a.size
        })).collect::<Vec<_>>(),
        "has_patch": m.has_patch,
        "body": obfuscate::maybe(hide, &m.body),
        "raw_url": format!("/m/{}/raw", super::render::id_path(m.id.as_str())),
    })
}

/// `GET /api/v1/lists`
pub async fn lists(state: web::Data<State>, req: HttpRequest) -> Api {
    respond(&state, &req, Scope::Archive, |_, s| {
        let lists = s.lists_overview()?;
        let value = json!({"lists": lists.iter().map(|l| json!({
            "name": l.name, "messages": l.messages, "latest": iso_date(l.latest)
        })).collect::<Vec<_>>()});
        Ok(json_body(
            &value,
            lists.iter().filter_map(|l| l.latest).max(),
        ))
    })
    .await
}

/// `?page=`
#[derive(Debug, Deserialize)]
pub struct PageParam {
    page: Option<String>,
}

/// `GET /api/v1/lists/{list}/threads?page=N`
pub async fn list_threads(
    state: web::Data<State>,
    req: HttpRequest,
    path: web::Path<String>,
    query: web::Query<PageParam>,
) -> Api {
    let list = path.into_inner();
    let page = page_number_upto(query.page.as_deref(), MAX_LIST_PAGE)?;
    let per_page = 50;
    respond(&state, &req, Scope::Archive, move |state, s| {
        if !s.list_exists(&list)? {
            return Err(WebError::NotFound {
                message: format!("no list named {list:?}"),
                search: None,
            });
        }
        let (threads, total) =
            s.threads_by_activity(Some(&list), None, per_page, (page - 1) * per_page)?;
        let value = json!({
            "list": list, "page": page, "total": total,
            "threads": threads.iter().map(|t| json!({
                "root_message_id": t.root_id.as_str(), "subject": t.subject,
                "from": obfuscate::label(state.obfuscate, &t.from), "messages": t.messages,
                "first": iso_date(t.first), "last": iso_date(t.last),
            })).collect::<Vec<_>>(),
        });
        Ok(json_body(
            &value,
            threads.iter().filter_map(|t| t.last).max(),
        ))
    })
    .await
}

/// `GET /api/v1/threads/{message-id}`: the thread holding that message.
pub async fn thread(
    state: web::Data<State>,
    req: HttpRequest,
    path: web::Path<String>,
    query: web::Query<PageParam>,
) -> Api {
    let id = parse_id(&path.into_inner())?;
    let page = page_number_upto(query.page.as_deref(), MAX_LIST_PAGE)?;
    respond_with(
        &state,
        &req,
        Scope::Archive,
        Cost::Thread(id.clone()),
        move |state, s| {
            let outline = s.thread_outline(&id)?.ok_or_else(|| WebError::NotFound {
                message: format!("no message <{id}>"),
                search: Some(format!("msgid:{id}")),
            })?;
            let pages = outline.len().div_ceil(THREAD_API_MESSAGES).max(1);
            if page > pages {
                return Err(WebError::NotFound {
                    message: format!("the thread has {pages} page(s), not {page}"),
                    search: None,
                });
            }
            let rows: Vec<i64> = outline
                .iter()
                .skip((page - 1) * THREAD_API_MESSAGES)
                .take(THREAD_API_MESSAGES)
                .map(|m| m.row)
                .collect();
            let messages = s.full_messages_of(&rows)?;
            let value = json!({
                "message_id": id.as_str(),
                "total": outline.len(),
                "page": page,
                "pages": pages,
                "messages": messages.iter().map(|m| message_json(state, m)).collect::<Vec<_>>(),
            });
            Ok(json_body(
                &value,
                outline.iter().filter_map(|m| m.date).max(),
            ))
        },
    )
    .await
}

/// Messages per page of `/api/v1/threads/{id}`: every message of all but the longest threads.
const THREAD_API_MESSAGES: usize = 1000;

/// `GET /api/v1/messages/{message-id}`
pub async fn message(state: web::Data<State>, req: HttpRequest, path: web::Path<String>) -> Api {
    let id = parse_id(&path.into_inner())?;
    respond_with(
        &state,
        &req,
        Scope::Archive,
        Cost::OneMessage,
        move |state, s| {
            let m = s.message(&id)?.ok_or_else(|| WebError::NotFound {
                message: format!("no message <{id}>"),
                search: Some(format!("msgid:{id}")),
            })?;
            Ok(json_body(&message_json(state, &m), m.date))
        },
    )
    .await
}

/// `GET /api/v1/search?q=&sort=&page=&collapse=`: the same object as `archivist search --json`.
pub async fn search(
    state: web::Data<State>,
    req: HttpRequest,
    query: web::Query<SearchQuery>,
) -> Api {
    let p = search_params(
        query.q.as_deref(),
        query.sort.as_deref(),
        query.page.as_deref(),
        query.collapse.as_deref(),
        20,
    )?;
    respond(&state, &req, Scope::Search, move |state, s| {
        let page = run_search(state, s, &p)?;
        let value = serde_json::to_value(&page).map_err(|e| WebError::Internal(e.into()))?;
        Ok(json_body(&value, None))
    })
    .await
}

/// `GET /api/v1/openapi.json`
pub async fn openapi(req: HttpRequest) -> HttpResponse {
    cached(&req, JSON, OPENAPI.as_bytes().to_vec())
}

const OPENAPI: &str = r##"{
  "openapi": "3.0.3",
  "info": {"title": "Archivist", "version": "1", "description": "Read-only API of a mailing-list archive. Message-IDs are given without angle brackets and percent-encoded in paths. Every error is a JSON object with an `error` string."},
  "paths": {
    "/api/v1/lists": {"get": {"summary": "Lists with message counts and latest activity", "responses": {"200": {"description": "lists", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Lists"}}}}}}},
    "/api/v1/lists/{list}/threads": {"get": {"summary": "A list's threads by last activity, 50 a page", "parameters": [
        {"name": "list", "in": "path", "required": true, "schema": {"type": "string"}},
        {"name": "page", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 1000000}}],
      "responses": {"200": {"description": "threads", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ListThreads"}}}}, "400": {"$ref": "#/components/responses/Error"}, "404": {"$ref": "#/components/responses/Error"}}}},
    "/api/v1/threads/{message_id}": {"get": {"summary": "The thread holding a message, oldest first, 1000 messages a page", "parameters": [{"name": "message_id", "in": "path", "required": true, "schema": {"type": "string"}},
        {"name": "page", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 1000000}}],
      "responses": {"200": {"description": "thread", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Thread"}}}}, "400": {"$ref": "#/components/responses/Error"}, "404": {"$ref": "#/components/responses/Error"}}}},
    "/api/v1/messages/{message_id}": {"get": {"summary": "One message", "parameters": [{"name": "message_id", "in": "path", "required": true, "schema": {"type": "string"}}],
      "responses": {"200": {"description": "message", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Message"}}}}, "400": {"$ref": "#/components/responses/Error"}, "404": {"$ref": "#/components/responses/Error"}}}},
    "/api/v1/search": {"get": {"summary": "Search (see /help for the query language), 20 hits a page", "parameters": [
        {"name": "q", "in": "query", "description": "The query; only its first 16384 bytes are read (with a notice). Empty: every message, newest first.", "schema": {"type": "string"}},
        {"name": "sort", "in": "query", "schema": {"type": "string", "enum": ["relevance", "date"]}},
        {"name": "page", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 500}},
        {"name": "collapse", "in": "query", "schema": {"type": "string", "enum": ["0", "1", "true", "false"]}}],
      "responses": {"200": {"description": "results", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Search"}}}}, "400": {"$ref": "#/components/responses/Error"}}}}
  },
  "components": {
    "responses": {"Error": {"description": "error", "content": {"application/json": {"schema": {"type": "object", "required": ["error"], "properties": {"error": {"type": "string"}, "search": {"type": "string", "description": "a query that may find what was asked for"}}}}}}},
    "schemas": {
      "Lists": {"type": "object", "properties": {"lists": {"type": "array", "items": {"type": "object", "properties": {"name": {"type": "string"}, "messages": {"type": "integer"}, "latest": {"type": "string", "description": "RFC 3339, empty when undated"}}}}}},
      "ListThreads": {"type": "object", "properties": {"list": {"type": "string"}, "page": {"type": "integer"}, "total": {"type": "integer", "description": "threads in the list"}, "threads": {"type": "array", "items": {"type": "object", "properties": {"root_message_id": {"type": "string"}, "subject": {"type": "string"}, "from": {"type": "string"}, "messages": {"type": "integer"}, "first": {"type": "string"}, "last": {"type": "string"}}}}}},
      "Thread": {"type": "object", "properties": {"message_id": {"type": "string", "description": "the message asked for"}, "total": {"type": "integer", "description": "messages in the thread"}, "page": {"type": "integer"}, "pages": {"type": "integer"}, "messages": {"type": "array", "items": {"$ref": "#/components/schemas/Message"}}}},
      "Message": {"type": "object", "properties": {"message_id": {"type": "string"}, "subject": {"type": "string"}, "from": {"type": "object", "properties": {"name": {"type": "string", "nullable": true}, "address": {"type": "string", "nullable": true}}}, "date": {"type": "string", "description": "RFC 3339, empty when undated"}, "lists": {"type": "array", "items": {"type": "string"}}, "references": {"type": "array", "items": {"type": "string"}}, "attachments": {"type": "array", "items": {"type": "object", "properties": {"filename": {"type": "string", "nullable": true}, "content_type": {"type": "string"}, "size": {"type": "integer"}}}}, "has_patch": {"type": "boolean"}, "body": {"type": "string", "description": "the text of the message (HTML mail as text)"}, "raw_url": {"type": "string", "description": "path of the stored bytes"}}},
      "Search": {"type": "object", "properties": {"total": {"type": "integer", "description": "matching messages, or threads when collapsed"}, "hits": {"type": "array", "items": {"type": "object", "properties": {"message_id": {"type": "string"}, "subject": {"type": "string"}, "from": {"type": "string"}, "from_addr": {"type": "string", "nullable": true}, "date": {"type": "string", "nullable": true}, "lists": {"type": "array", "items": {"type": "string"}}, "snippet": {"type": "string", "description": "escaped HTML; matched words in <b>"}, "score": {"type": "number"}, "thread_size": {"type": "integer"}, "thread_hits": {"type": "integer", "description": "matching messages in the hit's thread (collapsed results)"}}}}, "facets": {"type": "object", "description": "lists, years, tags and senders, each an array of {value, count} over the whole result set"}, "notices": {"type": "array", "items": {"type": "string"}}, "sort": {"type": "string"}}}
    }
  }
}"##;

/// Any other path under `/api/v1/`: a JSON 404, like every API error.
pub async fn not_found(req: HttpRequest) -> Api {
    let path: String = req.path().chars().take(200).collect();
    if !matches!(
        *req.method(),
        actix_web::http::Method::GET | actix_web::http::Method::HEAD
    ) {
        return Err(WebError::MethodNotAllowed {
            message: format!(
                "{} is not taken at {path:?}: the API is read-only",
                req.method()
            ),
            allow: "GET, HEAD",
        }
        .into());
    }
    Err(WebError::NotFound {
        message: format!("no API route {path:?}; see /api/v1/openapi.json"),
        search: None,
    }
    .into())
}
