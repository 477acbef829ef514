//! What `diagnose` is asked: the flags, named as curl names them, checked and turned into the
//! requests to make ([`Plan`]).

use std::{path::PathBuf, time::Duration};

use reqwest::{Method, header::HeaderName};

use super::Problem;
use crate::client::{self, Ask, Framing, Target};

/// The flags, named as curl names them.
#[derive(clap::Args, Debug, Clone)]
pub struct Options {
    /// The URL to diagnose: any http:// or https:// endpoint that should stream.
    pub url: String,
    /// The request method [default: GET, or POST with -d].
    #[arg(short = 'X', long = "request", value_name = "METHOD")]
    pub method: Option<String>,
    /// An extra request header (repeatable); `Name:` with no value removes a default one.
    #[arg(short = 'H', long = "header", value_name = "NAME: VALUE")]
    pub headers: Vec<String>,
    /// The request body (`@FILE` reads it from a file), sent as
    /// application/x-www-form-urlencoded unless -H sets a Content-Type.
    #[arg(short = 'd', long = "data", value_name = "BODY", conflicts_with = "data_file")]
    pub data: Option<String>,
    /// The request body, read from FILE.
    #[arg(long = "data-file", value_name = "FILE")]
    pub data_file: Option<PathBuf>,
    #[command(flatten)]
    pub transport: client::TransportArgs,
    /// Stop reading after SECS seconds and judge what arrived.
    #[arg(short = 'm', long = "max-time", value_name = "SECS", default_value_t = 30.0)]
    pub max_time: f64,
    /// The same request to URL2 as well, typically the origin behind the proxy at URL.
    #[arg(long, value_name = "URL2")]
    pub compare: Option<String>,
    /// Make only the main request (for endpoints where each request costs something).
    #[arg(long)]
    pub once: bool,
}

impl Options {
    /// The options of `conformance diagnose URL` with no flags, defaults as clap gives them.
    pub fn for_url(url: &str) -> Self {
        use clap::{Args, FromArgMatches};
        let command = Self::augment_args(clap::Command::new("diagnose"));
        let matches = command.try_get_matches_from(["diagnose", url]).expect("a URL is enough");
        Self::from_arg_matches(&matches).expect("the defaults parse")
    }
}

/// What to send, checked.
#[derive(Debug, Clone)]
pub struct Plan {
    pub url: String,
    pub target: Target,
    pub ask: Ask,
    pub compare: Option<(String, Target, Ask)>,
    pub once: bool,
    pub max_time: Duration,
    /// Flags that do nothing here, said in the output.
    pub notes: Vec<String>,
}

/// What a browser sends, unless `-H` says otherwise.
const BROWSER_HEADERS: [(&str, &str); 3] = [
    ("accept", "*/*"),
    ("accept-encoding", "gzip, deflate, br, zstd"),
    ("user-agent", concat!("conformance-diagnose/", env!("CARGO_PKG_VERSION"))),
];

/// Checks the options and turns them into requests; every mistake is named.
pub fn plan(options: &Options) -> Result<Plan, Problem> {
    if !(options.max_time.is_finite() && options.max_time > 0.0 && options.max_time <= 86_400.0) {
        return Err(Problem::new(format!(
            "--max-time {}: expected seconds between 0 and 86400",
            options.max_time
        )));
    }
    let max_time = Duration::from_secs_f64(options.max_time);
    let transport = options.transport.transport().map_err(Problem::new)?;
    client::client_for(&transport, max_time).map_err(|e| match &options.transport.cacert {
        Some(path) => Problem::new(format!("--cacert {}: {e}", path.display())),
        None => Problem::new(e),
    })?;
    let body = match (&options.data, &options.data_file) {
        (Some(data), _) if data.starts_with('@') => {
            Some(read_body(&PathBuf::from(&data[1..]), "-d @")?)
        }
        (Some(data), _) => Some(data.clone().into_bytes()),
        (None, Some(path)) => Some(read_body(path, "--data-file ")?),
        (None, None) => None,
    };
    let method = match &options.method {
        Some(m) => Method::from_bytes(m.as_bytes())
            .map_err(|_| Problem::new(format!("-X {m:?}: not an HTTP method")))?,
        None if body.is_some() => Method::POST,
        None => Method::GET,
    };
    let mut headers: Vec<(String, String)> =
        BROWSER_HEADERS.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect();
    if body.is_some() {
        headers.push(("content-type".into(), "application/x-www-form-urlencoded".into()));
    }
    for given in &options.headers {
        let Some((name, value)) = given.split_once(':') else {
            return Err(Problem::new(format!(
                "-H {given:?}: a header is `Name: value` (no colon found)"
            )));
        };
        let name = name.trim();
        if HeaderName::from_bytes(name.as_bytes()).is_err() {
            return Err(Problem::new(format!("-H {given:?}: {name:?} is not a header name")));
        }
        let value = value.trim();
        if reqwest::header::HeaderValue::from_str(value).is_err() {
            return Err(Problem::new(format!(
                "-H {given:?}: the value is not a valid header value"
            )));
        }
        headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        if !value.is_empty() {
            headers.push((name.to_owned(), value.to_owned()));
        }
    }
    let make = |url: &str, flag: &str| -> Result<(Target, Ask), Problem> {
        let (base, path) = split_url(url, flag)?;
        let mut target = Target::new(&base);
        target.transport = transport.clone();
        let mut ask = Ask::get(path, max_time).framing(Framing::Auto);
        ask.method = method.clone();
        ask.headers = headers.clone();
        ask.body = body.clone();
        Ok((target, ask))
    };
    let (target, ask) = make(&options.url, "URL")?;
    let compare = match &options.compare {
        Some(url) => {
            let (target, ask) = make(url, "--compare")?;
            Some((url.clone(), target, ask))
        }
        None => None,
    };
    let mut notes = Vec::new();
    if target.base.starts_with("http://")
        && (options.transport.cacert.is_some() || options.transport.insecure)
    {
        notes.push("--cacert and --insecure have no effect on http:// (no TLS)".to_owned());
    }
    Ok(Plan { url: options.url.clone(), target, ask, compare, once: options.once, max_time, notes })
}

fn read_body(path: &PathBuf, flag: &str) -> Result<Vec<u8>, Problem> {
    std::fs::read(path)
        .map_err(|e| Problem::new(format!("{flag}{}: cannot read it: {e}", path.display())))
}

/// `scheme://host:port` and the path with its query.
fn split_url(url: &str, flag: &str) -> Result<(String, String), Problem> {
    let parsed = reqwest::Url::parse(url)
        .map_err(|e| Problem::new(format!("{flag} {url:?} is not a URL: {e}")))?;
    match parsed.scheme() {
        "http" | "https" => {}
        other => {
            return Err(Problem::new(format!(
                "{flag} {url:?}: the scheme {other:?} is not http or https"
            )));
        }
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(Problem::new(format!("{flag} {url:?} has no host")));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(Problem::new(format!(
            "{flag} {url:?}: credentials in the URL are not sent; pass -H 'Authorization: …'"
        )));
    }
    let base = parsed.origin().ascii_serialization();
    let mut path = parsed.path().to_owned();
    if let Some(query) = parsed.query() {
        path.push('?');
        path.push_str(query);
    }
    Ok((base, path))
}
