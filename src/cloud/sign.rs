//! TC3-HMAC-SHA256 request signing (docs/lighthouse-api.md#signing-tc3-hmac-sha256), as plain functions over values.
//! The simulator verifies with the same pieces, rebuilding the canonical headers from whatever
//! `SignedHeaders` the client listed.

// SHA-256 and HMAC from ring, which rustls already links for TLS: the RustCrypto sha2/hmac
// crates added a second SHA-256 (11.7 KB of compress256 plus glue) to the binary.
use ring::{digest, hmac};

use crate::clock;

pub const ALGORITHM: &str = "TC3-HMAC-SHA256";

/// What a request is signed with.
pub struct Credentials<'a> {
    pub secret_id: &'a str,
    pub secret_key: &'a str,
}

/// Every intermediate value, so tests can compare each against the published vectors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signed {
    pub canonical_request: String,
    pub string_to_sign: String,
    pub authorization: String,
}

/// Signs a `POST /` with `content-type;host` as the signed headers, exactly as the official SDK.
pub fn sign(
    creds: &Credentials,
    service: &str,
    host: &str,
    content_type: &str,
    timestamp: i64,
    body: &[u8],
) -> Signed {
    let date = clock::utc_date(timestamp);
    let headers = format!(
        "content-type:{}\nhost:{}\n",
        content_type.trim(),
        host.trim()
    );
    let canonical_request = canonical_request(&headers, "content-type;host", &sha256_hex(body));
    let string_to_sign = string_to_sign(timestamp, &date, service, &canonical_request);
    let signature = signature(creds.secret_key, &date, service, &string_to_sign);
    let authorization = authorization(
        creds.secret_id,
        &date,
        service,
        "content-type;host",
        &signature,
    );
    Signed {
        canonical_request,
        string_to_sign,
        authorization,
    }
}

pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(digest::digest(&digest::SHA256, data))
}

/// `canonical_headers` is the `name:value\n` block, already lowercase, sorted and trimmed.
pub fn canonical_request(
    canonical_headers: &str,
    signed_headers: &str,
    hashed_payload: &str,
) -> String {
    format!("POST\n/\n\n{canonical_headers}\n{signed_headers}\n{hashed_payload}")
}

pub fn string_to_sign(
    timestamp: i64,
    date: &str,
    service: &str,
    canonical_request: &str,
) -> String {
    format!(
        "{ALGORITHM}\n{timestamp}\n{date}/{service}/tc3_request\n{}",
        sha256_hex(canonical_request.as_bytes())
    )
}

fn hmac(key: &[u8], msg: &[u8]) -> Vec<u8> {
    // HMAC accepts keys of any length.
    let key = hmac::Key::new(hmac::HMAC_SHA256, key);
    hmac::sign(&key, msg).as_ref().to_vec()
}

/// The derived signing key chain of step 6, then the signature of step 7.
pub fn signature(secret_key: &str, date: &str, service: &str, string_to_sign: &str) -> String {
    let k_date = hmac(format!("TC3{secret_key}").as_bytes(), date.as_bytes());
    let k_service = hmac(&k_date, service.as_bytes());
    let k_signing = hmac(&k_service, b"tc3_request");
    hex::encode(hmac(&k_signing, string_to_sign.as_bytes()))
}

pub fn authorization(
    secret_id: &str,
    date: &str,
    service: &str,
    signed_headers: &str,
    signature: &str,
) -> String {
    format!(
        "{ALGORITHM} Credential={secret_id}/{date}/{service}/tc3_request, SignedHeaders={signed_headers}, Signature={signature}"
    )
}

/// The parts of an `Authorization` header, as the server side reads them.
#[derive(Debug, PartialEq, Eq)]
pub struct ParsedAuthorization<'a> {
    pub secret_id: &'a str,
    pub date: &'a str,
    pub service: &'a str,
    pub signed_headers: &'a str,
    pub signature: &'a str,
}

