//! The Iceberg REST catalog's `loadTable`: `GET {catalog_uri}/v1/config` for the catalog's path
//! `prefix`, then `GET {catalog_uri}/v1/{prefix/}namespaces/{namespace}/tables/{table}`, whose
//! answer carries the table's current `metadata` (used as it is) and `metadata-location`.
//!
//! A nested namespace (`database = "a.b"`) is sent as its parts joined by the unit separator
//! (`a%1Fb`), as the REST specification says. Connection failures, timeouts, 429 and 5xx are
//! transient; 404 (no such table or namespace), 401/403 (coldsync sends no credentials) and
//! anything else are not.

use std::time::Duration;

use serde::Deserialize;

use crate::config::TableConfig;
use crate::error::SourceError;

/// How long one catalog request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// What `loadTable` returned.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct LoadedTable {
    /// The current metadata file.
    #[serde(default)]
    pub metadata_location: Option<String>,
    /// The current metadata itself.
    #[serde(default)]
    pub metadata: Option<serde_json::Value>,
}

#[derive(Debug, Default, Deserialize)]
struct CatalogConfig {
    #[serde(default)]
    defaults: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    overrides: std::collections::BTreeMap<String, String>,
}

/// Loads `namespace.name` from the REST catalog at `uri`.
pub async fn load_table(
    table: &TableConfig,
    uri: &str,
    namespace: &str,
    name: &str,
) -> Result<LoadedTable, SourceError> {
    let error = |endpoint: &str, message: String, transient: bool| SourceError::Catalog {
        table: table.name.clone(),
        catalog: "rest",
        endpoint: endpoint.to_string(),
        message,
        transient,
    };
    let client = reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .connect_timeout(Duration::from_secs(10))
        .build()
        .map_err(|err| error(uri, format!("cannot set up an HTTP client: {err}"), false))?;
    let config_url = format!("{uri}/v1/config");
    let config: CatalogConfig = get_json(&client, &config_url, "getConfig")
        .await
        .map_err(|(message, transient)| error(&config_url, message, transient))?;
    let prefix = config
        .overrides
        .get("prefix")
        .or_else(|| config.defaults.get("prefix"))
        .map(|p| p.trim_matches('/'))
        .filter(|p| !p.is_empty());
    let url = table_url(uri, prefix, namespace, name);
    get_json(&client, &url, &format!("loadTable of {namespace}.{name}"))
        .await
        .map_err(|(message, transient)| error(&url, message, transient))
}

/// `{uri}/v1/{prefix/}namespaces/{namespace}/tables/{name}`, each part percent-encoded.
pub fn table_url(uri: &str, prefix: Option<&str>, namespace: &str, name: &str) -> String {
    let prefix = prefix
        .map(|p| {
            let parts: Vec<String> = p.split('/').map(encode).collect();
            format!("{}/", parts.join("/"))
        })
        .unwrap_or_default();
    let namespace: Vec<String> = namespace.split('.').map(encode).collect();
    format!(
        "{uri}/v1/{prefix}namespaces/{}/tables/{}",
        namespace.join("%1F"),
        encode(name)
    )
}

/// Percent-encodes everything but unreserved characters.
fn encode(part: &str) -> String {
    part.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}

/// GETs `url` and parses its JSON answer; on failure, the message and whether it is transient.
async fn get_json<T: serde::de::DeserializeOwned>(
    client: &reqwest::Client,
    url: &str,
    what: &str,
) -> Result<T, (String, bool)> {
    let response = client
        .get(url)
        .header("Accept", "application/json")
        .send()
        .await
        .map_err(|err| {
            // Connection refused or reset, timeouts, a broken answer: worth another try; a
            // request that could not even be built is not.
            let transient = !err.is_builder() && !err.is_redirect();
            (format!("{what} failed: {}", error_chain(&err)), transient)
        })?;
    let status = response.status();
    let body = response
        .bytes()
        .await
        .map_err(|err| (format!("{what}: reading the answer failed: {err}"), true))?;
    if !status.is_success() {
        let detail = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| {
                let error = v.get("error")?;
                Some(format!(
                    "{}: {}",
                    error.get("type")?.as_str().unwrap_or(""),
                    error.get("message")?.as_str().unwrap_or("")
                ))
            })
            .unwrap_or_else(|| String::from_utf8_lossy(&body).chars().take(200).collect());
        let code = status.as_u16();
        let hint = match code {
            404 => " (check database and table)",
            401 | 403 => " (coldsync sends no credentials to the catalog)",
            _ => "",
        };
        let transient = code >= 500 || code == 429 || code == 408;
        return Err((
            format!("{what} answered HTTP {code}{hint}: {detail}"),
            transient,
        ));
    }
    serde_json::from_slice(&body).map_err(|err| {
        (
            format!("{what} answered something that is not its JSON: {err}"),
            false,
        )
    })
}

/// The error and its sources (reqwest's own message is only "error sending request").
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::config::Config;

    #[tokio::test]
    async fn a_catalog_that_is_not_there_is_a_transient_catalog_error_naming_the_url() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let uri = format!("http://127.0.0.1:{port}");
        let text = format!(
            "[source]\nscheme = \"fs\"\nroot = \"/w\"\n[redis]\nurl = \"redis://127.0.0.1/0\"\n\
             [defaults]\nretention_days = 10\n\
             [[tables]]\nname = \"events\"\nkey = \"k:{{id}}\"\nformat = \"iceberg\"\n\
             catalog = \"rest\"\ncatalog_uri = \"{uri}\"\ndatabase = \"sales\"\ntable = \"events\"\n"
        );
        let table = Config::parse(&text, &HashMap::new())
            .unwrap()
            .tables
            .remove(0);
        let err = load_table(&table, &uri, "sales", "events")
            .await
            .unwrap_err();
        assert!(err.is_transient(), "{err}");
        let text = err.to_string();
        assert!(
            text.contains(&format!("the rest catalog at {uri}/v1/config")),
            "{text}"
        );
        assert!(text.contains("getConfig failed"), "{text}");
    }

    #[test]
    fn table_urls_encode_nested_namespaces_and_the_prefix() {
        assert_eq!(
            table_url("http://127.0.0.1:8181", None, "sales", "orders"),
            "http://127.0.0.1:8181/v1/namespaces/sales/tables/orders"
        );
        assert_eq!(
            table_url("http://h:1/api", Some("warehouse/main"), "a.b", "my table"),
            "http://h:1/api/v1/warehouse/main/namespaces/a%1Fb/tables/my%20table"
        );
    }
}
