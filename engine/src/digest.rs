//! The request digest: what an approval is bound to.
//!
//! SHA-256 over a canonical, length-prefixed form of (key id, method, authority,
//! normalised path, the decoded operations, and what the request means — its protocol's
//! canonical form, `Decode::meaning`: the SQL as tokens, the GraphQL document as tokens
//! with its variables, the MCP method and params without the JSON-RPC id, REST's decoded
//! query, meaning headers and canonical body). Length prefixes make the encoding
//! injective. Any change to what the upstream does changes the digest (so one human
//! approval never covers a request that does something else); a change that does not —
//! whitespace, JSON member order, a client's next request id — leaves it, so a real
//! client can retry what was approved.

use crate::operation::Operation;
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
    /// What the request was decoded to do.
    pub operations: &'a [Operation],
    /// What it means (`Decode::meaning`).
    pub meaning: &'a [String],
}

/// `sha256:<hex>` of the canonical request.
pub fn request_digest(r: &DigestInput) -> String {
    let mut h = Sha256::new();
    h.update(b"scopegate-request-v3\n");
    let mut field = |f: &str| {
        h.update((f.len() as u64).to_be_bytes());
        h.update(f.as_bytes());
    };
    let authority = r.authority.to_ascii_lowercase();
    for f in [r.key_id, r.method, &authority, r.path] {
        field(f);
    }
    // Each operation as marker-tagged, length-prefixed fields (records and sets are
    // ordered maps, their value lists sorted by the decoders).
    for op in r.operations {
        for f in [
            "op",
            &op.service,
            op.action.as_str(),
            &op.resource,
            if op.scope == crate::operation::Scope::All {
                "all"
            } else {
                "some"
            },
        ] {
            field(f);
        }
        for (k, vs) in &op.records {
            field("record");
            field(k);
            field(&vs.len().to_string());
            vs.iter().for_each(|v| field(v));
        }
        for (k, vs) in &op.sets {
            field("set");
            field(k);
            match vs {
                Some(vs) => {
                    field(&vs.len().to_string());
                    vs.iter().for_each(|v| field(v));
                }
                None => field("unknown"),
            }
        }
    }
    field("meaning");
    field(&r.meaning.len().to_string());
    r.meaning.iter().for_each(|m| field(m));
    let out: [u8; 32] = h.finalize().into();
    format!("sha256:{}", hex(&out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_binds_every_field() {
        use crate::operation::{Action, Operation};
        let ops = [Operation::new("rentals", Action::Delete, "reservations")];
        let other_schema = [Operation::new(
            "rentals",
            Action::Delete,
            "audit.reservations",
        )];
        let m = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let (m0, m1, m2, m3) = (
            m(&["param", "id", "eq.1"]),
            m(&["param", "id", "eq.2"]),
            m(&["param", "id", "eq.1", "body", "x"]),
            m(&["param", "ideq.1"]),
        );
        let base = DigestInput {
            key_id: "k",
            method: "DELETE",
            authority: "api.test",
            path: "/rest/reservations",
            operations: &[],
            meaning: &m0,
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
                meaning: &m1,
                ..base
            },
            DigestInput {
                meaning: &m2,
                ..base
            },
            // The same bytes decoded to other operations (a header changed them).
            DigestInput {
                operations: &ops,
                ..base
            },
            DigestInput {
                operations: &other_schema,
                ..base
            },
            // Shifting bytes between fields changes the digest (length prefixes).
            DigestInput {
                meaning: &m3,
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
