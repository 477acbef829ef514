//! The proxies' configs: the files in `conformance/proxies/` (which the book includes), filled
//! in for a directory, a port and the upstreams, with the small edits each [`Setup`] makes.

use std::{
    fs,
    path::{Path, PathBuf},
};

use super::{Kind, Setup};
use crate::harness::process::running_as_root;

/// Apache's shared modules, wherever the distribution keeps them.
fn apache_modules() -> Option<PathBuf> {
    [
        "/usr/lib/apache2/modules",
        "/usr/lib64/httpd/modules",
        "/usr/lib/httpd/modules",
        "/usr/local/apache2/modules",
    ]
    .iter()
    .map(PathBuf::from)
    .find(|dir| dir.join("mod_proxy_http.so").is_file())
}

/// The configs the tests run, with `@DIR@`, `@PORT@`, `@UPSTREAM@` (and Apache's `@MODULES@`)
/// to fill in. The book includes these same files.
const NGINX_TEMPLATE: &str = include_str!("../../../proxies/nginx.conf");
const NGINX_TLS_TEMPLATE: &str = include_str!("../../../proxies/nginx-tls.conf");
const APACHE_TEMPLATE: &str = include_str!("../../../proxies/apache.conf");
const NGINX_BALANCED_TEMPLATE: &str = include_str!("../../../proxies/nginx-balanced.conf");
const HAPROXY_TEMPLATE: &str = include_str!("../../../proxies/haproxy.cfg");

/// A config for `kind` in `dir`, listening on 127.0.0.1:`port`, in front of `upstreams`
/// (`host:port` each; a setup that does not balance uses the first).
pub fn config(kind: Kind, setup: Setup, dir: &Path, port: u16, upstreams: &[&str]) -> String {
    let template = match kind {
        Kind::Nginx => nginx_template(setup),
        Kind::Apache => apache_template(setup),
        Kind::Haproxy => haproxy_template(setup),
    };
    let servers: Vec<String> = upstreams
        .iter()
        .enumerate()
        .map(|(i, upstream)| match kind {
            Kind::Haproxy => {
                format!("    server s{} {upstream} check inter 500ms fall 1 rise 1", i + 1)
            }
            _ => format!("        server {upstream} max_fails=1 fail_timeout=2s;"),
        })
        .collect();
    let filled = template
        .replace("@DIR@", &dir.display().to_string())
        .replace("@PORT@", &port.to_string())
        .replace("@UPSTREAM@", upstreams.first().copied().unwrap_or_default())
        // The line that is only the placeholder (the comments name it too).
        .replace("\n@SERVERS@\n", &format!("\n{}\n", servers.join("\n")));
    format!("# {setup:?}, written by conformance::proxies.\n{filled}")
}

/// `template` with its one line `line` replaced by `with` (the setups are small edits of the
/// stock config, so the file the book shows is the one the tests run).
fn edit(template: &str, line: &str, with: &str) -> String {
    assert_eq!(template.matches(line).count(), 1, "the proxy template has one {line:?}");
    template.replacen(line, with, 1)
}

fn nginx_template(setup: Setup) -> String {
    const HTTP11: &str = "            proxy_http_version 1.1;\n";
    match setup {
        Setup::Stock => NGINX_TEMPLATE.to_owned(),
        Setup::Http10Upstream => edit(NGINX_TEMPLATE, HTTP11, ""),
        Setup::ProxyCompresses => edit(
            NGINX_TEMPLATE,
            HTTP11,
            &format!("{HTTP11}            proxy_set_header Accept-Encoding \"\";\n"),
        ),
        Setup::BufferingOff => {
            edit(NGINX_TEMPLATE, HTTP11, &format!("{HTTP11}            proxy_buffering off;\n"))
        }
        Setup::TlsEdge => NGINX_TLS_TEMPLATE.to_owned(),
        Setup::Balanced => NGINX_BALANCED_TEMPLATE.to_owned(),
        Setup::Many => [
            ("worker_processes 1;", "worker_processes 8;"),
            ("worker_rlimit_nofile 16384;", "worker_rlimit_nofile 20000;"),
            ("    worker_connections 12000;", "    worker_connections 19900;"),
            ("backlog=4096;", "backlog=4096 reuseport;"),
            ("    access_log @DIR@/access.log timed;", "    access_log off;"),
        ]
        .into_iter()
        .fold(NGINX_BALANCED_TEMPLATE.to_owned(), |conf, (from, to)| edit(&conf, from, to)),
        Setup::BalancedIdle => edit(
            NGINX_BALANCED_TEMPLATE,
            "            proxy_read_timeout 60s;\n",
            "            proxy_read_timeout 2s;\n",
        ),
    }
}

fn haproxy_template(setup: Setup) -> String {
    match setup {
        Setup::BalancedIdle => {
            edit(HAPROXY_TEMPLATE, "    timeout server 60s\n", "    timeout server 2s\n")
        }
        _ => HAPROXY_TEMPLATE.to_owned(),
    }
}

