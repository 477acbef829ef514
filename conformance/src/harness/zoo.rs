//! The zoo: real stacks nobody on this team wrote, each started the way its own docs set it up,
//! with its defaults (`conformance/zoo/`): Django and Flask under gunicorn, FastAPI under
//! uvicorn, Express under Node, and in front of them Caddy, HAProxy with compression, nginx
//! (its stock proxy settings, or as a TLS edge with a certificate made by `openssl req -x509`),
//! lighttpd and Varnish. `diagnose` is tested against them (`tests/zoo.rs`), with curl's timestamps as
//! the ground truth.
//!
//! The Python packages come from `conformance/zoo/requirements.txt` into
//! `conformance/zoo/.venv`, the Node packages from `package-lock.json` into
//! `conformance/zoo/node_modules`; the servers and proxies from Debian's packages. Whatever is
//! missing skips its test loudly, naming what to install (or fails it, in CI).

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use super::{
    process::{self, Daemon},
    proxies::{self, Kind, Setup},
    real_clients,
};

/// `conformance/zoo`.
pub fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("zoo")
}

/// An app, as its framework's docs stream a generator of `1\n` … `N\n` at
/// `/stream?count=N&interval_ms=M`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum App {
    /// Django's `StreamingHttpResponse` (`text/html` by default) under gunicorn.
    Django,
    /// The same with `GZipMiddleware`.
    DjangoGzip,
    /// Flask's `Response(generator)` (`text/html` by default) under gunicorn.
    Flask,
    /// FastAPI's `StreamingResponse` (no content type) under uvicorn.
    FastApi,
    /// The same with Starlette's `GZipMiddleware`.
    FastApiGzip,
    /// Express, `res.write` per item, no middleware and no content type.
    Express,
    /// Express with the `compression` middleware (and `text/plain`).
    ExpressCompression,
    /// As [`App::ExpressCompression`], with `res.flush()` after each write.
    ExpressFlush,
}

impl App {
    pub fn name(self) -> &'static str {
        match self {
            App::Django => "Django (gunicorn)",
            App::DjangoGzip => "Django + GZipMiddleware (gunicorn)",
            App::Flask => "Flask (gunicorn)",
            App::FastApi => "FastAPI (uvicorn)",
            App::FastApiGzip => "FastAPI + GZipMiddleware (uvicorn)",
            App::Express => "Express",
            App::ExpressCompression => "Express + compression",
            App::ExpressFlush => "Express + compression, res.flush()",
        }
    }

    /// The program, its arguments and environment, to listen on `port`.
    fn command(self, home: &Path, port: u16) -> Command {
        let zoo = dir();
        let bind = format!("127.0.0.1:{port}");
        let gzip = matches!(self, App::DjangoGzip | App::FastApiGzip);
        let mut command = match self {
            App::Django | App::DjangoGzip | App::Flask => {
                let mut c = Command::new(zoo.join(".venv/bin/gunicorn"));
                let module =
                    if self == App::Flask { "flask_app:app" } else { "django_app:application" };
                c.args(["--bind", &bind, module]);
                c
            }
            App::FastApi | App::FastApiGzip => {
                let mut c = Command::new(zoo.join(".venv/bin/uvicorn"));
                c.args(["fastapi_app:app", "--host", "127.0.0.1", "--port", &port.to_string()]);
                c
            }
            App::Express | App::ExpressCompression | App::ExpressFlush => {
                let mut c = Command::new("node");
                let mode = match self {
                    App::Express => "plain",
                    App::ExpressCompression => "compression",
                    _ => "flush",
                };
                c.arg("express_app.js").env("ZOO_MODE", mode).env("PORT", port.to_string());
                c
            }
        };
        // gunicorn keeps a control socket in ~/.gunicorn: one home each, or they share it.
        command.current_dir(&zoo).env("HOME", home).env("ZOO_GZIP", if gzip { "1" } else { "0" });
        // Bytecode goes to `__pycache__` beside the apps; the tree stays as it is.
        command.env("PYTHONDONTWRITEBYTECODE", "1");
        command
    }

    /// Is what it runs on installed? If not, skips loudly (see [`real_clients::skip`]).
    pub fn available(self) -> bool {
        let zoo = dir();
        match self {
            App::Django | App::DjangoGzip | App::Flask | App::FastApi | App::FastApiGzip => {
                let program = if matches!(self, App::FastApi | App::FastApiGzip) {
                    "uvicorn"
                } else {
                    "gunicorn"
                };
                zoo.join(".venv/bin").join(program).is_file()
                    || real_clients::skip(&format!(
                        "the zoo's Python packages are not installed (`{program}` is missing): \
                         python3 -m venv conformance/zoo/.venv && conformance/zoo/.venv/bin/pip \
                         install -r conformance/zoo/requirements.txt"
                    ))
            }
            _ => {
                real_clients::require("node", "nodejs")
                    && (zoo.join("node_modules/express/package.json").is_file()
                        || real_clients::skip(
                            "the zoo's npm packages (express, compression) are not installed: \
                             npm ci --prefix conformance/zoo",
                        ))
            }
        }
    }
}

