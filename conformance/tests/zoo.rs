//! `diagnose` against the zoo (`conformance::harness::zoo`): real stacks nobody on this team
//! wrote, each with its defaults. The ground truth is measured in the same test, not assumed:
//! curl reads the same URL (`-sN`, without and with `--compressed`) and each line is
//! timestamped. If curl no longer sees what a case expects of the stack, the test says that
//! the peer changed (a new version or default), not diagnose; otherwise diagnose's verdict
//! must agree with what curl saw, and name the cause where one layer holds the stream.

#[allow(dead_code)] // `expect` and `stderr` are for the other suites
#[path = "support/cli.rs"]
mod cli;

use std::time::Duration;

use cli::{Said, diagnose};
use conformance::{
    LineArrival,
    diagnose::Cause,
    harness::real_clients,
    harness::testing::{runtime, share_machine},
    harness::zoo::{App, Front, Stack, TlsName},
};

const COUNT: usize = 6;
const INTERVAL_MS: f64 = 400.0;
const PATH: &str = "/stream?count=6&interval_ms=400";

/// What curl saw of the six lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Seen {
    /// Each line at least a quarter interval after the one before.
    OneAtATime,
    /// All six within a quarter interval of each other.
    Together,
    /// Neither: some together, some apart.
    InGroups,
}

/// What curl saw, and how to say it: "one at a time", "all at 2.0 s", "in groups of 2, 4".
fn seen(lines: &[LineArrival]) -> Result<(Seen, String), String> {
    let texts: Vec<&str> = lines.iter().map(|l| l.text.as_str()).collect();
    let want: Vec<String> = (1..=COUNT).map(|k| k.to_string()).collect();
    if texts != want {
        return Err(format!("curl got {texts:?}, not the lines 1 to {COUNT}"));
    }
    let at: Vec<f64> = lines.iter().map(|l| l.at_ms).collect();
    // A quarter interval: HAProxy holds each write for about 200 ms but the last (its
    // `http-no-delay` option), which brings the last two lines 190 ms apart.
    let close = INTERVAL_MS / 4.0;
    let mut groups = vec![1];
    for pair in at.windows(2) {
        if pair[1] - pair[0] < close {
            *groups.last_mut().expect("one") += 1;
        } else {
            groups.push(1);
        }
    }
    let s = |ms: f64| format!("{:.1} s", ms / 1000.0);
    Ok(match groups.len() {
        1 => (Seen::Together, format!("all at {}", s(at[COUNT - 1]))),
        n if n == COUNT => {
            let gaps = at.windows(2).map(|p| p[1] - p[0]);
            let smallest = gaps.fold(f64::INFINITY, f64::min);
            let text = format!("one at a time (first at {}, gaps ≥ {})", s(at[0]), s(smallest));
            (Seen::OneAtATime, text)
        }
        _ => {
            let sizes: Vec<String> = groups.iter().map(usize::to_string).collect();
            (
                Seen::InGroups,
                format!("in groups of {} (last at {})", sizes.join(", "), s(at[COUNT - 1])),
            )
        }
    })
}

/// The verdicts that agree with what curl saw: a body that came whole within half a second
/// (a cache's replay) is too quick to judge.
fn agrees(seen: Seen, lines: &[LineArrival], verdict: &str) -> bool {
    match seen {
        Seen::OneAtATime => verdict == "streams",
        Seen::Together if lines.last().is_some_and(|l| l.at_ms < 500.0) => {
            verdict == "inconclusive"
        }
        Seen::Together => verdict == "buffered",
        Seen::InGroups => verdict == "batched" || verdict == "buffered",
    }
}

/// curl's lines for `url` with `args`, and what they show.
fn curl(url: &str, args: &[&str]) -> Result<(Vec<LineArrival>, Seen, String), String> {
    let deadline = Duration::from_secs(30);
    let (lines, _) = runtime().block_on(real_clients::curl_lines(url, args, deadline))?;
    let (seen, said) = seen(&lines)?;
    Ok((lines, seen, said))
}

/// One stack: what curl is expected to see without and with `--compressed`, and the causes
/// and risks diagnose must name.
struct Case {
    app: App,
    front: Option<Front>,
    plain: Seen,
    compressed: Seen,
    causes: &'static [Cause],
    risks: &'static [Cause],
    /// Give diagnose the app itself as `--compare`.
    compare: bool,
}