fn apache_template(setup: Setup) -> String {
    const PROXY_PASS: &str = "ProxyPass / http://@UPSTREAM@/\n";
    let mut template = match setup {
        // `RequestHeader unset` also hides the client's Accept-Encoding from mod_deflate, which
        // reads the same request headers: `force-gzip`, set from it first, tells mod_deflate to
        // compress anyway.
        Setup::ProxyCompresses => edit(
            APACHE_TEMPLATE,
            PROXY_PASS,
            &format!(
                "SetEnvIf Accept-Encoding \"\\bgzip\\b\" force-gzip\n\
                 RequestHeader unset Accept-Encoding\n{PROXY_PASS}"
            ),
        ),
        _ => APACHE_TEMPLATE.to_owned(),
    };
    let modules = apache_modules().unwrap_or_else(|| "/usr/lib/apache2/modules".into());
    template = template.replace("@MODULES@", &modules.display().to_string());
    // As root, the workers switch to `User`; its default (#-1) is no user at all.
    if running_as_root() {
        let group = if fs::read_to_string("/etc/group")
            .is_ok_and(|groups| groups.lines().any(|l| l.starts_with("nogroup:")))
        {
            "nogroup"
        } else {
            "nobody"
        };
        template.push_str(&format!(
            "\n# Started as root: the workers run as\nUser nobody\nGroup {group}\n"
        ));
    }
    template
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The config without its comments, which name directives they explain.
    fn directives(kind: Kind, setup: Setup, upstream: &str) -> String {
        let conf = config(kind, setup, Path::new("/tmp/proxy-dir"), 8080, &[upstream]);
        let directives = conf.lines().filter(|l| !l.trim_start().starts_with('#'));
        directives.map(|l| format!("{l}\n")).collect()
    }

    #[test]
    fn nginx_config_is_stock_apart_from_the_setup() {
        let stock = directives(Kind::Nginx, Setup::Stock, "127.0.0.1:3000");
        assert!(stock.contains("proxy_pass http://127.0.0.1:3000;"), "{stock}");
        assert!(stock.contains("proxy_http_version 1.1;"), "{stock}");
        assert!(stock.contains("gzip on;"), "{stock}");
        assert!(stock.contains("listen 127.0.0.1:8080;"), "{stock}");
        for off in ["proxy_buffering", "X-Accel", "gzip_proxied", "Accept-Encoding"] {
            assert!(!stock.contains(off), "{off} in\n{stock}");
        }
        let http10 = directives(Kind::Nginx, Setup::Http10Upstream, "u:1");
        assert!(!http10.contains("proxy_http_version"), "{http10}");
        let gzip = directives(Kind::Nginx, Setup::ProxyCompresses, "u:1");
        assert!(gzip.contains("proxy_set_header Accept-Encoding \"\";"), "{gzip}");
    }

    #[test]
    fn apache_config_proxies_and_deflates() {
        let stock = directives(Kind::Apache, Setup::Stock, "127.0.0.1:3000");
        assert!(stock.contains("ProxyPass / http://127.0.0.1:3000/"), "{stock}");
        assert!(
            stock.contains("AddOutputFilterByType DEFLATE text/plain text/html text/event-stream"),
            "{stock}"
        );
        assert!(stock.contains("Listen 127.0.0.1:8080"), "{stock}");
        assert!(!stock.contains("Accept-Encoding"), "{stock}");
        let gzip = directives(Kind::Apache, Setup::ProxyCompresses, "u:1");
        assert!(gzip.contains("RequestHeader unset Accept-Encoding"), "{gzip}");
    }

    /// The files the book shows are the configs the tests run: every placeholder is filled.
    #[test]
    fn every_setup_fills_its_template() {
        for (kind, setup) in [
            (Kind::Nginx, Setup::Stock),
            (Kind::Nginx, Setup::ProxyCompresses),
            (Kind::Nginx, Setup::Http10Upstream),
            (Kind::Apache, Setup::Stock),
            (Kind::Apache, Setup::ProxyCompresses),
        ] {
            let conf = directives(kind, setup, "127.0.0.1:9");
            assert!(!conf.contains('@'), "{kind:?} {setup:?} left a placeholder:\n{conf}");
            assert!(conf.contains("/tmp/proxy-dir/proxy.pid"), "{conf}");
        }
        let upstreams = ["127.0.0.1:7001", "127.0.0.1:7002", "127.0.0.1:7003"];
        for kind in [Kind::Nginx, Kind::Haproxy] {
            for setup in [Setup::Balanced, Setup::BalancedIdle] {
                let conf = config(kind, setup, Path::new("/tmp/proxy-dir"), 8080, &upstreams);
                let conf: String =
                    conf.lines().filter(|l| !l.trim_start().starts_with('#')).collect();
                assert!(!conf.contains('@'), "{kind:?} {setup:?} left a placeholder:\n{conf}");
                for upstream in upstreams {
                    assert_eq!(conf.matches(upstream).count(), 1, "{upstream} in\n{conf}");
                }
                let idle =
                    conf.contains("proxy_read_timeout 2s") || conf.contains("timeout server 2s");
                assert_eq!(idle, setup == Setup::BalancedIdle, "{kind:?} {setup:?}:\n{conf}");
            }
        }
        // Sized for 50 000 streams: two files each, 20 000 files per worker.
        let many = config(Kind::Nginx, Setup::Many, Path::new("/tmp/proxy-dir"), 8080, &upstreams);
        for directive in [
            "worker_processes 8;",
            "worker_rlimit_nofile 20000;",
            "worker_connections 19900;",
            "listen 127.0.0.1:8080 backlog=4096 reuseport;",
            "access_log off;",
        ] {
            assert!(many.contains(directive), "{directive} missing in\n{many}");
        }
    }
}