/// What stands in front of the app.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Front {
    /// Caddy's `reverse_proxy`, its defaults (`zoo/Caddyfile`).
    Caddy,
    /// The same with `encode gzip` (`zoo/Caddyfile.encode`).
    CaddyEncode,
    /// HAProxy with `compression algo gzip` (`zoo/haproxy-compression.cfg`).
    HaproxyCompression,
    /// nginx with its stock proxy settings: HTTP/1.0 to the upstream, buffering on
    /// (`proxies/nginx.conf` without `proxy_http_version 1.1`).
    Nginx,
    /// nginx as the TLS and HTTP/2 edge (`proxies/nginx-tls.conf`) with a certificate made by
    /// `openssl req -x509` for `subjectAltName` [`TlsName`].
    NginxTls(TlsName),
    /// Varnish with its built-in VCL (`varnishd -b ORIGIN`).
    Varnish,
    /// lighttpd's `mod_proxy`, its defaults (`zoo/lighttpd.conf`).
    Lighttpd,
}

/// The names an `openssl req -x509` certificate is made for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsName {
    /// `IP:127.0.0.1,DNS:localhost`: the address the tests use.
    Loopback,
    /// `DNS:other.example`: a certificate for another host.
    Other,
}

impl Front {
    pub fn name(self) -> &'static str {
        match self {
            Front::Caddy => "Caddy reverse_proxy",
            Front::CaddyEncode => "Caddy reverse_proxy + encode gzip",
            Front::HaproxyCompression => "HAProxy compression algo gzip",
            Front::Nginx => "nginx, stock proxy settings",
            Front::NginxTls(TlsName::Loopback) => "nginx TLS edge, openssl req -x509",
            Front::NginxTls(TlsName::Other) => "nginx TLS edge, certificate for another name",
            Front::Varnish => "Varnish",
            Front::Lighttpd => "lighttpd mod_proxy",
        }
    }

    fn program(self) -> (&'static str, &'static str) {
        match self {
            Front::Caddy | Front::CaddyEncode => ("caddy", "caddy"),
            Front::HaproxyCompression => ("haproxy", "haproxy"),
            Front::Nginx | Front::NginxTls(_) => ("nginx", "nginx"),
            Front::Varnish => ("varnishd", "varnish"),
            Front::Lighttpd => ("lighttpd", "lighttpd"),
        }
    }

    /// Is it installed (and openssl, for the TLS edge)? If not, skips loudly.
    pub fn available(self) -> bool {
        let (program, package) = self.program();
        let openssl =
            !matches!(self, Front::NginxTls(_)) || real_clients::require("openssl", "openssl");
        openssl && (process::locate(program).is_some() || real_clients::require(program, package))
    }

    /// The config, filled in for `port` in front of `upstream` (`127.0.0.1:PORT`), and the
    /// command that runs it.
    fn command(self, dir: &Path, port: u16, upstream: &str) -> Result<Command, String> {
        let (program, _) = self.program();
        let program =
            process::locate(program).ok_or_else(|| format!("`{program}` is not installed"))?;
        let upstream_port = upstream.rsplit(':').next().unwrap_or_default();
        let fill = |template: &str| {
            template
                .replace("@DIR@", &dir.display().to_string())
                .replace("@PORT@", &port.to_string())
                .replace("@UPSTREAM@", upstream_port)
        };
        let read = |name: &str| {
            fs::read_to_string(super::zoo::dir().join(name))
                .map_err(|e| format!("cannot read conformance/zoo/{name}: {e}"))
        };
        let write = |name: &str, text: &str| {
            let path = dir.join(name);
            fs::write(&path, text).map(|()| path).map_err(|e| format!("cannot write {name}: {e}"))
        };
        let mut command = Command::new(&program);
        match self {
            Front::Caddy | Front::CaddyEncode => {
                let template = if self == Front::Caddy { "Caddyfile" } else { "Caddyfile.encode" };
                let conf = write("Caddyfile", &fill(&read(template)?))?;
                command
                    .args(["run", "--adapter", "caddyfile", "--config"])
                    .arg(conf)
                    .env("HOME", dir)
                    .env("XDG_DATA_HOME", dir.join("data"))
                    .env("XDG_CONFIG_HOME", dir.join("config"));
            }
            Front::HaproxyCompression => {
                let conf = write("haproxy.cfg", &fill(&read("haproxy-compression.cfg")?))?;
                command.arg("-f").arg(conf).arg("-db");
            }
            Front::Nginx | Front::NginxTls(_) => {
                let setup =
                    if self == Front::Nginx { Setup::Http10Upstream } else { Setup::TlsEdge };
                let text = proxies::config(Kind::Nginx, setup, dir, port, &[upstream]);
                let conf = write("nginx.conf", &text)?;
                if let Front::NginxTls(name) = self {
                    openssl_certificate(dir, name)?;
                }
                command
                    .arg("-p")
                    .arg(dir)
                    .arg("-c")
                    .arg(conf)
                    .arg("-e")
                    .arg(dir.join("error.log"))
                    .args(["-g", "daemon off;"]);
            }
            Front::Lighttpd => {
                let conf = write("lighttpd.conf", &fill(&read("lighttpd.conf")?))?;
                command.arg("-D").arg("-f").arg(conf);
            }
            Front::Varnish => {
                command
                    .args(["-F", "-a", &format!("127.0.0.1:{port}"), "-b", upstream, "-n"])
                    .arg(dir.join("varnish"))
                    .args(["-s", "malloc,32m"]);
            }
        }
        Ok(command)
    }
}

