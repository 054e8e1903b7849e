//! The error every check and action answers with: a cloud error code and its message, sent back
//! in the `Response.Error` envelope (docs/lighthouse-api.md, response envelope).

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ApiError {
    pub(crate) code: String,
    pub(crate) message: String,
}

impl ApiError {
    pub(crate) fn new(code: &str, message: impl Into<String>) -> ApiError {
        ApiError {
            code: code.to_string(),
            message: message.into(),
        }
    }
}

/// Shorthand for `ApiError::new`.
pub(crate) fn err(code: &str, message: impl Into<String>) -> ApiError {
    ApiError::new(code, message)
}