impl Case {
    /// Runs the case; prints its row of the zoo's table.
    fn run(&self) {
        if !self.app.available() || !self.front.is_none_or(Front::available) {
            return;
        }
        let _machine = share_machine();
        let stack = Stack::start(self.app, self.front).unwrap_or_else(|e| panic!("{e}"));
        let url = format!("{}{PATH}", stack.base);
        let cacert = stack.front.as_ref().map(|f| f.file("cert.pem"));
        let cacert = cacert.filter(|_| matches!(self.front, Some(Front::NginxTls(_))));
        let tls: Vec<&str> = match &cacert {
            Some(path) => vec!["--cacert", path.to_str().expect("a UTF-8 path")],
            None => Vec::new(),
        };
        let mut curls = Vec::new();
        for (compressed, expected) in [(false, self.plain), (true, self.compressed)] {
            let mut args = tls.clone();
            if compressed {
                args.push("--compressed");
            }
            let (lines, seen, said) = curl(&url, &args)
                .unwrap_or_else(|e| panic!("{}: {e}\n{}", stack.name, stack.logs()));
            assert_eq!(
                seen,
                expected,
                "the peer changed, not diagnose: curl {} sees {} {said}, where this case expects \
                 {expected:?}. Update the case and the book's table (docs/src/stacks.md).\n{}",
                args.join(" "),
                stack.name,
                stack.logs()
            );
            curls.push((lines, seen, said));
        }
        let mut args = tls.clone();
        args.push(&url);
        let origin = format!("http://127.0.0.1:{}{PATH}", stack.app.port);
        if self.compare {
            args.extend(["--compare", &origin]);
        }
        let said = diagnose(&args);
        self.judge(&stack, &said, &curls);
    }

    /// Diagnose's verdicts must agree with curl's: the main request (a browser's
    /// `Accept-Encoding`) with curl `--compressed`, the `identity` variant with plain curl.
    fn judge(&self, stack: &Stack, said: &Said, curls: &[(Vec<LineArrival>, Seen, String)]) {
        let show = format!(
            "{}: curl saw {} (plain) and {} (--compressed)\n{}\n{}",
            stack.name,
            curls[0].2,
            curls[1].2,
            serde_json::to_string_pretty(&said.json).unwrap_or_default(),
            stack.logs()
        );
        let verdict = said.json["verdict"].as_str().unwrap_or_default();
        let (lines, seen, _) = &curls[1];
        assert!(agrees(*seen, lines, verdict), "diagnose says {verdict}, curl disagrees: {show}");
        let requests = said.json["requests"].as_array().cloned().unwrap_or_default();
        if let Some(identity) = requests.iter().find(|r| r["name"] == "identity") {
            let (lines, seen, _) = &curls[0];
            let verdict = identity["verdict"].as_str().unwrap_or_default();
            assert!(agrees(*seen, lines, verdict), "identity: {verdict}, curl disagrees: {show}");
        }
        let names = |list: &[Cause]| list.iter().map(|c| c.name().to_owned()).collect::<Vec<_>>();
        assert_eq!(said.causes("cause"), names(self.causes), "causes: {show}");
        assert_eq!(said.causes("risk"), names(self.risks), "risks: {show}");
        println!(
            "ZOO | {} | {} | {} | {verdict} {:?} {:?} | {}",
            stack.name,
            curls[0].2,
            curls[1].2,
            said.causes("cause"),
            said.causes("risk"),
            said.json["requests"][0]["reading"].as_str().unwrap_or_default()
        );
    }
}

macro_rules! zoo {
    ($($name:ident: $app:ident $(behind $front:expr)? => $plain:ident, $compressed:ident,
        [$($cause:ident),*], [$($risk:ident),*];)*) => {
        $(
            #[test]
            fn $name() {
                Case {
                    app: App::$app,
                    front: None $(.or(Some($front)))?,
                    plain: Seen::$plain,
                    compressed: Seen::$compressed,
                    causes: &[$(Cause::$cause),*],
                    risks: &[$(Cause::$risk),*],
                    compare: false,
                }
                .run();
            }
        )*
    };
}

zoo! {
    django: Django => OneAtATime, OneAtATime, [], [];
    django_gzip: DjangoGzip => OneAtATime, Together, [Compression], [];
    django_behind_stock_nginx: Django behind Front::Nginx => Together, Together, [ProxyBuffering], [];
    flask: Flask => OneAtATime, OneAtATime, [], [];
    flask_behind_nginx_tls: Flask behind Front::NginxTls(TlsName::Loopback) => OneAtATime, OneAtATime, [], [];
    fastapi: FastApi => OneAtATime, OneAtATime, [], [BrowserSniffing];
    fastapi_gzip: FastApiGzip => OneAtATime, OneAtATime, [], [BrowserSniffing];
    express: Express => OneAtATime, OneAtATime, [], [BrowserSniffing];
    express_compression: ExpressCompression => OneAtATime, Together, [Compression], [BrowserSniffing];
    express_flush: ExpressFlush => OneAtATime, OneAtATime, [], [BrowserSniffing];
    express_behind_caddy: Express behind Front::Caddy => OneAtATime, OneAtATime, [], [BrowserSniffing];
    express_behind_caddy_encode: Express behind Front::CaddyEncode => OneAtATime, OneAtATime, [], [BrowserSniffing];
    django_behind_haproxy_compression: Django behind Front::HaproxyCompression => OneAtATime, InGroups, [Compression], [];
}