pub fn parse_authorization(value: &str) -> Option<ParsedAuthorization<'_>> {
    let rest = value.strip_prefix(ALGORITHM)?.strip_prefix(' ')?;
    let mut credential = None;
    let mut signed_headers = None;
    let mut signature = None;
    for part in rest.split(", ") {
        let (k, v) = part.split_once('=')?;
        match k.trim() {
            "Credential" => credential = Some(v),
            "SignedHeaders" => signed_headers = Some(v),
            "Signature" => signature = Some(v),
            _ => return None,
        }
    }
    let mut cred = credential?.split('/');
    let parsed = ParsedAuthorization {
        secret_id: cred.next()?,
        date: cred.next()?,
        service: cred.next()?,
        signed_headers: signed_headers?,
        signature: signature?,
    };
    (cred.next()? == "tc3_request" && cred.next().is_none()).then_some(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Vector {
        id: &'static str,
        key: &'static str,
        service: &'static str,
        host: &'static str,
        content_type: &'static str,
        ts: i64,
        body: &'static str,
        payload_hash: &'static str,
        sts_digest: &'static str,
        signature: &'static str,
    }

    const VECTORS: [Vector; 4] = [
        Vector {
            id: "AKIDz8krbsJ5yKBZQpn74WFkmLPx3EXAMPLE",
            key: "Gu5t9xGARNpq86cd98joQYCN3EXAMPLE",
            service: "cvm",
            host: "cvm.tencentcloudapi.com",
            content_type: "application/json; charset=utf-8",
            ts: 1_551_113_065,
            body: r#"{"Limit": 1, "Filters": [{"Values": ["\u672a\u547d\u540d"], "Name": "instance-name"}]}"#,
            payload_hash: "35e9c5b0e3ae67532d3c9f17ead6c90222632e5b1ff7f6e89887f1398934f064",
            sts_digest: "5ffe6a04c0664d6b969fab9a13bdab201d63ee709638e2749d62a09ca18d7031",
            signature: "72e494ea809ad7a8c8f7a4507b9bddcbaa8e581f516e8da2f66e2c5a96525168",
        },
        Vector {
            id: "AKIDEXAMPLEEXAMPLEEXAMPLEEXAMPLE0001",
            key: "ExampleSecretKeyExampleSecretKey01",
            service: "lighthouse",
            host: "lighthouse.tencentcloudapi.com",
            content_type: "application/json",
            ts: 1_700_000_000,
            body: r#"{"InstanceId": "lhins-abcd1234", "FirewallRules": [{"Protocol": "TCP", "Port": "22", "CidrBlock": "203.0.113.7/32", "Action": "ACCEPT", "FirewallRuleDescription": "ssh office"}, {"Protocol": "UDP", "Port": "8000-8010", "CidrBlock": "0.0.0.0/0", "Action": "DROP"}], "FirewallVersion": 7}"#,
            payload_hash: "33cfcb01cafe092a52e2a2a66e79569ac58349fb66115fd375768067fe0cb68e",
            sts_digest: "a4e5ae69e08ab14d99f3532e5a5aaee84f9bce5c8b52a9c898312d4116b13cca",
            signature: "e4511d40837c63e704c193114f75755cd4c371b014dbfc7354a6dd1a3dbef7e1",
        },
        Vector {
            id: "AKIDFAKEFAKEFAKEFAKEFAKEFAKEFAKE0002",
            key: "FakeSecretKeyFakeSecretKeyFake02",
            service: "lighthouse",
            host: "lighthouse.ap-hongkong.tencentcloudapi.com",
            content_type: "application/json",
            ts: 1_735_689_599,
            body: r#"{"InstanceId": "lhins-0example9", "FirewallRules": [{"Protocol": "TCP", "Port": "80,443", "CidrBlock": "198.51.100.0/24", "FirewallRuleDescription": "\u529e\u516c\u5ba4 web"}]}"#,
            payload_hash: "004a8b043e0a3f9fda4454788423387dcc1f0639a1caa242d0259625a8d09529",
            sts_digest: "13c86a85e866dbcd23c71409cc8cf7caf0a889f41ea635510e1adbcd20fb7f15",
            signature: "1173e2194de190653d7fe2b470e67c126e422b1f7c27b6d0ccf302742f70fd92",
        },
        Vector {
            id: "AKIDFAKEFAKEFAKEFAKEFAKEFAKEFAKE0002",
            key: "FakeSecretKeyFakeSecretKeyFake02",
            service: "lighthouse",
            host: "lighthouse.ap-hongkong.tencentcloudapi.com",
            content_type: "application/json",
            ts: 1_735_689_599,
            body: "{\"InstanceId\":\"lhins-0example9\",\"FirewallRules\":[{\"Protocol\":\"TCP\",\"Port\":\"80,443\",\"CidrBlock\":\"198.51.100.0/24\",\"FirewallRuleDescription\":\"办公室 web\"}]}",
            payload_hash: "258c651bbbbec4851a0349a35a839f292c1dfb35d9c0ea57432a2780f02cff32",
            sts_digest: "475f3bc30fb6b77be7d0fcb384fd6074e872ed428ca9f86526f3b9fd8488111f",
            signature: "97a59eb8aebd878f77624df75f85a4b1bab572422a03fbabbd06dd8e20dd94da",
        },
    ];

    #[test]
    fn official_vectors_v0_to_v3_byte_for_byte() {
        for (i, v) in VECTORS.iter().enumerate() {
            let creds = Credentials {
                secret_id: v.id,
                secret_key: v.key,
            };
            let s = sign(
                &creds,
                v.service,
                v.host,
                v.content_type,
                v.ts,
                v.body.as_bytes(),
            );
            let date = clock::utc_date(v.ts);
            let want_cr = format!(
                "POST\n/\n\ncontent-type:{}\nhost:{}\n\ncontent-type;host\n{}",
                v.content_type, v.host, v.payload_hash
            );
            assert_eq!(s.canonical_request, want_cr, "V{i} canonical request");
            let want_sts = format!(
                "TC3-HMAC-SHA256\n{}\n{date}/{}/tc3_request\n{}",
                v.ts, v.service, v.sts_digest
            );
            assert_eq!(s.string_to_sign, want_sts, "V{i} string to sign");
            let want_auth = format!(
                "TC3-HMAC-SHA256 Credential={}/{date}/{}/tc3_request, SignedHeaders=content-type;host, Signature={}",
                v.id, v.service, v.signature
            );
            assert_eq!(s.authorization, want_auth, "V{i} authorization");
        }
    }

    #[test]
    fn v2_uses_the_utc_date_not_local() {
        let s = &VECTORS[2];
        let signed = sign(
            &Credentials {
                secret_id: s.id,
                secret_key: s.key,
            },
            s.service,
            s.host,
            s.content_type,
            s.ts,
            s.body.as_bytes(),
        );
        assert!(signed.authorization.contains("/2024-12-31/lighthouse/"));
    }

    #[test]
    fn authorization_parses_back() {
        let v = &VECTORS[1];
        let s = sign(
            &Credentials {
                secret_id: v.id,
                secret_key: v.key,
            },
            v.service,
            v.host,
            v.content_type,
            v.ts,
            v.body.as_bytes(),
        );
        let p = parse_authorization(&s.authorization).expect("parses");
        assert_eq!(p.secret_id, v.id);
        assert_eq!(p.date, "2023-11-14");
        assert_eq!(p.service, "lighthouse");
        assert_eq!(p.signed_headers, "content-type;host");
        assert_eq!(p.signature, v.signature);
        assert_eq!(parse_authorization("Bearer x"), None);
        assert_eq!(
            parse_authorization("TC3-HMAC-SHA256 Credential=a/b, SignedHeaders=h, Signature=s"),
            None
        );
    }
}
