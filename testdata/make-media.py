#!/usr/bin/env python3
"""Makes Meridian's demo media with ffmpeg: two VOD titles with a visible clock, packaged once as
fMP4 segments and described twice, as HLS (master + media playlists) and as DASH (one MPD with
SegmentTemplate) over the same files.

The output is committed under testdata/media so that tests never need ffmpeg. Run it again only to
change the media:  python3 testdata/make-media.py   (needs ffmpeg with libx264 and DejaVu fonts).
"""
import os
import re
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "media", "vod")
FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSansMono-Bold.ttf"
SEGMENT_SECONDS = 2
FPS = 30

# name, seconds, lavfi video source, audio tone (Hz), caption colour
TITLES = [
    ("big-clock", 32, "testsrc2=size=1280x720:rate=30", 440, "white"),
    ("color-bars", 24, "smptehdbars=size=1280x720:rate=30", 660, "yellow"),
]

# name, width, height, video kbit/s, H.264 profile, level, RFC 6381 codec string
RENDITIONS = [
    ("720p", 1280, 720, 700, "high", "3.1", "avc1.64001f"),
    ("480p", 854, 480, 400, "main", "3.0", "avc1.4d401e"),
    ("360p", 640, 360, 220, "main", "3.0", "avc1.4d401e"),
]
AUDIO_KBPS = 64
AUDIO_CODEC = "mp4a.40.2"
AUDIO_RATE = 48000
AAC_FRAME = 1024


def run(args):
    subprocess.run(args, check=True, stdout=subprocess.DEVNULL)


def hls_fmp4(args_in, out_dir):
    """Encodes into out_dir/index.m3u8 + init.mp4 + seg_NNNNN.m4s."""
    os.makedirs(out_dir)
    run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", *args_in,
         "-f", "hls", "-hls_time", str(SEGMENT_SECONDS), "-hls_playlist_type", "vod",
         "-hls_segment_type", "fmp4", "-hls_fmp4_init_filename", "init.mp4",
         "-hls_segment_filename", os.path.join(out_dir, "seg_%05d.m4s"),
         os.path.join(out_dir, "index.m3u8")])


def segments(out_dir):
    """(duration, size) of every segment in a media playlist, in order."""
    text = open(os.path.join(out_dir, "index.m3u8")).read()
    found = re.findall(r"#EXTINF:([0-9.]+),\s*\n(\S+)", text)
    return [(float(d), os.path.getsize(os.path.join(out_dir, uri))) for d, uri in found]


def peak_and_average_bps(segs):
    peak = max(size * 8 / dur for dur, size in segs)
    average = sum(size for _, size in segs) * 8 / sum(dur for dur, _ in segs)
    return int(peak), int(average)


