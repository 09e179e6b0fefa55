//! Just enough ISO BMFF (fragmented MP4) to move a media segment along the timeline.
//!
//! Live DASH plays the looped VOD segments on one continuous timeline, so the `n`th repeat of a
//! segment must carry decode times `n` loops later than the file: [`shift`] adds to every
//! `tfdt` (track fragment decode time) and to the `sidx` earliest presentation time. The boxes
//! keep their sizes (64-bit fields are patched in place; a 32-bit one that would overflow is
//! refused), so sample offsets stay right.

use std::time::Duration;

/// Why a segment cannot be shifted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Mp4Error {
    #[error("a box runs past the end of the file")]
    Truncated,
    #[error("no track fragment decode time (tfdt) to shift")]
    NoDecodeTime,
    #[error("the shift is not a whole number of ticks at timescale {0}")]
    Inexact(u32),
    #[error("a 32-bit decode time would overflow")]
    Overflow,
    #[error("no media header (mdhd) with a timescale")]
    NoTimescale,
}

fn u32_at(bytes: &[u8], at: usize) -> Result<u32, Mp4Error> {
    let field = bytes.get(at..at + 4).ok_or(Mp4Error::Truncated)?;
    Ok(u32::from_be_bytes(
        <[u8; 4]>::try_from(field).map_err(|_| Mp4Error::Truncated)?,
    ))
}

fn u64_at(bytes: &[u8], at: usize) -> Result<u64, Mp4Error> {
    let field = bytes.get(at..at + 8).ok_or(Mp4Error::Truncated)?;
    Ok(u64::from_be_bytes(
        <[u8; 8]>::try_from(field).map_err(|_| Mp4Error::Truncated)?,
    ))
}

/// One box: its type, where its payload starts, and where it ends.
struct Box_ {
    kind: [u8; 4],
    payload: usize,
    end: usize,
}

/// The boxes in `bytes[start..end]`, in order.
fn boxes(bytes: &[u8], start: usize, end: usize) -> Result<Vec<Box_>, Mp4Error> {
    let mut out = Vec::new();
    let mut at = start;
    while at + 8 <= end {
        let size32 = u32_at(bytes, at)?;
        let kind = <[u8; 4]>::try_from(&bytes[at + 4..at + 8]).map_err(|_| Mp4Error::Truncated)?;
        let (size, header) = match size32 {
            0 => ((end - at) as u64, 8),
            1 => (u64_at(bytes, at + 8)?, 16),
            n => (n as u64, 8),
        };
        let box_end = at.checked_add(size as usize).ok_or(Mp4Error::Truncated)?;
        if size < header as u64 || box_end > end {
            return Err(Mp4Error::Truncated);
        }
        out.push(Box_ {
            kind,
            payload: at + header,
            end: box_end,
        });
        at = box_end;
    }
    Ok(out)
}

/// `by` in ticks of `timescale`, exactly.
fn ticks(by: Duration, timescale: u32) -> Result<u64, Mp4Error> {
    let nanos = by.as_nanos() * timescale as u128;
    if !nanos.is_multiple_of(1_000_000_000) {
        return Err(Mp4Error::Inexact(timescale));
    }
    u64::try_from(nanos / 1_000_000_000).map_err(|_| Mp4Error::Overflow)
}

/// Adds `delta` to the version-0 (32-bit) or version-1 (64-bit) field at `at`.
fn add_versioned(bytes: &mut [u8], version: u8, at: usize, delta: u64) -> Result<(), Mp4Error> {
    if version == 1 {
        let value = u64_at(bytes, at)?
            .checked_add(delta)
            .ok_or(Mp4Error::Overflow)?;
        bytes[at..at + 8].copy_from_slice(&value.to_be_bytes());
    } else {
        let value =
            u32::try_from(u32_at(bytes, at)? as u64 + delta).map_err(|_| Mp4Error::Overflow)?;
        bytes[at..at + 4].copy_from_slice(&value.to_be_bytes());
    }
    Ok(())
}

/// Moves a media segment `by` later: every `tfdt` in every `moof/traf` (in ticks of the track's
/// `timescale`, from the initialisation segment) and the `sidx` earliest presentation time (in
/// its own timescale).
pub fn shift(segment: &mut [u8], by: Duration, timescale: u32) -> Result<(), Mp4Error> {
    let track_ticks = ticks(by, timescale)?;
    let mut shifted = false;
    for top in boxes(segment, 0, segment.len())? {
        match &top.kind {
            b"sidx" => {
                // version(1) flags(3) reference_ID(4) timescale(4) earliest_presentation_time
                let version = *segment.get(top.payload).ok_or(Mp4Error::Truncated)?;
                let scale = u32_at(segment, top.payload + 8)?;
                add_versioned(segment, version, top.payload + 12, ticks(by, scale)?)?;
            }
            b"moof" => {
                for traf in boxes(segment, top.payload, top.end)? {
                    if &traf.kind != b"traf" {
                        continue;
                    }
                    for tfdt in boxes(segment, traf.payload, traf.end)? {
                        if &tfdt.kind == b"tfdt" {
                            let version = *segment.get(tfdt.payload).ok_or(Mp4Error::Truncated)?;
                            add_versioned(segment, version, tfdt.payload + 4, track_ticks)?;
                            shifted = true;
                        }
                    }
                }
            }
            _ => {}
        }
    }
    if shifted {
        Ok(())
    } else {
        Err(Mp4Error::NoDecodeTime)
    }
}

