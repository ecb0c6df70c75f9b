//! Paths to endpoints, and the parameters of `/api/v1/explain`.

use super::*;

/// What a path names, with the one method it accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Endpoint {
    /// The status page.
    Page,
    Healthz,
    Metrics,
    Regions,
    Status,
    HealthView,
    Drain {
        region: String,
        drained: bool,
    },
    Explain,
    Reload,
}

impl Endpoint {
    /// The endpoint at `path`, if any.
    pub(super) fn parse(path: &str) -> Option<Endpoint> {
        let segments: Vec<&str> = path.strip_prefix('/')?.split('/').collect();
        Some(match segments.as_slice() {
            [""] => Endpoint::Page,
            ["healthz"] => Endpoint::Healthz,
            ["metrics"] => Endpoint::Metrics,
            ["api", "v1", "regions"] => Endpoint::Regions,
            ["api", "v1", "status"] => Endpoint::Status,
            ["api", "v1", "health", "view"] => Endpoint::HealthView,
            [
                "api",
                "v1",
                "regions",
                region,
                action @ ("drain" | "undrain"),
            ] => {
                Endpoint::Drain {
                    // Region names are ASCII letters, digits, '-' and '_': no decoding.
                    region: (*region).to_string(),
                    drained: *action == "drain",
                }
            }
            ["api", "v1", "explain"] => Endpoint::Explain,
            ["api", "v1", "reload"] => Endpoint::Reload,
            _ => return None,
        })
    }

    pub(super) fn method(&self) -> Method {
        match self {
            Endpoint::Drain { .. } | Endpoint::Reload => Method::POST,
            _ => Method::GET,
        }
    }
}

/// The parameters of `GET /api/v1/explain`, checked.
#[derive(Debug, PartialEq)]
pub(super) struct ExplainQuery {
    pub(super) name: String,
    pub(super) qtype: String,
    pub(super) client: IpAddr,
    pub(super) subnet: Option<IpNet>,
}

impl ExplainQuery {
    /// Parses the query string; `client` defaults to `peer`, `type` to A.
    pub(super) fn parse(query: Option<&str>, peer: IpAddr) -> Result<ExplainQuery, String> {
        let (mut name, mut qtype, mut client, mut subnet) = (None, None, None, None);
        for (k, v) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
            let slot = match &*k {
                "name" => &mut name,
                "type" => &mut qtype,
                "client" => &mut client,
                "subnet" => &mut subnet,
                // Strict, so that a misspelt parameter is not silently ignored.
                other => {
                    return Err(format!(
                        "unknown parameter {other:?} (known: name, type, client, subnet)"
                    ));
                }
            };
            *slot = Some(v.into_owned()).filter(|v| !v.is_empty());
        }
        let name = name.ok_or("missing parameter \"name\" (the name to explain)")?;
        let qtype = qtype.unwrap_or_else(|| "A".into());
        if qtype.to_ascii_uppercase().parse::<RecordType>().is_err() {
            return Err(format!("parameter \"type\": unknown type {qtype:?}"));
        }
        let client = match client {
            None => peer,
            Some(c) => c
                .parse()
                .map_err(|_| format!("parameter \"client\": {c:?} is not an IP address"))?,
        };
        let subnet = match subnet {
            None => None,
            Some(s) => Some(s.parse().map_err(|_| {
                format!("parameter \"subnet\": {s:?} is not a CIDR such as 81.2.69.0/24")
            })?),
        };
        Ok(ExplainQuery {
            name,
            qtype,
            client,
            subnet,
        })
    }
}
