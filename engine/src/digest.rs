//! The request digest: what an approval is bound to.
//!
//! SHA-256 over a canonical, length-prefixed form of (key id, method, authority,
//! normalised path, query as received, SHA-256 of the body). Length prefixes make the
//! encoding injective: no two different requests share a canonical form.

use sha2::{Digest, Sha256};

pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

pub fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        for nibble in [b >> 4, b & 0x0f] {
            s.push(char::from_digit(u32::from(nibble), 16).unwrap_or('0'));
        }
    }
    s
}

pub struct DigestInput<'a> {
    pub key_id: &'a str,
    pub method: &'a str,
    pub authority: &'a str,
    pub path: &'a str,
    pub query: &'a str,
    pub body: &'a [u8],
}

/// `sha256:<hex>` of the canonical request.
pub fn request_digest(r: &DigestInput) -> String {
    let mut h = Sha256::new();
    h.update(b"scopegate-request-v1\n");
    let authority = r.authority.to_ascii_lowercase();
    for field in [r.key_id, r.method, &authority, r.path, r.query] {
        h.update((field.len() as u64).to_be_bytes());
        h.update(field.as_bytes());
    }
    h.update(sha256(r.body));
    let out: [u8; 32] = h.finalize().into();
    format!("sha256:{}", hex(&out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_binds_every_field() {
        let base = DigestInput {
            key_id: "k",
            method: "DELETE",
            authority: "api.test",
            path: "/rest/reservations",
            query: "id=eq.1",
            body: b"",
        };
        let d0 = request_digest(&base);
        assert!(d0.starts_with("sha256:") && d0.len() == 71);
        assert_eq!(
            request_digest(&DigestInput {
                authority: "API.test",
                ..base
            }),
            d0
        );
        let variants = [
            DigestInput {
                key_id: "k2",
                ..base
            },
            DigestInput {
                method: "GET",
                ..base
            },
            DigestInput {
                authority: "other",
                ..base
            },
            DigestInput {
                path: "/rest/vehicles",
                ..base
            },
            DigestInput {
                query: "id=eq.2",
                ..base
            },
            DigestInput { body: b"x", ..base },
            // Shifting bytes between fields changes the digest (length prefixes).
            DigestInput {
                path: "/rest/reservations?id=eq.1",
                query: "",
                ..base
            },
        ];
        for v in variants {
            assert_ne!(request_digest(&v), d0);
        }
        assert_eq!(hex(&[0x00, 0xab, 0xff]), "00abff");
        assert_eq!(
            hex(&sha256(b"abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
