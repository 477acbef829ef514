//! Incremental decoding of a compressed body: each received chunk is fed to the decoder and
//! whatever it can decode so far comes out at once, so decoded lines can be timed as they
//! arrive. (An HTTP client that decodes for you would hide the Content-Encoding, and may hold
//! output back.)

use std::io::Write;

/// A streaming decoder for one `Content-Encoding`.
pub(crate) enum Decoder {
    Identity,
    Gzip(flate2::write::GzDecoder<Vec<u8>>),
    /// `deflate` is zlib-wrapped by the standard (RFC 9110); some servers send raw deflate.
    /// Which one it is shows in the first two bytes.
    DeflateUndecided(Vec<u8>),
    Zlib(flate2::write::ZlibDecoder<Vec<u8>>),
    RawDeflate(flate2::write::DeflateDecoder<Vec<u8>>),
    Brotli(Box<brotli::DecompressorWriter<Vec<u8>>>),
    Zstd(zstd::stream::write::Decoder<'static, Vec<u8>>),
}

impl Decoder {
    /// A decoder for the `Content-Encoding` header's value, if it names one we know.
    pub(crate) fn new(content_encoding: Option<&str>) -> Result<Self, String> {
        let encoding = content_encoding.unwrap_or("").trim().to_ascii_lowercase();
        Ok(match encoding.as_str() {
            "" | "identity" => Self::Identity,
            "gzip" | "x-gzip" => Self::Gzip(flate2::write::GzDecoder::new(Vec::new())),
            "deflate" => Self::DeflateUndecided(Vec::new()),
            "br" => Self::Brotli(Box::new(brotli::DecompressorWriter::new(Vec::new(), 4096))),
            "zstd" => Self::Zstd(
                zstd::stream::write::Decoder::new(Vec::new())
                    .map_err(|e| format!("cannot start a zstd decoder: {e}"))?,
            ),
            other => return Err(format!("unknown Content-Encoding {other:?}")),
        })
    }

    /// Feeds `bytes` in; returns everything that can be decoded so far.
    pub(crate) fn push(&mut self, bytes: &[u8]) -> Result<Vec<u8>, String> {
        if let Self::DeflateUndecided(head) = self {
            head.extend_from_slice(bytes);
            if head.len() < 2 {
                return Ok(Vec::new());
            }
            let head = std::mem::take(head);
            let (cmf, flg) = (u16::from(head[0]), u16::from(head[1]));
            *self = if cmf & 0x0f == 8 && ((cmf << 8) | flg) % 31 == 0 {
                Self::Zlib(flate2::write::ZlibDecoder::new(Vec::new()))
            } else {
                Self::RawDeflate(flate2::write::DeflateDecoder::new(Vec::new()))
            };
            return self.push(&head);
        }
        let decoded = match self {
            Self::Identity => return Ok(bytes.to_vec()),
            Self::DeflateUndecided(_) => unreachable!("decided above"),
            Self::Gzip(d) => write_and_take(d, bytes, |d| d.get_mut()),
            Self::Zlib(d) => write_and_take(d, bytes, |d| d.get_mut()),
            Self::RawDeflate(d) => write_and_take(d, bytes, |d| d.get_mut()),
            Self::Brotli(d) => write_and_take(&mut **d, bytes, |d| d.get_mut()),
            Self::Zstd(d) => write_and_take(d, bytes, |d| d.get_mut()),
        };
        decoded.map_err(|e| format!("the body does not decode: {e}"))
    }

