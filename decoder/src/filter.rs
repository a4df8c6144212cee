//! The call filter (the UI's `/`, `--call-filter`): words that must all match. `method:TEXT`, `status:NAME` (a prefix of the
//! status name, or `error`, `ok`, `open`), `server:TEXT`, `client:TEXT`, `conn:ID`; any other
//! word is looked for in the method, status, grpc-message, addresses and authority. Case does
//! not matter.

use std::net::SocketAddr;

/// One filter word.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Term {
    Method(String),
    Status(String),
    Server(String),
    Client(String),
    Conn(u64),
    Text(String),
}

/// A parsed filter.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    text: String,
    terms: Vec<Term>,
}

/// What a call shows to the filter.
#[derive(Debug, Clone, Copy)]
pub struct Fields<'a> {
    /// Method name, if read.
    pub method: Option<&'a str>,
    /// Status name ("OK", "UNAVAILABLE", ...), `None` while open or unknown.
    pub status: Option<&'a str>,
    /// Still open.
    pub open: bool,
    /// Ended in an error, its code known or not.
    pub error: bool,
    /// `grpc-message`.
    pub message: Option<&'a str>,
    /// Client address.
    pub client: SocketAddr,
    /// Server address.
    pub server: SocketAddr,
    /// `:authority`.
    pub authority: Option<&'a str>,
    /// Connection id.
    pub conn: u64,
}

impl<'a> Fields<'a> {
    /// A call as its record shows it: ended (`open` false) or, with `open`, still in progress
    /// (no status yet).
    pub fn of(c: &'a crate::calls::record::CallRecord, open: bool) -> Fields<'a> {
        Fields {
            method: c.method.as_deref(),
            status: if open {
                None
            } else {
                c.status.map(|s| s.name())
            },
            open,
            error: !open && c.is_error() == Some(true),
            message: if open {
                None
            } else {
                c.grpc_message.as_deref()
            },
            client: c.client,
            server: c.server,
            authority: c.authority.as_deref(),
            conn: c.conn.get(),
        }
    }
}

/// Whether `hay` contains `needle` (lowercase), ignoring ASCII case; allocates nothing.
fn has(hay: &str, needle: &str) -> bool {
    let (h, n) = (hay.as_bytes(), needle.as_bytes());
    n.is_empty() || h.windows(n.len()).any(|w| w.eq_ignore_ascii_case(n))
}

impl Filter {
    /// Parses what the user typed.
    pub fn parse(text: &str) -> Filter {
        let terms = text
            .split_whitespace()
            .map(|w| {
                let lw = w.to_ascii_lowercase();
                match lw.split_once(':') {
                    Some(("method", v)) => Term::Method(v.to_owned()),
                    Some(("status", v)) => Term::Status(v.to_owned()),
                    Some(("server", v)) => Term::Server(v.to_owned()),
                    Some(("client", v)) => Term::Client(v.to_owned()),
                    Some(("conn", v)) => match v.parse() {
                        Ok(id) => Term::Conn(id),
                        Err(_) => Term::Text(lw),
                    },
                    _ => Term::Text(lw),
                }
            })
            .collect();
        Filter {
            text: text.to_owned(),
            terms,
        }
    }

    /// What the user typed.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// No words.
    pub fn is_empty(&self) -> bool {
        self.terms.is_empty()
    }

    /// Whether a call can be known to pass only once it has ended: a word is about its status
    /// or its grpc-message (a plain word may be either).
    pub fn needs_end(&self) -> bool {
        self.terms
            .iter()
            .any(|t| matches!(t, Term::Status(_) | Term::Text(_)))
    }

    /// Whether a method (or service) name passes: `method:` and plain words are looked for in
    /// the name; other words are about calls and let every name pass.
    pub fn matches_name(&self, name: &str) -> bool {
        self.terms.iter().all(|t| match t {
            Term::Method(v) | Term::Text(v) => has(name, v),
            _ => true,
        })
    }

    /// Whether a call passes.
    pub fn matches(&self, f: &Fields<'_>) -> bool {
        self.terms.iter().all(|t| match t {
            Term::Method(v) => f.method.is_some_and(|m| has(m, v)),
            Term::Status(v) => match v.as_str() {
                "open" => f.open,
                "ok" => f.status == Some("OK"),
                "error" | "err" | "errors" => f.error,
                _ => f
                    .status
                    .is_some_and(|s| s.to_ascii_lowercase().starts_with(v.as_str())),
            },
            Term::Server(v) => has(&f.server.to_string(), v),
            Term::Client(v) => has(&f.client.to_string(), v),
            Term::Conn(id) => f.conn == *id,
            Term::Text(v) => {
                f.method.is_some_and(|m| has(m, v))
                    || f.status.is_some_and(|s| has(s, v))
                    || (f.open && "open".contains(v.as_str()))
                    || f.message.is_some_and(|m| has(m, v))
                    || f.authority.is_some_and(|a| has(a, v))
                    || has(&f.client.to_string(), v)
                    || has(&f.server.to_string(), v)
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields<'a>(
        method: &'a str,
        status: Option<&'a str>,
        message: Option<&'a str>,
    ) -> Fields<'a> {
        Fields {
            method: Some(method),
            status,
            open: status.is_none(),
            error: status.is_some_and(|s| s != "OK"),
            message,
            client: "10.1.0.7:41000".parse().expect("addr"),
            server: "10.2.0.9:50051".parse().expect("addr"),
            authority: Some("echo.svc"),
            conn: 42,
        }
    }

    #[test]
    fn every_word_must_match() {
        let ok = fields("/echo.Echo/Unary", Some("OK"), None);
        let bad = fields(
            "/echo.Echo/Unary",
            Some("UNAVAILABLE"),
            Some("backend down"),
        );
        let open = fields("/echo.Echo/Chat", None, None);
        let f = Filter::parse("status:error");
        assert!(!f.matches(&ok) && f.matches(&bad) && !f.matches(&open));
        // An error whose code is unknown is an error all the same.
        let unknown_code = Fields {
            error: true,
            open: false,
            ..fields("/echo.Echo/Unary", None, None)
        };
        assert!(f.matches(&unknown_code) && !Filter::parse("status:ok").matches(&unknown_code));
        let f = Filter::parse("Status:unav method:UNARY");
        assert!(!f.matches(&ok) && f.matches(&bad));
        assert!(Filter::parse("status:open").matches(&open));
        assert!(Filter::parse("DOWN").matches(&bad) && !Filter::parse("down").matches(&ok));
        assert!(Filter::parse("server:10.2.0.9 conn:42").matches(&ok));
        assert!(!Filter::parse("conn:41").matches(&ok));
        assert!(Filter::parse("client:41000 echo.svc").matches(&ok));
        assert!(Filter::parse("").matches(&ok) && Filter::parse("  ").is_empty());
        let f = Filter::parse("chat status:error");
        assert!(f.matches_name("/echo.Echo/Chat") && !f.matches_name("/echo.Echo/Unary"));
    }
}
