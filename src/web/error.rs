//! The one map from errors to HTTP statuses. Bad input is a 400 or 404 with a page that says
//! what was wrong; only a failure of the server itself (a broken database) is a 500.

use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};

/// What went wrong with a request.
#[derive(Debug, thiserror::Error)]
pub enum WebError {
    /// No such message, thread or list. `search` suggests a search for what was asked.
    #[error("{message}")]
    NotFound {
        /// Explanation.
        message: String,
        /// A search to offer.
        search: Option<String>,
    },
    /// A parameter could not be understood.
    #[error("{0}")]
    BadRequest(String),
    /// A method this archive does not take here (it is read-only outside the digest forms),
    /// with the methods it does take there (the `Allow` header).
    #[error("{message}")]
    MethodNotAllowed {
        message: String,
        allow: &'static str,
    },
    /// A form without its anti-forgery token (or with a stale one).
    #[error("{0}")]
    Forbidden(String),
    /// Too many requests from one client.
    #[error("{0}")]
    TooManyRequests(String),
    /// A feature this server is not configured for, or a mail server that is down.
    #[error("{0}")]
    Unavailable(String),
    /// The server failed (not the request's fault).
    #[error("internal error: {0:#}")]
    Internal(#[from] anyhow::Error),
}

/// The same errors, answered as JSON for `/api/`.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ApiError(pub WebError);

impl From<anyhow::Error> for ApiError {
    fn from(err: anyhow::Error) -> Self {
        ApiError(WebError::Internal(err))
    }
}

impl From<WebError> for ApiError {
    fn from(err: WebError) -> Self {
        ApiError(err)
    }
}

impl WebError {
    fn status(&self) -> StatusCode {
        match self {
            WebError::NotFound { .. } => StatusCode::NOT_FOUND,
            WebError::BadRequest(_) => StatusCode::BAD_REQUEST,
            WebError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            WebError::Forbidden(_) => StatusCode::FORBIDDEN,
            WebError::TooManyRequests(_) => StatusCode::TOO_MANY_REQUESTS,
            WebError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            WebError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn public_message(&self) -> String {
        match self {
            WebError::Internal(err) => {
                eprintln!("archivist serve: {err:#}");
                "The archive could not answer this request. The error was logged.".into()
            }
            other => other.to_string(),
        }
    }
}

impl ResponseError for WebError {
    fn status_code(&self) -> StatusCode {
        self.status()
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status();
        let heading = match status {
            StatusCode::NOT_FOUND => "Not found",
            StatusCode::BAD_REQUEST => "Bad request",
            StatusCode::METHOD_NOT_ALLOWED => "Method not allowed",
            StatusCode::FORBIDDEN => "Form expired",
            StatusCode::TOO_MANY_REQUESTS => "Too many requests",
            StatusCode::SERVICE_UNAVAILABLE => "Not available",
            _ => "Server error",
        };
        let search = match self {
            WebError::NotFound { search, .. } => search.clone(),
            _ => None,
        };
        let body = super::render::render(
            "error.html",
            serde_json::json!({
                "title": heading, "heading": heading,
                "message": self.public_message(), "search": search,
            }),
        )
        .unwrap_or_else(|_| heading.to_string());
        let mut response = HttpResponse::build(status);
        response.insert_header((header::CONTENT_TYPE, "text/html; charset=utf-8"));
        if let WebError::MethodNotAllowed { allow, .. } = self {
            response.insert_header((header::ALLOW, *allow));
        }
        response.body(body)
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.0.status()
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.0.status());
        if let WebError::MethodNotAllowed { allow, .. } = &self.0 {
            response.insert_header((header::ALLOW, *allow));
        }
        // The search offered on the HTML page, as the OpenAPI document's Error promises.
        match &self.0 {
            WebError::NotFound {
                search: Some(search),
                ..
            } => response.json(serde_json::json!({
                "error": self.0.public_message(),
                "search": search,
            })),
            _ => response.json(serde_json::json!({ "error": self.0.public_message() })),
        }
    }
}
