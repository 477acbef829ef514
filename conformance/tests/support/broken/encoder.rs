//! Content encoding by hand: each `Accept-Encoding` the contract names, flushed after each
//! item unless the fault says not to.

use std::io::Write;

use super::{Fault, Request};

/// A compressor for one response; flushing after each write is what keeps a stream a stream.
pub(super) enum Encoder {
    Identity,
    Gzip(flate2::write::GzEncoder<Vec<u8>>),
    Deflate(flate2::write::ZlibEncoder<Vec<u8>>),
    Br(Box<brotli::CompressorWriter<Vec<u8>>>),
    Zstd(zstd::stream::write::Encoder<'static, Vec<u8>>),
}

impl Encoder {
    /// The first encoding in the client's list that we have (q=0 means refused).
    pub(super) fn negotiate(req: &Request, fault: Fault) -> (Self, Option<&'static str>) {
        if fault == Fault::CompressesUnasked {
            return (Self::new("gzip"), Some("gzip"));
        }
        if fault == Fault::NoCompression {
            return (Self::Identity, None);
        }
        let accept = req.accept_encoding.as_deref().unwrap_or("");
        for item in accept.split(',') {
            let mut parts = item.split(';').map(str::trim);
            let name = parts.next().unwrap_or_default().to_ascii_lowercase();
            if parts.any(|p| p == "q=0") {
                continue;
            }
            if let Some(known) = ["gzip", "br", "zstd", "deflate"].into_iter().find(|k| *k == name)
            {
                return (Self::new(known), Some(known));
            }
        }
        (Self::Identity, None)
    }

    pub(super) fn new(encoding: &str) -> Self {
        let level = flate2::Compression::fast();
        match encoding {
            "gzip" => Self::Gzip(flate2::write::GzEncoder::new(Vec::new(), level)),
            "deflate" => Self::Deflate(flate2::write::ZlibEncoder::new(Vec::new(), level)),
            "br" => Self::Br(Box::new(brotli::CompressorWriter::new(Vec::new(), 4096, 5, 22))),
            "zstd" => Self::Zstd(zstd::stream::write::Encoder::new(Vec::new(), 3).expect("zstd")),
            _ => Self::Identity,
        }
    }

    /// Compresses `bytes`; with `flush`, everything so far comes out now.
    pub(super) fn encode(&mut self, bytes: &[u8], flush: bool) -> Vec<u8> {
        fn run<W: Write>(
            w: &mut W, bytes: &[u8], flush: bool, out: fn(&mut W) -> &mut Vec<u8>,
        ) -> Vec<u8> {
            w.write_all(bytes).expect("compress into memory");
            if flush {
                w.flush().expect("flush into memory");
            }
            std::mem::take(out(w))
        }
        match self {
            Self::Identity => bytes.to_vec(),
            Self::Gzip(e) => run(e, bytes, flush, |e| e.get_mut()),
            Self::Deflate(e) => run(e, bytes, flush, |e| e.get_mut()),
            Self::Br(e) => run(&mut **e, bytes, flush, |e| e.get_mut()),
            Self::Zstd(e) => run(e, bytes, flush, |e| e.get_mut()),
        }
    }

    pub(super) fn finish(self) -> Vec<u8> {
        match self {
            Self::Identity => Vec::new(),
            Self::Gzip(e) => e.finish().expect("finish gzip"),
            Self::Deflate(e) => e.finish().expect("finish deflate"),
            Self::Br(e) => e.into_inner(),
            Self::Zstd(e) => e.finish().expect("finish zstd"),
        }
    }

    /// A whole body at once.
    pub(super) fn all(mut self, body: &[u8]) -> Vec<u8> {
        let mut out = self.encode(body, false);
        out.extend(self.finish());
        out
    }
}