/// `cert.pem` and `key.pem` in `dir`, made as people make a self-signed certificate.
fn openssl_certificate(dir: &Path, name: TlsName) -> Result<(), String> {
    let (subject, alt) = match name {
        TlsName::Loopback => ("/CN=localhost", "subjectAltName=IP:127.0.0.1,DNS:localhost"),
        TlsName::Other => ("/CN=other.example", "subjectAltName=DNS:other.example"),
    };
    let out = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", subject])
        .args(["-addext", alt, "-keyout", "key.pem", "-out", "cert.pem"])
        .current_dir(dir)
        .output()
        .map_err(|e| format!("cannot run openssl: {e}"))?;
    if !out.status.success() {
        return Err(format!("openssl req failed: {}", String::from_utf8_lossy(&out.stderr)));
    }
    Ok(())
}

/// An app, with what stands in front of it; both stopped when dropped (the front first).
#[derive(Debug)]
pub struct Stack {
    /// `http://127.0.0.1:PORT` or `https://…`: where to ask.
    pub base: String,
    pub name: String,
    pub front: Option<Daemon>,
    pub app: Daemon,
}

impl Stack {
    /// Starts `app` and `front` in front of it. Check [`App::available`] and
    /// [`Front::available`] first.
    pub fn start(app: App, front: Option<Front>) -> Result<Self, String> {
        let app_daemon =
            Daemon::start(app.name(), |dir, port| Ok(app.command(dir, port)), |d| d.accepts(true))?;
        let upstream = format!("127.0.0.1:{}", app_daemon.port);
        let Some(front) = front else {
            let base = format!("http://{upstream}");
            return Ok(Self { base, name: app.name().to_owned(), front: None, app: app_daemon });
        };
        let tls = matches!(front, Front::NginxTls(_));
        let make = |dir: &Path, port| front.command(dir, port, &upstream);
        let front_daemon = Daemon::start(front.name(), make, |d| d.accepts(!tls))
            .map_err(|e| format!("{e}\n{}", app_daemon.logs(&[])))?;
        let scheme = if tls { "https" } else { "http" };
        Ok(Self {
            base: format!("{scheme}://127.0.0.1:{}", front_daemon.port),
            name: format!("{} behind {}", app.name(), front.name()),
            front: Some(front_daemon),
            app: app_daemon,
        })
    }

    /// Every log of the stack, for a failure's message.
    pub fn logs(&self) -> String {
        let logs = [("error log", "error.log")];
        let front = self.front.as_ref().map(|f| f.logs(&logs)).unwrap_or_default();
        format!("{front}{}", self.app.logs(&[]))
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        self.front.take();
    }
}