/// The media timescale of the first track of an initialisation segment (`moov/trak/mdia/mdhd`).
pub fn timescale(init: &[u8]) -> Result<u32, Mp4Error> {
    let find = |kind: &[u8; 4], start: usize, end: usize| -> Result<Option<Box_>, Mp4Error> {
        Ok(boxes(init, start, end)?
            .into_iter()
            .find(|b| &b.kind == kind))
    };
    let moov = find(b"moov", 0, init.len())?.ok_or(Mp4Error::NoTimescale)?;
    let trak = find(b"trak", moov.payload, moov.end)?.ok_or(Mp4Error::NoTimescale)?;
    let mdia = find(b"mdia", trak.payload, trak.end)?.ok_or(Mp4Error::NoTimescale)?;
    let mdhd = find(b"mdhd", mdia.payload, mdia.end)?.ok_or(Mp4Error::NoTimescale)?;
    let version = *init.get(mdhd.payload).ok_or(Mp4Error::Truncated)?;
    // version(1) flags(3) creation and modification times (4 or 8 each), then the timescale.
    let at = mdhd.payload + if version == 1 { 20 } else { 12 };
    let scale = u32_at(init, at)?;
    if scale == 0 {
        return Err(Mp4Error::NoTimescale);
    }
    Ok(scale)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mp4_box(kind: &[u8; 4], payload: &[u8]) -> Vec<u8> {
        let mut out = ((payload.len() + 8) as u32).to_be_bytes().to_vec();
        out.extend_from_slice(kind);
        out.extend_from_slice(payload);
        out
    }

    fn segment(tfdt_v1: u64, sidx_ept: u64) -> Vec<u8> {
        let mut sidx = vec![1, 0, 0, 0, 0, 0, 0, 1];
        sidx.extend_from_slice(&1000u32.to_be_bytes());
        sidx.extend_from_slice(&sidx_ept.to_be_bytes());
        sidx.extend_from_slice(&[0; 12]);
        let mut tfdt = vec![1, 0, 0, 0];
        tfdt.extend_from_slice(&tfdt_v1.to_be_bytes());
        let traf = mp4_box(
            b"traf",
            &[mp4_box(b"tfhd", &[0; 8]), mp4_box(b"tfdt", &tfdt)].concat(),
        );
        let moof = mp4_box(b"moof", &[mp4_box(b"mfhd", &[0; 8]), traf].concat());
        [
            mp4_box(b"styp", b"msdh"),
            mp4_box(b"sidx", &sidx),
            moof,
            mp4_box(b"mdat", b"xyz"),
        ]
        .concat()
    }

    #[test]
    fn shifts_decode_times_in_place() {
        let mut seg = segment(30_720, 2_000);
        let len = seg.len();
        shift(&mut seg, Duration::from_secs(32), 15_360).expect("shifts");
        assert_eq!(seg, segment(30_720 + 32 * 15_360, 2_000 + 32_000));
        assert_eq!(seg.len(), len);
    }

    #[test]
    fn refuses_what_it_cannot_shift_exactly() {
        let mut seg = segment(0, 0);
        assert_eq!(
            shift(&mut seg, Duration::from_micros(1), 48_000),
            Err(Mp4Error::Inexact(48_000))
        );
        let mut no_moof = mp4_box(b"mdat", b"abc");
        assert_eq!(
            shift(&mut no_moof, Duration::from_secs(1), 1),
            Err(Mp4Error::NoDecodeTime)
        );
        let mut cut = segment(0, 0);
        cut.truncate(30);
        assert!(shift(&mut cut, Duration::from_secs(1), 1).is_err());
        let mut v0 = mp4_box(
            b"moof",
            &mp4_box(
                b"traf",
                &mp4_box(b"tfdt", &[0, 0, 0, 0, 0xff, 0xff, 0xff, 0]),
            ),
        );
        assert_eq!(
            shift(&mut v0, Duration::from_secs(1), 1000),
            Err(Mp4Error::Overflow)
        );
    }

    #[test]
    fn reads_the_timescale_of_the_demo_media() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../testdata/media/vod/big-clock");
        let video = std::fs::read(root.join("720p/init.mp4")).expect("init");
        let audio = std::fs::read(root.join("audio/init.mp4")).expect("init");
        assert_eq!(timescale(&video), Ok(15_360));
        assert_eq!(timescale(&audio), Ok(48_000));
        let mut seg = std::fs::read(root.join("720p/seg_00001.m4s")).expect("segment");
        shift(&mut seg, Duration::from_secs(32), 15_360).expect("our packager's segments shift");
        assert_eq!(timescale(b"not mp4"), Err(Mp4Error::NoTimescale));
    }
}
