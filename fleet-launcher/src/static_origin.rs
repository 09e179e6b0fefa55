//! `--origin nginx`: the fleet in front of an origin that knows nothing about Meridian. nginx
//! serves the media root's VOD titles as plain files, and ffmpeg's own HLS and DASH muxers
//! write a live channel (`live/big-clock`, a test pattern) into a folder nginx serves, the HLS
//! media playlist with absolute URLs of the origin, as packagers often write them. Steering,
//! CDN paths and handover then come from the edges alone.
//!
//! Caching is what an operator would configure: live manifests for 1 s, segments and VOD files
//! for a day, VOD manifests for 10 s.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use crate::Error;
use crate::plan::{Addresses, Probe, Spec, write};

/// The live channel ffmpeg writes.
pub const LIVE_TITLE: &str = "big-clock";

/// nginx, then the live encoder (ready once its third HLS segment is listed).
pub fn specs(run_dir: &Path, media: &Path, a: &Addresses) -> Result<Vec<Spec>, Error> {
    let nginx = program("nginx", "nginx", &["/usr/sbin/nginx"])?;
    let ffmpeg = program("ffmpeg", "ffmpeg", &[])?;
    let root = run_dir.join("nginx");
    let www = root.join("www");
    let live = www.join("live").join(LIVE_TITLE);
    // A cold channel every start: a folder from an earlier run holds an ended stream.
    let _ = std::fs::remove_dir_all(www.join("live"));
    for dir in [&root.join("temp"), &live] {
        std::fs::create_dir_all(dir).map_err(|cause| Error::Write {
            path: dir.clone(),
            cause,
        })?;
    }
    let conf = root.join("nginx.conf");
    write(
        &conf,
        &nginx_conf(&root, &www, &media.join("vod"), a.origin_http),
    )?;
    let base = format!("http://{}", a.origin_http);
    let nginx = Spec {
        name: "origin-nginx".into(),
        program: nginx,
        args: vec![
            "-e".into(),
            "stderr".into(),
            "-p".into(),
            root.display().to_string(),
            "-c".into(),
            conf.display().to_string(),
        ],
        listeners: &[],
        probes: vec![Probe {
            url: format!("{base}/vod/{LIVE_TITLE}/master.m3u8"),
            contains: "#EXTM3U".into(),
        }],
    };
    let encoder = Spec {
        name: "origin-ffmpeg".into(),
        program: ffmpeg,
        args: ffmpeg_args(&live, &format!("{base}/live/{LIVE_TITLE}/"), &base),
        listeners: &[],
        probes: vec![
            Probe {
                url: format!("{base}/live/{LIVE_TITLE}/hls.m3u8"),
                contains: "hls-00002.m4s".into(),
            },
            Probe {
                url: format!("{base}/live/{LIVE_TITLE}/manifest.mpd"),
                contains: "<MPD".into(),
            },
        ],
    };
    Ok(vec![nginx, encoder])
}

/// The program on PATH (or at one of `also`), or the error naming its Debian package.
fn program(name: &'static str, package: &'static str, also: &[&str]) -> Result<PathBuf, Error> {
    let on_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default();
    on_path
        .into_iter()
        .map(|dir| dir.join(name))
        .chain(also.iter().map(PathBuf::from))
        .find(|p| p.is_file())
        .ok_or(Error::MissingProgram { name, package })
}

/// One process (`master_process off`), in the foreground, everything under the run folder.
fn nginx_conf(root: &Path, www: &Path, vod: &Path, listen: SocketAddr) -> String {
    let temp = root.join("temp");
    let t = |name: &str| temp.join(name).display().to_string();
    format!(
        r#"# Written by meridian-local (--origin nginx): a plain static origin.
daemon off;
master_process off;
worker_processes 1;
pid {pid};
error_log stderr warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    sendfile on;
    client_body_temp_path {body};
    proxy_temp_path {proxy};
    fastcgi_temp_path {fastcgi};
    uwsgi_temp_path {uwsgi};
    scgi_temp_path {scgi};
    types {{
        application/vnd.apple.mpegurl m3u8;
        application/dash+xml mpd;
        video/iso.segment m4s;
        video/mp4 mp4;
        text/vtt vtt;
    }}
    default_type application/octet-stream;
    server {{
        listen {listen};
        root {www};
        location /vod/ {{
            alias {vod}/;
            expires 1d;
            location ~ \.(m3u8|mpd)$ {{ expires 10s; }}
        }}
        location /live/ {{
            expires 1d;
            location ~ \.(m3u8|mpd)$ {{ expires 1s; }}
        }}
        # The clock DASH players synchronise with (the MPD's UTCTiming).
        location = /time {{
            default_type text/plain;
            add_header Cache-Control no-store;
            return 200 "$time_iso8601";
        }}
    }}
}}
"#,
        pid = root.join("nginx.pid").display(),
        body = t("body"),
        proxy = t("proxy"),
        fastcgi = t("fastcgi"),
        uwsgi = t("uwsgi"),
        scgi = t("scgi"),
        www = www.display(),
        vod = vod.display(),
    )
}

/// A 360p test pattern in real time, encoded twice (one encoder per muxer), 2 s segments:
/// HLS (fMP4, multivariant `master.m3u8`, the media playlist's URLs absolute under
/// `hls_base`) and DASH (`manifest.mpd`, a template, UTCTiming at the origin's `/time`).
fn ffmpeg_args(live: &Path, hls_base: &str, origin: &str) -> Vec<String> {
    let out = |name: &str| live.join(name).display().to_string();
    let encode = [
        "-map",
        "0:v",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-g",
        "50",
        "-keyint_min",
        "50",
        "-sc_threshold",
        "0",
        "-b:v",
        "600k",
        "-pix_fmt",
        "yuv420p",
    ];
    let mut args: Vec<String> = [
        "-hide_banner",
        "-loglevel",
        "warning",
        "-nostdin",
        "-re",
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=640x360:rate=25",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend(encode.iter().map(|s| s.to_string()));
    args.extend(
        [
            "-f",
            "hls",
            "-hls_time",
            "2",
            "-hls_list_size",
            "10",
            "-hls_flags",
            "delete_segments+independent_segments",
            "-hls_segment_type",
            "fmp4",
            "-hls_fmp4_init_filename",
            "hls-init.mp4",
            "-hls_segment_filename",
        ]
        .iter()
        .map(|s| s.to_string()),
    );
    args.push(out("hls-%05d.m4s"));
    args.extend(["-hls_base_url".into(), hls_base.to_owned()]);
    args.extend(["-master_pl_name".into(), "master.m3u8".into()]);
    args.push(out("hls.m3u8"));
    args.extend(encode.iter().map(|s| s.to_string()));
    args.extend(
        [
            "-f",
            "dash",
            "-seg_duration",
            "2",
            "-window_size",
            "10",
            "-extra_window_size",
            "5",
            "-use_template",
            "1",
            "-use_timeline",
            "0",
            "-init_seg_name",
            "dash-init-$RepresentationID$.m4s",
            "-media_seg_name",
            "dash-$RepresentationID$-$Number%05d$.m4s",
        ]
        .iter()
        .map(|s| s.to_string()),
    );
    args.extend(["-utc_timing_url".into(), format!("{origin}/time")]);
    args.push(out("manifest.mpd"));
    args
}
