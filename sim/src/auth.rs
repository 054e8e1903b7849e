//! TC3-HMAC-SHA256 on the server side (docs/lighthouse-api.md, signing): the request is
//! re-signed from its own SignedHeaders with the credential's key and compared.

use crate::args::Config;
use crate::error::{err, ApiError};
use crate::http::Request;
use crate::knockd_api::{clock, sign};

const SERVICE: &str = "lighthouse";
/// A timestamp more than five minutes from server time is refused.
const MAX_SKEW_SECS: i64 = 300;

/// The server-side signature check; returns the SecretId.
pub(crate) fn authenticate(cfg: &Config, req: &Request, now: i64) -> Result<String, ApiError> {
    let auth = req
        .header("authorization")
        .and_then(sign::parse_authorization)
        .ok_or_else(|| {
            err(
                "AuthFailure.InvalidAuthorization",
                "The Authorization header is missing or malformed.",
            )
        })?;
    let key = cfg
        .credentials
        .iter()
        .find(|(id, _)| id == auth.secret_id)
        .map(|(_, k)| k.as_str())
        .ok_or_else(|| err("AuthFailure.SecretIdNotFound", "The SecretId is not found."))?;
    let ts_text = req.header("x-tc-timestamp").ok_or_else(|| {
        err(
            "MissingParameter",
            "The request is missing a required parameter `X-TC-Timestamp`.",
        )
    })?;
    let ts: i64 = ts_text.parse().map_err(|_| {
        err(
            "InvalidParameterValue",
            format!("`X-TC-Timestamp` `{ts_text}` is not a Unix time."),
        )
    })?;
    if (now - ts).abs() > MAX_SKEW_SECS {
        return Err(err(
            "AuthFailure.SignatureExpire",
            format!(
                "Request timestamp {ts} is more than {MAX_SKEW_SECS} s from server time {now}."
            ),
        ));
    }
    let failure = |why: &str| {
        err(
            "AuthFailure.SignatureFailure",
            format!("The provided credentials could not be validated: {why}."),
        )
    };
    if auth.service != SERVICE {
        return Err(failure("the credential scope service is not lighthouse"));
    }
    if auth.date != clock::utc_date(ts) {
        return Err(failure(
            "the credential scope date is not the UTC date of X-TC-Timestamp",
        ));
    }
    // Canonical headers are rebuilt from the client's own SignedHeaders list (extra
    // signed headers are allowed, in ascending order, lowercase).
    let names: Vec<&str> = auth.signed_headers.split(';').collect();
    let sorted = names.windows(2).all(|w| w[0] < w[1]);
    let lower = names
        .iter()
        .all(|n| !n.is_empty() && !n.bytes().any(|b| b.is_ascii_uppercase()));
    if !sorted || !lower || !names.contains(&"content-type") || !names.contains(&"host") {
        return Err(failure(
            "SignedHeaders must be lowercase, ascending and include content-type and host",
        ));
    }
    let mut canonical = String::new();
    for name in &names {
        let value = req
            .header(name)
            .ok_or_else(|| failure("a signed header is absent from the request"))?;
        canonical.push_str(name);
        canonical.push(':');
        canonical.push_str(value.trim());
        canonical.push('\n');
    }
    let cr = sign::canonical_request(
        &canonical,
        auth.signed_headers,
        &sign::sha256_hex(&req.body),
    );
    let sts = sign::string_to_sign(ts, auth.date, SERVICE, &cr);
    let expected = sign::signature(key, auth.date, SERVICE, &sts);
    if !constant_time_eq(expected.as_bytes(), auth.signature.as_bytes()) {
        return Err(failure("signature mismatch"));
    }
    Ok(auth.secret_id.to_string())
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