/// lighttpd collects a backend's whole response by default and passes the backend's `Server`
/// header on: nothing names it, so only the origin given as `--compare` shows the hop.
#[test]
fn flask_behind_lighttpd_with_the_origin_to_compare() {
    let case = Case {
        app: App::Flask,
        front: Some(Front::Lighttpd),
        plain: Seen::Together,
        compressed: Seen::Together,
        causes: &[Cause::ProxyBuffering],
        risks: &[],
        compare: true,
    };
    case.run();
}

/// A cache hit: Varnish in front of Express (which sends no `Cache-Control`, so Varnish keeps
/// the stream for its default TTL). curl's first request is a miss, streamed one line at a
/// time; the second is the stored body, at once. diagnose names the cache, and what asking it
/// not to (`Cache-Control: no-cache`) got.
#[test]
fn a_varnish_hit_is_named_cached() {
    let front = Front::Varnish;
    if !App::Express.available() || !front.available() {
        return;
    }
    let _machine = share_machine();
    let stack = Stack::start(App::Express, Some(front)).unwrap_or_else(|e| panic!("{e}"));
    let url = format!("{}{PATH}", stack.base);
    let (_, first, said_first) = curl(&url, &[]).unwrap_or_else(|e| panic!("{e}"));
    let (lines, hit, said_hit) = curl(&url, &[]).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        (first, hit),
        (Seen::OneAtATime, Seen::Together),
        "the peer changed, not diagnose: curl saw {said_first}, then {said_hit}\n{}",
        stack.logs()
    );
    let said = diagnose(&[&url]);
    let verdict = said.json["verdict"].as_str().unwrap_or_default();
    let show = serde_json::to_string_pretty(&said.json).unwrap_or_default();
    assert!(agrees(hit, &lines, verdict), "curl saw {said_hit}, diagnose {verdict}: {show}");
    assert_eq!(said.causes("cause"), ["cached"], "{show}");
    let evidence = said.json["findings"][0]["evidence"].as_str().unwrap_or_default();
    assert!(evidence.contains("x-varnish"), "{evidence}");
    println!(
        "ZOO | Express behind Varnish, second request | {said_first}, then {said_hit} | | \
         {verdict} {:?} | {evidence}",
        said.causes("cause")
    );
}

/// A certificate made for another host, behind nginx: curl refuses it with `--cacert`, and so
/// does diagnose, saying which names the certificate is for.
#[test]
fn a_certificate_for_another_name_is_refused() {
    let front = Front::NginxTls(TlsName::Other);
    if !App::Flask.available() || !front.available() || !real_clients::require("curl", "curl") {
        return;
    }
    let stack = Stack::start(App::Flask, Some(front)).unwrap_or_else(|e| panic!("{e}"));
    let url = format!("{}{PATH}", stack.base);
    let cert = stack.front.as_ref().expect("a front").file("cert.pem");
    let cert = cert.to_str().expect("a UTF-8 path");
    let curl = std::process::Command::new("curl")
        .args(["-sS", "-N", "--cacert", cert, &url])
        .output()
        .expect("curl runs");
    assert!(!curl.status.success(), "curl trusted a certificate for other.example");
    let said = diagnose(&["--cacert", cert, &url]);
    assert_eq!(said.code, 2, "{}", said.json);
    let error = said.json["error"].as_str().unwrap_or_default();
    assert!(error.contains("is for other.example, not for 127.0.0.1"), "{error}");
    println!("curl: {}diagnose: {error}", String::from_utf8_lossy(&curl.stderr));
}

/// What worked before keeps working on the same edge: a bundle in which the server's own
/// certificate follows another, and `-k` with no certificate at all.
#[test]
fn a_bundle_and_insecure_still_work() {
    let front = Front::NginxTls(TlsName::Loopback);
    if !App::Flask.available() || !front.available() {
        return;
    }
    let _machine = share_machine();
    let stack = Stack::start(App::Flask, Some(front)).unwrap_or_else(|e| panic!("{e}"));
    let url = format!("{}{PATH}", stack.base);
    let dir = std::env::temp_dir().join(format!("zoo-bundle-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a directory");
    conformance::harness::certs::write(&dir).expect("a CA of our own");
    let mut bundle = std::fs::read(dir.join(conformance::harness::certs::CA)).expect("the CA");
    bundle.extend(
        std::fs::read(stack.front.as_ref().expect("a front").file("cert.pem")).expect("cert"),
    );
    let bundle_file = dir.join("bundle.pem");
    std::fs::write(&bundle_file, bundle).expect("write the bundle");
    for args in [vec!["--cacert", bundle_file.to_str().expect("UTF-8")], vec!["-k"]] {
        let said = diagnose(&[args.as_slice(), &["--once", &url]].concat());
        assert_eq!(said.json["verdict"], "streams", "{args:?}: {}", said.json);
    }
    let _ = std::fs::remove_dir_all(&dir);
}