def make_title(name, seconds, source, tone, colour):
    title_dir = os.path.join(OUT, name)
    caption = (f"drawtext=fontfile={FONT}:fontcolor={colour}:fontsize=64:box=1:boxcolor=black@0.6:"
               f"x=(w-text_w)/2:y=h-150:text='{name}  %{{pts\\:hms}}'")
    video_in = ["-f", "lavfi", "-i", f"{source},{caption}", "-t", str(seconds)]
    gop = ["-g", str(SEGMENT_SECONDS * FPS), "-keyint_min", str(SEGMENT_SECONDS * FPS),
           "-sc_threshold", "0", "-force_key_frames", f"expr:gte(t,n_forced*{SEGMENT_SECONDS})"]
    master_rows = []
    mpd_video = []
    for rname, w, h, kbps, profile, level, codec in RENDITIONS:
        out = os.path.join(title_dir, rname)
        hls_fmp4([*video_in, "-an", "-vf", f"scale={w}:{h}", "-c:v", "libx264",
                  "-profile:v", profile, "-level:v", level, "-pix_fmt", "yuv420p",
                  "-preset", "veryfast", "-b:v", f"{kbps}k", "-maxrate", f"{kbps * 3 // 2}k",
                  "-bufsize", f"{kbps * 2}k", *gop,
                  # No B-frames: presentation starts at 0 like the audio's, so a live loop
                  # point joins both tracks without a hole (hls.js stalled on one).
                  "-bf", "0"], out)
        peak, avg = peak_and_average_bps(segments(out))
        master_rows.append((rname, w, h, codec, peak, avg))
        mpd_video.append(f'      <Representation id="{rname}" codecs="{codec}" bandwidth="{peak}" '
                         f'width="{w}" height="{h}" frameRate="{FPS}" sar="1:1"/>')
    audio_dir = os.path.join(title_dir, "audio")
    # The audio must last exactly as long as the video, or every live loop point opens a hole
    # (or an overlap) between the tracks that grows by the difference each loop and stalls the
    # player. An AAC frame is 1024 samples and the encoder adds one frame of priming, so the
    # input is one frame short, and a title lasts a whole number of frames (32 s and 24 s at
    # 48 kHz are 1500 and 1125 frames; 30 s would be 1406.25).
    assert (seconds * AUDIO_RATE) % AAC_FRAME == 0, f"{name}: {seconds} s is not whole AAC frames"
    hls_fmp4(["-f", "lavfi", "-i", f"sine=frequency={tone}:sample_rate={AUDIO_RATE}",
              "-t", f"{seconds - AAC_FRAME / AUDIO_RATE:.6f}",
              "-c:a", "aac", "-b:a", f"{AUDIO_KBPS}k", "-ac", "2", "-ar", str(AUDIO_RATE)], audio_dir)
    audio_peak, _ = peak_and_average_bps(segments(audio_dir))

    with open(os.path.join(title_dir, "master.m3u8"), "w") as f:
        f.write("#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-INDEPENDENT-SEGMENTS\n")
        f.write('#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="aac",NAME="English",LANGUAGE="en",'
                'DEFAULT=YES,AUTOSELECT=YES,CHANNELS="2",URI="audio/index.m3u8"\n')
        for rname, w, h, codec, peak, avg in master_rows:
            f.write(f'#EXT-X-STREAM-INF:BANDWIDTH={peak + audio_peak},'
                    f'AVERAGE-BANDWIDTH={avg + AUDIO_KBPS * 1000},'
                    f'CODECS="{codec},{AUDIO_CODEC}",RESOLUTION={w}x{h},FRAME-RATE={FPS}.000,'
                    f'AUDIO="aac"\n{rname}/index.m3u8\n')

    template = (f'<SegmentTemplate timescale="1000" duration="{SEGMENT_SECONDS * 1000}" '
                'startNumber="0" initialization="$RepresentationID$/init.mp4" '
                'media="$RepresentationID$/seg_$Number%05d$.m4s"/>')
    video_rows = "\n".join(mpd_video)
    with open(os.path.join(title_dir, "manifest.mpd"), "w") as f:
        f.write(f"""<?xml version="1.0" encoding="UTF-8"?>
<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" profiles="urn:mpeg:dash:profile:isoff-live:2011"
     type="static" mediaPresentationDuration="PT{seconds}.000S" minBufferTime="PT4.000S">
  <Period id="0" start="PT0.000S">
    <AdaptationSet id="0" contentType="video" mimeType="video/mp4" segmentAlignment="true"
                   startWithSAP="1" maxWidth="1280" maxHeight="720">
      {template}
{video_rows}
    </AdaptationSet>
    <AdaptationSet id="1" contentType="audio" mimeType="audio/mp4" lang="en"
                   segmentAlignment="true" startWithSAP="1">
      {template}
      <Representation id="audio" codecs="{AUDIO_CODEC}" bandwidth="{audio_peak}"
                      audioSamplingRate="{AUDIO_RATE}">
        <AudioChannelConfiguration schemeIdUri="urn:mpeg:dash:23003:3:audio_channel_configuration:2011"
                                   value="2"/>
      </Representation>
    </AdaptationSet>
  </Period>
</MPD>
""")


def main():
    if shutil.which("ffmpeg") is None:
        sys.exit("make-media: ffmpeg is not installed (apt-get install ffmpeg)")
    shutil.rmtree(OUT, ignore_errors=True)
    for title in TITLES:
        make_title(*title)
    total = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(OUT) for f in fs)
    print(f"make-media: wrote {OUT} ({total / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