    /// The end of the body: whatever the decoder still holds, or an error if the encoded stream
    /// stops short of its own end (no gzip trailer, no final deflate block, an unfinished zstd
    /// frame or brotli stream), as a body does whose compressor was cut off midway.
    pub(crate) fn finish(&mut self) -> Result<Vec<u8>, String> {
        if let Self::DeflateUndecided(head) = self
            && !head.is_empty()
        {
            return Err("the deflate body ends after one byte".into());
        }
        let mut rest = self.push(&[])?;
        let (name, ended) = match self {
            Self::Identity | Self::DeflateUndecided(_) => return Ok(rest),
            Self::Gzip(d) => ("gzip", d.try_finish()),
            Self::Zlib(d) => ("deflate", d.try_finish()),
            Self::RawDeflate(d) => ("deflate", d.try_finish()),
            Self::Brotli(d) => ("br", d.close()),
            Self::Zstd(d) => ("zstd", d.do_finish()),
        };
        if let Err(error) = ended {
            return Err(format!("the {name} stream stops short of its end: {error}"));
        }
        rest.extend(match self {
            Self::Identity | Self::DeflateUndecided(_) => Vec::new(),
            Self::Gzip(d) => std::mem::take(d.get_mut()),
            Self::Zlib(d) => std::mem::take(d.get_mut()),
            Self::RawDeflate(d) => std::mem::take(d.get_mut()),
            Self::Brotli(d) => std::mem::take(d.get_mut()),
            Self::Zstd(d) => std::mem::take(d.get_mut()),
        });
        Ok(rest)
    }
}

fn write_and_take<W: Write>(
    decoder: &mut W, bytes: &[u8], sink: impl Fn(&mut W) -> &mut Vec<u8>,
) -> std::io::Result<Vec<u8>> {
    decoder.write_all(bytes)?;
    decoder.flush()?;
    Ok(std::mem::take(sink(decoder)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each flushed part of a compressed stream decodes on its own, before the stream ends.
    #[test]
    fn gzip_decodes_part_by_part() {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        let mut decoder = Decoder::new(Some("gzip")).unwrap();
        for line in ["1\n", "2\n"] {
            encoder.write_all(line.as_bytes()).unwrap();
            encoder.flush().unwrap();
            let part = std::mem::take(encoder.get_mut());
            assert_eq!(decoder.push(&part).unwrap(), line.as_bytes());
        }
    }

    #[test]
    fn deflate_is_zlib_or_raw() {
        for zlib in [true, false] {
            let compressed = if zlib {
                let mut e = flate2::write::ZlibEncoder::new(Vec::new(), Default::default());
                e.write_all(b"1\n").unwrap();
                e.finish().unwrap()
            } else {
                let mut e = flate2::write::DeflateEncoder::new(Vec::new(), Default::default());
                e.write_all(b"1\n").unwrap();
                e.finish().unwrap()
            };
            let mut decoder = Decoder::new(Some("deflate")).unwrap();
            let mut out = decoder.push(&compressed).unwrap();
            out.extend(decoder.finish().unwrap());
            assert_eq!(out, b"1\n", "zlib: {zlib}");
        }
    }

    /// A stream flushed but never finished (its compressor cut off) decodes what was flushed,
    /// and its end says so, in every encoding.
    #[test]
    fn a_cut_stream_is_told_from_a_finished_one() {
        /// `1\n` flushed, then finished (`end`) or not, as a cut-off compressor leaves it.
        fn compressed(encoding: &str, end: bool) -> Vec<u8> {
            fn flushed<W: Write>(mut e: W) -> W {
                e.write_all(b"1\n").unwrap();
                e.flush().unwrap();
                e
            }
            let level = flate2::Compression::fast();
            match encoding {
                "gzip" => {
                    let e = flushed(flate2::write::GzEncoder::new(Vec::new(), level));
                    if end { e.finish().unwrap() } else { e.get_ref().clone() }
                }
                "deflate" => {
                    let e = flushed(flate2::write::ZlibEncoder::new(Vec::new(), level));
                    if end { e.finish().unwrap() } else { e.get_ref().clone() }
                }
                "br" => {
                    let e = flushed(brotli::CompressorWriter::new(Vec::new(), 4096, 5, 22));
                    if end { e.into_inner() } else { e.get_ref().clone() }
                }
                _ => {
                    let e = flushed(zstd::stream::write::Encoder::new(Vec::new(), 3).unwrap());
                    if end { e.finish().unwrap() } else { e.get_ref().clone() }
                }
            }
        }
        for encoding in ["gzip", "deflate", "br", "zstd"] {
            for end in [true, false] {
                let mut decoder = Decoder::new(Some(encoding)).unwrap();
                let mut out = decoder.push(&compressed(encoding, end)).unwrap();
                let finished = decoder.finish();
                if end {
                    out.extend(finished.unwrap());
                } else {
                    let error = finished.expect_err(encoding);
                    assert!(error.contains("stops short of its end"), "{encoding}: {error}");
                }
                assert_eq!(out, b"1\n", "{encoding}, finished: {end}");
            }
        }
    }

    #[test]
    fn unknown_encodings_are_named() {
        let err = Decoder::new(Some("compress")).err().unwrap();
        assert!(err.contains("\"compress\""), "{err}");
    }
}
